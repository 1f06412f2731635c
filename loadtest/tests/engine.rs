//! End to end: the load engine against tiny in-test HTTP servers on 127.0.0.1.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use shardbid_load::control::backoff::Backoff;
use shardbid_load::engine::{self, RunResult, RunSpec};
use shardbid_load::http::target;
use shardbid_testkit::traffic::corpus;
use shardbid_testkit::traffic::request::Mix;

/// What the test server received.
struct Request {
    headers: String,
    body: Vec<u8>,
}

/// The answer to one request: bytes to write (None: never answer) and whether to close.
type Handler = dyn Fn(u64, &Request) -> (Option<Vec<u8>>, bool) + Send + Sync;

struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn read_request(r: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut headers = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        headers.push_str(&line);
    }
    let len = headers
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
        })
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Request { headers, body })
}

fn serve(handler: Arc<Handler>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicU64::new(0));
    let (stop2, requests2) = (Arc::clone(&stop), Arc::clone(&requests));
    thread::spawn(move || {
        while !stop2.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    let (handler, requests, stop) = (
                        Arc::clone(&handler),
                        Arc::clone(&requests2),
                        Arc::clone(&stop2),
                    );
                    thread::spawn(move || {
                        let mut w = s.try_clone().unwrap();
                        let mut r = BufReader::new(s);
                        while let Some(req) = read_request(&mut r) {
                            let n = requests.fetch_add(1, Ordering::SeqCst);
                            let (resp, close) = handler(n, &req);
                            match resp {
                                Some(bytes) => {
                                    if w.write_all(&bytes).is_err() {
                                        return;
                                    }
                                }
                                None => {
                                    while !stop.load(Ordering::SeqCst) {
                                        thread::sleep(Duration::from_millis(20));
                                    }
                                    return;
                                }
                            }
                            if close {
                                return;
                            }
                        }
                    });
                }
                Err(_) => thread::sleep(Duration::from_millis(2)),
            }
        }
    });
    Server {
        addr,
        stop,
        requests,
    }
}

