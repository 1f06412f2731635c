//! A shard's money: its share of each campaign's budget, the bids it reserved, and the
//! notices that settle them. Single-threaded, plain `Cell`s: the bid path reads and
//! writes it without a lock and without touching another core.
//!
//! Each campaign has a **purse** on every shard (numbered by the control thread, the
//! same on every shard and stable across campaign reloads). A purse of a campaign with
//! a budget holds a **lease**: money the bank (the control thread) handed this shard.
//! A bid reserves its price from the lease; a notice settles the reservation at the
//! clearing price and puts the rest back; a loss, or no notice within the win timeout,
//! puts it all back. What the shard settled is reported to the bank, which keeps
//!
//! ```text
//! spent + (every shard's lease, reserved or not) <= budget      (total and daily)
//! ```
//!
//! and grants leases only within it. Leases follow each shard's spend rate
//! ([`Wallet::tick`]): a shard asks for more before it runs dry and gives back what it
//! does not use, so a small budget is not stranded in an idle shard.
//!
//! A notice that comes after its reservation was released (a late one) is still
//! charged: from the lease, which may go below zero. That is the only way spend can
//! exceed the budget, by at most the late charges the budget had no room left for
//! (ARCHITECTURE.md, "A notice's life").

use std::cell::{Cell, RefCell};

use super::budget::{FrequencyCap, Limits, Pacing};
use super::ledger::{BidKey, Flags, Ledger, Record};
use super::notice::NoticeKind;
use super::Nanos;

/// Why the money side refused a bid the auction would have made. Ordered by how far a
/// campaign got: a later reason is the more informative no-bid reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Hold {
    /// An operator paused the campaign.
    Paused,
    /// The user has seen the campaign as often as its cap allows.
    FrequencyCap,
    /// The shard's lease cannot cover the price (the budget is spent or committed).
    Budget,
    /// Even pacing skipped this request.
    Pacing,
}

/// What a bid's record keeps besides its money, for the events of its expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BidMeta {
    /// The creative's index in its campaign.
    pub creative: u32,
    /// The exchange's id + 1 (0: `/openrtb2/bid`).
    pub exchange: u16,
    /// The bid's CPM price in its currency.
    pub price: super::Micros,
}

/// What a campaign's purse is bound by, from the campaign file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Terms {
    pub limits: Limits,
    pub pacing: Pacing,
    pub cap: Option<FrequencyCap>,
    /// The most one bid can cost (its `max_cpm`, per impression): the smallest useful
    /// lease.
    pub max_bid: Nanos,
}

/// Figures a purse publishes for metrics (monotonic counts, and the reservation now).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PurseStats {
    pub bids: u64,
    pub wins: u64,
    pub capped: u64,
    /// Spend charged on this shard, in all.
    pub spent: Nanos,
    /// Reserved now.
    pub reserved: Nanos,
    pub late_charges: u64,
}

/// One campaign's money on this shard.
#[derive(Debug, Default)]
pub struct Purse {
    terms: Cell<Terms>,
    paused: Cell<bool>,
    /// Lease not reserved; below zero after a late charge the lease could not cover.
    avail: Cell<i64>,
    reserved: Cell<i64>,
    /// Settled here and not yet reported to the bank.
    unreported: Cell<i64>,
    /// A lease request is with the bank.
    asking: Cell<bool>,
    /// Reserved since the last [`Wallet::tick`], and the spend rate (nanos per second)
    /// smoothed over ticks: what lease sizes follow.
    window: Cell<i64>,
    rate: Cell<i64>,
    /// The bank asked for the lease back.
    recalled: Cell<bool>,
    /// Even pacing's bid probability, out of `u32::MAX`.
    pace: Cell<u32>,
    stats: Cell<PurseStats>,
    /// Something to report since the last tick.
    dirty: Cell<bool>,
}

impl Purse {
    pub fn terms(&self) -> Terms {
        self.terms.get()
    }

    pub fn stats(&self) -> PurseStats {
        self.stats.get()
    }

    pub fn avail(&self) -> Nanos {
        Nanos(self.avail.get())
    }

    pub fn reserved(&self) -> Nanos {
        Nanos(self.reserved.get())
    }

    pub fn is_paused(&self) -> bool {
        self.paused.get()
    }

    /// Charged here and not yet reported to the bank.
    pub fn unreported(&self) -> Nanos {
        Nanos(self.unreported.get())
    }

