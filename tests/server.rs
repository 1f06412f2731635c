//! End-to-end behaviour of the real server: statuses, bodies, no-bid reasons, metrics.

mod common;
mod targeting_support;

use common::{fixture, Options, Server, TempDir, FIXTURES};
use serde_json::{json, Value};
use targeting_support::merge;

/// A small campaign set whose outcomes the tests below know exactly.
fn test_campaigns() -> Value {
    json!({"campaigns": [
        {
            "id": "open-300x250", "adomain": ["acme.com"], "bid_cpm": "1.25", "max_cpm": "3.00",
            "creatives": [{"id": "cr-open", "kind": "banner", "w": 300, "h": 250,
                           "adm": "<a href=\"https://acme.com\">ad</a>", "cat": ["IAB3"]}]
        },
        {
            "id": "deal-agency1", "seat": "Agency1", "adomain": ["agency.com"], "bid_cpm": "3.00", "max_cpm": "4.00",
            "targeting": {"deals": ["AB-Agency1-0001"]},
            "creatives": [{"id": "cr-deal", "kind": "banner", "w": 300, "h": 250, "adm": "<b>deal</b>", "cat": ["IAB3"]}]
        }
    ]})
}

fn start_with_campaigns(set: &Value) -> (Server, TempDir) {
    let dir = TempDir::new("camp");
    let path = common::write_file(&dir.0, "campaigns.json", &set.to_string());
    let server = Server::start_with(Options {
        campaigns: Some(path),
        ..Options::default()
    });
    (server, dir)
}

fn banner_request(extra: Value) -> Vec<u8> {
    let mut req = json!({
        "id": "req-1",
        "imp": [{"id": "1", "banner": {"w": 300, "h": 250}, "bidfloor": 0.5}],
        "site": {"domain": "news.example.com"},
    });
    merge(&mut req, extra);
    serde_json::to_vec(&req).unwrap()
}

#[test]
fn every_iab_example_gets_a_bid_from_the_sample_campaigns() {
    let server = Server::start();
    let mut conn = server.conn();
    for name in FIXTURES {
        let body = fixture(name);
        let resp = conn.post("/openrtb2/bid", &body);
        // The sample campaigns are written to bid on every IAB example.
        assert_eq!(resp.status, 200, "{name}: {}", resp.text());
        let out = resp.json();
        let req: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(out["id"], req["id"], "{name}");
        let bid = &out["seatbid"][0]["bid"][0];
        let imp = req["imp"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == bid["impid"]);
        let imp = imp.unwrap_or_else(|| panic!("{name}: impid {} not in request", bid["impid"]));
        let floor = imp["bidfloor"].as_f64().unwrap_or(0.0);
        assert!(
            bid["price"].as_f64().unwrap() >= floor,
            "{name}: price under floor"
        );
        assert!(
            bid["crid"].is_string() && bid["adomain"].is_array(),
            "{name}: {out}"
        );
        assert!(
            bid["adm"].is_string() || bid["nurl"].is_string(),
            "{name}: no markup"
        );
    }
}

#[test]
fn bid_response_is_exact() {
    let (server, _dir) = start_with_campaigns(&test_campaigns());
    let resp = server.conn().send(
        "POST",
        "/openrtb2/bid",
        &[
            ("content-type", "application/json"),
            ("x-openrtb-version", "2.6"),
        ],
        &banner_request(json!({})),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(resp.header("x-openrtb-version"), Some("2.6"));
    let out = resp.json();
    assert_eq!(out["id"], "req-1");
    assert_eq!(out["cur"], "USD");
    let seatbid = out["seatbid"].as_array().unwrap();
    assert_eq!(seatbid.len(), 1);
    assert_eq!(seatbid[0]["seat"], "shardbid");
    let bids = seatbid[0]["bid"].as_array().unwrap();
    assert_eq!(bids.len(), 1);
    let bid = &bids[0];
    assert_eq!(bid["impid"], "1");
    assert_eq!(bid["price"].as_f64(), Some(1.25));
    assert_eq!(bid["crid"], "cr-open");
    assert_eq!(bid["cid"], "open-300x250");
    assert_eq!(bid["adomain"], json!(["acme.com"]));
    assert_eq!(bid["cat"], json!(["IAB3"]));
    assert_eq!(bid["adm"], "<a href=\"https://acme.com\">ad</a>");
    assert_eq!(
        (bid["w"].as_u64(), bid["h"].as_u64()),
        (Some(300), Some(250))
    );
    assert!(bid.get("dealid").is_none());
    assert!(bid["id"].as_str().is_some_and(|s| !s.is_empty()));
}

#[test]
fn floor_above_bid_raises_price_up_to_max() {
    let (server, _dir) = start_with_campaigns(&test_campaigns());
    let resp = server.bid(&banner_request(
        json!({"imp": [{"id": "1", "banner": {"w": 300, "h": 250}, "bidfloor": "2.5"}]}),
    ));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.json()["seatbid"][0]["bid"][0]["price"].as_f64(),
        Some(2.5)
    );
}

