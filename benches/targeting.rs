//! Matching at scale: 1,000 / 10,000 / 100,000 generated campaigns against 2,000 varied
//! one-imp requests (see `targeting_gen`).
//!
//! For each size it prints the table build time, the heap one shard's replica holds
//! (measured by a counting allocator around `Table::clone`, which is what each shard
//! receives), the campaign set kept once for all replicas, and the distribution of
//! per-imp auction times over 100,000 timed runs (p50/p90/p99/p99.9/max), each timed
//! right after its request is decoded, as on a shard. Criterion then measures the mean
//! time per imp cycling through pre-decoded requests (request memory colder than on a
//! shard, so a little pessimistic).
//!
//! `cargo bench --bench targeting`; knobs for profiling: `TARGETING_BENCH_SIZES=100000`,
//! `TARGETING_BENCH_RUNS=1000000`, `TARGETING_BENCH_NO_CRITERION=1`, and
//! `TARGETING_BENCH_SLOWEST=20` to list the requests with the slowest median time and
//! what they carry (where the tail comes from), and `TARGETING_BENCH_ONLY=419,863` to
//! time only those requests.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use shardbid::auction;
use shardbid::money::Micros;
use shardbid::openrtb::request::BidRequest;
use shardbid::targeting::MatchContext;
use shardbid::targeting::{Table, TableSettings};
use shardbid_testkit::alloc::{self, Counting};
use shardbid_testkit::rng::Rng;

mod targeting_gen;

use targeting_gen::{campaigns, requests};

#[global_allocator]
static ALLOC: Counting = Counting;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn sizes() -> Vec<usize> {
    match std::env::var("TARGETING_BENCH_SIZES") {
        Ok(v) => v.split(',').filter_map(|s| s.trim().parse().ok()).collect(),
        Err(_) => vec![1_000, 10_000, 100_000],
    }
}

fn settings() -> TableSettings {
    TableSettings {
        exchanges: vec!["adx".into(), "example".into()],
        currencies: [
            ("EUR".to_string(), Micros(1_080_000)),
            ("GBP".to_string(), Micros(1_270_000)),
        ]
        .into(),
        default_seat: "shardbid".into(),
        nurl: "https://notices.buyer.example/win?c={campaign}&cr={creative}&p=${AUCTION_PRICE}"
            .into(),
        burl: String::new(),
    }
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The `p` quantile of sorted durations, in microseconds.
fn quantile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_nanos() as f64 / 1000.0
}

