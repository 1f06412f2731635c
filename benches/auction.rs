//! Auction and response encoding on the six IAB example requests (`tests/fixtures/`)
//! with the shipped sample campaigns (`config/campaigns.json`): per request, the time
//! of `auction::run` alone and of `auction::run` + `write_response` into reused buffers.
//!
//! `cargo bench --bench auction`. For instruction counts, `AUCTION_BENCH_RUNS=N` skips
//! criterion and runs every fixture N times (auction and encoding), e.g. under
//! `valgrind --tool=callgrind`.

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use shardbid::auction::{self, AuctionContext};
use shardbid::money::Micros;
use shardbid::openrtb::request::BidRequest;
use shardbid::openrtb::response::write_response;
use shardbid::targeting::{CampaignSet, Table, TableSettings};

const FIXTURES: [&str; 6] = [
    "simple-banner.json",
    "expandable-creative.json",
    "mobile.json",
    "video.json",
    "native-ad.json",
    "pmp-with-direct-deal.json",
];

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read(root.join("config/campaigns.json")).expect("sample campaigns");
    let set: CampaignSet = serde_json::from_slice(&text).expect("valid campaign file");
    let settings = TableSettings {
        exchanges: vec!["adx".into(), "example".into()],
        currencies: [
            ("EUR".to_string(), Micros(1_080_000)),
            ("GBP".to_string(), Micros(1_270_000)),
        ]
        .into(),
        default_seat: "shardbid".into(),
        nurl: String::new(),
        burl: String::new(),
    };
    let table = Table::build(&set, &settings, 1).expect("sample campaigns build");
    let bodies: Vec<Vec<u8>> = FIXTURES
        .iter()
        .map(|f| std::fs::read(root.join("tests/fixtures").join(f)).expect("fixture"))
        .collect();
    let reqs: Vec<BidRequest> = bodies
        .iter()
        .map(|b| serde_json::from_slice(b).expect("fixture decodes"))
        .collect();
    let ctx = AuctionContext {
        exchange: None,
        hour_of_week: 40,
    };

    if let Some(runs) = std::env::var("AUCTION_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        let (mut bids, mut out) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            for req in &reqs {
                if let Ok(cur) = auction::run(&table, req, &ctx, &mut bids) {
                    write_response(req, &table, &bids, cur, &mut out);
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
    for (name, req) in FIXTURES.iter().zip(&reqs) {
        let name = name.trim_end_matches(".json");
        let cur = auction::run(&table, req, &ctx, &mut bids).expect("every fixture bids");
        write_response(req, &table, &bids, cur, &mut out);
        println!("{name}: {} bid(s), {}-byte response", bids.len(), out.len());
        group.bench_with_input(BenchmarkId::new("run", name), req, |b, req| {
            b.iter(|| black_box(auction::run(&table, req, &ctx, &mut bids).ok()))
        });
        group.bench_with_input(BenchmarkId::new("run+encode", name), req, |b, req| {
            b.iter(|| {
                if let Ok(cur) = auction::run(&table, req, &ctx, &mut bids) {
                    write_response(req, &table, &bids, cur, &mut out);
                }
                black_box(out.len())
            })
        });
    }
    group.finish();
    c.final_summary();
}
