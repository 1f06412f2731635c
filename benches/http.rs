//! The request path above the socket, per request: hyper's HTTP/1.1 connection with the
//! server's own settings (`net::http1_builder`), the router and the bid
//! handler on a real shard with the sample campaigns, over an in-memory connection that
//! hands hyper one whole request per read, as a keep-alive client does. What it leaves
//! out is the runtime and the kernel: glommio's ring, the syscalls and the TCP stack.
//! Also reports heap allocations per request on this path.
//!
//! `cargo bench --bench http`; `HTTP_BENCH_ONLY=N` runs N requests of every fixture once
//! and prints µs and allocations per request without criterion, for profilers:
//! `HTTP_BENCH_ONLY=20000 valgrind --tool=callgrind target/release/deps/http-* --bench`.

use std::rc::Rc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};

use shardbid::shard::Shard;
use shardbid_testkit::alloc::{self, Counting};

#[path = "support/pipeline.rs"]
#[allow(dead_code)] // the pipeline runner is the pipeline bench's
mod support;
#[path = "support/http.rs"]
mod wire;

use wire::{request, serve, shard};

#[global_allocator]
static ALLOC: Counting = Counting;

/// µs and heap allocations per request over `n` requests, after a warm-up.
fn measure(shard: &Rc<Shard>, request: &[u8], n: u64) -> (f64, f64, wire::Statuses) {
    serve(shard, request, 100);
    let before = alloc::calls();
    let started = Instant::now();
    let statuses = serve(shard, request, n);
    let took = started.elapsed();
    let allocs = (alloc::calls() - before) as f64 / n as f64;
    (took.as_secs_f64() * 1e6 / n as f64, allocs, statuses)
}

fn report(shard: &Rc<Shard>, bodies: &[(String, Vec<u8>)], n: u64) {
    println!("HTTP request path, {n} requests per fixture on one connection:");
    println!(
        "  {:<28} {:>8} {:>8}  answers",
        "fixture", "µs/req", "allocs"
    );
    for (name, body) in bodies {
        let (us, allocs, st) = measure(shard, &request(body), n);
        println!(
            "  {name:<28} {us:>8.3} {allocs:>8.2}  200 {} 204 {} 4xx {} 5xx {}",
            st.bid, st.no_bid, st.client_error, st.server_error
        );
        assert_eq!(
            st.answered(),
            n,
            "{name}: every request answered 200 or 204"
        );
    }
}

fn http(c: &mut Criterion) {
    let shard = shard();
    let bodies = support::bodies();
    report(&shard, &bodies, 2_000);

    let mut group = c.benchmark_group("http");
    for (name, body) in &bodies {
        let req = request(body);
        group.bench_function(name.as_str(), |b| {
            b.iter_custom(|iters| {
                let started = Instant::now();
                serve(&shard, &req, iters);
                started.elapsed()
            })
        });
    }
    group.finish();
}

fn main() {
    if let Some(n) = std::env::var("HTTP_BENCH_ONLY")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        report(&shard(), &support::bodies(), n);
        return;
    }
    criterion_main_inner();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = http
}

fn criterion_main_inner() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
