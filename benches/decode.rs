//! Decode benchmark: serde_json vs sonic-rs vs simd-json's serde path vs shardbid's own
//! `Decoder`, into the same borrowed model, on the IAB example requests and on a
//! generated corpus of realistic 1-3 KB requests (`shardbid-load corpus`'s generator,
//! `shardbid_testkit::traffic`: site and app, several imps, deals, string numbers,
//! escaped slashes, consent strings and the other fields a bidder skips).
//!
//! Every contender gets the same treatment per request: the body is copied into a
//! reused buffer (simd-json and shardbid rewrite strings in place), decoded, and
//! validated.
//!
//! `cargo bench --bench decode` runs criterion (add `-- --quick` for a fast look);
//! `cargo bench --bench decode -- --table` prints the table recorded in
//! `src/openrtb/decode.rs`. Before timing, both check that all contenders decode every
//! body to the same request and print the heap allocations each makes per request.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use shardbid::openrtb::{BidRequest, Decoder};
use shardbid_testkit::alloc::{self, Counting};
use shardbid_testkit::traffic::corpus;
use shardbid_testkit::traffic::request::Mix;

#[global_allocator]
static GLOBAL: Counting = Counting;

const FIXTURES: [&str; 6] = [
    "simple-banner",
    "expandable-creative",
    "mobile",
    "native-ad",
    "pmp-with-direct-deal",
    "video",
];

/// Requests in the generated corpus.
const CORPUS: usize = 200;

/// One way of turning a body into a validated request. Each keeps its own reused
/// state; `decode` copies the body into its buffer first.
trait Contender {
    fn name(&self) -> &'static str;
    /// Decodes `body`, hands the validated request to `seen`, and says whether it was valid.
    fn decode(&mut self, body: &[u8], seen: &mut dyn FnMut(&BidRequest<'_>)) -> bool;
}

struct SerdeJson(Vec<u8>);
struct SonicRs(Vec<u8>);
/// simd-json's serde deserializer over a reused tape and reused buffers.
struct SimdSerde(
    Vec<u8>,
    simd_json::Buffers,
    Option<simd_json::Tape<'static>>,
);
/// shardbid's decoder: a SIMD token scan and an on-demand reader.
struct Shardbid(Vec<u8>, Decoder);

fn refill(buf: &mut Vec<u8>, body: &[u8]) {
    buf.clear();
    buf.extend_from_slice(body);
}

fn valid(req: Option<BidRequest<'_>>, seen: &mut dyn FnMut(&BidRequest<'_>)) -> bool {
    match req {
        Some(req) if req.validate().is_ok() => {
            seen(&req);
            true
        }
        _ => false,
    }
}

impl Contender for SerdeJson {
    fn name(&self) -> &'static str {
        "serde_json"
    }
    fn decode(&mut self, body: &[u8], seen: &mut dyn FnMut(&BidRequest<'_>)) -> bool {
        refill(&mut self.0, body);
        valid(serde_json::from_slice(&self.0).ok(), seen)
    }
}

impl Contender for SonicRs {
    fn name(&self) -> &'static str {
        "sonic-rs"
    }
    fn decode(&mut self, body: &[u8], seen: &mut dyn FnMut(&BidRequest<'_>)) -> bool {
        refill(&mut self.0, body);
        valid(sonic_rs::from_slice(&self.0).ok(), seen)
    }
}

impl Contender for SimdSerde {
    fn name(&self) -> &'static str {
        "simd-json serde"
    }
    fn decode(&mut self, body: &[u8], seen: &mut dyn FnMut(&BidRequest<'_>)) -> bool {
        use serde::Deserialize;
        refill(&mut self.0, body);
        let Some(tape) = self.2.take() else {
            return false;
        };
        let mut tape = tape.reset();
        if simd_json::fill_tape(&mut self.0, &mut self.1, &mut tape).is_err() {
            self.2 = Some(tape.reset());
            return false;
        }
        let mut de = simd_json::Deserializer::from_tape(tape);
        let ok = valid(BidRequest::deserialize(&mut de).ok(), seen);
        self.2 = Some(de.into_tape().reset());
        ok
    }
}

impl Contender for Shardbid {
    fn name(&self) -> &'static str {
        "shardbid"
    }
    fn decode(&mut self, body: &[u8], seen: &mut dyn FnMut(&BidRequest<'_>)) -> bool {
        refill(&mut self.0, body);
        match self.1.decode(&mut self.0) {
            Ok(req) => {
                seen(&req);
                true
            }
            Err(_) => false,
        }
    }
}

/// Fresh contenders, in table order.
fn contenders() -> Vec<Box<dyn Contender>> {
    let buf = || Vec::with_capacity(8192);
    vec![
        Box::new(SerdeJson(buf())),
        Box::new(SonicRs(buf())),
        Box::new(SimdSerde(
            buf(),
            simd_json::Buffers::new(8192),
            Some(simd_json::Tape(Vec::with_capacity(2048))),
        )),
        Box::new(Shardbid(buf(), Decoder::new())),
    ]
}

/// Checks every contender decodes every body to the same request as serde_json does,
/// and prints each one's heap allocations per request.
fn check_and_count(name: &str, bodies: &[Vec<u8>]) {
    let sizes: usize = bodies.iter().map(Vec::len).sum();
    println!(
        "{name}: {} bodies, {} bytes on average",
        bodies.len(),
        sizes / bodies.len()
    );
    let mut all = contenders();
    let mut expected = Vec::new();
    for body in bodies {
        let ok = all[0].decode(body, &mut |r| expected.push(format!("{r:?}")));
        assert!(ok, "serde_json rejects {}", String::from_utf8_lossy(body));
    }
    for c in &mut all {
        // Also warms the reused buffers before counting.
        for (body, want) in bodies.iter().zip(&expected) {
            let name = c.name();
            let ok = c.decode(body, &mut |r| assert_eq!(&format!("{r:?}"), want, "{name}"));
            assert!(ok, "{name} rejects {}", String::from_utf8_lossy(body));
        }
        let before = alloc::calls();
        for body in bodies {
            c.decode(body, &mut |r| {
                black_box(r);
            });
        }
        let n = alloc::calls() - before;
        println!(
            "  {}: {:.1} allocations per request",
            c.name(),
            n as f64 / bodies.len() as f64
        );
    }
}

/// Decodes every body once; the unit all timings are taken over.
#[inline(never)]
fn pass(c: &mut dyn Contender, bodies: &[Vec<u8>]) {
    for body in bodies {
        black_box(c.decode(black_box(body), &mut |r| {
            black_box(r);
        }));
    }
}

fn bench_group(c: &mut Criterion, name: &str, bodies: &[Vec<u8>]) {
    check_and_count(name, bodies);
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(bodies.len() as u64));
    for mut contender in contenders() {
        group.bench_function(contender.name(), |b| {
            b.iter(|| pass(contender.as_mut(), bodies))
        });
    }
    group.finish();
}

