//! Decode benchmark: serde_json vs sonic-rs vs simd-json (serde, and the tape reader
//! behind `Decoder`) into the same borrowed model, on the IAB example requests and on a
//! generated corpus of realistic 1-3 KB requests.
//!
//! Every contender gets the same treatment per request: the body is copied into a
//! reused buffer (simd-json rewrites it in place), decoded, and validated.
//!
//! `cargo bench --bench decode` runs criterion (add `-- --quick` for a fast look);
//! `cargo bench --bench decode -- --table` prints the table recorded in
//! `src/openrtb/decode.rs`. Before timing, both check that all contenders decode every
//! body to the same request and print the heap allocations each makes per request.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use shardbid::openrtb::{BidRequest, Decoder};

/// Counts heap allocations, to report them per request.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

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
struct SimdTape(Vec<u8>, Decoder);

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

impl Contender for SimdTape {
    fn name(&self) -> &'static str {
        "simd-json tape"
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
        Box::new(SimdTape(buf(), Decoder::new())),
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
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        for body in bodies {
            c.decode(body, &mut |r| {
                black_box(r);
            });
        }
        let n = ALLOCATIONS.load(Ordering::Relaxed) - before;
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
    out.push(("generated".to_string(), corpus::generate(CORPUS, 0x5eed)));
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
    println!(" serde_json / tape |");
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

/// A deterministic generator of realistic bid requests: 1-3 KB, banner and video imps,
/// deals, site or app, a full device and user, and the fields a bidder ignores (`ua`,
/// `ip`, `ext` objects, supply chain, consent strings). Some numbers come as strings and
/// some URLs with escaped slashes, as exchanges send them.
mod corpus {
    use std::fmt::Write;

