//! Being a good client under rate limits: a sliding-window limiter, adaptive headroom
//! from observed latency, retry backoff with jitter, and a bounded pending queue with
//! deadlines. Pure logic: every call takes the current time in nanoseconds since the
//! start of the run, so tests drive time by hand.

pub mod backoff;
pub mod headroom;
pub mod limiter;
pub mod queue;

/// Nanoseconds in a second.
pub const SECOND: u64 = 1_000_000_000;
