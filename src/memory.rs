//! Giving the memory of closed connections back to the OS.
//!
//! glibc's malloc keeps what a thread frees in that thread's arena (every shard has its
//! own) for the thread to reuse, and hands memory back to the OS only from the top of a
//! heap, past `M_TRIM_THRESHOLD`. After thousands of connections close, their buffers
//! are free but scattered between live allocations, so they stay resident for good: an
//! attack of 2,000 connections holding large heads and bodies left the process at three
//! times its steady size (docs/performance.md, "Memory after an attack"). Raising or
//! fixing the mmap threshold returned only part of it, and would cost a `mmap` per
//! large buffer on the request path.
//!
//! `malloc_trim(0)` hands back every whole free page of every arena
//! (`madvise(MADV_DONTNEED)`). It takes each arena's lock in turn while it walks it, so
//! it runs on the control thread, and only when it is worth it: after the open traffic
//! connections fell by `server.memory_trim_connections` from their highest since the
//! last trim, at most once per [`TRIM_GAP`]. Nothing on the request path changes.

use std::time::{Duration, Instant};

/// Trims come at least this far apart, however connections come and go.
pub const TRIM_GAP: Duration = Duration::from_secs(1);

/// Decides when to trim, from the open traffic connections (see the module docs).
#[derive(Debug)]
pub struct Trimmer {
    /// Fall in open connections that calls for a trim; 0: never trim.
    after_closed: usize,
    /// Open connections at their highest since the last trim.
    high: usize,
    last: Option<Instant>,
    /// Trims made, and the resident bytes they returned.
    trims: u64,
    returned_bytes: u64,
}

/// What one trim did.
#[derive(Debug, Clone, Copy)]
pub struct Trimmed {
    /// Resident memory before and after, in bytes (0 where `/proc` cannot be read).
    pub before: u64,
    pub after: u64,
    pub took: Duration,
}

impl Trimmer {
    pub fn new(after_closed: usize) -> Trimmer {
        Trimmer {
            after_closed,
            high: 0,
            last: None,
            trims: 0,
            returned_bytes: 0,
        }
    }

    /// Given the open traffic connections `now`: whether to trim now. Saying yes starts
    /// the count again from `open`.
    pub fn due(&mut self, open: usize, now: Instant) -> bool {
        self.high = self.high.max(open);
        if self.after_closed == 0 || self.high - open < self.after_closed {
            return false;
        }
        if self.last.is_some_and(|t| now.duration_since(t) < TRIM_GAP) {
            return false;
        }
        self.high = open;
        self.last = Some(now);
        true
    }

    /// Trims if [`Trimmer::due`] says so.
    pub fn check(&mut self, open: usize, now: Instant) -> Option<Trimmed> {
        if !self.due(open, now) {
            return None;
        }
        let trimmed = trim();
        self.trims += 1;
        self.returned_bytes += trimmed.before.saturating_sub(trimmed.after);
        Some(trimmed)
    }

    /// Trims made so far.
    pub fn trims(&self) -> u64 {
        self.trims
    }

    /// Resident bytes the trims returned (each trim's fall in resident memory).
    pub fn returned_bytes(&self) -> u64 {
        self.returned_bytes
    }
}

/// Hands every whole free page of every malloc arena back to the OS.
pub fn trim() -> Trimmed {
    let before = resident_bytes();
    let start = Instant::now();
    release();
    Trimmed {
        before,
        after: resident_bytes(),
        took: start.elapsed(),
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release() {
    // SAFETY: `malloc_trim` takes no pointers and only works on the allocator's own
    // state under its arena locks; it is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators (musl's) return freed memory by themselves, or offer no trim.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release() {}

/// Resident memory (the second field of `/proc/self/statm`, in pages), or 0.
fn resident_bytes() -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = text
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * page_size()
}

fn page_size() -> u64 {
    // SAFETY: `sysconf` reads a constant of the system; no memory is passed.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_once_connections_fell_far_enough_and_not_too_often() {
        let t0 = Instant::now();
        let mut t = Trimmer::new(100);
        assert!(!t.due(50, t0));
        assert!(!t.due(500, t0));
        assert!(!t.due(401, t0), "a fall of 99");
        assert!(t.due(400, t0), "a fall of 100");
        // Counted again from 400; and not twice within the gap.
        assert!(!t.due(350, t0));
        assert!(!t.due(0, t0 + TRIM_GAP / 2));
        assert!(
            t.due(0, t0 + TRIM_GAP),
            "the fall from 400 waited for the gap"
        );
        assert!(!t.due(0, t0 + 10 * TRIM_GAP), "nothing fell since");
        // Rises alone never trim.
        assert!(!t.due(10_000, t0 + 20 * TRIM_GAP));
    }

    #[test]
    fn zero_never_trims() {
        let mut t = Trimmer::new(0);
        let now = Instant::now();
        assert!(!t.due(10_000, now));
        assert!(!t.due(0, now + 10 * TRIM_GAP));
        assert!(t.check(0, now + 20 * TRIM_GAP).is_none());
        assert_eq!(t.trims(), 0);
    }

    #[test]
    fn a_trim_is_counted_with_the_memory_it_returned() {
        let mut t = Trimmer::new(1);
        let now = Instant::now();
        assert!(t.check(1, now).is_none());
        let trimmed = t.check(0, now).expect("due");
        assert!(trimmed.before > 0, "{trimmed:?}");
        assert_eq!(t.trims(), 1);
        assert_eq!(
            t.returned_bytes(),
            trimmed.before.saturating_sub(trimmed.after)
        );
    }
}
