//! gzip on the bid path, and the codec choice behind it: per IAB example request
//! (`tests/fixtures/`), inflating its gzip body with shardbid's codec (libdeflate) and
//! with zlib-rs (through flate2, the other well-kept candidate) both as a gzip stream
//! (what flate2's gzip decoder does: its reset rebuilds the state) and as a raw
//! deflate stream with reused state (zlib-rs at its best); and gzipping the bid
//! response the sample table answers it with, at the fastest level, with each.
//!
//! `cargo bench --bench encoding`. For instruction counts, `ENCODING_BENCH_RUNS=N`
//! skips criterion and runs shardbid's inflate and gzip over every fixture N times,
//! e.g. under `valgrind --tool=callgrind`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use shardbid::auction;
use shardbid::encoding::{Codec, Coding};
use shardbid::openrtb::request::BidRequest;
use shardbid::targeting::MatchContext;

#[path = "support/pipeline.rs"]
#[allow(dead_code)] // the pipeline runner is the pipeline bench's
mod support;

const CAP: usize = 256 * 1024;

/// A fixture: its body, the body gzipped, and the bid response it gets (empty: none).
struct Case {
    name: String,
    body: Vec<u8>,
    gz: Vec<u8>,
    response: Vec<u8>,
}

fn main() {
    let table = support::table();
    let ctx = MatchContext {
        exchange: None,
        hour_of_week: 40,
    };
    let mut codec = Codec::default();
    let cases: Vec<Case> = support::bodies()
        .into_iter()
        .map(|(name, body)| {
            let mut gz = Vec::new();
            codec.gzip(&body, &mut gz);
            let mut response = Vec::new();
            {
                let req: BidRequest = serde_json::from_slice(&body).expect("fixture decodes");
                let mut bids = Vec::new();
                if let Ok(cur) = auction::run(&table, &req, &ctx, &mut (), &mut bids) {
                    auction::encode(&req, &table, &bids, cur, &mut response);
                }
            }
            Case {
                name,
                body,
                gz,
                response,
            }
        })
        .collect();

    let mut out = Vec::with_capacity(CAP);
    if let Some(runs) = std::env::var("ENCODING_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        for _ in 0..runs {
            for case in &cases {
                let gz = &case.gz;
                codec
                    .inflate(Coding::Gzip, gz, &mut out, CAP)
                    .expect("inflates");
                codec.gzip(&case.response, &mut out);
            }
        }
        println!("{} inflates and gzips", runs * cases.len());
        return;
    }

    let mut c = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let mut zlib_gzip = Decompress::new_gzip(15);
    let mut zlib_raw = Decompress::new(false);
    let mut zlib_deflate = Compress::new_gzip(Compression::fast(), 15);

    let mut group = c.benchmark_group("inflate");
    group.throughput(Throughput::Elements(1));
    for Case { name, body, gz, .. } in &cases {
        println!("{name}: {} bytes, {} gzipped", body.len(), gz.len());
        group.bench_with_input(BenchmarkId::new("libdeflate", name), gz, |b, gz| {
            b.iter(|| {
                codec.inflate(Coding::Gzip, gz, &mut out, CAP).unwrap();
                black_box(out.len())
            })
        });
        group.bench_with_input(BenchmarkId::new("zlib-rs-gzip", name), gz, |b, gz| {
            b.iter(|| {
                zlib_gzip.reset(true);
                out.clear();
                zlib_gzip
                    .decompress_vec(gz, &mut out, FlushDecompress::Finish)
                    .unwrap();
                black_box(out.len())
            })
        });
        // The 10-byte header libdeflate writes, then the raw stream and the trailer.
        group.bench_with_input(BenchmarkId::new("zlib-rs-raw", name), gz, |b, gz| {
            b.iter(|| {
                zlib_raw.reset(false);
                out.clear();
                zlib_raw
                    .decompress_vec(&gz[10..], &mut out, FlushDecompress::Finish)
                    .unwrap();
                black_box(out.len())
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("gzip-response");
    group.throughput(Throughput::Elements(1));
    for Case { name, response, .. } in cases.iter().filter(|c| !c.response.is_empty()) {
        group.bench_with_input(BenchmarkId::new("libdeflate", name), response, |b, r| {
            b.iter(|| {
                codec.gzip(r, &mut out);
                black_box(out.len())
            })
        });
        group.bench_with_input(BenchmarkId::new("zlib-rs", name), response, |b, r| {
            b.iter(|| {
                zlib_deflate.reset();
                out.clear();
                zlib_deflate
                    .compress_vec(r, &mut out, FlushCompress::Finish)
                    .unwrap();
                black_box(out.len())
            })
        });
    }
    group.finish();
    c.final_summary();
}
