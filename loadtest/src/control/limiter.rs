//! At most N requests in any sliding window (one second): the last N send times are
//! kept in a ring, so a send at `t` is allowed when fewer than `limit` sends happened in
//! `(t - window, t]`.

use std::collections::VecDeque;

/// A sliding-window rate limiter for one target.
#[derive(Debug, Clone)]
pub struct Limiter {
    cap: u32,
    limit: u32,
    window: u64,
    sends: VecDeque<u64>,
}

impl Limiter {
    /// At most `cap` sends per `window` nanoseconds.
    pub fn new(cap: u32, window: u64) -> Limiter {
        let cap = cap.max(1);
        Limiter {
            cap,
            limit: cap,
            window,
            sends: VecDeque::with_capacity(cap.min(1 << 20) as usize),
        }
    }

    /// The configured maximum.
    pub fn cap(&self) -> u32 {
        self.cap
    }

    /// The limit in force (at most the cap).
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Lowers or raises the limit in force, within `1..=cap`.
    pub fn set_limit(&mut self, limit: u32) {
        self.limit = limit.clamp(1, self.cap);
    }

    /// The send `limit` places back, if any: it must have left the window.
    fn blocking_send(&self) -> Option<u64> {
        let n = self.sends.len();
        let l = self.limit as usize;
        (n >= l).then(|| self.sends[n - l])
    }

    /// Whether a send at `now` is allowed; if so it is recorded.
    pub fn try_acquire(&mut self, now: u64) -> bool {
        if let Some(t) = self.blocking_send() {
            if now < t + self.window {
                return false;
            }
        }
        if self.sends.len() == self.cap as usize {
            self.sends.pop_front();
        }
        self.sends.push_back(now);
        true
    }

    /// The earliest time a send is allowed (`now` or later).
    pub fn next_free(&self, now: u64) -> u64 {
        match self.blocking_send() {
            Some(t) => (t + self.window).max(now),
            None => now,
        }
    }

    /// Sends in the window ending at `now`.
    pub fn in_window(&self, now: u64) -> usize {
        self.sends
            .iter()
            .rev()
            .take_while(|&&t| t + self.window > now)
            .count()
    }
}

/// Splits `total` into parts proportional to `weights`, summing exactly to `total`
/// (largest remainder). Used to share one target's limit between worker threads.
pub fn split(total: u64, weights: &[u64]) -> Vec<u64> {
    let sum: u64 = weights.iter().sum();
    if sum == 0 {
        return vec![0; weights.len()];
    }
    let mut parts: Vec<u64> = weights.iter().map(|w| total * w / sum).collect();
    let mut rest = total - parts.iter().sum::<u64>();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse((total * weights[i]) % sum));
    for i in order {
        if rest == 0 {
            break;
        }
        if weights[i] > 0 {
            parts[i] += 1;
            rest -= 1;
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::super::SECOND;
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn never_more_than_n_in_any_sliding_second() {
        let mut l = Limiter::new(10, SECOND);
        let mut sent = Vec::new();
        // Try to send every millisecond for three seconds.
        for t in (0..3 * SECOND).step_by(MS as usize) {
            if l.try_acquire(t) {
                sent.push(t);
            }
        }
        assert_eq!(sent.len(), 30);
        for (i, &t) in sent.iter().enumerate() {
            let in_window = sent[i..].iter().take_while(|&&u| u < t + SECOND).count();
            assert!(in_window <= 10);
        }
        // A burst of ten at 0, then the window must slide by a full second.
        assert_eq!(sent[9], 9 * MS);
        assert_eq!(sent[10], SECOND);
    }

    #[test]
    fn next_free_is_when_the_oldest_counted_send_leaves_the_window() {
        let mut l = Limiter::new(3, SECOND);
        for t in [0, 100 * MS, 200 * MS] {
            assert!(l.try_acquire(t));
        }
        assert!(!l.try_acquire(500 * MS));
        assert_eq!(l.next_free(500 * MS), SECOND);
        assert!(!l.try_acquire(SECOND - 1));
        assert!(l.try_acquire(SECOND));
        assert_eq!(l.next_free(SECOND), SECOND + 100 * MS);
        assert_eq!(l.in_window(SECOND), 3);
    }

    #[test]
    fn lowering_the_limit_takes_effect_at_once_and_raising_restores_it() {
        let mut l = Limiter::new(10, SECOND);
        for i in 0..5 {
            assert!(l.try_acquire(i * MS));
        }
        l.set_limit(4);
        assert!(!l.try_acquire(10 * MS));
        assert_eq!(l.next_free(10 * MS), SECOND + MS);
        l.set_limit(100);
        assert_eq!(l.limit(), 10, "clamped to the cap");
        assert!(l.try_acquire(10 * MS));
        l.set_limit(0);
        assert_eq!(l.limit(), 1);
    }

    #[test]
    fn split_is_proportional_and_exact() {
        assert_eq!(split(100, &[1, 1]), vec![50, 50]);
        assert_eq!(split(10, &[1, 1, 1]).iter().sum::<u64>(), 10);
        assert_eq!(split(7, &[3, 0, 1]), vec![5, 0, 2]);
        assert_eq!(split(5, &[0, 0]), vec![0, 0]);
    }
}