#[test]
fn deal_bid_carries_dealid_and_seat() {
    let (server, _dir) = start_with_campaigns(&test_campaigns());
    let resp = server.bid(&fixture("pmp-with-direct-deal.json"));
    assert_eq!(resp.status, 200, "{}", resp.text());
    let out = resp.json();
    assert_eq!(out["seatbid"][0]["seat"], "Agency1");
    let bid = &out["seatbid"][0]["bid"][0];
    assert_eq!(bid["dealid"], "AB-Agency1-0001");
    assert!(bid["price"].as_f64().unwrap() >= 2.5);
    assert_eq!(bid["crid"], "cr-deal");
}

#[test]
fn every_no_bid_reason_is_a_204_and_counted() {
    let (server, _dir) = start_with_campaigns(&test_campaigns());
    let cases: [(&str, Value); 5] = [
        (
            "no_match",
            json!({"imp": [{"id": "1", "banner": {"w": 1, "h": 1}}]}),
        ),
        ("blocked", json!({"bcat": ["IAB3"]})),
        (
            "below_floor",
            json!({"imp": [{"id": "1", "banner": {"w": 300, "h": 250}, "bidfloor": 10}]}),
        ),
        ("currency", json!({"cur": ["JPY"]})),
        (
            "deals_only",
            json!({"imp": [{"id": "1", "banner": {"w": 300, "h": 250},
                             "pmp": {"private_auction": 1, "deals": [{"id": "unknown-deal"}]}}]}),
        ),
    ];
    let mut conn = server.conn();
    for (reason, extra) in cases {
        let before = server.metric(&format!("shardbid_nobid_total{{reason=\"{reason}\"}}"));
        let resp = conn.post("/openrtb2/bid", &banner_request(extra));
        assert_eq!(resp.status, 204, "{reason}: {}", resp.text());
        assert!(resp.body.is_empty());
        let after = server.metric(&format!("shardbid_nobid_total{{reason=\"{reason}\"}}"));
        assert_eq!(after, before + 1, "{reason} not counted");
    }

    // test = 1 with only campaigns that refuse test traffic.
    let only_live = json!({"campaigns": [{
        "id": "live-only", "adomain": ["acme.com"], "bid_cpm": "1.00",
        "targeting": {"test_requests": false},
        "creatives": [{"id": "c", "kind": "banner", "w": 300, "h": 250, "adm": "x"}]
    }]});
    assert_eq!(
        server
            .admin()
            .send(
                "PUT",
                "/admin/campaigns",
                &[],
                only_live.to_string().as_bytes()
            )
            .status,
        200
    );
    assert_eq!(
        conn.post("/openrtb2/bid", &banner_request(json!({"test": 1})))
            .status,
        204
    );
    assert_eq!(server.metric("shardbid_nobid_total{reason=\"test\"}"), 1);
    assert_eq!(
        conn.post("/openrtb2/bid", &banner_request(json!({})))
            .status,
        200
    );

    // An empty campaign set (which the admin API takes only when asked to).
    assert_eq!(
        server
            .admin()
            .send(
                "PUT",
                "/admin/campaigns?allow_empty=1",
                &[],
                br#"{"campaigns": []}"#
            )
            .status,
        200
    );
    assert_eq!(
        conn.post("/openrtb2/bid", &banner_request(json!({})))
            .status,
        204
    );
    assert_eq!(
        server.metric("shardbid_nobid_total{reason=\"no_campaigns\"}"),
        1
    );
}

