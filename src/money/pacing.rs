//! Even pacing: spreading a daily budget over the day.
//!
//! A shard bids on an even campaign with a probability `p` ([`Wallet`] draws per
//! candidate). Every few seconds the control thread steps each even campaign's
//! [`Pacer`] with the day's actual spend: it estimates what the campaign would spend per
//! second bidding on everything (spend over the time it was bid on, weighted by `p`,
//! over the last [`HORIZON_S`] seconds), and sets `p` so that the expected rate is
//! what the rest of the budget needs over the rest of the day. That rate is held to at most [`MAX_SHARE`] times the day's average, so no hour
//! spends much more than its share even when the campaign has to catch up.
//!
//! [`Wallet`]: super::wallet::Wallet

use super::Nanos;

/// The most pacing asks for, as a multiple of the day's average rate.
pub const MAX_SHARE: f64 = 1.5;
/// The lowest bid probability: enough to keep measuring the campaign's traffic.
pub const MIN_PROBABILITY: f64 = 0.001;
/// How far back spend counts towards the estimate (it fades with this time constant).
pub const HORIZON_S: f64 = 600.0;

/// One even campaign's pacing state (the control thread keeps one per campaign).
#[derive(Debug, Clone, PartialEq)]
pub struct Pacer {
    /// The bid probability shards apply.
    pub probability: f64,
    /// Estimated spend per second at probability 1 (nanos/s); 0 until seen.
    pub full_rate: f64,
    /// Spend per second over the last step (nanos/s).
    pub actual_rate: f64,
    /// Spend per second the rest of the day needs (nanos/s).
    pub target_rate: f64,
    last_spent: Nanos,
    /// Recent spend, and recent seconds weighted by the probability they were bid on
    /// with, both fading over [`HORIZON_S`]: their ratio is `full_rate`.
    spend: f64,
    exposure: f64,
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer {
            probability: 1.0,
            full_rate: 0.0,
            actual_rate: 0.0,
            target_rate: 0.0,
            last_spent: Nanos::ZERO,
            spend: 0.0,
            exposure: 0.0,
        }
    }
}

impl Pacer {
    /// One step, `dt_s` seconds after the last: `spent_today` of `daily` is spent,
    /// `elapsed_s` of the day's `day_s` seconds have passed. Returns the new
    /// probability.
    pub fn step(
        &mut self,
        daily: Nanos,
        spent_today: Nanos,
        elapsed_s: f64,
        day_s: f64,
        dt_s: f64,
    ) -> f64 {
        let spent = spent_today.0 as f64;
        // A new day: the day's spend starts over.
        let delta = if spent_today < self.last_spent {
            spent
        } else {
            (spent_today - self.last_spent).0 as f64
        };
        self.last_spent = spent_today;
        self.actual_rate = if dt_s > 0.0 { delta / dt_s } else { 0.0 };
        let fade = (-dt_s / HORIZON_S).exp();
        self.spend = self.spend * fade + delta;
        self.exposure = self.exposure * fade + self.probability * dt_s;
        if self.spend > 0.0 && self.exposure > 0.0 {
            self.full_rate = self.spend / self.exposure;
        }
        let left = (daily.0 as f64 - spent).max(0.0);
        let time_left = (day_s - elapsed_s).max(1.0);
        let average = daily.0 as f64 / day_s.max(1.0);
        self.target_rate = (left / time_left).min(MAX_SHARE * average);
        self.probability = if left <= 0.0 {
            MIN_PROBABILITY
        } else if self.full_rate == 0.0 {
            // Nothing seen yet: bid on more until spend shows what the traffic is.
            (self.probability * 2.0).min(1.0)
        } else {
            (self.target_rate / self.full_rate).clamp(MIN_PROBABILITY, 1.0)
        };
        self.probability
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_campaign_with_twice_the_traffic_it_needs_bids_on_about_half() {
        let mut p = Pacer::default();
        let day = 86_400.0;
        let daily = Nanos(86_400_000);
        // At probability 1 it would spend 2,000 nanos per second: twice the 1,000 its
        // budget allows.
        let mut spent = Nanos::ZERO;
        let mut t = 0.0;
        for _ in 0..100 {
            spent += Nanos((2_000.0 * p.probability * 5.0) as i64);
            t += 5.0;
            p.step(daily, spent, t, day, 5.0);
        }
        assert!((p.probability - 0.5).abs() < 0.05, "{}", p.probability);
    }
}
