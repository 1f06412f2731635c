//! Compressed bodies on the real server: gzip and deflate requests are answered as
//! their plain bodies are; a bomb gets 413 quickly and costs the server nothing it
//! keeps; a body that does not inflate gets 400 and an unknown coding 415, on a
//! connection that stays open; bid responses are gzipped only when the exchange's
//! config and the request both allow it.

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::{fixture, gzip, raw_deflate, zlib, Options, Response, Server, FIXTURES};

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn post(
    conn: &mut common::Conn,
    path: &str,
    body: &[u8],
    encoding: Option<&str>,
    accept: Option<&str>,
) -> Response {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(e) = encoding {
        headers.push(("content-encoding", e));
    }
    if let Some(a) = accept {
        headers.push(("accept-encoding", a));
    }
    conn.send("POST", path, &headers, body)
}

/// What a bid answer says, without the parts that differ per request (ids, signed URLs).
fn gist(resp: &Response) -> (u16, Vec<(String, String)>) {
    if resp.status != 200 {
        return (resp.status, Vec::new());
    }
    let body = if resp.header("content-encoding") == Some("gzip") {
        gunzip(&resp.body)
    } else {
        resp.body.clone()
    };
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let bids = v["seatbid"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["bid"].as_array().unwrap().clone())
        .map(|b| (b["impid"].to_string(), b["price"].to_string()))
        .collect();
    (200, bids)
}

#[test]
fn gzip_and_deflate_bodies_are_answered_as_plain_ones() {
    let server = Server::start();
    let mut conn = server.conn();
    for name in FIXTURES {
        let body = fixture(name);
        let plain = gist(&post(&mut conn, "/openrtb2/bid", &body, None, None));
        for (coding, sent) in [
            ("gzip", gzip(&body)),
            ("x-gzip", gzip(&body)),
            ("deflate", zlib(&body)),
            ("deflate", raw_deflate(&body)),
            ("identity", body.clone()),
        ] {
            let resp = post(&mut conn, "/openrtb2/bid", &sent, Some(coding), None);
            assert_eq!(gist(&resp), plain, "{name} sent {coding}: {}", resp.text());
        }
    }
    assert_eq!(
        server.metric("shardbid_compressed_requests_total{encoding=\"gzip\"}"),
        12
    );
    assert_eq!(
        server.metric("shardbid_compressed_requests_total{encoding=\"deflate\"}"),
        12
    );
}

#[test]
fn a_bomb_is_refused_quickly_and_the_connection_goes_on() {
    // 32 MiB of zeros, about 32 KiB compressed: under the 256 KiB body cap as sent,
    // far over it inflated. Made before connecting: a connection that sends nothing
    // for `header_read_timeout_ms` is answered 408.
    let zeros = vec![0u8; 32 << 20];
    let bomb = gzip(&zeros);
    assert!(bomb.len() < 256 << 10, "{}", bomb.len());
    let mut liar = bomb.clone();
    let n = liar.len();
    liar[n - 4..].copy_from_slice(&1000u32.to_le_bytes()); // claims 1,000 bytes
    let deflate_bomb = raw_deflate(&zeros);

    let server = Server::start();
    let mut conn = server.conn();
    let body = fixture("simple-banner.json");
    let before = server.metric("shardbid_bid_requests_total{outcome=\"too_large\"}");
    for (coding, sent) in [("gzip", &bomb), ("gzip", &liar), ("deflate", &deflate_bomb)] {
        let t = Instant::now();
        let resp = post(&mut conn, "/openrtb2/bid", sent, Some(coding), None);
        let took = t.elapsed();
        assert_eq!(resp.status, 413, "{coding}: {}", resp.text());
        // Inflating stops at the cap: a few hundred KiB of work, not 32 MiB.
        assert!(took < Duration::from_secs(1), "{coding}: {took:?}");
        // Same connection, next request: served.
        let ok = post(&mut conn, "/openrtb2/bid", &body, None, None);
        assert!(ok.status == 200 || ok.status == 204, "{}", ok.status);
    }
    assert_eq!(
        server.metric("shardbid_bid_requests_total{outcome=\"too_large\"}") - before,
        3
    );
}