/// A chunked body in several pieces, then bodies with a Content-Length, on one
/// keep-alive connection: each is read whole and answered, and the connection goes on.
/// A chunked body over the limit, which no header announces, is refused as it grows.
#[test]
fn chunked_and_sized_bodies_share_a_keep_alive_connection() {
    use std::io::Write;

    let server = Server::start();
    let body = fixture("simple-banner.json");
    let expected = server.bid(&body);
    assert_eq!(expected.status, 200);

    let chunked = |conn: &mut common::Conn, pieces: &[&[u8]]| {
        let mut req = b"POST /openrtb2/bid HTTP/1.1\r\nhost: test\r\n\
            content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
            .to_vec();
        for piece in pieces {
            req.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            req.extend_from_slice(piece);
            req.extend_from_slice(b"\r\n");
        }
        req.extend_from_slice(b"0\r\n\r\n");
        conn.stream.write_all(&req).expect("write");
        conn.read_response()
    };

    let mut c = server.conn();
    for _ in 0..3 {
        let (a, rest) = body.split_at(100);
        let (b, d) = rest.split_at(250);
        let r = chunked(&mut c, &[a, b, d]).expect("answer to a chunked body");
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["id"], expected.json()["id"]);
        let r = c.post("/openrtb2/bid", &body);
        assert_eq!(r.status, 200, "a sized body after a chunked one");
        // The same bid, but for its id and notice URLs (each bid has its own).
        let same = |v: Value| {
            let mut bid = v["seatbid"][0]["bid"][0].clone();
            for k in ["id", "nurl", "burl", "lurl"] {
                bid.as_object_mut().unwrap().remove(k);
            }
            bid
        };
        assert_eq!(same(r.json()), same(expected.json()));
    }

    let piece = vec![b' '; 64 * 1024];
    let pieces: Vec<&[u8]> = (0..5).map(|_| &piece[..]).collect();
    let r = chunked(&mut server.conn(), &pieces);
    assert_eq!(r.map(|r| r.status), Some(413));
    assert_eq!(server.conn().get("/healthz").status, 200);
}

