//! The budget invariant under random interleavings: several simulated shards and the
//! bank, messages between them delayed at random, random lease sizes, bids, wins,
//! billing, losses, duplicates, timeouts and late notices. After every step:
//!
//! - the bank's books hold: spent + every shard's lease <= budget;
//! - what was really committed (settled spend + reservations outstanding) stays within
//!   the budget, beyond it only by late charges (notices whose reservation had been
//!   released), and not at all when there were none;
//! - spend equals the sum of the clearing prices of the notices that charged, on the
//!   shards and at the bank (counting reports still on their way).

use std::collections::VecDeque;

use proptest::prelude::*;
use shardbid::money::bank::{Bank, LocalBank};
use shardbid::money::budget::{Budget, Limits, Pacing};
use shardbid::money::ledger::BidKey;
use shardbid::money::notice::NoticeKind;
use shardbid::money::wallet::{Report, Settled, Settlement, Terms, Wallet, WalletSettings};
use shardbid::money::{Micros, Nanos};

/// Runs a future that never waits (every `LocalBank` call) to completion.
fn ready<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("LocalBank waited"),
    }
}

const SHARDS: usize = 3;
const WIN_TIMEOUT: u64 = 30;
const MAX_AGE: u64 = 3600;

#[derive(Debug, Clone)]
enum Step {
    /// Shard `shard` bids `price` micros (CPM) for campaign `campaign`.
    Bid {
        shard: usize,
        campaign: u32,
        price: i64,
    },
    /// A notice for the `nth` bid made so far (modulo), at `share` per cent of its price.
    Notice { nth: usize, kind: u8, share: i64 },
    /// The same notice again (a retry).
    Repeat,
    /// A shard's housekeeping tick: reports go to the bank.
    Tick { shard: usize },
    /// The bank handles the oldest report; its answer goes back to the shard.
    BankRound,
    /// A shard takes the oldest grant or recall addressed to it.
    Deliver { shard: usize },
    /// Time passes; reservations older than the win timeout are released.
    Wait { seconds: u64 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..SHARDS, 0..2u32, 500_000..5_000_000i64)
            .prop_map(|(shard, campaign, price)| Step::Bid { shard, campaign, price }),
        4 => (any::<usize>(), 0..3u8, 0..=100i64)
            .prop_map(|(nth, kind, share)| Step::Notice { nth, kind, share }),
        1 => Just(Step::Repeat),
        3 => (0..SHARDS).prop_map(|shard| Step::Tick { shard }),
        3 => Just(Step::BankRound),
        3 => (0..SHARDS).prop_map(|shard| Step::Deliver { shard }),
        1 => (1..40u64).prop_map(|seconds| Step::Wait { seconds }),
    ]
}

enum ToShard {
    Grant(u32, Nanos),
    Recall(u32),
}

struct Bid {
    key: BidKey,
    shard: usize,
    purse: u32,
    cost: Nanos,
    at: u64,
}