    fn stat(&self, f: impl FnOnce(&mut PurseStats)) {
        let mut s = self.stats.get();
        f(&mut s);
        self.stats.set(s);
        self.dirty.set(true);
    }
}

/// What the shard tells the bank about one purse, each tick it has news.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Report {
    pub purse: u32,
    /// Charged on this shard since the last report: it leaves the lease for good.
    pub spent: Nanos,
    /// Unused lease given back.
    pub returned: Nanos,
    /// More lease asked for (0: none).
    pub want: Nanos,
    /// The smallest lease that is any use: one bid at the campaign's highest price.
    pub unit: Nanos,
    pub stats: PurseStats,
}

/// How a notice changed a bid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Charged `price` (per impression); `late` when its reservation had already been
    /// released, or was never known here.
    Charged { price: Nanos, late: bool },
    /// The notice its exchange does not charge on: noted.
    Marked,
    /// A loss: the reservation went back to the lease.
    Released,
    /// A loss of a bid already settled or released: nothing to do.
    Noted,
    /// This notice was already taken: nothing changes.
    Duplicate,
}

/// A verified notice, as the shard that made the bid settles it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settlement {
    pub kind: NoticeKind,
    /// Which of win and billing charges, for the notice's exchange.
    pub charge_on: NoticeKind,
    pub key: BidKey,
    /// The bid's campaign's purse.
    pub purse: u32,
    /// The clearing price, per impression, in USD nanos (0 for a loss without one).
    pub price: Nanos,
    /// When the bid was made (from the notice), seconds since the epoch.
    pub issued: u64,
}

/// The settings of a shard's money side.
#[derive(Debug, Clone, Copy)]
pub struct WalletSettings {
    pub shard: u16,
    /// When this process started, in ms since the epoch: the first part of bid ids.
    pub epoch: u64,
    /// Bids the ledger holds at once.
    pub ledger_capacity: usize,
    pub charged_capacity: usize,
    /// A reservation nobody claims is released after this many seconds.
    pub win_timeout_s: u64,
    /// Notices older than this are refused; charged bids are remembered this long.
    pub notice_max_age_s: u64,
    /// The smallest lease, in the campaign's most expensive bids.
    pub lease_min_bids: i64,
}

impl WalletSettings {
    pub const LEASE_MIN_BIDS: i64 = LEASE_MIN_BIDS;
}

/// A lease covers this many seconds of a shard's spend rate ...
const LEASE_SECONDS: i64 = 2;
/// ... and at least this many of the campaign's most expensive bids.
const LEASE_MIN_BIDS: i64 = 1024;
/// Ticks per second (the shard's housekeeping tick, 10 ms).
const TICKS_PER_SECOND: i64 = 100;

/// One shard's money (see the module docs).
#[derive(Debug)]
pub struct Wallet {
    settings: WalletSettings,
    purses: RefCell<Vec<Purse>>,
    /// The purse of each entry of the shard's current table.
    by_entry: RefCell<Vec<u32>>,
    ledger: RefCell<Ledger>,
    /// Bids refused because the ledger was full of reservations.
    pub ledger_full: Cell<u64>,
    /// State of the pacing draw.
    rng: Cell<u64>,
}

impl Wallet {
    pub fn new(settings: WalletSettings) -> Wallet {
        Wallet {
            settings,
            purses: RefCell::new(Vec::new()),
            by_entry: RefCell::new(Vec::new()),
            ledger: RefCell::new(Ledger::new(
                settings.ledger_capacity,
                settings.charged_capacity,
            )),
            ledger_full: Cell::new(0),
            rng: Cell::new(0x9e37_79b9_7f4a_7c15 ^ settings.epoch ^ settings.shard as u64),
        }
    }

    pub fn settings(&self) -> &WalletSettings {
        &self.settings
    }

    /// Binds a new table: `purses[i]` is the purse of the table's entry `i`, with its
    /// terms. Purses keep their leases, reservations and counts across tables.
    pub fn bind(&self, purses: &[(u32, Terms)]) {
        let mut all = self.purses.borrow_mut();
        let top = purses
            .iter()
            .map(|&(p, _)| p as usize + 1)
            .max()
            .unwrap_or(0);
        if all.len() < top {
            all.resize_with(top, Purse::default);
        }
        for &(p, terms) in purses {
            let purse = &all[p as usize];
            let before = purse.terms.replace(terms);
            if before.pacing != terms.pacing || purse.pace.get() == 0 {
                purse.pace.set(u32::MAX);
            }
            purse.dirty.set(true);
        }
        *self.by_entry.borrow_mut() = purses.iter().map(|&(p, _)| p).collect();
    }

