//! The bounded pending queue: requests waiting for a free connection or for the limiter,
//! and retries waiting out their backoff. Memory is bounded by `capacity`; a request
//! that finds the queue full is dead-lettered, and one whose deadline passes while it
//! waits is expired. Both are counted by the caller.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};

/// No deadline.
pub const NO_DEADLINE: u64 = u64::MAX;

/// A request that has not been answered yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    /// When it was meant to be sent (ns since the start of the run); latency counts from here.
    pub intended: u64,
    /// When it stops being worth sending ([`NO_DEADLINE`] for never).
    pub deadline: u64,
    /// Index of its body.
    pub body: u32,
    /// Attempts made so far.
    pub attempts: u32,
}

impl Pending {
    /// A fresh request.
    pub fn new(intended: u64, deadline: u64, body: u32) -> Pending {
        Pending {
            intended,
            deadline,
            body,
            attempts: 0,
        }
    }

    /// Whether its deadline has passed at `now`.
    pub fn expired(&self, now: u64) -> bool {
        now > self.deadline
    }
}

/// Why a request was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// The queue is full: dead letter.
    Full,
    /// The retry would happen after the deadline.
    Expired,
}

#[derive(Debug, PartialEq, Eq)]
struct Delayed {
    due: u64,
    seq: u64,
    p: Pending,
}

impl Ord for Delayed {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

impl PartialOrd for Delayed {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A FIFO of ready requests plus a timer heap of retries, sharing one capacity.
#[derive(Debug)]
pub struct PendingQueue {
    ready: VecDeque<Pending>,
    delayed: BinaryHeap<Reverse<Delayed>>,
    capacity: usize,
    seq: u64,
}

impl PendingQueue {
    /// A queue holding at most `capacity` requests (at least one).
    pub fn new(capacity: usize) -> PendingQueue {
        let capacity = capacity.max(1);
        PendingQueue {
            ready: VecDeque::with_capacity(capacity.min(4096)),
            delayed: BinaryHeap::new(),
            capacity,
            seq: 0,
        }
    }

