//! The whole in-process bid pipeline, body bytes in to response bytes out, per request:
//! decode, auction, encode, as the shard runs it (`shardbid::pipeline`). Also reports
//! heap allocations per request, counted by a counting global allocator.
//!
//! `cargo bench --bench pipeline`; `CORPUS=dir` and `CAMPAIGNS=file` swap in a
//! generated corpus and campaign set (see `shardbid-load corpus` / `campaigns`).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shardbid_testkit::alloc::{self, Counting};

#[path = "support/pipeline.rs"]
mod support;

#[global_allocator]
static ALLOC: Counting = Counting;

fn pipeline(c: &mut Criterion) {
    let table = support::table();
    let bodies = support::bodies();
    let mut scratch = shardbid::pipeline::Scratch::default();
    let mut buf = Vec::new();

    // Allocations per request in steady state: one warm pass, then count a second.
    for (_, body) in &bodies {
        support::run(&mut scratch, &table, body, &mut buf);
    }
    println!(
        "allocations per request ({} campaigns):",
        table.campaign_count()
    );
    let mut total = 0;
    for (name, body) in &bodies {
        let before = alloc::calls();
        let (answer, _) = support::run(&mut scratch, &table, body, &mut buf);
        let n = alloc::calls() - before;
        total += n;
        println!("  {name:<28} {n:>3}  {answer:?}");
    }
    println!("  mean {:.2}", total as f64 / bodies.len() as f64);

    let mut group = c.benchmark_group("pipeline");
    for (name, body) in &bodies {
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(name.as_str(), |b| {
            b.iter(|| support::run(&mut scratch, &table, body, &mut buf))
        });
    }
    group.finish();
    c.bench_function("pipeline/all", |b| {
        b.iter(|| {
            for (_, body) in &bodies {
                support::run(&mut scratch, &table, body, &mut buf);
            }
        })
    });
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