const BID: &str = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 68\r\n\r\n{\"id\":\"x\",\"seatbid\":[{\"bid\":[{\"id\":\"1\",\"impid\":\"1\",\"price\":1.25}]}]}";
const NO_BID: &str = "HTTP/1.1 204 No Content\r\n\r\n";

fn spec(addr: SocketAddr, rate: Option<f64>, connections: usize, ms: u64) -> RunSpec {
    let url = format!("http://{addr}/openrtb2/bid/example");
    RunSpec {
        targets: vec![target::parse(&url, false).unwrap()],
        bodies: corpus::generate(50, 3, &Mix::default()).0,
        gzip: false,
        rate,
        connections,
        threads: 1,
        duration: Duration::from_millis(ms),
        warmup: Duration::ZERO,
        timeout: Duration::from_millis(500),
        deadline: None,
        limit: None,
        latency_target: None,
        queue: 10_000,
        notices: None,
        backoff: Backoff {
            retries: 0,
            base: 1_000_000,
            max: 10_000_000,
        },
    }
}

fn run(s: RunSpec) -> RunResult {
    engine::run(s, &mut |_| {}).unwrap()
}

fn alternating() -> Arc<Handler> {
    Arc::new(|n, req: &Request| {
        assert!(req.headers.contains("x-openrtb-version: 2.6"));
        assert!(serde_json::from_slice::<serde_json::Value>(&req.body).is_ok());
        (
            Some(if n % 2 == 0 { BID } else { NO_BID }.as_bytes().to_vec()),
            false,
        )
    })
}

#[test]
fn closed_loop_counts_every_response_and_bid() {
    let server = serve(alternating());
    let r = run(spec(server.addr, None, 4, 1000));
    let c = &r.stats.counters;
    assert!(c.responses > 200, "only {} responses", c.responses);
    assert_eq!(c.bid_responses() + c.no_bid_responses(), c.responses);
    assert!(c.bid_responses().abs_diff(c.no_bid_responses()) <= 4);
    assert_eq!(c.errors(), 0);
    assert_eq!(c.bids, c.bid_responses());
    assert_eq!(c.price_micros, 1_250_000 * c.bids as i64);
    assert_eq!((c.offered, c.sent), (c.responses, c.responses));
    assert_eq!(c.unfinished, 0);
    assert_eq!(r.stats.latency.len(), c.responses);
    assert!(server.requests.load(Ordering::SeqCst) >= c.responses);
    assert!(!r.seconds.is_empty());
}

#[test]
fn open_loop_sends_at_the_offered_rate() {
    let server = serve(alternating());
    let mut s = spec(server.addr, Some(400.0), 8, 1000);
    s.warmup = Duration::from_millis(300);
    let r = run(s);
    let c = &r.stats.counters;
    assert!((395..=405).contains(&c.offered), "offered {}", c.offered);
    assert_eq!(c.responses, c.offered, "every arrival answered");
    assert_eq!(c.errors() + c.unsent + c.unfinished + c.dead_letter, 0);
    let p99 = r.stats.latency.value_at_quantile(0.99);
    assert!(p99 < 100_000, "p99 {p99} us");
    let total: u64 = r.seconds.iter().map(|p| p.responses).sum();
    assert!(
        total >= c.responses + 100,
        "warm-up responses appear in the time series only"
    );
    assert!(r.seconds.iter().any(|p| p.warmup));
}

#[test]
fn open_loop_latency_counts_from_the_intended_time() {
    // One connection, a server that takes ~20 ms, arrivals every 10 ms: requests queue
    // behind the busy connection and their latency must include the wait.
    let slow: Arc<Handler> = Arc::new(|_, _: &Request| {
        thread::sleep(Duration::from_millis(20));
        (Some(NO_BID.as_bytes().to_vec()), false)
    });
    let server = serve(slow);
    let r = run(spec(server.addr, Some(100.0), 1, 1000));
    let c = &r.stats.counters;
    assert!(
        c.waited_for_connection > 30,
        "waited {}",
        c.waited_for_connection
    );
    let service_p50 = r.stats.service.value_at_quantile(0.5);
    let latency_p99 = r.stats.latency.value_at_quantile(0.99);
    assert!(
        (19_000..60_000).contains(&service_p50),
        "service {service_p50}"
    );
    assert!(
        latency_p99 > 200_000,
        "queueing delay must show: p99 {latency_p99} us"
    );
}

#[test]
fn timeouts_and_refused_connections_are_counted_and_runs_end() {
    let silent: Arc<Handler> = Arc::new(|_, _: &Request| (None, false));
    let server = serve(silent);
    let mut s = spec(server.addr, None, 2, 500);
    s.timeout = Duration::from_millis(100);
    let r = run(s);
    let c = &r.stats.counters;
    assert!(c.timeout >= 4, "timeouts {}", c.timeout);
    assert_eq!(c.responses, 0);
    assert!(r.elapsed < Duration::from_secs(3));

    // Nothing listens on port 1 (outside the ephemeral range, so no self-connect).
    let r = run(spec("127.0.0.1:1".parse().unwrap(), Some(100.0), 2, 500));
    let c = &r.stats.counters;
    assert!(c.connect_errors > 0);
    assert_eq!(c.responses, 0);
    assert_eq!(c.offered, 50);
    assert_eq!(c.unsent, 50, "never sent, reported at the end");
}

#[test]
fn throttled_answers_are_retried_with_backoff() {
    // The run cycles through 50 bodies. The first time the server sees a body it
    // answers 429; a retry (the same body) and every later request bid. So exactly the
    // first 50 requests are throttled once each, however the retries interleave.
    let seen = std::sync::Mutex::new(std::collections::HashSet::new());
    let throttled: Arc<Handler> = Arc::new(move |_, req: &Request| {
        let r = if seen.lock().unwrap().insert(req.body.clone()) {
            "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n\r\n"
        } else {
            BID
        };
        (Some(r.as_bytes().to_vec()), false)
    });
    let server = serve(throttled);
    let mut s = spec(server.addr, Some(200.0), 4, 1000);
    s.backoff = Backoff {
        retries: 5,
        base: 2_000_000,
        max: 20_000_000,
    };
    let r = run(s);
    let c = &r.stats.counters;
    assert_eq!(c.retries, 50, "{c:?}");
    assert_eq!(
        c.status(429),
        0,
        "every throttled request succeeded on a retry"
    );
    assert_eq!(c.bid_responses(), c.offered);
    assert_eq!(c.sent, c.offered + c.retries);
    accounted(c);

    // Without retries the 429s are final outcomes.
    let throttled: Arc<Handler> = Arc::new(|_, _: &Request| {
        (
            Some(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n".to_vec()),
            false,
        )
    });
    let server = serve(throttled);
    let r = run(spec(server.addr, Some(100.0), 2, 500));
    assert_eq!(r.stats.counters.status(503), 50);
    assert_eq!(r.stats.counters.retries, 0);
}

/// Every offered request ends somewhere.
fn accounted(c: &shardbid_load::report::stats::Counters) {
    assert_eq!(
        c.offered,
        c.responses + c.errors() + c.expired + c.unsent + c.dead_letter + c.unfinished,
        "{c:?}"
    );
}

#[test]
fn limiter_queue_and_deadline() {
    let times = Arc::new(std::sync::Mutex::new(Vec::new()));
    let times2 = Arc::clone(&times);
    let server = serve(Arc::new(move |_, _: &Request| {
        times2.lock().unwrap().push(std::time::Instant::now());
        (Some(NO_BID.as_bytes().to_vec()), false)
    }));
    let mut s = spec(server.addr, Some(400.0), 4, 2500);
    s.limit = Some(100);
    s.deadline = Some(Duration::from_millis(200));
    let r = run(s);
    let c = &r.stats.counters;
    let mut t = times.lock().unwrap().clone();
    t.sort();
    // At most 100 in any sliding second (a little slack for scheduling jitter between
    // the client's send and the server's clock).
    for (i, &start) in t.iter().enumerate() {
        let n = t[i..]
            .iter()
            .take_while(|&&x| x < start + Duration::from_millis(990))
            .count();
        assert!(n <= 100, "{n} requests within a second");
    }
    assert!(
        (240..=300).contains(&c.sent),
        "sent {} in 2.5 s at 100/s",
        c.sent
    );
    assert!(c.waited_for_limiter > 100);
    assert!(c.expired > 500, "expired {}", c.expired);
    accounted(c);

    // A small queue overflows: dead letters.
    let mut s = spec(server.addr, Some(400.0), 4, 500);
    s.limit = Some(20);
    s.queue = 5;
    let r = run(s);
    let c = &r.stats.counters;
    assert!(c.dead_letter > 100, "dead letters {}", c.dead_letter);
    assert!(c.sent <= 20);
    accounted(c);
}

#[test]
fn gzip_bodies_chunked_responses_and_closing_servers() {
    let handler: Arc<Handler> = Arc::new(|n, req: &Request| {
        assert!(req.headers.contains("Content-Encoding: gzip"));
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(&req.body[..])
            .read_to_end(&mut json)
            .unwrap();
        assert!(serde_json::from_slice::<serde_json::Value>(&json).is_ok());
        let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nf\r\n{\"seatbid\":[{\"b\r\n18\r\nid\":[{\"price\":\"0.5\"}]}]}\r\n0\r\n\r\n";
        let close = n % 5 == 4;
        let resp = if close {
            "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
        } else {
            chunked
        };
        (Some(resp.as_bytes().to_vec()), close)
    });
    let server = serve(handler);
    let mut s = spec(server.addr, None, 2, 700);
    s.gzip = true;
    let r = run(s);
    let c = &r.stats.counters;
    assert!(c.responses > 50);
    assert_eq!(c.errors(), 0);
    assert_eq!(c.bids, c.bid_responses());
    assert_eq!(c.price_micros, 500_000 * c.bids as i64);
    assert!(
        c.connects > 10,
        "reconnected after Connection: close ({} connects)",
        c.connects
    );
}

#[test]
fn several_targets_and_threads_share_the_load() {
    let a = serve(alternating());
    let b = serve(alternating());
    let mut s = spec(a.addr, Some(300.0), 4, 1000);
    s.targets
        .push(target::parse(&format!("http://{}/openrtb2/bid/adx", b.addr), false).unwrap());
    s.threads = 2;
    let r = run(s);
    let c = &r.stats.counters;
    assert!((295..=305).contains(&c.offered), "offered {}", c.offered);
    assert_eq!(c.responses, c.offered);
    let (na, nb) = (
        a.requests.load(Ordering::SeqCst),
        b.requests.load(Ordering::SeqCst),
    );
    assert!(na.abs_diff(nb) <= 4, "{na} vs {nb}");
}

#[test]
fn adaptive_headroom_lowers_the_limit_while_p99_is_above_target() {
    let slow: Arc<Handler> = Arc::new(|_, _: &Request| {
        thread::sleep(Duration::from_millis(15));
        (Some(NO_BID.as_bytes().to_vec()), false)
    });
    let server = serve(slow);
    let mut s = spec(server.addr, Some(150.0), 8, 3000);
    s.limit = Some(200);
    s.latency_target = Some(Duration::from_millis(5));
    let r = run(s);
    let limits: Vec<u64> = r.seconds.iter().filter_map(|p| p.limit).collect();
    assert!(limits.len() >= 3, "{limits:?}");
    assert_eq!(limits[0], 200, "no decision before a full second");
    assert!(
        limits.windows(2).all(|w| w[1] <= w[0]),
        "only decreases while slow: {limits:?}"
    );
    assert!(*limits.last().unwrap() <= 140, "{limits:?}");
    assert!(r.stats.counters.waited_for_limiter > 0);
}
