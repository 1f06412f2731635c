//! Auction and response encoding on the six IAB example requests (`tests/fixtures/`)
//! with the table the sample config serves (`config/`): per request, the time
//! of `auction::run` alone and of `auction::run` + `write_response` into reused buffers.
//!
//! `cargo bench --bench auction`. For instruction counts, `AUCTION_BENCH_RUNS=N` skips
//! criterion and runs every fixture N times (auction and encoding), e.g. under
//! `valgrind --tool=callgrind`; `AUCTION_BENCH_ONLY=simple-banner` runs that one only.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use shardbid::auction;
use shardbid::openrtb::request::BidRequest;
use shardbid::targeting::MatchContext;

#[path = "support/pipeline.rs"]
#[allow(dead_code)] // the pipeline runner is the pipeline bench's
mod support;

fn main() {
    // The table the sample config serves, and the IAB fixtures (see `support`).
    let table = support::table();
    let (names, bodies): (Vec<String>, Vec<Vec<u8>>) = support::bodies().into_iter().unzip();
    let reqs: Vec<BidRequest> = bodies
        .iter()
        .map(|b| serde_json::from_slice(b).expect("fixture decodes"))
        .collect();
    let ctx = MatchContext {
        exchange: None,
        hour_of_week: 40,
    };

    if let Some(runs) = std::env::var("AUCTION_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        // `AUCTION_BENCH_ONLY=simple-banner`: that fixture alone.
        let only = std::env::var("AUCTION_BENCH_ONLY").ok();
        let reqs: Vec<&BidRequest> = names
            .iter()
            .zip(&reqs)
            .filter(|(n, _)| only.as_ref().is_none_or(|o| *n == o))
            .map(|(_, r)| r)
            .collect();
        let (mut bids, mut out) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            for &req in &reqs {
                if let Ok(cur) = auction::run(&table, req, &ctx, &mut (), &mut bids) {
                    auction::encode(req, &table, &bids, cur, &mut out);
                }
            }
        }
        println!("{} auctions", runs * reqs.len());
        return;
    }
    let mut c = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut bids = Vec::with_capacity(4);
    let mut out = Vec::with_capacity(4096);
    let mut group = c.benchmark_group("auction");
    group.throughput(Throughput::Elements(1));
    for (name, req) in names.iter().zip(&reqs) {
        let cur = auction::run(&table, req, &ctx, &mut (), &mut bids).expect("every fixture bids");
        auction::encode(req, &table, &bids, cur, &mut out);
        println!("{name}: {} bid(s), {}-byte response", bids.len(), out.len());
        group.bench_with_input(BenchmarkId::new("run", name), req, |b, req| {
            b.iter(|| black_box(auction::run(&table, req, &ctx, &mut (), &mut bids).ok()))
        });
        group.bench_with_input(BenchmarkId::new("run+encode", name), req, |b, req| {
            b.iter(|| {
                if let Ok(cur) = auction::run(&table, req, &ctx, &mut (), &mut bids) {
                    auction::encode(req, &table, &bids, cur, &mut out);
                }
                black_box(out.len())
            })
        });
    }
    group.finish();
    c.final_summary();
}