    /// The purse of table entry `entry`.
    pub fn purse_of(&self, entry: u32) -> Option<u32> {
        self.by_entry.borrow().get(entry as usize).copied()
    }

    /// Runs `f` on purse `p`.
    pub fn with<R>(&self, p: u32, f: impl FnOnce(&Purse) -> R) -> Option<R> {
        self.purses.borrow().get(p as usize).map(f)
    }

    /// Whether table entry `entry` may bid `cost` (its price, per impression, USD) for
    /// `user` (0: none named) now. `seen(purse)` says how often the user has seen the
    /// campaign within its cap's window. Checks in the order of [`Hold`].
    #[inline]
    pub fn admit(
        &self,
        entry: u32,
        cost: Nanos,
        user: u64,
        seen: impl FnOnce(u32, FrequencyCap) -> u32,
    ) -> Result<(), Hold> {
        let by_entry = self.by_entry.borrow();
        let Some(&p) = by_entry.get(entry as usize) else {
            return Ok(());
        };
        let purses = self.purses.borrow();
        let Some(purse) = purses.get(p as usize) else {
            return Ok(());
        };
        if purse.paused.get() {
            return Err(Hold::Paused);
        }
        let terms = purse.terms.get();
        if let Some(cap) = terms.cap {
            if user != 0 && seen(p, cap) >= cap.impressions {
                purse.stat(|s| s.capped += 1);
                return Err(Hold::FrequencyCap);
            }
        }
        if terms.limits.is_limited() && purse.avail.get() < cost.0 {
            // Demand the lease could not meet still counts towards the spend rate that
            // sizes the next lease: a shard whose traffic jumps gets a lease that fits
            // the new rate at once, not one grown from what the last lease allowed.
            purse.window.set(purse.window.get() + cost.0);
            return Err(Hold::Budget);
        }
        if terms.pacing == Pacing::Even && self.draw() > purse.pace.get() {
            return Err(Hold::Pacing);
        }
        Ok(())
    }

    /// Takes a bid [`Wallet::admit`] let through: reserves its `cost` and records it.
    /// `None` when the ledger is full of reservations (the bid must not be made).
    pub fn reserve(&self, entry: u32, cost: Nanos, now: u64, meta: BidMeta) -> Option<BidKey> {
        let p = self.purse_of(entry)?;
        let purses = self.purses.borrow();
        let purse = purses.get(p as usize)?;
        let limited = purse.terms.get().limits.is_limited();
        let held = if limited { cost } else { Nanos::ZERO };
        let max_age = self.settings.notice_max_age_s;
        let mut ledger = self.ledger.borrow_mut();
        let mut left = None;
        let new = Record {
            seq: 0,
            purse: p,
            cost: held,
            at: now,
            flags: Flags::default(),
            creative: meta.creative,
            exchange: meta.exchange,
            price: meta.price.0,
        };
        let seq = ledger.record_with(new, &mut |r| left = Some(*r));
        let Some(seq) = seq else {
            self.ledger_full.set(self.ledger_full.get() + 1);
            return None;
        };
        if let Some(r) = left {
            if r.at + max_age > now {
                ledger.remember(self.key(r.seq), r.flags, r.at + max_age);
            }
        }
        if limited {
            purse.avail.set(purse.avail.get() - held.0);
            purse.reserved.set(purse.reserved.get() + held.0);
            purse.window.set(purse.window.get() + held.0);
        }
        purse.stat(|s| {
            s.bids += 1;
            s.reserved = Nanos(purse.reserved.get());
        });
        Some(self.key(seq))
    }

    /// Takes back a bid that was not sent after all (its answer was late): its
    /// reservation returns to the lease.
    pub fn cancel(&self, key: BidKey) {
        let purses = self.purses.borrow();
        let mut ledger = self.ledger.borrow_mut();
        let Some(r) = ledger.get_mut(key.seq) else {
            return;
        };
        if r.flags.has(Flags::RESERVED) {
            r.flags.clear(Flags::RESERVED);
            r.flags.set(Flags::LOST);
            if let Some(purse) = purses.get(r.purse as usize) {
                release(purse, r.cost);
                purse.stat(|s| s.bids = s.bids.saturating_sub(1));
            }
        }
    }

