//! A counting global allocator: every call goes to the system allocator, and on the way
//! it counts
//! - the heap calls (allocations and reallocations) made by the calling thread, for
//!   allocations per request ([`calls`]). Per thread, so that the test harness's or
//!   criterion's own threads never show up in a count;
//! - the live heap bytes of the whole process and their peak ([`live_bytes`],
//!   [`peak_bytes`], [`reset_peak`]), for the memory a structure holds.
//!
//! Each test or bench binary that counts declares it itself:
//!
//! ```
//! use shardbid_testkit::alloc::{self, Counting};
//!
//! #[global_allocator]
//! static ALLOC: Counting = Counting;
//!
//! fn main() {
//!     let before = alloc::calls();
//!     let v = vec![1u8; 100]; // the code being counted, on this thread
//!     assert_eq!(alloc::calls() - before, 1);
//!     # drop(v);
//! }
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The counting allocator (a unit struct: declare `static A: Counting = Counting;`).
pub struct Counting;

thread_local! {
    // `const` and `Copy`: no lazy initialisation and no destructor, so the allocator
    // can touch it from any allocation, including during thread start and exit.
    static CALLS: Cell<u64> = const { Cell::new(0) };
}

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn count_call() {
    let _ = CALLS.try_with(|c| c.set(c.get() + 1));
}

fn grow(n: usize) {
    let live = LIVE.fetch_add(n, Ordering::Relaxed) + n;
    // A plain load first: the read-modify-write only when a new peak is set.
    if live > PEAK.load(Ordering::Relaxed) {
        PEAK.fetch_max(live, Ordering::Relaxed);
    }
}

fn shrink(n: usize) {
    LIVE.fetch_sub(n, Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to the system allocator, and its result
// returned unchanged; the counting touches only a thread-local cell and two atomics,
// and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_call();
        // SAFETY: forwarded unchanged from the caller, who upholds GlobalAlloc's contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_call();
        // SAFETY: forwarded unchanged from the caller, who upholds GlobalAlloc's contract.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        shrink(layout.size());
        // SAFETY: forwarded unchanged from the caller, who upholds GlobalAlloc's contract.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_call();
        // SAFETY: forwarded unchanged from the caller, who upholds GlobalAlloc's contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        // On failure the old block stays allocated, at its old size.
        if !p.is_null() {
            if new_size >= layout.size() {
                grow(new_size - layout.size());
            } else {
                shrink(layout.size() - new_size);
            }
        }
        p
    }
}

/// Heap calls (allocations and reallocations) made so far by the calling thread.
pub fn calls() -> u64 {
    CALLS.with(Cell::get)
}

/// Heap bytes the process holds now (requested sizes, not the allocator's rounding).
pub fn live_bytes() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// The most heap bytes the process has held at once since the last [`reset_peak`].
pub fn peak_bytes() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// Starts a new peak from what is live now.
pub fn reset_peak() {
    PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[global_allocator]
    static ALLOC: Counting = Counting;

    #[test]
    fn counts_this_threads_calls_and_the_live_and_peak_bytes() {
        let before = calls();
        let mut v: Vec<u8> = Vec::with_capacity(1 << 20);
        v.reserve_exact(2 << 20);
        assert_eq!(calls() - before, 2, "an allocation and a reallocation");
        // Another thread's calls are its own, not this thread's.
        let other = std::thread::spawn(|| {
            let before = calls();
            let v = vec![1u8; 64];
            let n = calls() - before;
            drop(v);
            n
        });
        let here = calls();
        assert_eq!(other.join().unwrap(), 1);
        assert_eq!(calls(), here);
        // Other test threads may allocate meanwhile: the bytes are process-wide, so
        // compare with room to spare.
        assert!(live_bytes() >= 2 << 20);
        reset_peak();
        let peak_from = peak_bytes();
        let big = vec![1u8; 8 << 20];
        assert!(peak_bytes() >= peak_from + (8 << 20));
        drop(big);
        drop(v);
        assert!(live_bytes() < peak_bytes());
    }
}
