//! The limits that keep cheap attacks cheap, on the real server: the request timeout
//! from the accept (a silent connection closed, a started request answered 408), idle
//! keep-alive, connections per shard, head size and header
//! count (431), imps per request. Each is counted where an operator looks.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{fixture, Conn, Options, Server};
use serde_json::{json, Value};

/// Waits until `series` reads `want` (counts are published on each shard's 10 ms tick).
fn metric_becomes(server: &Server, series: &str, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let got = server.metric(series);
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{series} is {got}, not {want}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Everything the server sends until it closes the connection (or `timeout` passes).
fn read_until_closed(conn: &mut Conn, timeout: Duration) -> (Vec<u8>, bool) {
    conn.stream.set_read_timeout(Some(timeout)).unwrap();
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match conn.stream.read(&mut buf) {
            Ok(0) => return (all, true),
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (all, true),
            Err(_) => return (all, false),
        }
    }
}

#[test]
fn a_connection_that_sends_nothing_is_closed_after_the_request_timeout() {
    let server = Server::start_with(Options {
        config: Some(
            "[http]\nheader_read_timeout_ms = 300\nkeep_alive_timeout_ms = 60000\n".into(),
        ),
        ..Options::default()
    });
    let mut silent = server.conn();
    let started = Instant::now();
    let (answer, closed) = read_until_closed(&mut silent, Duration::from_secs(5));
    let took = started.elapsed();
    assert!(closed, "a silent connection is held past 5 s");
    assert!(
        took >= Duration::from_millis(250),
        "closed too early: {took:?}"
    );
    // Closed without an answer: an unasked 408 would race a client's first request
    // on the connection and be taken for its answer.
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));

    // A partial head: a request has begun, and gets the 408.
    let mut partial = server.conn();
    partial
        .stream
        .write_all(b"POST /openrtb2/bid HTTP/1.1\r\nhost: x\r\n")
        .unwrap();
    let (answer, closed) = read_until_closed(&mut partial, Duration::from_secs(5));
    let text = String::from_utf8_lossy(&answer);
    assert!(
        closed && text.starts_with("HTTP/1.1 408 "),
        "{closed} {text}"
    );
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    metric_becomes(
        &server,
        "shardbid_connections_timed_out_total{timeout=\"request\"}",
        2,
    );
}

#[test]
fn an_idle_keep_alive_connection_closes_without_an_answer_after_its_timeout() {
    let server = Server::start_with(Options {
        config: Some("[http]\nheader_read_timeout_ms = 5000\nkeep_alive_timeout_ms = 400\n".into()),
        ..Options::default()
    });
    let mut idle = server.conn();
    assert_eq!(idle.get("/healthz").status, 200);
    let started = Instant::now();
    let (answer, closed) = read_until_closed(&mut idle, Duration::from_secs(5));
    assert!(closed, "not closed");
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    assert!(started.elapsed() >= Duration::from_millis(350));
    // The keep-alive time runs from the response: the first request had the request
    // timeout (5 s), which did not fire.
    metric_becomes(
        &server,
        "shardbid_connections_timed_out_total{timeout=\"idle\"}",
        1,
    );
    assert_eq!(
        server.metric("shardbid_connections_timed_out_total{timeout=\"request\"}"),
        0
    );
}

#[test]
fn over_max_connections_new_ones_are_closed_unread_and_open_ones_served() {
    let server = Server::start_with(Options {
        config: Some("[server]\nmax_connections = 3\n".into()),
        shards: 1,
        ..Options::default()
    });
    let mut open: Vec<Conn> = (0..3).map(|_| server.conn()).collect();
    for c in &mut open {
        assert_eq!(c.get("/healthz").status, 200);
    }
    let mut over = server.conn();
    let _ = over
        .stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n");
    let (answer, closed) = read_until_closed(&mut over, Duration::from_secs(3));
    assert!(
        closed && answer.is_empty(),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    for c in &mut open {
        assert_eq!(
            c.get("/healthz").status,
            200,
            "open connections are still served"
        );
    }
    metric_becomes(&server, "shardbid_connections_refused_total", 1);
    // One closes: a new one is taken again.
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let mut again = server.conn();
        if again
            .stream
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .is_ok()
        {
            if let Some(r) = again.read_response() {
                assert_eq!(r.status, 200);
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "a freed place is not taken again"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(server.log.lock().unwrap().contains("max_connections=3"));
}

#[test]
fn heads_over_the_size_or_header_count_limit_get_431() {
    let server = Server::start();
    let body = fixture("simple-banner.json");
    // Just under 16 KiB of head: served.
    let mut ok = server.conn();
    let filler = "a".repeat(15 * 1024);
    let r = ok.send(
        "POST",
        "/openrtb2/bid",
        &[("content-type", "application/json"), ("x-filler", &filler)],
        &body,
    );
    assert_eq!(r.status, 200);
    // Over it: 431, then the connection closes.
    let mut big = server.conn();
    let filler = "a".repeat(17 * 1024);
    big.write_request("POST", "/openrtb2/bid", &[("x-filler", &filler)], &body);
    let r = big.read_response().expect("an answer");
    assert_eq!(r.status, 431);
    assert!(big.closed_within(Duration::from_secs(2)));
    // 100 headers pass, 101 do not (the test client adds host and content-length).
    let names: Vec<String> = (0..101).map(|i| format!("x-h{i}")).collect();
    let headers =
        |n: usize| -> Vec<(&str, &str)> { names[..n].iter().map(|k| (k.as_str(), "1")).collect() };
    let mut many = server.conn();
    assert_eq!(many.send("GET", "/healthz", &headers(98), b"").status, 200);
    let mut too_many = server.conn();
    too_many.write_request("GET", "/healthz", &headers(99), b"");
    assert_eq!(too_many.read_response().expect("an answer").status, 431);
}

#[test]
fn imps_over_the_limit_and_duplicate_imp_ids_are_bad_requests() {
    let server = Server::start_with(Options {
        config: Some("[http]\nmax_imps = 3\n".into()),
        ..Options::default()
    });
    let req: Value = serde_json::from_slice(&fixture("simple-banner.json")).unwrap();
    let imp = req["imp"][0].clone();
    let with_imps = |ids: &[&str]| -> Vec<u8> {
        let mut r = req.clone();
        r["imp"] = Value::Array(
            ids.iter()
                .map(|id| {
                    let mut i = imp.clone();
                    i["id"] = json!(id);
                    i
                })
                .collect(),
        );
        serde_json::to_vec(&r).unwrap()
    };
    let three = server.bid(&with_imps(&["1", "2", "3"]));
    assert_eq!(three.status, 200);
    let bids = three.json()["seatbid"][0]["bid"].as_array().unwrap().len();
    assert!(bids <= 3);
    let four = server.bid(&with_imps(&["1", "2", "3", "4"]));
    assert_eq!(four.status, 400);
    assert!(four.text().contains("imp"), "{}", four.text());
    let twice = server.bid(&with_imps(&["1", "2", "1"]));
    assert_eq!(twice.status, 400);
    assert!(twice.text().contains("duplicate"), "{}", twice.text());
}