    fn key(&self, seq: u64) -> BidKey {
        BidKey {
            epoch: self.settings.epoch,
            shard: self.settings.shard,
            seq,
        }
    }

    /// A number drawn uniformly from `0..=u32::MAX` (xorshift; pacing needs no more).
    fn draw(&self) -> u32 {
        let mut x = self.rng.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.set(x);
        (x >> 32) as u32
    }

    /// Settles a notice for a bid this shard made (or, when its record is gone, one it
    /// is responsible for). The first time a bid's impression is known (its win or
    /// billing notice), `seen` is called, for frequency caps.
    pub fn settle(&self, s: &Settlement, now: u64, mut seen: impl FnMut(u32)) -> Settled {
        let purses = self.purses.borrow();
        let Some(purse) = purses.get(s.purse as usize) else {
            return Settled::Noted;
        };
        let limited = purse.terms.get().limits.is_limited();
        let mut ledger = self.ledger.borrow_mut();
        let until = s.issued + self.settings.notice_max_age_s;
        let ours = s.key.epoch == self.settings.epoch && s.key.shard == self.settings.shard;
        let record = if ours {
            ledger.get_mut(s.key.seq)
        } else {
            None
        };
        let Some(r) = record else {
            // No record: a bid of an earlier process, or one whose record left the ring.
            let known = ledger.remembered(&s.key);
            let flag = match s.kind {
                NoticeKind::Loss => Flags::LOST,
                k if k == s.charge_on => Flags::CHARGED,
                _ => Flags::MARKED,
            };
            if known.has(flag) {
                return Settled::Duplicate;
            }
            let mut now_known = Flags(flag);
            if flag != Flags::LOST && !known.has(Flags::SEEN) {
                now_known.set(Flags::SEEN);
                seen(s.purse);
            }
            ledger.remember(s.key, now_known, until);
            return match flag {
                Flags::LOST => Settled::Noted,
                Flags::CHARGED => {
                    charge_late(purse, s.price, limited);
                    Settled::Charged {
                        price: s.price,
                        late: true,
                    }
                }
                _ => Settled::Marked,
            };
        };
        let first_impression = |r: &mut Record, seen: &mut dyn FnMut(u32)| {
            if !r.flags.has(Flags::SEEN) {
                r.flags.set(Flags::SEEN);
                purse.stat(|st| st.wins += 1);
                seen(s.purse);
            }
        };
        match s.kind {
            NoticeKind::Loss => {
                if r.flags.has(Flags::LOST) {
                    return Settled::Duplicate;
                }
                r.flags.set(Flags::LOST);
                if r.flags.has(Flags::RESERVED) {
                    r.flags.clear(Flags::RESERVED);
                    release(purse, r.cost);
                    Settled::Released
                } else {
                    Settled::Noted
                }
            }
            k if k == s.charge_on => {
                if r.flags.has(Flags::CHARGED) {
                    return Settled::Duplicate;
                }
                r.flags.set(Flags::CHARGED);
                first_impression(r, &mut seen);
                if r.flags.has(Flags::RESERVED) {
                    r.flags.clear(Flags::RESERVED);
                    // The price is at most the bid (checked with the notice's
                    // signature), so the rest of the reservation goes back.
                    purse.reserved.set(purse.reserved.get() - r.cost.0);
                    purse.avail.set(purse.avail.get() + r.cost.0 - s.price.0);
                    spend(purse, s.price);
                    Settled::Charged {
                        price: s.price,
                        late: false,
                    }
                } else {
                    // Released by a loss or the win timeout (or, without a budget,
                    // never reserved: then late means after the win timeout).
                    let late = limited || now > r.at + self.settings.win_timeout_s;
                    if limited {
                        charge_late(purse, s.price, true);
                    } else {
                        spend(purse, s.price);
                    }
                    Settled::Charged {
                        price: s.price,
                        late,
                    }
                }
            }
            _ => {
                if r.flags.has(Flags::MARKED) {
                    return Settled::Duplicate;
                }
                r.flags.set(Flags::MARKED);
                first_impression(r, &mut seen);
                Settled::Marked
            }
        }
    }