/// Runs the steps, checking after each; returns (bids made, bids the budget refused).
fn run(
    steps: Vec<Step>,
    lease_min_bids: i64,
    total: i64,
    charge_on_billing: bool,
) -> (usize, usize) {
    let limits = Budget {
        total: Some(Micros(total)),
        daily: Some(Micros(total / 2)),
    }
    .limits();
    let terms = Terms {
        limits,
        pacing: Pacing::Asap,
        cap: None,
        max_bid: Micros(5_000_000).per_impression(),
    };
    let wallets: Vec<Wallet> = (0..SHARDS)
        .map(|shard| {
            let w = Wallet::new(WalletSettings {
                shard: shard as u16,
                epoch: 1,
                ledger_capacity: 16,
                charged_capacity: 1 << 16,
                win_timeout_s: WIN_TIMEOUT,
                notice_max_age_s: MAX_AGE,
                lease_min_bids,
            });
            // Campaign 0 has the budget; campaign 1 has none.
            w.bind(&[
                (0, terms),
                (
                    1,
                    Terms {
                        limits: Limits::default(),
                        ..terms
                    },
                ),
            ]);
            w
        })
        .collect();
    let mut bank = LocalBank::new(SHARDS);
    ready(bank.set_limits(0, limits));
    ready(bank.set_limits(1, Limits::default()));

    let charge_on = if charge_on_billing {
        NoticeKind::Billing
    } else {
        NoticeKind::Win
    };
    let mut to_bank: VecDeque<(usize, Report)> = VecDeque::new();
    let mut to_shard: Vec<VecDeque<ToShard>> = (0..SHARDS).map(|_| VecDeque::new()).collect();
    let mut bids: Vec<Bid> = Vec::new();
    let mut last: Option<Settlement> = None;
    let mut now = 1_000;
    // What the notices that charged add up to, and what was charged late.
    let (mut charged, mut late) = (Nanos::ZERO, Nanos::ZERO);
    let mut refused = 0;

    for step in steps {
        match step {
            Step::Bid {
                shard,
                campaign,
                price,
            } => {
                let cost = Micros(price).per_impression();
                let w = &wallets[shard];
                let admitted = w.admit(campaign, cost, 0, |_, _| 0);
                refused += admitted.is_err() as usize;
                if admitted.is_ok() {
                    if let Some(key) = w.reserve(campaign, cost, now, Default::default()) {
                        bids.push(Bid {
                            key,
                            shard,
                            purse: campaign,
                            cost,
                            at: now,
                        });
                    }
                }
            }
            Step::Notice { nth, kind, share } if !bids.is_empty() => {
                let b = &bids[nth % bids.len()];
                let kind = NoticeKind::ALL[kind as usize];
                let price = if kind == NoticeKind::Loss {
                    Nanos::ZERO
                } else {
                    Nanos(b.cost.0.max(1_000) * share / 100)
                };
                let s = Settlement {
                    kind,
                    charge_on,
                    key: b.key,
                    purse: b.purse,
                    price,
                    issued: b.at,
                };
                let owner = b.shard;
                settle(&wallets[owner], &s, now, &mut charged, &mut late);
                last = Some(s);
            }
            Step::Notice { .. } => {}
            Step::Repeat => {
                if let Some(s) = last {
                    let owner = s.key.shard as usize;
                    let before = charged;
                    let got = wallets[owner].settle(&s, now, |_| {});
                    assert!(
                        matches!(got, Settled::Duplicate) || s.kind == NoticeKind::Loss,
                        "a repeated notice did something: {got:?}"
                    );
                    assert_eq!(charged, before);
                }
            }
            Step::Tick { shard } => {
                wallets[shard].expire(now, |_| {});
                wallets[shard].tick(|r| to_bank.push_back((shard, r)));
            }
            Step::BankRound => {
                if let Some((shard, r)) = to_bank.pop_front() {
                    let answer = ready(bank.report(shard, &r, now as i64 / 86_400));
                    if answer.granted > Nanos::ZERO || r.want > Nanos::ZERO {
                        to_shard[shard].push_back(ToShard::Grant(r.purse, answer.granted));
                    }
                    for other in answer.recall {
                        to_shard[other].push_back(ToShard::Recall(r.purse));
                    }
                }
            }
            Step::Deliver { shard } => match to_shard[shard].pop_front() {
                Some(ToShard::Grant(p, amount)) => wallets[shard].granted(p, amount),
                Some(ToShard::Recall(p)) => wallets[shard].recall(p),
                None => {}
            },
            Step::Wait { seconds } => {
                now += seconds;
                for w in &wallets {
                    w.expire(now, |_| {});
                }
            }
        }

        assert!(bank.holds(), "the bank leased beyond a budget");
        for p in 0..2u32 {
            let on_shards: Nanos = wallets
                .iter()
                .map(|w| w.with(p, |purse| purse.stats().spent).unwrap())
                .sum();
            let unreported: Nanos = wallets
                .iter()
                .map(|w| w.with(p, |purse| purse.unreported()).unwrap())
                .sum();
            let in_flight: Nanos = to_bank
                .iter()
                .filter(|(_, r)| r.purse == p)
                .map(|(_, r)| r.spent)
                .sum();
            let settled = bank.balance(p).unwrap().spent_total;
            assert_eq!(settled + in_flight + unreported, on_shards, "purse {p}");
        }
        let all: Nanos = (0..2u32)
            .map(|p| {
                wallets
                    .iter()
                    .map(|w| w.with(p, |purse| purse.stats().spent).unwrap())
                    .sum::<Nanos>()
            })
            .sum();
        assert_eq!(
            all, charged,
            "spend is the sum of the charged clearing prices"
        );

        let spent = wallets
            .iter()
            .map(|w| w.with(0, |purse| purse.stats().spent).unwrap())
            .sum::<Nanos>();
        let reserved = wallets
            .iter()
            .map(|w| w.with(0, |purse| purse.reserved()).unwrap())
            .sum::<Nanos>();
        let budget = limits.total.unwrap();
        assert!(
            spent + reserved <= budget + late,
            "spent {spent} + reserved {reserved} > budget {budget} + late {late}"
        );
    }
    (bids.len(), refused)
}

fn settle(w: &Wallet, s: &Settlement, now: u64, charged: &mut Nanos, late: &mut Nanos) {
    if let Settled::Charged { price, late: l } = w.settle(s, now, |_| {}) {
        *charged += price;
        if l && s.purse == 0 {
            *late += price;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn spend_and_reservations_stay_within_the_budget(
        steps in prop::collection::vec(step(), 1..400),
        lease_min_bids in 1..8i64,
        total in 2_000_000..60_000_000i64,
        charge_on_billing in any::<bool>(),
    ) {
        run(steps, lease_min_bids, total, charge_on_billing);
    }
}

/// Spend never exceeds the budget without late notices, however the steps interleave:
/// the same run with notices only while their reservations stand.
#[test]
fn without_late_notices_the_budget_is_never_exceeded() {
    // Many bids against a small budget, every shard asking for leases, no waiting.
    let mut steps = Vec::new();
    for round in 0..500usize {
        let shard = round % SHARDS;
        steps.push(Step::Tick { shard });
        steps.push(Step::BankRound);
        steps.push(Step::Deliver { shard });
        steps.push(Step::Bid {
            shard,
            campaign: 0,
            price: 4_000_000,
        });
        steps.push(Step::Notice {
            nth: round,
            kind: 1,
            share: 60,
        });
    }
    let (made, refused) = run(steps, 2, 1_000_000, true);
    assert!(
        made > 100 && refused > 100,
        "made {made}, refused {refused}"
    );
}
