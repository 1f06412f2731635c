//! The coarse clock: the current instant to within a housekeeping tick, without a
//! clock read. Connection timeouts of seconds need no more, and a request path that
//! reads no clock is cheaper (a clock read is ~45 ns on a virtual machine).

#![forbid(unsafe_code)]

use std::cell::Cell;
use std::time::Instant;

thread_local! {
    /// The shard's coarse clock, advanced by its housekeeping tick ([`set_coarse_now`]).
    static COARSE_NOW: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The current instant to within the shard's housekeeping tick (10 ms), without a clock
/// read; exact on a thread whose clock nobody advances. Timeouts of seconds need no more.
pub fn coarse_now() -> Instant {
    COARSE_NOW.with(Cell::get).unwrap_or_else(Instant::now)
}

/// Advances this thread's [`coarse_now`].
pub fn set_coarse_now(now: Instant) {
    COARSE_NOW.with(|c| c.set(Some(now)));
}