    /// Releases the reservations of bids made before `now - win_timeout_s` that no
    /// notice claimed; `expired(record)` is told of each.
    pub fn expire(&self, now: u64, mut expired: impl FnMut(&Record)) {
        let cutoff = now.saturating_sub(self.settings.win_timeout_s + 1);
        let purses = self.purses.borrow();
        let mut ledger = self.ledger.borrow_mut();
        ledger.expire(cutoff, |r| {
            if let Some(purse) = purses.get(r.purse as usize) {
                release(purse, r.cost);
            }
            expired(r);
        });
        ledger.forget_charged(now);
    }

    /// Once per housekeeping tick: updates spend rates, and returns what the bank
    /// should hear of (news of a purse, a lease to ask for, one to give back).
    pub fn tick(&self, mut report: impl FnMut(Report)) {
        for (i, purse) in self.purses.borrow().iter().enumerate() {
            let terms = purse.terms.get();
            // Smoothed reservations per second: an eighth of the new tick's rate.
            let window = purse.window.replace(0) * TICKS_PER_SECOND;
            let rate = purse.rate.get();
            purse.rate.set(rate + (window - rate) / 8);
            let (mut want, mut returned) = (0, 0);
            if purse.recalled.replace(false) {
                returned = purse.avail.get().max(0);
                purse.avail.set(purse.avail.get() - returned);
            } else if terms.limits.is_limited() && !purse.paused.get() {
                let target = (purse.rate.get() * LEASE_SECONDS)
                    .max(terms.max_bid.0 * self.settings.lease_min_bids);
                let avail = purse.avail.get();
                if avail < target / 2 && !purse.asking.get() {
                    want = target - avail;
                    purse.asking.set(true);
                } else if avail > target * 2 {
                    returned = avail - target;
                    purse.avail.set(target);
                }
            } else if purse.avail.get() > 0 {
                // Paused, or the budget was removed: the whole lease goes back.
                returned = purse.avail.replace(0);
            }
            let spent = purse.unreported.replace(0);
            if want > 0 || returned > 0 || spent != 0 || purse.dirty.replace(false) {
                report(Report {
                    purse: i as u32,
                    spent: Nanos(spent),
                    returned: Nanos(returned),
                    want: Nanos(want),
                    unit: terms.max_bid,
                    stats: PurseStats {
                        reserved: Nanos(purse.reserved.get()),
                        ..purse.stats.get()
                    },
                });
            }
        }
    }

    /// Remembers a bid settled before this process started (from the event log), so
    /// that a retried notice for it changes nothing.
    pub fn remember(&self, key: BidKey, flags: super::ledger::Flags, until: u64) {
        self.ledger.borrow_mut().remember(key, flags, until);
    }

    /// The bank's answer to a lease request.
    pub fn granted(&self, p: u32, amount: Nanos) {
        if let Some(purse) = self.purses.borrow().get(p as usize) {
            purse.avail.set(purse.avail.get() + amount.0);
            purse.asking.set(false);
        }
    }

    /// The bank wants the lease back (the budget changed, or it is needed elsewhere):
    /// the unreserved part goes back with the next report.
    pub fn recall(&self, p: u32) {
        if let Some(purse) = self.purses.borrow().get(p as usize) {
            purse.recalled.set(true);
        }
    }

    pub fn set_paused(&self, p: u32, paused: bool) {
        if let Some(purse) = self.purses.borrow().get(p as usize) {
            purse.paused.set(paused);
            purse.dirty.set(true);
        }
    }

    /// Even pacing's bid probability for purse `p` (0.0-1.0).
    pub fn set_pace(&self, p: u32, probability: f64) {
        if let Some(purse) = self.purses.borrow().get(p as usize) {
            let v = (probability.clamp(0.0, 1.0) * u32::MAX as f64) as u32;
            purse.pace.set(v);
        }
    }
}

fn release(purse: &Purse, cost: Nanos) {
    purse.reserved.set(purse.reserved.get() - cost.0);
    purse.avail.set(purse.avail.get() + cost.0);
    purse.stat(|s| s.reserved = Nanos(purse.reserved.get()));
}

fn spend(purse: &Purse, price: Nanos) {
    purse.unreported.set(purse.unreported.get() + price.0);
    purse.stat(|s| {
        s.spent += price;
        s.reserved = Nanos(purse.reserved.get());
    });
}

fn charge_late(purse: &Purse, price: Nanos, limited: bool) {
    if limited {
        purse.avail.set(purse.avail.get() - price.0);
    }
    spend(purse, price);
    purse.stat(|s| s.late_charges += 1);
}