    /// Requests held (ready and delayed).
    pub fn len(&self) -> usize {
        self.ready.len() + self.delayed.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Requests ready to send now.
    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// Queues a request at the back.
    pub fn push(&mut self, p: Pending) -> Result<(), Rejected> {
        if self.len() >= self.capacity {
            return Err(Rejected::Full);
        }
        self.ready.push_back(p);
        Ok(())
    }

    /// Holds a retry until `due`.
    pub fn push_retry(&mut self, p: Pending, due: u64) -> Result<(), Rejected> {
        if p.expired(due) {
            return Err(Rejected::Expired);
        }
        if self.len() >= self.capacity {
            return Err(Rejected::Full);
        }
        self.seq += 1;
        self.delayed.push(Reverse(Delayed {
            due,
            seq: self.seq,
            p,
        }));
        Ok(())
    }

    /// When the next retry becomes ready.
    pub fn next_due(&self) -> Option<u64> {
        self.delayed.peek().map(|d| d.0.due)
    }

    /// Moves retries that are due to the front of the ready queue (they are older than
    /// anything queued after them); those that expired meanwhile go to `on_expired`.
    pub fn promote(&mut self, now: u64, on_expired: &mut impl FnMut(Pending)) {
        let mut due = Vec::new();
        while self.delayed.peek().is_some_and(|d| d.0.due <= now) {
            if let Some(Reverse(d)) = self.delayed.pop() {
                if d.p.expired(now) {
                    on_expired(d.p);
                } else {
                    due.push(d.p);
                }
            }
        }
        for p in due.into_iter().rev() {
            self.ready.push_front(p);
        }
    }

    /// Drops expired requests from the front, handing them to `on_expired`.
    pub fn sweep(&mut self, now: u64, on_expired: &mut impl FnMut(Pending)) {
        while self.ready.front().is_some_and(|p| p.expired(now)) {
            if let Some(p) = self.ready.pop_front() {
                on_expired(p);
            }
        }
    }

    /// The oldest ready request that has not expired; expired ones met on the way are
    /// dropped and handed to `on_expired`.
    pub fn pop(&mut self, now: u64, on_expired: &mut impl FnMut(Pending)) -> Option<Pending> {
        while let Some(p) = self.ready.pop_front() {
            if p.expired(now) {
                on_expired(p);
            } else {
                return Some(p);
            }
        }
        None
    }

    /// Empties the queue, returning what it held (ready first, then delayed retries).
    pub fn drain(&mut self) -> Vec<Pending> {
        let mut out: Vec<Pending> = self.ready.drain(..).collect();
        out.extend(self.delayed.drain().map(|d| d.0.p));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(intended: u64, deadline: u64) -> Pending {
        Pending::new(intended, deadline, intended as u32)
    }

    #[test]
    fn bounded_fifo_dead_letters_overflow() {
        let mut q = PendingQueue::new(3);
        for t in 0..3 {
            assert_eq!(q.push(p(t, NO_DEADLINE)), Ok(()));
        }
        assert_eq!(q.push(p(3, NO_DEADLINE)), Err(Rejected::Full));
        assert_eq!(q.len(), 3);
        let mut expired = Vec::new();
        let mut on_expired = |p: Pending| expired.push(p.intended);
        assert_eq!(q.pop(10, &mut on_expired).map(|p| p.intended), Some(0));
        assert_eq!(q.push(p(4, NO_DEADLINE)), Ok(()));
        let order: Vec<u64> = std::iter::from_fn(|| q.pop(10, &mut on_expired))
            .map(|p| p.intended)
            .collect();
        assert_eq!(order, vec![1, 2, 4]);
        assert!(expired.is_empty());
        assert!(q.is_empty());
    }

    #[test]
    fn expired_requests_are_dropped_and_counted() {
        let mut q = PendingQueue::new(10);
        q.push(p(0, 100)).unwrap();
        q.push(p(10, 110)).unwrap();
        q.push(p(20, 120)).unwrap();
        let mut expired = Vec::new();
        q.sweep(105, &mut |p| expired.push(p.intended));
        assert_eq!(expired, vec![0]);
        assert_eq!(
            q.pop(115, &mut |p| expired.push(p.intended))
                .map(|p| p.intended),
            Some(20)
        );
        assert_eq!(expired, vec![0, 10]);
        assert!(q.is_empty());
    }

    #[test]
    fn retries_wait_for_their_time_then_go_first() {
        let mut q = PendingQueue::new(10);
        q.push(p(50, NO_DEADLINE)).unwrap();
        q.push_retry(p(5, NO_DEADLINE), 200).unwrap();
        q.push_retry(p(1, NO_DEADLINE), 100).unwrap();
        assert_eq!(q.next_due(), Some(100));
        assert_eq!(q.len(), 3);
        let mut expired = 0;
        q.promote(99, &mut |_| expired += 1);
        assert_eq!(q.ready_len(), 1);
        q.promote(250, &mut |_| expired += 1);
        assert_eq!(expired, 0);
        let order: Vec<u64> = std::iter::from_fn(|| q.pop(250, &mut |_| {}))
            .map(|p| p.intended)
            .collect();
        assert_eq!(order, vec![1, 5, 50]);
        assert_eq!(q.next_due(), None);
    }

    #[test]
    fn retries_past_their_deadline_expire() {
        let mut q = PendingQueue::new(2);
        assert_eq!(q.push_retry(p(0, 100), 150), Err(Rejected::Expired));
        q.push_retry(p(0, 100), 90).unwrap();
        q.push(p(1, NO_DEADLINE)).unwrap();
        assert_eq!(q.push_retry(p(2, NO_DEADLINE), 90), Err(Rejected::Full));
        let mut expired = Vec::new();
        q.promote(120, &mut |p| expired.push(p.intended));
        assert_eq!(
            expired,
            vec![0],
            "due at 90 but only looked at after its deadline"
        );
        assert_eq!(q.len(), 1);
        assert_eq!(q.drain().len(), 1);
        assert!(q.is_empty());
    }
}