    /// SplitMix64: small, fast, and the same sequence everywhere.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn chance(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }
        fn pick<'s>(&mut self, from: &[&'s str]) -> &'s str {
            from[self.below(from.len() as u64) as usize]
        }
        fn hex(&mut self, len: usize) -> String {
            (0..len)
                .map(|_| char::from(b"0123456789abcdef"[self.below(16) as usize]))
                .collect()
        }
    }

    const SIZES: [(u32, u32); 6] = [
        (300, 250),
        (728, 90),
        (320, 50),
        (160, 600),
        (300, 600),
        (970, 250),
    ];
    const CATS: [&str; 8] = [
        "IAB1", "IAB2-1", "IAB3", "IAB7-39", "IAB8-5", "IAB9-9", "IAB25", "IAB26",
    ];
    const DOMAINS: [&str; 6] = [
        "news.example",
        "sports.example",
        "weather.example",
        "recipes.example",
        "cars.example",
        "games.example",
    ];
    const UAS: [&str; 3] = [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.43 Mobile Safari/537.36",
    ];
    const GEOS: [(&str, &str, &str); 4] = [
        ("USA", "CA", "San Francisco"),
        ("USA", "NY", "New York"),
        ("GBR", "ENG", "London"),
        ("DEU", "BE", "Berlin"),
    ];

    /// `n` bodies from `seed`.
    pub fn generate(n: usize, seed: u64) -> Vec<Vec<u8>> {
        let mut rng = Rng(seed);
        (0..n).map(|_| request(&mut rng).into_bytes()).collect()
    }

    fn request(r: &mut Rng) -> String {
        let mut s = String::with_capacity(3072);
        let _ = write!(s, r#"{{"id":"{}-{}","imp":["#, r.hex(8), r.hex(12));
        let imps = 1 + r.below(3);
        for i in 0..imps {
            if i > 0 {
                s.push(',');
            }
            imp(r, &mut s, i + 1);
        }
        s.push(']');
        if r.chance(70) {
            site(r, &mut s);
        } else {
            app(r, &mut s);
        }
        device(r, &mut s);
        user(r, &mut s);
        let _ = write!(
            s,
            r#","at":{},"tmax":{}"#,
            1 + r.below(2),
            if r.chance(20) {
                r#""120""#.to_string()
            } else {
                (80 + r.below(5) * 10).to_string()
            }
        );
        s.push_str(r#","cur":["USD"]"#);
        let _ = write!(
            s,
            r#","bcat":["{}","{}","{}"],"badv":["{}","competitor.example"]"#,
            r.pick(&CATS),
            r.pick(&CATS),
            r.pick(&CATS),
            r.pick(&DOMAINS)
        );
        let _ = write!(
            s,
            r#","source":{{"fd":1,"tid":"{}","ext":{{"schain":{{"ver":"1.0","complete":1,"nodes":[{{"asi":"exchange.example","sid":"{}","hp":1}}]}}}}}}"#,
            r.hex(32),
            r.hex(6)
        );
        let _ = write!(
            s,
            r#","regs":{{"coppa":0,"ext":{{"gdpr":{},"us_privacy":"1YNN"}}}}"#,
            r.below(2)
        );
        s.push_str(
            r#","ext":{"prebid":{"channel":{"name":"web","version":"7.54"},"debug":false}}}"#,
        );
        s
    }

    fn floor(r: &mut Rng) -> String {
        let cents = 5 + r.below(500);
        let f = format!("{}.{:02}", cents / 100, cents % 100);
        if r.chance(15) {
            format!("\"{f}\"")
        } else {
            f
        }
    }

    fn imp(r: &mut Rng, s: &mut String, n: u64) {
        let _ = write!(
            s,
            r#"{{"id":"{n}","tagid":"slot-{}","bidfloor":{},"bidfloorcur":"USD","secure":1,"#,
            r.hex(6),
            floor(r)
        );
        if r.chance(75) {
            let (w, h) = SIZES[r.below(SIZES.len() as u64) as usize];
            let (w2, h2) = SIZES[r.below(SIZES.len() as u64) as usize];
            let _ = write!(
                s,
                r#""banner":{{"w":{w},"h":{h},"format":[{{"w":{w},"h":{h}}},{{"w":{w2},"h":{h2}}}],"pos":{},"battr":[1,3,8],"api":[3,5],"topframe":1}}"#,
                r.below(4)
            );
        } else {
            let _ = write!(
                s,
                r#""video":{{"mimes":["video/mp4","video/webm","application/javascript"],"minduration":{},"maxduration":{},"protocols":[2,3,5,6],"w":640,"h":480,"startdelay":0,"placement":1,"linearity":1,"skip":1,"playbackmethod":[1,3],"api":[1,2],"battr":[13,14]}}"#,
                5 * r.below(2),
                15 + 15 * r.below(3)
            );
        }
        if r.chance(25) {
            let _ = write!(
                s,
                r#","pmp":{{"private_auction":{},"deals":[{{"id":"deal-{}","bidfloor":{},"bidfloorcur":"USD","at":1,"wseat":["seat-{}"]}}]}}"#,
                r.below(2),
                r.hex(6),
                floor(r),
                r.below(9)
            );
        }
        let _ = write!(
            s,
            r#","ext":{{"gpid":"/1234/{}/slot","data":{{"pbadslot":"slot-{}"}}}}}}"#,
            r.pick(&DOMAINS),
            r.hex(4)
        );
    }

    fn publisher(r: &mut Rng, s: &mut String, domain: &str) {
        let _ = write!(
            s,
            r#","publisher":{{"id":"pub-{}","name":"{domain} media","domain":"{domain}","ext":{{}}}}"#,
            r.hex(5)
        );
    }

    fn site(r: &mut Rng, s: &mut String) {
        let d = r.pick(&DOMAINS);
        let _ = write!(
            s,
            r#","site":{{"id":"site-{}","name":"{d}","domain":"{d}","cat":["{}","{}"],"page":"https:\/\/{d}\/articles\/{}.html","ref":"https://search.example/?q={}","mobile":1,"privacypolicy":1"#,
            r.hex(6),
            r.pick(&CATS),
            r.pick(&CATS),
            r.hex(10),
            r.hex(8)
        );
        publisher(r, s, d);
        let _ = write!(
            s,
            r#","content":{{"language":"en","keywords":"a,b,c","cat":["{}"]}}}}"#,
            r.pick(&CATS)
        );
    }

    fn app(r: &mut Rng, s: &mut String) {
        let d = r.pick(&DOMAINS);
        let _ = write!(
            s,
            r#","app":{{"id":"app-{}","name":"{d} app","bundle":"com.example.{}","domain":"{d}","storeurl":"https:\/\/play.example\/store\/apps\/details?id=com.example","cat":["{}"],"ver":"3.2.1","paid":0"#,
            r.hex(6),
            r.hex(6),
            r.pick(&CATS)
        );
        publisher(r, s, d);
        s.push('}');
    }

    fn device(r: &mut Rng, s: &mut String) {
        let (country, region, city) = GEOS[r.below(GEOS.len() as u64) as usize];
        let _ = write!(
            s,
            r#","device":{{"ua":"{}","ip":"{}.{}.{}.0","geo":{{"lat":{}.{},"lon":-{}.{},"country":"{country}","region":"{region}","city":"{city}","zip":"{}","type":2,"utcoffset":-420}},"dnt":0,"lmt":0,"devicetype":{},"make":"Apple","model":"iPhone","os":"{}","osv":"17.2","h":844,"w":390,"language":"en","carrier":"carrier","connectiontype":{},"ifa":"{}-{}-{}","js":1}}"#,
            r.pick(&UAS),
            r.below(223) + 1,
            r.below(256),
            r.below(256),
            r.below(90),
            r.below(10000),
            r.below(180),
            r.below(10000),
            10000 + r.below(89999),
            if r.chance(50) {
                r#""4""#.to_string()
            } else {
                (1 + r.below(7)).to_string()
            },
            r.pick(&["iOS", "Android", "Windows"]),
            r.below(7),
            r.hex(8),
            r.hex(4),
            r.hex(12)
        );
    }

    fn user(r: &mut Rng, s: &mut String) {
        let _ = write!(
            s,
            r#","user":{{"id":"{}","buyeruid":"{}","yob":{},"gender":"F","data":[{{"id":"dp-{}","name":"provider","segment":["#,
            r.hex(24),
            r.hex(20),
            1950 + r.below(55),
            r.below(9)
        );
        let segs = 1 + r.below(6);
        for i in 0..segs {
            if i > 0 {
                s.push(',');
            }
            let _ = write!(s, r#"{{"id":"seg-{}","name":"segment {i}"}}"#, r.below(400));
        }
        let _ = write!(
            s,
            r#"]}}],"ext":{{"consent":"CP{}AAAA.YAAAAAAAAAA","eids":[{{"source":"id.example","uids":[{{"id":"{}","atype":1}}]}}]}}}}"#,
            r.hex(60),
            r.hex(32)
        );
    }
}
