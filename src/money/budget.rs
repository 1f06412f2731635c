//! What a campaign may spend and how: its budget, its pacing and its frequency cap, as
//! written in the campaign file, and their limits in nanos.
//!
//! ```json
//! "budget": {"total": "500.00", "daily": "50.00"},
//! "pacing": "even",
//! "frequency_cap": {"impressions": 3, "window_s": 86400}
//! ```
//!
//! Every key is optional. A campaign without a budget has no spend limit (and
//! `--check-config` warns about it); `pacing` is `asap` unless `even`; without a cap a
//! user sees the campaign as often as it wins.

use serde::{Deserialize, Serialize};

use super::{Micros, Nanos};

/// A campaign's spend limits, in USD.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// The most the campaign may ever spend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<Micros>,
    /// The most it may spend in a day (`money.day_starts` says when days begin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily: Option<Micros>,
}

impl Budget {
    pub fn limits(&self) -> Limits {
        Limits {
            total: self.total.map(Micros::to_nanos),
            daily: self.daily.map(Micros::to_nanos),
        }
    }

    /// Problems with the amounts, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (key, v) in [("budget.total", self.total), ("budget.daily", self.daily)] {
            if v.is_some_and(|v| v.0 <= 0) {
                out.push(format!("{key} must be positive"));
            }
        }
        if self.total.is_none() && self.daily.is_none() {
            out.push("budget needs total, daily or both".into());
        }
        out
    }
}

/// How a campaign spends its daily budget over the day.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Pacing {
    /// As fast as traffic allows.
    #[default]
    Asap,
    /// Spread evenly over the day: the share of matching requests bid on is throttled
    /// so that spend follows the clock (`money::pacing`). Needs a daily budget.
    Even,
}

impl Pacing {
    pub fn is_asap(&self) -> bool {
        *self == Pacing::Asap
    }
}

/// At most `impressions` impressions per user in any `window_s` seconds.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct FrequencyCap {
    pub impressions: u32,
    pub window_s: u32,
}

impl FrequencyCap {
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.impressions == 0 || self.impressions > u16::MAX as u32 {
            out.push("frequency_cap.impressions must be 1 to 65535".into());
        }
        if self.window_s == 0 || self.window_s > 366 * 86_400 {
            out.push("frequency_cap.window_s must be 1 second to 366 days".into());
        }
        out
    }
}

/// Spend limits in nanos; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub total: Option<Nanos>,
    pub daily: Option<Nanos>,
}

impl Limits {
    pub fn is_limited(&self) -> bool {
        self.total.is_some() || self.daily.is_some()
    }

    /// How much more may be committed, given what is spent (in all and today) and
    /// committed elsewhere; `None` when nothing limits it.
    pub fn headroom(
        &self,
        spent_total: Nanos,
        spent_today: Nanos,
        committed: Nanos,
    ) -> Option<Nanos> {
        let total = self.total.map(|t| t - spent_total - committed);
        let daily = self.daily.map(|d| d - spent_today - committed);
        match (total, daily) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn campaign_file_keys_read_exactly() {
        let b: Budget = serde_json::from_str(r#"{"total": "500.00", "daily": "50.00"}"#).unwrap();
        assert_eq!(b.limits().total, Some(Nanos(500_000_000_000)));
        assert_eq!(b.limits().daily, Some(Nanos(50_000_000_000)));
        assert!(b.problems().is_empty());
        assert!(serde_json::from_str::<Budget>(r#"{"weekly": "1"}"#).is_err());
        let p: Pacing = serde_json::from_str(r#""even""#).unwrap();
        assert_eq!(p, Pacing::Even);
        let c: FrequencyCap =
            serde_json::from_str(r#"{"impressions": 3, "window_s": 86400}"#).unwrap();
        assert!(c.problems().is_empty());
        assert_eq!(Budget::default().problems().len(), 1);
    }

    #[test]
    fn headroom_is_the_tighter_limit() {
        let l = Budget {
            total: Some(Micros(10_000_000)),
            daily: Some(Micros(2_000_000)),
        }
        .limits();
        let n = |m: i64| Nanos(m * 1000);
        assert_eq!(l.headroom(n(0), n(0), n(0)), Some(n(2_000_000)));
        assert_eq!(l.headroom(n(9_000_000), n(0), n(500_000)), Some(n(500_000)));
        assert_eq!(
            l.headroom(n(1_000_000), n(1_500_000), n(600_000)),
            Some(n(-100_000))
        );
        assert_eq!(Limits::default().headroom(n(5), n(5), n(5)), None);
    }
}
