//! The bank: every campaign's budget, what has been spent of it, and what each shard
//! holds of it. Shards spend from leases ([`wallet`](super::wallet)); the bank hands
//! leases out only within
//!
//! ```text
//! spent + sum of leases <= budget        (for the total and for today)
//! ```
//!
//! and turns what shards report as spent into settled spend. The control thread owns
//! the bank and is the only one to reach it. [`Bank`] is the small interface it goes
//! through, so a shared store (a fleet of bidders on one Redis) can stand behind it:
//! its calls are `async` for that reason, though [`LocalBank`], the in-process bank,
//! never waits.

use super::budget::Limits;
use super::wallet::{PurseStats, Report};
use super::Nanos;

/// What a campaign's account looks like now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Balance {
    pub limits: Limits,
    /// Settled spend, in all and in the current day.
    pub spent_total: Nanos,
    pub spent_today: Nanos,
    /// What the shards hold: leases, reserved or not.
    pub leased: Nanos,
    /// Reserved for bids not yet settled (as the shards last reported).
    pub reserved: Nanos,
    /// Every shard's counts, summed.
    pub stats: PurseStats,
}

impl Balance {
    /// What may still be spent in all, and today (`None`: no limit).
    pub fn remaining(&self) -> (Option<Nanos>, Option<Nanos>) {
        let left = |limit: Option<Nanos>, spent: Nanos| limit.map(|l| (l - spent).max(Nanos::ZERO));
        (
            left(self.limits.total, self.spent_total),
            left(self.limits.daily, self.spent_today),
        )
    }
}

/// The bank's answer to a report.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Answer {
    /// Lease granted to the reporting shard (0: none left).
    pub granted: Nanos,
    /// Shards asked to give their unused lease back, so the reporting one can have it.
    pub recall: Vec<usize>,
}

/// Where budgets are kept (see the module docs). Every call comes from the control
/// thread; `day` is the current day number in `money.day_starts`' time zone.
#[allow(async_fn_in_trait)]
pub trait Bank {
    /// Sets purse `p`'s limits (a new campaign, or its budget changed). Returns the
    /// shards whose leases must come back: all of them when the new limits leave less
    /// than is already leased out.
    async fn set_limits(&mut self, p: u32, limits: Limits) -> Vec<usize>;
    /// Spend settled before this process started (replayed from the event log).
    async fn restore(&mut self, p: u32, spent_total: Nanos, spent_today: Nanos, day: i64);
    /// A shard's report on one purse: settles what it spent, takes back what it
    /// returns, and leases what it asks for as far as the budget allows.
    async fn report(&mut self, shard: usize, r: &Report, day: i64) -> Answer;
    /// The account of purse `p` as last known.
    fn balance(&self, p: u32) -> Option<Balance>;
}

#[derive(Debug, Clone, Default)]
struct Account {
    limits: Limits,
    spent_total: Nanos,
    spent_today: Nanos,
    day: i64,
    /// What each shard holds, as the bank counts it.
    leased: Vec<Nanos>,
    /// Each shard's last reported counts.
    stats: Vec<PurseStats>,
}

impl Account {
    fn roll(&mut self, day: i64) {
        if day != self.day {
            self.day = day;
            self.spent_today = Nanos::ZERO;
        }
    }

    fn leased(&self) -> Nanos {
        self.leased.iter().copied().sum()
    }

    fn headroom(&self) -> Option<Nanos> {
        self.limits
            .headroom(self.spent_total, self.spent_today, self.leased())
    }
}

/// The in-process bank.
#[derive(Debug, Default)]
pub struct LocalBank {
    shards: usize,
    accounts: Vec<Account>,
}

impl LocalBank {
    pub fn new(shards: usize) -> LocalBank {
        LocalBank {
            shards,
            accounts: Vec::new(),
        }
    }

    fn account(&mut self, p: u32) -> &mut Account {
        let i = p as usize;
        if self.accounts.len() <= i {
            let blank = Account {
                leased: vec![Nanos::ZERO; self.shards],
                stats: vec![PurseStats::default(); self.shards],
                ..Account::default()
            };
            self.accounts.resize(i + 1, blank);
        }
        &mut self.accounts[i]
    }

    /// Whether the invariant holds for every account (for tests).
    pub fn holds(&self) -> bool {
        self.accounts
            .iter()
            .all(|a| a.headroom().is_none_or(|h| h >= Nanos::ZERO))
    }
}

impl Bank for LocalBank {
    async fn set_limits(&mut self, p: u32, limits: Limits) -> Vec<usize> {
        let shards = self.shards;
        let a = self.account(p);
        a.limits = limits;
        if a.headroom().is_some_and(|h| h < Nanos::ZERO) {
            (0..shards).collect()
        } else {
            Vec::new()
        }
    }

    async fn restore(&mut self, p: u32, spent_total: Nanos, spent_today: Nanos, day: i64) {
        let a = self.account(p);
        a.spent_total += spent_total;
        a.roll(day);
        a.spent_today += spent_today;
    }

    async fn report(&mut self, shard: usize, r: &Report, day: i64) -> Answer {
        let shards = self.shards;
        let a = self.account(r.purse);
        a.roll(day);
        if let Some(s) = a.stats.get_mut(shard) {
            *s = r.stats;
        }
        // What the shard spent and gives back leaves its lease; spent is settled.
        a.spent_total += r.spent;
        a.spent_today += r.spent;
        if let Some(l) = a.leased.get_mut(shard) {
            *l -= r.spent + r.returned;
        }
        let mut answer = Answer::default();
        if r.want.0 <= 0 {
            return answer;
        }
        // When the budget cannot cover every shard's ask, a shard gets its share of
        // what is left (at least one bid's worth, if that much is left), so an idle
        // shard never holds a small budget that a busy one needs.
        let grant = match a.headroom() {
            None => r.want,
            Some(h) if h <= Nanos::ZERO => Nanos::ZERO,
            Some(h) if r.want.0.saturating_mul(shards as i64) > h.0 => {
                let share = Nanos(h.0 / shards.max(1) as i64);
                r.want.min(share.max(r.unit.min(h)))
            }
            Some(_) => r.want,
        };
        if let Some(l) = a.leased.get_mut(shard) {
            *l += grant;
        }
        answer.granted = grant;
        if grant < r.want {
            // Not enough left: ask the shards that hold more than they have reserved
            // to give the rest back, so it can go where it is being spent.
            answer.recall = (0..shards)
                .filter(|&s| s != shard)
                .filter(|&s| {
                    let held = a.leased.get(s).copied().unwrap_or_default();
                    let reserved = a.stats.get(s).map_or(Nanos::ZERO, |st| st.reserved);
                    held > reserved
                })
                .collect();
        }
        answer
    }

    fn balance(&self, p: u32) -> Option<Balance> {
        let a = self.accounts.get(p as usize)?;
        let mut stats = PurseStats::default();
        for s in &a.stats {
            stats.bids += s.bids;
            stats.wins += s.wins;
            stats.capped += s.capped;
            stats.spent += s.spent;
            stats.reserved += s.reserved;
            stats.late_charges += s.late_charges;
        }
        Some(Balance {
            limits: a.limits,
            spent_total: a.spent_total,
            spent_today: a.spent_today,
            leased: a.leased(),
            reserved: stats.reserved,
            stats,
        })
    }
}
