//! The control thread's money work: numbering each campaign's purse, running the bank
//! for the shards' reports and lease requests, stepping even pacing, and the figures
//! `/metrics` and `GET /admin/campaigns` show.
//!
//! The bank is reached only from here, through [`Bank`]: the in-process
//! [`LocalBank`] now, a shared store for a fleet later.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::metrics::CampaignFigures;
use crate::money::bank::{Balance, Bank, LocalBank};
use crate::money::budget::Pacing;
use crate::money::day::DayClock;
use crate::money::pacing::Pacer;
use crate::money::wallet::{Report, Terms, WalletSettings};
use crate::money::Nanos;
use crate::shard::money::ControlMsg;
use crate::shard::money::Purses;
pub use crate::shard::money::Registry;
use crate::shard::ShardMsg;

/// How often even pacing is corrected.
pub const PACING_STEP: Duration = Duration::from_secs(5);

/// How stale the published figures may get while money moves and nobody reads them.
/// Building them is a map of every campaign with money terms: at 10,000 campaigns,
/// rebuilt on every 10 ms round, it took half a core.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// One campaign's live state, as `GET /admin/campaigns` and `/metrics` show it.
#[derive(Debug, Clone, Default)]
pub struct Live {
    pub balance: Balance,
    pub pacing: Option<Pacer>,
    pub paused: bool,
}

/// What the money loop publishes for readers (the admin API), by campaign id.
pub type Snapshot = HashMap<String, Live>;

/// The money side of the control thread (see the module docs).
pub struct Treasury {
    bank: LocalBank,
    shards: Vec<Sender<ShardMsg>>,
    reports: Receiver<ControlMsg>,
    day: DayClock,
    /// Terms of each purse, as the current table sets them.
    terms: HashMap<u32, Terms>,
    pacers: HashMap<u32, Pacer>,
    last_pacing: Instant,
    /// Whether anything the snapshot shows may have changed since it was published,
    /// and when it was.
    changed: bool,
    last_publish: Instant,
}

/// What the admin API and the money loop share on the control thread.
#[derive(Default)]
pub struct MoneyShared {
    pub registry: RefCell<Registry>,
    pub paused: RefCell<HashSet<u32>>,
    /// Terms of a table just installed, for the loop to pass to the bank.
    pub pending: RefCell<Option<Purses>>,
    pub snapshot: RefCell<Rc<Snapshot>>,
    /// Set by readers of the snapshot and by a pause: publish at the next round.
    pub asked: std::cell::Cell<bool>,
    /// Snapshots published so far.
    pub published: std::cell::Cell<u64>,
}

impl MoneyShared {
    /// A snapshot no older than the money loop's next round: asks for one and waits
    /// for it (a round is 10 ms), or takes the last one if none comes within 50 ms (the
    /// loop has stopped).
    pub async fn fresh_snapshot(&self) -> Rc<Snapshot> {
        let seen = self.published.get();
        self.asked.set(true);
        for _ in 0..50 {
            if self.published.get() != seen {
                break;
            }
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        self.snapshot.borrow().clone()
    }
}

impl Treasury {
    pub fn new(
        shard_count: usize,
        shards: Vec<Sender<ShardMsg>>,
        reports: Receiver<ControlMsg>,
        day: DayClock,
    ) -> Treasury {
        Treasury {
            bank: LocalBank::new(shard_count),
            shards,
            reports,
            day,
            terms: HashMap::new(),
            pacers: HashMap::new(),
            last_pacing: Instant::now(),
            changed: true,
            last_publish: Instant::now(),
        }
    }

    /// Before the shards serve: the spend the event log restored, the first table's
    /// terms, and a first lease of every budget for every shard, so that no shard
    /// starts with nothing to bid with. Returns each shard's leases.
    pub async fn open(
        &mut self,
        restored: Vec<(String, Nanos, Nanos)>,
        registry: &mut Registry,
        purses: &Purses,
    ) -> Vec<Vec<(u32, Nanos)>> {
        let day = self.day.at(unix_now() as i64).day;
        for (id, total, today) in restored {
            let p = registry.purse(&id);
            self.bank.restore(p, total, today, day).await;
        }
        let mut leases = vec![Vec::new(); self.shards.len()];
        for &(p, terms) in purses.iter() {
            self.terms.insert(p, terms);
            self.bank.set_limits(p, terms.limits).await;
            if terms.pacing == Pacing::Even {
                self.pacers.entry(p).or_default();
            }
            if !terms.limits.is_limited() {
                continue;
            }
            let want = Nanos(terms.max_bid.0 * WalletSettings::LEASE_MIN_BIDS);
            for (shard, l) in leases.iter_mut().enumerate() {
                let ask = Report {
                    purse: p,
                    want,
                    unit: terms.max_bid,
                    ..Report::default()
                };
                let granted = self.bank.report(shard, &ask, day).await.granted;
                if granted > Nanos::ZERO {
                    l.push((p, granted));
                }
            }
        }
        leases
    }