#[test]
fn error_statuses() {
    let server = Server::start();
    let mut c = server.conn();
    let bad = c.post("/openrtb2/bid", b"{not json");
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("malformed"), "{}", bad.text());
    let invalid = c.post("/openrtb2/bid", br#"{"id":"x","imp":[]}"#);
    assert_eq!(invalid.status, 400);
    assert!(invalid.text().contains("imp"), "{}", invalid.text());
    assert_eq!(
        c.post("/openrtb2/bid", br#"{"imp":[{"id":"1"}]}"#).status,
        400
    );
    assert_eq!(c.post("/openrtb2/bid", br#"[1,2,3]"#).status, 400);
    assert_eq!(
        c.post(
            "/openrtb2/bid",
            br#"{"id":"x","imp":[{"id":"1","banner":{"w":"wide"}}]}"#
        )
        .status,
        400
    );
    // The connection survives bad input.
    assert_eq!(c.get("/healthz").status, 200);

    let big = vec![b' '; 256 * 1024 + 1];
    assert_eq!(server.conn().post("/openrtb2/bid", &big).status, 413);
    let ct = server.conn().send(
        "POST",
        "/openrtb2/bid",
        &[("content-type", "text/html")],
        b"{}",
    );
    assert_eq!(ct.status, 415);
    // A missing content type means JSON.
    let none = server
        .conn()
        .send("POST", "/openrtb2/bid", &[], &fixture("simple-banner.json"));
    assert_eq!(none.status, 200, "{}", none.text());

    assert_eq!(
        server
            .conn()
            .post("/openrtb2/bid/no-such-exchange", b"{}")
            .status,
        404
    );
    assert_eq!(server.conn().post("/elsewhere", b"{}").status, 404);
    let get = server.conn().get("/openrtb2/bid");
    assert_eq!(get.status, 405);
    assert_eq!(get.header("allow"), Some("POST"));
    assert_eq!(server.conn().post("/healthz", b"").status, 405);

    assert_eq!(
        server.metric("shardbid_bid_requests_total{outcome=\"bad_request\"}"),
        5
    );
    assert_eq!(
        server.metric("shardbid_bid_requests_total{outcome=\"too_large\"}"),
        1
    );
    assert_eq!(
        server.metric("shardbid_bid_requests_total{outcome=\"unsupported_media\"}"),
        1
    );
}

#[test]
fn exchange_paths_are_counted_per_exchange() {
    let server = Server::start();
    let body = fixture("simple-banner.json");
    let mut c = server.conn();
    for _ in 0..3 {
        let r = c.post("/openrtb2/bid/adx", &body);
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(c.post("/openrtb2/bid", &body).status, 200);
    assert_eq!(
        server.metric("shardbid_exchange_requests_total{exchange=\"adx\"}"),
        3
    );
    assert_eq!(
        server.metric("shardbid_exchange_requests_total{exchange=\"\"}"),
        1
    );
}

#[test]
fn probes_and_metrics() {
    let server = Server::start();
    assert_eq!(server.conn().get("/healthz").status, 200);
    assert_eq!(server.conn().get("/readyz").status, 200);
    let mut c = server.conn();
    for _ in 0..10 {
        assert_eq!(
            c.post("/openrtb2/bid", &fixture("simple-banner.json"))
                .status,
            200
        );
    }
    let page = server.admin().get("/metrics");
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/plain"));
    let text = page.text();
    for series in [
        "shardbid_shard_http_requests_total{shard=\"0\"}",
        "shardbid_shard_http_requests_total{shard=\"1\"}",
        "shardbid_bid_duration_seconds_bucket{le=\"+Inf\"}",
        "shardbid_campaigns ",
        "shardbid_table_version 1",
    ] {
        assert!(text.contains(series), "missing {series}\n{text}");
    }
    let total: u64 = server
        .per_shard("shardbid_shard_http_requests_total")
        .iter()
        .sum();
    assert_eq!(total, 12);
    assert_eq!(server.metric("shardbid_bid_duration_seconds_count"), 10);
}

#[test]
fn bad_config_fails_before_binding() {
    let dir = TempDir::new("badcfg");
    let cfg = common::write_file(&dir.0, "bad.toml", "[bidding]\nnetwork_margin_ms = 500\n");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shardbid"))
        .arg("--config")
        .arg(&cfg)
        .arg("--check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bidding.network_margin_ms"), "{err}");

    let unknown = common::write_file(
        &dir.0,
        "unknown.toml",
        "[server]\nlisten_adress = \"127.0.0.1:1\"\n",
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shardbid"))
        .arg("--config")
        .arg(&unknown)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen_adress"));

    let ok = std::process::Command::new(env!("CARGO_BIN_EXE_shardbid"))
        .arg("--config")
        .arg(common::root().join("config/shardbid.toml"))
        .arg("--check-config")
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

/// SO_REUSEPORT places connections by a hash, so 256 connections over 2 shards land
/// more than two apart about 85% of the time (the kernel alone passes this test about
/// one run in seven); the balancer hands new connections over until no shard serves
/// more than two above the other. Every handed-over connection is served.
#[test]
fn connections_are_spread_evenly_over_shards() {
    let server = Server::start();
    let body = fixture("simple-banner.json");
    let mut conns: Vec<_> = (0..256).map(|_| server.conn()).collect();
    for c in &mut conns {
        assert_eq!(c.post("/openrtb2/bid", &body).status, 200);
    }
    let open = server.per_shard("shardbid_shard_connections_open");
    assert_eq!(open.iter().sum::<u64>(), 256, "{open:?}");
    assert!(open[0].abs_diff(open[1]) <= 2, "uneven: {open:?}");
    // Each connection, handed over or not, keeps working on its shard.
    for c in &mut conns {
        assert_eq!(c.post("/openrtb2/bid", &body).status, 200);
    }
    let served: u64 = server
        .per_shard("shardbid_shard_http_requests_total")
        .iter()
        .sum();
    assert_eq!(served, 512);
}

/// A client that sends many requests before reading any answer fills its socket: the
/// server keeps the rest of its responses back, reads no further requests meanwhile,
/// and once the client reads, every response arrives whole and in order. The stall is
/// counted.
#[test]
fn a_slow_reader_gets_every_pipelined_response_whole_and_in_order() {
    use std::io::Write;

    let (server, _dir) = start_with_campaigns(&test_campaigns());
    let mut conn = server.conn();
    // More response bytes than the two sockets' buffers hold (up to 4 MiB and 6 MiB
    // with Linux's default autotuning limits).
    const N: usize = 20_000;
    let mut writer = conn.stream.try_clone().unwrap();
    let sent = std::thread::spawn(move || {
        for i in 0..N {
            // A request read while the one before it waits for the client would time
            // out at the usual tmax.
            let body = banner_request(json!({"id": format!("req-{i}"), "tmax": 10_000}));
            let head = format!(
                "POST /openrtb2/bid HTTP/1.1\r\nhost: t\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
            writer.write_all(head.as_bytes()).unwrap();
            writer.write_all(&body).unwrap();
        }
    });
    // Read nothing until the server stops taking requests: its sends have stalled.
    let served = || -> u64 {
        server
            .per_shard("shardbid_shard_http_requests_total")
            .iter()
            .sum()
    };
    let (mut last, mut still) = (0, 0);
    while still < 5 {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let now = served();
        still = if now == last { still + 1 } else { 0 };
        last = now;
    }
    assert!(
        last < N as u64,
        "the server stopped reading: {last} of {N} served"
    );
    for i in 0..N {
        let resp = conn.read_response().expect("a response for every request");
        assert_eq!(resp.status, 200, "request {i}");
        assert_eq!(resp.json()["id"], format!("req-{i}"), "in order");
    }
    sent.join().unwrap();
    // The shard publishes its count on its housekeeping tick.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let stalls = loop {
        let stalls: u64 = server
            .per_shard("shardbid_shard_sends_stalled_total")
            .iter()
            .sum();
        if stalls > 0 || std::time::Instant::now() > deadline {
            break stalls;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(stalls > 0, "the client's small buffer stalled sends");
    // The connection still serves.
    assert_eq!(
        conn.post("/openrtb2/bid", &banner_request(json!({})))
            .status,
        200
    );
}