fn corpora() -> Vec<(String, Vec<Vec<u8>>)> {
    let mut out: Vec<_> = FIXTURES
        .iter()
        .map(|name| {
            let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
            let body = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            (format!("fixture/{name}"), vec![body])
        })
        .collect();
    let (generated, _) = corpus::generate(CORPUS, 0x5eed, &Mix::default());
    out.push(("generated".to_string(), generated));
    out
}

fn criterion_benches(c: &mut Criterion) {
    for (name, bodies) in corpora() {
        bench_group(c, &name, &bodies);
    }
}

/// `-- --table [ROUNDS]`: a table robust to noisy neighbours. Contenders take turns,
/// each timing ~5 ms of passes per round; a cell is the fastest round (noise only ever
/// adds time) and the median round, in µs per request.
fn table(rounds: usize) {
    let corpora = corpora();
    for (name, bodies) in &corpora {
        check_and_count(name, bodies);
    }
    let mut all = contenders();
    print!("\n| corpus | bytes |");
    for c in &all {
        print!(" {} |", c.name());
    }
    println!(" serde_json / shardbid |");
    println!("|---|---:|{}---:|", "---:|".repeat(all.len()));
    for (name, bodies) in &corpora {
        let mut samples = vec![Vec::with_capacity(rounds); all.len()];
        for c in &mut all {
            pass(c.as_mut(), bodies);
        }
        for _ in 0..rounds {
            for (c, out) in all.iter_mut().zip(&mut samples) {
                let start = Instant::now();
                let mut passes = 0;
                while start.elapsed() < Duration::from_millis(5) {
                    pass(c.as_mut(), bodies);
                    passes += 1;
                }
                let per = start.elapsed().as_secs_f64() * 1e6 / (passes * bodies.len()) as f64;
                out.push(per);
            }
        }
        let bytes = bodies.iter().map(Vec::len).sum::<usize>() / bodies.len();
        print!("| {name} | {bytes} |");
        let mut mins = Vec::new();
        for s in &mut samples {
            s.sort_by(f64::total_cmp);
            mins.push(s[0]);
            print!(" {:.2} ({:.2}) |", s[0], s[s.len() / 2]);
        }
        println!(" {:.2}x |", mins[0] / mins[mins.len() - 1]);
    }
}

/// `-- --passes CONTENDER CORPUS N`: only decodes, N passes, for counting instructions
/// with `valgrind --tool=callgrind --toggle-collect=*pass*` (steady on a noisy machine).
fn passes(contender: &str, corpus: &str, n: usize) {
    let corpora = corpora();
    let Some((_, bodies)) = corpora.iter().find(|(name, _)| name == corpus) else {
        panic!("no corpus {corpus}");
    };
    let mut all = contenders();
    let Some(c) = all.iter_mut().find(|c| c.name() == contender) else {
        panic!("no contender {contender}");
    };
    for _ in 0..n {
        pass(c.as_mut(), bodies);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--passes") {
        let n = args.get(i + 3).and_then(|r| r.parse().ok()).unwrap_or(100);
        passes(&args[i + 1], &args[i + 2], n);
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--table") {
        let rounds = args.get(i + 1).and_then(|r| r.parse().ok()).unwrap_or(40);
        table(rounds);
        return;
    }
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    criterion_benches(&mut c);
    c.final_summary();
}
