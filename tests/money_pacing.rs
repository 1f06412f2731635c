//! Even pacing over a simulated day on a fast clock: two shards and the bank, traffic
//! that rises and falls with the hour and could spend the daily budget several times
//! over, wins settled as they come. The campaign must end the day within 5% of its
//! daily budget, never above it, with no hour spending more than twice its share.

use shardbid::money::bank::{Bank, LocalBank};
use shardbid::money::budget::{Budget, Pacing};
use shardbid::money::notice::NoticeKind;
use shardbid::money::pacing::Pacer;
use shardbid::money::wallet::{Settlement, Terms, Wallet, WalletSettings};
use shardbid::money::{Micros, Nanos};

fn ready<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("LocalBank waited"),
    }
}

/// SplitMix64, for the traffic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

const DAY: u64 = 86_400;
const SHARDS: usize = 2;

/// One simulated day; returns the spend of each hour.
fn day(seed: u64, traffic_per_s: f64, daily: i64) -> Vec<Nanos> {
    let budget = Budget {
        total: None,
        daily: Some(Micros(daily)),
    };
    let price = Micros(2_000_000); // bids at CPM 2.00
    let terms = Terms {
        limits: budget.limits(),
        pacing: Pacing::Even,
        cap: None,
        max_bid: price.per_impression(),
    };
    let wallets: Vec<Wallet> = (0..SHARDS)
        .map(|shard| {
            let w = Wallet::new(WalletSettings {
                shard: shard as u16,
                epoch: 1,
                ledger_capacity: 1 << 16,
                charged_capacity: 1 << 16,
                win_timeout_s: 300,
                notice_max_age_s: 3600,
                lease_min_bids: 4,
            });
            w.bind(&[(0, terms)]);
            w
        })
        .collect();
    let mut bank = LocalBank::new(SHARDS);
    ready(bank.set_limits(0, budget.limits()));
    let mut pacer = Pacer::default();
    let mut rng = Rng(seed);
    let mut hours = vec![Nanos::ZERO; 24];
    let start = 10 * DAY;
    for t in 0..DAY {
        let now = start + t;
        // Traffic follows the hour: a third at night, five thirds in the evening.
        let phase = (t as f64 / DAY as f64 - 0.3) * std::f64::consts::TAU;
        let rate = traffic_per_s * (1.0 + 0.66 * phase.sin());
        let requests = rate as u64 + rng.chance(rate.fract()) as u64;
        for tick in 0..100u64 {
            for r in 0..requests {
                if r % 100 != tick {
                    continue;
                }
                let shard = (r as usize) % SHARDS;
                let w = &wallets[shard];
                let cost = price.per_impression();
                if w.admit(0, cost, 0, |_, _| 0).is_err() {
                    continue;
                }
                let Some(key) = w.reserve(0, cost, now, Default::default()) else {
                    continue;
                };
                // A fifth of the bids win, at 70% of the bid; the rest lose.
                let won = rng.chance(0.2);
                let s = Settlement {
                    kind: if won {
                        NoticeKind::Win
                    } else {
                        NoticeKind::Loss
                    },
                    charge_on: NoticeKind::Win,
                    key,
                    purse: 0,
                    price: Nanos(cost.0 * 7 / 10),
                    issued: now,
                };
                if let shardbid::money::wallet::Settled::Charged { price, .. } =
                    w.settle(&s, now, |_| {})
                {
                    hours[(t / 3600) as usize] += price;
                }
            }
            for (shard, w) in wallets.iter().enumerate() {
                let mut reports = Vec::new();
                w.tick(|r| reports.push(r));
                for r in reports {
                    let answer = ready(bank.report(shard, &r, (now / DAY) as i64));
                    if r.want > Nanos::ZERO {
                        w.granted(r.purse, answer.granted);
                    }
                    for other in answer.recall {
                        wallets[other].recall(r.purse);
                    }
                }
            }
        }
        if t % 5 == 4 {
            let spent = bank.balance(0).unwrap().spent_today;
            let p = pacer.step(
                Micros(daily).to_nanos(),
                spent,
                (t + 1) as f64,
                DAY as f64,
                5.0,
            );
            for w in &wallets {
                w.set_pace(0, p);
            }
            if std::env::var("PACING_DEBUG").is_ok() && t % 3600 == 3599 {
                eprintln!(
                    "h{} p={p:.3} full={:.0} target={:.0} actual={:.0} spent={spent}",
                    t / 3600,
                    pacer.full_rate,
                    pacer.target_rate,
                    pacer.actual_rate
                );
            }
        }
    }
    hours
}

#[test]
fn an_even_campaign_spends_its_day_evenly() {
    // 4 matching requests a second at CPM 2.00, a fifth winning at 1.40: at full rate
    // about 97 USD a day, against a daily budget of 20.
    let daily = 20_000_000;
    for seed in [1, 2] {
        let hours = day(seed, 4.0, daily);
        let spent: Nanos = hours.iter().copied().sum();
        let budget = Micros(daily).to_nanos();
        assert!(
            spent <= budget,
            "seed {seed}: spent {spent} over the budget {budget}"
        );
        assert!(
            spent.0 as f64 >= 0.95 * budget.0 as f64,
            "seed {seed}: spent only {spent} of {budget}"
        );
        let share = budget.0 as f64 / 24.0;
        for (h, s) in hours.iter().enumerate() {
            assert!(
                (s.0 as f64) <= 2.0 * share,
                "seed {seed}: hour {h} spent {s}, more than twice its share {share}"
            );
        }
    }
}
