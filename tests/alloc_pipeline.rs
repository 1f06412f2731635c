//! Heap allocations per bid request on the whole pipeline (decode, auction, encode,
//! response bytes), in steady state, with a fixed upper bound so that a regression
//! fails the build. The count comes from a counting global allocator; the only
//! allocations left are the decoded model's lists of objects (`deals`, `data`,
//! `segment`, and `imp` past the first), one per non-empty list in the request. The
//! first imp and short lists of strings and numbers (`format`, `mimes`, `cat`, `battr`,
//! `bcat` ...) live inline in the model.

#[path = "../benches/support/pipeline.rs"]
mod support;

use shardbid::pipeline::{Answer, Scratch};
use shardbid_testkit::alloc::{self, Counting};

#[global_allocator]
static ALLOC: Counting = Counting;

/// The most allocations any IAB example may cost. Lower it when the model stops
/// allocating; never raise it without a reason in the commit.
const MAX_PER_REQUEST: u64 = 2;

#[test]
fn steady_state_allocations_per_request_are_bounded() {
    let table = support::table();
    let bodies = support::bodies();
    assert_eq!(bodies.len(), 6, "the six IAB examples");
    let mut scratch = Scratch::default();
    let mut buf = Vec::new();
    for (_, body) in &bodies {
        support::run(&mut scratch, &table, body, &mut buf);
    }
    let mut report = String::new();
    let mut worst = 0;
    for round in 0..3 {
        for (name, body) in &bodies {
            let before = alloc::calls();
            let (answer, sent) = support::run(&mut scratch, &table, body, &mut buf);
            let n = alloc::calls() - before;
            assert_eq!(
                answer,
                Answer::Bid,
                "{name}: every example bids with the sample campaigns"
            );
            assert!(sent > 0);
            worst = worst.max(n);
            if round == 0 {
                report.push_str(&format!("{name}: {n}\n"));
            }
        }
    }
    println!("{report}");
    assert!(
        worst <= MAX_PER_REQUEST,
        "allocations per request above {MAX_PER_REQUEST}:\n{report}"
    );
}
