//! The request path above the socket, per request: hyper's HTTP/1.1 connection with the
//! server's own settings (`shard::listener::http1_builder`), the router and the bid
//! handler on a real shard with the sample campaigns, over an in-memory connection that
//! hands hyper one whole request per read, as a keep-alive client does. What it leaves
//! out is the runtime and the kernel: glommio's ring, the syscalls and the TCP stack.
//! Also reports heap allocations per request on this path.
//!
//! `cargo bench --bench http`; `HTTP_BENCH_ONLY=N` runs N requests of every fixture once
//! and prints µs and allocations per request without criterion, for profilers:
//! `HTTP_BENCH_ONLY=20000 valgrind --tool=callgrind target/release/deps/http-* --bench`.

use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use hyper::rt::ReadBufCursor;
use hyper::service::service_fn;

use shardbid::config::Config;
use shardbid::http::router;
use shardbid::metrics::ShardMetrics;
use shardbid::shard::listener::http1_builder;
use shardbid::shard::{Global, Shard, ShardSettings};

#[path = "support/counting.rs"]
mod counting;
#[path = "support/pipeline.rs"]
#[allow(dead_code)] // the pipeline runner is the pipeline bench's
mod support;

#[global_allocator]
static ALLOC: counting::Counting = counting::Counting;

/// One keep-alive client connection in memory: each read gets the next whole request
/// (until `left` runs out, then EOF); writes are counted and the responses' status
/// codes tallied.
struct Wire<'r> {
    request: &'r [u8],
    left: u64,
    statuses: [u64; 6],
}

impl<'r> Wire<'r> {
    fn new(request: &'r [u8], requests: u64) -> Wire<'r> {
        Wire {
            request,
            left: requests,
            statuses: [0; 6],
        }
    }
}

impl hyper::rt::Read for Wire<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        if self.left > 0 {
            self.left -= 1;
            buf.put_slice(self.request);
        }
        Poll::Ready(Ok(()))
    }
}

impl hyper::rt::Write for Wire<'_> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // Each response is written whole by one call (`writev(false)`, small bodies).
        if buf.len() > 9 && buf.starts_with(b"HTTP/1.1 ") {
            let class = (buf[9] - b'0') as usize;
            self.statuses[class.min(5)] += 1;
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A shard as the server builds it, serving the sample config's campaigns.
fn shard() -> Rc<Shard> {
    let cfg = Config::from_file(&support::root().join("config/shardbid.toml")).expect("config");
    let settings = Rc::new(ShardSettings::from_config(&cfg));
    let metrics = Arc::new(ShardMetrics::new(settings.exchanges.len()));
    let global = Arc::new(Global {
        shard_count: 1,
        ..Global::default()
    });
    Rc::new(Shard::new(0, settings, global, metrics, support::table()))
}

/// A request as a keep-alive exchange client sends it.
fn request(body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST /openrtb2/bid HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\
         Content-Type: application/json\r\nx-openrtb-version: 2.6\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// Serves `n` requests on one connection; returns the status classes seen (1xx..5xx).
fn serve(shard: &Rc<Shard>, request: &[u8], n: u64) -> [u64; 6] {
    let mut wire = Wire::new(request, n);
    let service = service_fn(|req| {
        let shard = shard.clone();
        async move { Ok::<_, std::convert::Infallible>(router::route(&shard, req).await) }
    });
    let served =
        futures_lite::future::block_on(http1_builder().serve_connection(&mut wire, service));
    served.expect("connection served");
    wire.statuses
}

/// µs and heap allocations per request over `n` requests, after a warm-up.
fn measure(shard: &Rc<Shard>, request: &[u8], n: u64) -> (f64, f64, [u64; 6]) {
    serve(shard, request, 100);
    let before = counting::calls();
    let started = Instant::now();
    let statuses = serve(shard, request, n);
    let took = started.elapsed();
    let allocs = (counting::calls() - before) as f64 / n as f64;
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
            "  {name:<28} {us:>8.3} {allocs:>8.2}  2xx {} 4xx {} 5xx {}",
            st[2], st[4], st[5]
        );
        assert_eq!(st[2], n, "{name}: every request answered 2xx");
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
