//! Frequency caps: how often each user has seen each capped campaign, kept by every
//! shard for itself.
//!
//! An impression is counted when its win or billing notice is accepted; the shard that
//! settles it tells every shard, so each one checks caps from its own memory on the
//! bid path. A cap counts impressions in a window that starts with the user's first
//! counted impression of the campaign and lasts `window_s`; the count starts over after
//! it. Entries expire with their window, and a shard keeps at most a configured number
//! of them: when full, the oldest window is forgotten first (and counted).

use std::collections::{HashMap, VecDeque};

use super::budget::FrequencyCap;

#[derive(Debug, Clone, Copy)]
struct Window {
    /// When the window ends, seconds since the epoch.
    end: u64,
    seen: u32,
}

/// One shard's impression counts (see the module docs).
#[derive(Debug)]
pub struct Caps {
    counts: HashMap<(u64, u32), Window>,
    /// Keys in the order their windows started, to expire and evict oldest first.
    order: VecDeque<(u64, (u64, u32))>,
    capacity: usize,
    /// Windows forgotten before they ended because the store was full.
    pub evicted: u64,
}

impl Caps {
    pub fn new(capacity: usize) -> Caps {
        Caps {
            counts: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            evicted: 0,
        }
    }

    /// Impressions of campaign `purse` that `user` has seen in the current window.
    #[inline]
    pub fn seen(&self, user: u64, purse: u32, now: u64) -> u32 {
        match self.counts.get(&(user, purse)) {
            Some(w) if now < w.end => w.seen,
            _ => 0,
        }
    }

    /// Counts an impression of `purse` for `user` at `now`.
    pub fn count(&mut self, user: u64, purse: u32, cap: FrequencyCap, now: u64) {
        if user == 0 {
            return;
        }
        let key = (user, purse);
        match self.counts.get_mut(&key) {
            Some(w) if now < w.end => w.seen = w.seen.saturating_add(1),
            _ => {
                let end = now + cap.window_s as u64;
                self.counts.insert(key, Window { end, seen: 1 });
                self.order.push_back((end, key));
            }
        }
        while self.counts.len() > self.capacity {
            let Some((_, old)) = self.order.pop_front() else {
                break;
            };
            if self.counts.remove(&old).is_some() {
                self.evicted += 1;
            }
        }
    }

    /// Forgets windows that have ended.
    pub fn expire(&mut self, now: u64) {
        while let Some(&(end, key)) = self.order.front() {
            if end > now {
                break;
            }
            self.order.pop_front();
            if self.counts.get(&key).is_some_and(|w| w.end == end) {
                self.counts.remove(&key);
            }
        }
    }

    /// Users and campaigns counted now.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: FrequencyCap = FrequencyCap {
        impressions: 2,
        window_s: 100,
    };

    #[test]
    fn counts_within_the_window_then_starts_over() {
        let mut c = Caps::new(10);
        assert_eq!(c.seen(1, 7, 0), 0);
        c.count(1, 7, CAP, 0);
        c.count(1, 7, CAP, 50);
        assert_eq!(c.seen(1, 7, 99), 2);
        assert_eq!(c.seen(2, 7, 99), 0, "another user");
        assert_eq!(c.seen(1, 8, 99), 0, "another campaign");
        assert_eq!(c.seen(1, 7, 100), 0, "the window ended");
        c.count(1, 7, CAP, 120);
        assert_eq!(c.seen(1, 7, 130), 1);
        c.expire(300);
        assert!(c.is_empty());
    }

    #[test]
    fn a_full_store_forgets_the_oldest_window() {
        let mut c = Caps::new(2);
        for user in 1..=3 {
            c.count(user, 7, CAP, user);
        }
        assert_eq!(c.len(), 2);
        assert_eq!(c.evicted, 1);
        assert_eq!(c.seen(1, 7, 10), 0);
        assert_eq!(c.seen(3, 7, 10), 1);
        c.count(0, 7, CAP, 10);
        assert_eq!(c.len(), 2, "no user, nothing counted");
    }
}
