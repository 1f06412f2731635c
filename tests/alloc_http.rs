//! Heap allocations per bid request on the HTTP path above the socket (hyper with the
//! server's settings, the router, the bid handler on a real shard), in steady state, with
//! a fixed upper bound so that a regression fails the build. On top of the pipeline's own
//! (`alloc_pipeline.rs`, at most 2) hyper makes two per request: its body channel, and
//! a copy of a custom header name (`x-openrtb-version`). The server adds glommio's I/O
//! source for each read, which this in-memory connection does not have.

use shardbid_testkit::alloc::{self, Counting};

#[path = "../benches/support/pipeline.rs"]
#[allow(dead_code)] // the pipeline runner is the pipeline tests'
mod support;
#[path = "../benches/support/http.rs"]
mod wire;

#[global_allocator]
static ALLOC: Counting = Counting;

/// The most allocations any IAB example may cost on this path. Lower it when hyper or
/// the model stops allocating; never raise it without a reason in the commit.
const MAX_PER_REQUEST: u64 = 4;

/// Requests on the shorter of the two measured connections (and on the warm-up).
const REQUESTS: u64 = 200;

#[test]
fn steady_state_allocations_per_request_on_the_http_path_are_bounded() {
    let shard = wire::shard();
    let bodies = support::bodies();
    assert_eq!(bodies.len(), 6, "the six IAB examples");
    let mut report = String::new();
    let mut worst = 0.0f64;
    for (name, body) in &bodies {
        let req = wire::request(body);
        wire::serve(&shard, &req, REQUESTS);
        // Two connections of different lengths: the difference is what the extra
        // requests cost, without the connection's own set-up.
        let calls = |n: u64| {
            let before = alloc::calls();
            let statuses = wire::serve(&shard, &req, n);
            assert_eq!(
                statuses.answered(),
                n,
                "{name}: every request answered 200 or 204"
            );
            alloc::calls() - before
        };
        let (short, long) = (calls(REQUESTS), calls(2 * REQUESTS));
        let per_request = long.saturating_sub(short) as f64 / REQUESTS as f64;
        worst = worst.max(per_request);
        report.push_str(&format!("{name}: {per_request:.2}\n"));
    }
    println!("{report}");
    assert!(
        worst <= MAX_PER_REQUEST as f64,
        "allocations per request above {MAX_PER_REQUEST}:\n{report}"
    );
}