fn main() {
    let mut criterion = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    let runs: usize = env_or("TARGETING_BENCH_RUNS", 100_000);
    let mut bodies = requests(2_000, 7);
    let mut rng = Rng::new(99);
    let mut contexts: Vec<MatchContext> = (0..bodies.len())
        .map(|_| MatchContext {
            exchange: [None, Some(0), Some(1)][rng.below(3)],
            hour_of_week: rng.below(168) as u16,
        })
        .collect();
    // Profiling knob: keep only these requests (numbered as `TARGETING_BENCH_SLOWEST` names them).
    if let Ok(only) = std::env::var("TARGETING_BENCH_ONLY") {
        let keep: Vec<usize> = only
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect();
        bodies = keep
            .iter()
            .filter_map(|&k| bodies.get(k).cloned())
            .collect();
        contexts = keep
            .iter()
            .filter_map(|&k| contexts.get(k).copied())
            .collect();
    }
    let reqs: Vec<BidRequest> = bodies
        .iter()
        .map(|b| serde_json::from_str(b).expect("generated request"))
        .collect();
    println!("targeting bench: {} varied one-imp requests", reqs.len());

    let mut group = criterion.benchmark_group("match");
    group.throughput(Throughput::Elements(1));
    for n in sizes() {
        let before_set = alloc::live_bytes();
        let set = campaigns(n, 42);
        let set_bytes = alloc::live_bytes() - before_set;

        let base = alloc::live_bytes();
        alloc::reset_peak();
        let t0 = Instant::now();
        let table = Table::build(&set, &settings(), 1).expect("generated campaigns are valid");
        let build = t0.elapsed();
        let peak = alloc::peak_bytes() - base;
        let before_clone = alloc::live_bytes();
        let replica = table.clone();
        let replica_bytes = alloc::live_bytes() - before_clone;
        drop(table);

        let mut bids = Vec::with_capacity(8);
        let mut won = 0usize;
        for (req, ctx) in reqs.iter().zip(&contexts) {
            won += auction::run(&replica, req, ctx, &mut (), &mut bids).is_ok() as usize;
        }
        // As on a shard, each auction runs right after its request was decoded (the
        // request's memory is warm, the table's is whatever the last requests left).
        let mut times = Vec::with_capacity(runs);
        for i in 0..runs {
            let k = i % reqs.len();
            let req: BidRequest = serde_json::from_str(&bodies[k]).expect("generated request");
            let t = Instant::now();
            let r = auction::run(&replica, black_box(&req), &contexts[k], &mut (), &mut bids);
            times.push(t.elapsed());
            black_box(r.ok());
        }
        times.sort_unstable();
        println!(
            "\n{n:>7} campaigns: build {:.0} ms (peak heap {:.1} MiB); one shard's replica {:.1} MiB; \
             campaign set shared by all replicas {:.1} MiB; bid on {:.1}% of requests; prefetch {}",
            build.as_secs_f64() * 1e3,
            mib(peak),
            mib(replica_bytes),
            mib(set_bytes),
            won as f64 * 100.0 / reqs.len() as f64,
            if replica.prefetches() { "on" } else { "off" },
        );
        println!(
            "{n:>7} campaigns: per-imp auction over {runs} runs: p50 {:.2} us, p90 {:.2} us, \
             p99 {:.2} us, p99.9 {:.2} us, max {:.2} us",
            quantile(&times, 0.50),
            quantile(&times, 0.90),
            quantile(&times, 0.99),
            quantile(&times, 0.999),
            quantile(&times, 1.0),
        );

        if let Ok(n_slow) = std::env::var("TARGETING_BENCH_SLOWEST") {
            let n_slow: usize = n_slow.parse().unwrap_or(20);
            let mut per: Vec<Vec<Duration>> = vec![Vec::new(); reqs.len()];
            for i in 0..runs {
                let k = i % reqs.len();
                let req: BidRequest = serde_json::from_str(&bodies[k]).expect("generated request");
                let t = Instant::now();
                let r = auction::run(&replica, black_box(&req), &contexts[k], &mut (), &mut bids);
                per[k].push(t.elapsed());
                black_box(r.ok());
            }
            let mut med: Vec<(Duration, usize)> = per
                .iter_mut()
                .enumerate()
                .map(|(k, v)| {
                    v.sort_unstable();
                    (v[v.len() / 2], k)
                })
                .collect();
            med.sort_unstable_by(|a, b| b.cmp(a));
            for &(d, k) in med.iter().take(n_slow) {
                let r = auction::run(&replica, &reqs[k], &contexts[k], &mut (), &mut bids);
                let v: serde_json::Value = serde_json::from_str(&bodies[k]).unwrap();
                let imp = &v["imp"][0];
                let kind = if imp.get("banner").is_some() {
                    "banner"
                } else if imp.get("video").is_some() {
                    "video"
                } else {
                    "native"
                };
                println!(
                    "slow {:>7.2} us req {k}: {kind} floor {} pmp {} segs {} bcat {} badv {} ctx {:?} -> {:?}",
                    d.as_nanos() as f64 / 1000.0,
                    imp["bidfloor"],
                    imp.get("pmp").map(|p| p.to_string()).unwrap_or_default(),
                    v["user"]["data"][0]["segment"].as_array().map_or(0, |a| a.len()),
                    v.get("bcat").map_or(0, |a| a.as_array().unwrap().len()),
                    v.get("badv").map_or(0, |a| a.as_array().unwrap().len()),
                    (contexts[k].exchange, contexts[k].hour_of_week),
                    r.map(|_| bids.first().map(|b| (b.campaign, b.price.0))),
                );
            }
        }
        if std::env::var_os("TARGETING_BENCH_NO_CRITERION").is_some() {
            continue;
        }
        group.bench_with_input(BenchmarkId::from_parameter(n), &replica, |b, table| {
            let mut k = 0;
            b.iter(|| {
                k = (k + 1) % reqs.len();
                black_box(auction::run(table, &reqs[k], &contexts[k], &mut (), &mut bids).ok())
            })
        });
    }
    group.finish();
    criterion.final_summary();
}
