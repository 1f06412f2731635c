//! Overload on the real server: an exchange over its `max_qps` is limited (429 with the
//! rate-limit headers, or a no-bid) while another exchange on the same server sees no
//! change; a shard whose requests wait too long sheds them with a fast no-bid and keeps
//! every connection open.

mod common;

use std::time::{Duration, Instant};

use common::{fixture, Conn, Options, Server};

/// Sends `body` to `path` at `rate` requests per second for `secs`, over `conns`
/// keep-alive connections in turn; returns every response's status (and the first 429).
fn paced(
    server: &Server,
    path: &str,
    body: &[u8],
    rate: u32,
    secs: u32,
    conns: usize,
) -> (Vec<u16>, Option<common::Response>) {
    let mut pool: Vec<Conn> = (0..conns).map(|_| server.conn()).collect();
    let (mut statuses, mut first_429) = (Vec::new(), None);
    let start = Instant::now();
    let total = rate * secs;
    for i in 0..total {
        let due = start + Duration::from_secs_f64(f64::from(i) / f64::from(rate));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let conn = &mut pool[i as usize % conns];
        conn.write_request("POST", path, &[("content-type", "application/json")], body);
        let resp = conn.read_response().unwrap_or_else(|| {
            panic!(
                "request {i} to {path}: the connection closed\n{}",
                server.log.lock().unwrap()
            )
        });
        if resp.status == 429 && first_429.is_none() {
            first_429 = Some(resp.clone());
        }
        statuses.push(resp.status);
    }
    (statuses, first_429)
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

#[test]
fn an_exchange_over_its_quota_is_limited_and_another_is_not() {
    // 200/s for `example` (100 per shard), answered 429; `adx` unlimited.
    let server = Server::start_with(Options {
        config: Some(
            "[exchanges.example]\nmax_qps = 200\nover_quota = \"429\"\n[exchanges.adx]\n".into(),
        ),
        ..Options::default()
    });
    let body = fixture("simple-banner.json");
    let alone = server.conn().post("/openrtb2/bid/adx", &body).status;

    // Twice the quota for 3 s from `example`, while `adx` sends the same rate.
    let (limited, adx) = std::thread::scope(|s| {
        let a = s.spawn(|| paced(&server, "/openrtb2/bid/example", &body, 400, 3, 4));
        let b = s.spawn(|| paced(&server, "/openrtb2/bid/adx", &body, 400, 3, 4));
        (a.join().unwrap(), b.join().unwrap().0)
    });
    let (statuses, first) = limited;
    let refused = count(&statuses, 429);
    let taken = statuses.len() - refused;
    // A second's worth at once, then 200/s: about 800 of 1,200 taken.
    assert!(
        (500..=950).contains(&taken),
        "{taken} taken of {} ({refused} refused)",
        statuses.len()
    );
    assert!(
        statuses.iter().all(|s| [200, 204, 429].contains(s)),
        "{statuses:?}"
    );
    let first = first.expect("a 429");
    assert_eq!(first.header("x-ratelimit-limit"), Some("200"));
    assert_eq!(first.header("retry-after"), Some("1"));
    assert_eq!(first.header("x-ratelimit-reset"), Some("1"));
    let remaining: u64 = first
        .header("x-ratelimit-remaining")
        .unwrap()
        .parse()
        .unwrap();
    assert!(remaining < 200);
    assert!(first.text().contains("max_qps"), "{}", first.text());

    // The other exchange: every answer as it was alone.
    assert_eq!(count(&adx, alone), adx.len(), "adx answers: {adx:?}");
    assert_eq!(
        server.metric("shardbid_bid_requests_total{outcome=\"rate_limited\"}"),
        refused as u64
    );
}

#[test]
fn over_quota_answers_a_no_bid_by_default() {
    let server = Server::start_with(Options {
        config: Some("[exchanges.example]\nmax_qps = 100\n[exchanges.adx]\n".into()),
        ..Options::default()
    });
    let body = fixture("simple-banner.json");
    let mut conn = server.conn();
    // 300 at once: the two shards' buckets hold 100 at most between them.
    let statuses: Vec<u16> = (0..300)
        .map(|_| conn.post("/openrtb2/bid/example", &body).status)
        .collect();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 204),
        "{statuses:?}"
    );
    let quota = server.metric("shardbid_nobid_total{reason=\"quota\"}");
    // One connection lands on one shard: its share (50) is taken, the rest refused.
    assert!((240..=260).contains(&quota), "{quota} no-bids for quota");
    assert_eq!(
        server.metric("shardbid_bid_requests_total{outcome=\"rate_limited\"}"),
        0
    );
}

#[test]
fn a_flooded_shard_sheds_with_no_bids_and_keeps_its_connections() {
    // A 1 ms target: 256 requests in flight at once make loops longer than that.
    let server = Server::start_with(Options {
        config: Some("[http]\nshed_queue_delay_ms = 1\n".into()),
        ..Options::default()
    });
    let body = fixture("simple-banner.json");
    let deadline = Instant::now() + Duration::from_secs(2);
    let (answered, closed) = std::thread::scope(|s| {
        let workers: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    let mut conns: Vec<Conn> = (0..32).map(|_| server.conn()).collect();
                    let (mut answered, mut closed) = (Vec::new(), 0);
                    while Instant::now() < deadline {
                        for c in conns.iter_mut() {
                            c.write_request(
                                "POST",
                                "/openrtb2/bid",
                                &[("content-type", "application/json")],
                                &body,
                            );
                        }
                        for c in conns.iter_mut() {
                            match c.read_response() {
                                Some(r) => {
                                    if r.header("connection") == Some("close") {
                                        closed += 1;
                                    }
                                    answered.push(r.status);
                                }
                                None => closed += 1,
                            }
                        }
                    }
                    (answered, closed)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).fold(
            (Vec::new(), 0),
            |(mut all, closed), (a, c)| {
                all.extend(a);
                (all, closed + c)
            },
        )
    });
    assert_eq!(closed, 0, "no connection is closed because of load");
    assert!(
        answered.iter().all(|s| *s == 200 || *s == 204),
        "only bids and no-bids"
    );
    let shed = server.metric("shardbid_nobid_total{reason=\"overload\"}");
    assert!(shed > 0, "{shed} shed of {}", answered.len());
    assert!(
        (shed as usize) < answered.len(),
        "{shed} shed of {}: some are served",
        answered.len()
    );
    let limits = server.per_shard("shardbid_shard_admission_limit");
    assert!(
        limits.iter().any(|l| *l < 1 << 20),
        "a measured limit: {limits:?}"
    );
}
