//! shardbid: a thread-per-core OpenRTB bidder.
//!
//! # Layout
//! - [`config`] — typed settings, defaults, validation with key paths in errors.
//! - [`money`] — exact integer micro-unit amounts.
//! - [`openrtb`] — request model, decoder, response encoder (pure).
//! - [`targeting`] — campaigns and the indexed, replicated table (pure).
//! - [`auction`] — candidates to priced bids (pure).
//! - [`pipeline`] — body bytes to response bytes: decode, auction, encode (pure).
//! - [`metrics`] — per-shard counters, summed at scrape time.
//! - [`shard`] — what one core owns: listener, connections, table replica, scratch.
//! - [`http`] — glommio/hyper glue and the outbox, routes, bid handler, admin API.
//! - [`control`] — the thread that builds tables and ships them to shards.
//! - [`server`] — process life: start, wait, drain.
//! - [`notify`] — systemd notifications (ready, stopping, status) and the watchdog.
//! - [`telemetry`] — logging.

pub mod auction;
pub mod config;
pub mod control;
pub mod http;
pub mod metrics;
pub mod money;
pub mod notify;
pub mod openrtb;
pub mod pipeline;
pub mod server;
pub mod shard;
pub mod targeting;
pub mod telemetry;