    /// One round (the control thread's 10 ms tick).
    pub async fn round(&mut self, shared: &MoneyShared) {
        let now = unix_now();
        let pos = self.day.at(now as i64);
        let pending = shared.pending.borrow_mut().take();
        // A new table changes which campaigns there are: published at once.
        let mut now_due = pending.is_some();
        if let Some(purses) = pending {
            self.changed = true;
            for &(p, terms) in purses.iter() {
                self.terms.insert(p, terms);
                for shard in self.bank.set_limits(p, terms.limits).await {
                    self.send(shard, ShardMsg::Recall { purse: p });
                }
                if terms.pacing == Pacing::Even {
                    self.pacers.entry(p).or_default();
                } else if self.pacers.remove(&p).is_some() {
                    self.broadcast(|| ShardMsg::Pace {
                        purse: p,
                        probability: 1.0,
                    });
                }
            }
        }
        while let Ok(ControlMsg::Reports { shard, reports }) = self.reports.try_recv() {
            self.changed = true;
            for r in reports {
                let answer = self.bank.report(shard, &r, pos.day).await;
                if r.want > Nanos::ZERO {
                    self.send(
                        shard,
                        ShardMsg::Grant {
                            purse: r.purse,
                            amount: answer.granted,
                        },
                    );
                }
                for other in answer.recall {
                    self.send(other, ShardMsg::Recall { purse: r.purse });
                }
            }
        }
        if self.last_pacing.elapsed() >= PACING_STEP {
            let dt = self.last_pacing.elapsed().as_secs_f64();
            self.last_pacing = Instant::now();
            self.changed = true;
            let purses: Vec<u32> = self.pacers.keys().copied().collect();
            for p in purses {
                let (Some(terms), Some(balance)) = (self.terms.get(&p), self.bank.balance(p))
                else {
                    continue;
                };
                let Some(daily) = terms.limits.daily else {
                    continue;
                };
                let pacer = self.pacers.entry(p).or_default();
                let probability = pacer.step(
                    daily,
                    balance.spent_today,
                    pos.elapsed_s as f64,
                    pos.length_s as f64,
                    dt,
                );
                self.broadcast(|| ShardMsg::Pace {
                    purse: p,
                    probability,
                });
            }
        }
        // Published when asked (a reader waits for it: `fresh_snapshot`), when the
        // campaigns change, and at most every `PUBLISH_EVERY` otherwise.
        now_due |= self.changed && self.last_publish.elapsed() >= PUBLISH_EVERY;
        if shared.asked.replace(false) || now_due {
            self.publish(shared);
            self.changed = false;
            self.last_publish = Instant::now();
        }
    }

    fn publish(&self, shared: &MoneyShared) {
        let registry = shared.registry.borrow();
        let paused = shared.paused.borrow();
        let mut snap = Snapshot::new();
        for &p in self.terms.keys() {
            let Some(balance) = self.bank.balance(p) else {
                continue;
            };
            snap.insert(
                registry.name(p).to_string(),
                Live {
                    balance,
                    pacing: self.pacers.get(&p).cloned(),
                    paused: paused.contains(&p),
                },
            );
        }
        *shared.snapshot.borrow_mut() = Rc::new(snap);
        shared.published.set(shared.published.get() + 1);
    }

    fn send(&self, shard: usize, msg: ShardMsg) {
        if let Some(tx) = self.shards.get(shard) {
            let _ = tx.send(msg);
        }
    }

    fn broadcast(&self, msg: impl Fn() -> ShardMsg) {
        for tx in &self.shards {
            let _ = tx.send(msg());
        }
    }
}

/// The figures `/metrics` shows for each campaign with money terms or spend.
pub fn figures(snapshot: &Snapshot) -> Vec<CampaignFigures> {
    let micros = |n: Nanos| n.as_micros_f64();
    let mut out: Vec<CampaignFigures> = snapshot
        .iter()
        .map(|(id, live)| {
            let b = &live.balance;
            let (total, daily) = b.remaining();
            CampaignFigures {
                id: id.clone(),
                // Since this process started, so that a restart reads as a counter
                // reset from 0 (the restored total is in the remaining budget).
                spend_micros: micros(b.stats.spent),
                reserved_micros: micros(b.reserved),
                remaining_total_micros: total.map(micros),
                remaining_daily_micros: daily.map(micros),
                pacing_probability: live.pacing.as_ref().map_or(1.0, |p| p.probability),
                pacing_target_micros_per_s: live
                    .pacing
                    .as_ref()
                    .map_or(0.0, |p| p.target_rate / 1000.0),
                pacing_actual_micros_per_s: live
                    .pacing
                    .as_ref()
                    .map_or(0.0, |p| p.actual_rate / 1000.0),
                bids: b.stats.bids,
                wins: b.stats.wins,
                capped: b.stats.capped,
                late_charges: b.stats.late_charges,
                paused: live.paused,
            }
        })
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// A campaign's live state as JSON, for `GET /admin/campaigns`.
pub fn live_json(live: &Live) -> serde_json::Value {
    let b = &live.balance;
    let amount = |n: Nanos| {
        let mut out = Vec::new();
        n.write_micros(&mut out);
        // Micros with up to three decimals: a JSON number, exact.
        serde_json::from_slice::<serde_json::Value>(&out).unwrap_or_default()
    };
    let (total, daily) = b.remaining();
    serde_json::json!({
        "spend_micros": amount(b.spent_total),
        "spend_today_micros": amount(b.spent_today),
        "reserved_micros": amount(b.reserved),
        "remaining_total_micros": total.map(amount),
        "remaining_daily_micros": daily.map(amount),
        "pacing": live.pacing.as_ref().map(|p| serde_json::json!({
            "probability": p.probability,
            "target_micros_per_second": p.target_rate / 1000.0,
            "actual_micros_per_second": p.actual_rate / 1000.0,
        })),
        "bids": b.stats.bids,
        "wins": b.stats.wins,
        "capped": b.stats.capped,
        "late_charges": b.stats.late_charges,
        "paused": live.paused,
    })
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
