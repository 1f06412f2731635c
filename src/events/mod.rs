//! The event log: one JSON line for every bid, win, billing, loss, expired reservation
//! and refused notice, in files that a finance team can reconcile against an
//! exchange's invoice.
//!
//! - [`record`]: the events, their compact form on the shard and their JSON line
//!   (pure).
//! - [`writer`]: the per-shard buffers and the thread that writes them to rotating
//!   files, fsyncs, and finishes on shutdown (runtime).

pub mod record;
pub mod writer;

pub use record::{Event, EventType};