#[test]
fn bad_and_unknown_encodings_are_refused_with_reasons() {
    let server = Server::start();
    let mut conn = server.conn();
    let body = fixture("simple-banner.json");
    let mut damaged = gzip(&body);
    damaged[30] ^= 0xff;

    let resp = post(&mut conn, "/openrtb2/bid", &damaged, Some("gzip"), None);
    assert_eq!(resp.status, 400);
    assert!(resp.text().contains("does not inflate"), "{}", resp.text());

    // Plain JSON that says it is gzip.
    let resp = post(&mut conn, "/openrtb2/bid", &body, Some("gzip"), None);
    assert_eq!(resp.status, 400, "{}", resp.text());

    for coding in ["br", "zstd", "gzip, gzip", "compress"] {
        let resp = post(&mut conn, "/openrtb2/bid", &gzip(&body), Some(coding), None);
        assert_eq!(resp.status, 415, "{coding}");
        assert_eq!(resp.header("accept-encoding"), Some("gzip, deflate"));
        assert!(resp.text().contains("content-encoding"), "{}", resp.text());
    }
    // The connection survived all of it.
    let ok = post(&mut conn, "/openrtb2/bid", &body, None, None);
    assert!(ok.status == 200 || ok.status == 204, "{}", ok.status);
}

#[test]
fn bid_responses_are_gzipped_when_the_exchange_and_the_request_allow_it() {
    let server = Server::start_with(Options {
        config: Some(
            "[http]\ngzip_min_bytes = 100\n\
             [exchanges.example]\ngzip_responses = true\n[exchanges.adx]\n"
                .into(),
        ),
        ..Options::default()
    });
    let mut conn = server.conn();
    let body = fixture("simple-banner.json");
    let plain = post(&mut conn, "/openrtb2/bid/example", &body, None, None);
    assert_eq!(
        plain.status, 200,
        "the sample campaigns bid on simple-banner"
    );
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.header("vary"), Some("accept-encoding"));

    let zipped = post(
        &mut conn,
        "/openrtb2/bid/example",
        &gzip(&body),
        Some("gzip"),
        Some("deflate, gzip;q=0.8"),
    );
    assert_eq!(zipped.status, 200);
    assert_eq!(zipped.header("content-encoding"), Some("gzip"));
    assert_eq!(zipped.header("content-type"), Some("application/json"));
    assert_eq!(
        zipped.header("content-length"),
        Some(zipped.body.len().to_string().as_str())
    );
    assert_eq!(gist(&zipped), gist(&plain));

    // Refused by the request, or not allowed by the exchange: plain.
    for (path, accept) in [
        ("/openrtb2/bid/example", "gzip;q=0"),
        ("/openrtb2/bid/example", "br"),
        ("/openrtb2/bid/adx", "gzip"),
        ("/openrtb2/bid", "gzip"),
    ] {
        let resp = post(&mut conn, path, &body, None, Some(accept));
        assert_eq!(resp.header("content-encoding"), None, "{path} {accept}");
        if resp.status == 200 {
            serde_json::from_slice::<serde_json::Value>(&resp.body).unwrap();
        }
    }
    assert_eq!(
        server.metric("shardbid_compressed_responses_total{encoding=\"gzip\"}"),
        1
    );
}

#[test]
fn small_bid_responses_stay_plain() {
    let server = Server::start_with(Options {
        config: Some(
            "[http]\ngzip_min_bytes = 100000\n\
             [exchanges.example]\ngzip_responses = true\n[exchanges.adx]\n"
                .into(),
        ),
        ..Options::default()
    });
    let resp = post(
        &mut server.conn(),
        "/openrtb2/bid/example",
        &fixture("simple-banner.json"),
        None,
        Some("gzip"),
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-encoding"), None);
    serde_json::from_slice::<serde_json::Value>(&resp.body).unwrap();
}
