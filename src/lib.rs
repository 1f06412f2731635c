//! shardbid: a thread-per-core OpenRTB bidder.
//!
//! # Layout
//! The pure core (no runtime, no I/O; `tests/layering.rs` keeps it so):
//! - [`json`] — JSON strings and integers written without allocating.
//! - [`encoding`] — gzip and deflate bodies: inflated under a cap, gzip responses.
//! - [`money`] — exact amounts, budgets and leases, pacing, frequency caps, notices.
//! - [`openrtb`] — request model, decoder, response encoder.
//! - [`events`] (`record`) — the event log's records.
//! - [`targeting`] — campaigns, the indexed table, one imp's candidates.
//! - [`auction`] — candidates to priced bids.
//! - [`pipeline`] — body bytes to response bytes: decode, auction, encode.
//!
//! The runtime:
//! - [`config`] — typed settings, defaults, validation with key paths in errors.
//! - [`metrics`] — per-shard counters and gauges, summed at scrape time.
//! - [`net`] — connections: accept loop, hyper glue, timeouts, outbox, coarse clock.
//! - [`notify`] — systemd notifications (ready, stopping, status) and the watchdog.
//! - [`events`] (`writer`) — per-shard event buffers and the writer thread.
//! - [`telemetry`] — logging.
//! - [`process`] — the process's CPU, memory, descriptors and start time, from `/proc`.
//! - [`memory`] — freed memory handed back to the OS after many connections close.
//! - [`shard`] — what one core owns: state, housekeeping, connection balancing.
//! - [`control`] — the thread that builds tables, ships them to shards, and drains.
//! - [`http`] — the traffic routes and bid handler, the admin API.
//! - [`server`] — process life: start, wait, drain.

pub mod admission;
pub mod auction;
pub mod config;
pub mod control;
pub mod encoding;
pub mod events;
pub mod http;
pub mod json;
pub mod memory;
pub mod metrics;
pub mod money;
pub mod net;
pub mod notify;
pub mod openrtb;
pub mod pipeline;
pub mod process;
pub mod server;
pub mod shard;
pub mod targeting;
pub mod telemetry;
