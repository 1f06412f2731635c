//! shardbid-load: a load generator and benchmark driver for OpenRTB bidders.
//!
//! # Layout
//! - [`campaigns`]: campaign files: the generated campaigns of `shardbid_testkit::traffic`
//!   (whose requests and campaigns draw from one vocabulary, so a known share of
//!   requests bids), read into shardbid's own types and written with serde.
//! - [`http`]: target URLs, pre-serialised HTTP/1.1 requests, a minimal response parser.
//! - [`control`]: client-side rate limiting, adaptive headroom, retry backoff and the
//!   bounded pending queue (pure, time is injected).
//! - [`engine`]: worker threads, each a non-blocking event loop over its connections,
//!   in closed loop (maximum throughput) or open loop (constant arrival rate).
//! - [`notices`]: `run --notices`, the exchange's win, billing and loss notices for the
//!   bids a run gets (with duplicates, forgeries and over-price notices).
//! - [`report`]: outcome counters, HDR histograms, the live progress line, the summary
//!   table, the JSON summary and the SVG chart.

pub mod campaigns;
pub mod control;
pub mod engine;
pub mod http;
pub mod notices;
pub mod report;
