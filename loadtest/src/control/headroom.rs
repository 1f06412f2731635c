//! Adaptive headroom: when the p99 latency of the last second exceeds the target, the
//! effective limit drops multiplicatively; otherwise it recovers additively toward the
//! cap (AIMD, as TCP congestion control does).
//!
//! "p99 above target" is decided exactly without a histogram: it holds when more than
//! 1% of the second's responses took longer than the target.

/// Latency-driven control of one limiter's effective limit.
#[derive(Debug, Clone)]
pub struct Headroom {
    cap: u32,
    floor: u32,
    limit: u32,
    target_us: u64,
    step: u32,
    total: u64,
    over: u64,
}

impl Headroom {
    /// Share of the limit kept on each decrease, in tenths.
    pub const DECREASE_TENTHS: u32 = 7;
    /// Fewest responses in a second for a decision; quieter seconds keep the limit.
    pub const MIN_SAMPLES: u64 = 20;

    /// Controls a limit of at most `cap`, reacting to p99 above `target_us`.
    pub fn new(cap: u32, target_us: u64) -> Headroom {
        let cap = cap.max(1);
        Headroom {
            cap,
            floor: (cap / 100).max(1),
            limit: cap,
            target_us,
            step: (cap / 20).max(1),
            total: 0,
            over: 0,
        }
    }

    /// The effective limit.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Records one response's latency.
    pub fn record(&mut self, latency_us: u64) {
        self.total += 1;
        if latency_us > self.target_us {
            self.over += 1;
        }
    }

    /// Whether the p99 of the responses recorded since the last decision is above target.
    pub fn p99_over_target(&self) -> bool {
        self.over * 100 > self.total
    }

    /// Ends a one-second window: adjusts and returns the effective limit.
    pub fn end_second(&mut self) -> u32 {
        if self.total >= Self::MIN_SAMPLES {
            if self.p99_over_target() {
                self.limit = (self.limit / 10 * Self::DECREASE_TENTHS
                    + self.limit % 10 * Self::DECREASE_TENTHS / 10)
                    .max(self.floor);
            } else {
                self.limit = self.limit.saturating_add(self.step).min(self.cap);
            }
        } else if self.over == 0 {
            self.limit = self.limit.saturating_add(self.step).min(self.cap);
        }
        self.total = 0;
        self.over = 0;
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second(h: &mut Headroom, fast: u64, slow: u64) -> u32 {
        for _ in 0..fast {
            h.record(500);
        }
        for _ in 0..slow {
            h.record(50_000);
        }
        h.end_second()
    }

    #[test]
    fn backs_off_multiplicatively_and_recovers_additively() {
        let mut h = Headroom::new(1000, 10_000);
        assert_eq!(
            second(&mut h, 1000, 5),
            1000,
            "0.5% slow: p99 within target"
        );
        assert_eq!(second(&mut h, 980, 20), 700, "2% slow: p99 above target");
        assert_eq!(second(&mut h, 600, 100), 490);
        assert_eq!(
            second(&mut h, 500, 0),
            540,
            "recovers by 5% of the cap per second"
        );
        assert_eq!(second(&mut h, 500, 0), 590);
        for _ in 0..20 {
            second(&mut h, 500, 0);
        }
        assert_eq!(h.limit(), 1000, "never above the cap");
    }

    #[test]
    fn never_drops_below_one_percent_of_the_cap() {
        let mut h = Headroom::new(1000, 1);
        for _ in 0..50 {
            second(&mut h, 0, 100);
        }
        assert_eq!(h.limit(), 10);
    }

    #[test]
    fn quiet_seconds_do_not_cut_the_limit() {
        let mut h = Headroom::new(100, 10_000);
        assert_eq!(second(&mut h, 0, 5), 100, "too few samples to judge p99");
        second(&mut h, 50, 50);
        let low = h.limit();
        assert_eq!(second(&mut h, 3, 0), low + 5, "quiet and fast: recover");
    }
}
