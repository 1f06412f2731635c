//! The admin listener as an operator relies on it: the bearer token, the upload limit,
//! `/readyz`, and the guard against loading an empty campaign set. Each test starts the
//! real server and speaks HTTP to it.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{fixture, Conn, Options, Server, TempDir};
use serde_json::json;

const TOKEN: &str = "admin-token-for-tests-0123456789";

fn with_token() -> Server {
    Server::start_with(Options {
        env: vec![("SHARDBID_ADMIN_TOKEN".into(), TOKEN.into())],
        ..Options::default()
    })
}

/// The served table's version, asked with the token.
fn version(server: &Server) -> u64 {
    let resp = server.admin().get("/admin/campaigns");
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()["live"]["version"].as_u64().unwrap()
}

fn one_campaign(id: &str) -> Vec<u8> {
    json!({"campaigns": [{
        "id": id, "adomain": ["admin.example"], "bid_cpm": "1.00",
        "creatives": [{"id": id, "kind": "banner", "w": 300, "h": 250, "adm": "<b>ad</b>"}]
    }]})
    .to_string()
    .into_bytes()
}

#[test]
fn a_token_guards_every_admin_route_but_the_probes() {
    let server = with_token();
    // A new connection per request: a refused request's body is left unread, which
    // ends its connection.
    let anonymous = || Conn::open(server.admin);
    let guarded: [(&str, &str, &[u8]); 8] = [
        ("GET", "/metrics", b""),
        ("DELETE", "/healthz", b""),
        ("GET", "/admin/campaigns", b""),
        ("PUT", "/admin/campaigns", b"{\"campaigns\": []}"),
        ("POST", "/admin/reload", b""),
        ("POST", "/admin/campaigns/acme-shoes-300x250/pause", b""),
        ("DELETE", "/metrics", b""),
        ("GET", "/no-such-route", b""),
    ];
    for (method, path, body) in guarded {
        let resp = anonymous().send(method, path, &[], body);
        assert_eq!(resp.status, 401, "{method} {path}: {}", resp.text());
        assert_eq!(
            resp.header("www-authenticate"),
            Some("Bearer realm=\"shardbid-admin\""),
            "{method} {path}"
        );
        assert_eq!(
            resp.text(),
            "missing bearer token: send Authorization: Bearer <admin.token>\n"
        );
    }
    // A token one byte off, a prefix, a longer one, another scheme.
    let last = TOKEN.len() - 1;
    let wrong = [
        format!("Bearer {}x", &TOKEN[..last]),
        format!("Bearer {}", &TOKEN[..last]),
        format!("Bearer {TOKEN}0"),
        format!("bearer {}", TOKEN.to_uppercase()),
    ];
    for auth in &wrong {
        let resp = anonymous().send("GET", "/metrics", &[("authorization", auth)], b"");
        assert_eq!(resp.status, 401, "{auth}");
        assert_eq!(
            resp.header("www-authenticate"),
            Some("Bearer realm=\"shardbid-admin\", error=\"invalid_token\""),
            "{auth}"
        );
        assert_eq!(resp.text(), "wrong bearer token\n");
    }
    let basic = anonymous().send("GET", "/metrics", &[("authorization", "Basic YTpi")], b"");
    assert_eq!(basic.status, 401);

    // Nothing changed: no campaign set was installed, nothing paused.
    assert_eq!(version(&server), 1);
    let live = server.admin().get("/admin/campaigns").json();
    assert_eq!(
        live["live"]["campaigns"]["acme-shoes-300x250"]["paused"],
        false
    );

    // The probes need no token, on either listener.
    assert_eq!(anonymous().get("/healthz").text(), "ok\n");
    assert_eq!(anonymous().get("/readyz").text(), "ready\n");
    assert_eq!(server.conn().get("/readyz").status, 200);

    // With the token (the scheme in any case): every refusal was counted.
    let refused = (guarded.len() + wrong.len() + 1) as u64;
    assert_eq!(server.metric("shardbid_admin_unauthorized_total"), refused);
    let resp = anonymous().send(
        "GET",
        "/admin/campaigns",
        &[("authorization", &format!("BEARER {TOKEN}"))],
        b"",
    );
    assert_eq!(resp.status, 200, "{}", resp.text());

    // The traffic listener asks for no token.
    assert_eq!(server.bid(&fixture("simple-banner.json")).status, 200);
}

#[test]
fn without_a_token_the_admin_api_asks_for_none() {
    let server = Server::start();
    let resp = Conn::open(server.admin).get("/admin/campaigns");
    assert_eq!(resp.status, 200, "{}", resp.text());
    let bearer = Conn::open(server.admin).send(
        "GET",
        "/metrics",
        &[("authorization", "Bearer anything-at-all-0123")],
        b"",
    );
    assert_eq!(bearer.status, 200);
    assert_eq!(server.metric("shardbid_admin_unauthorized_total"), 0);
}

#[test]
fn an_upload_over_admin_max_body_bytes_is_refused_with_413() {
    let server = Server::start_with(Options {
        config: Some("[admin]\nmax_body_bytes = 4096\n".into()),
        ..Options::default()
    });
    let too_large = "campaign upload larger than admin.max_body_bytes\n";

    // A declared length over the limit: refused before any of the body is sent.
    let mut conn = server.admin();
    let started = Instant::now();
    conn.stream
        .write_all(b"PUT /admin/campaigns HTTP/1.1\r\nhost: t\r\ncontent-length: 4097\r\n\r\n")
        .unwrap();
    let resp = conn.read_response().expect("413 before the body");
    assert_eq!((resp.status, resp.text().as_str()), (413, too_large));
    assert!(started.elapsed() < Duration::from_secs(2));

    // A chunked body (no length declared): refused once more than the limit arrived.
    let mut conn = server.admin();
    conn.stream
        .write_all(
            b"PUT /admin/campaigns HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n",
        )
        .unwrap();
    let chunk = format!("800\r\n{}\r\n", " ".repeat(0x800));
    for _ in 0..3 {
        conn.stream.write_all(chunk.as_bytes()).unwrap();
    }
    let resp = conn.read_response().expect("413 while the body arrives");
    assert_eq!((resp.status, resp.text().as_str()), (413, too_large));

    // Nothing changed; an upload within the limit goes in.
    assert_eq!(version(&server), 1);
    let body = one_campaign("small");
    assert!(body.len() <= 4096);
    let resp = server.admin().send("PUT", "/admin/campaigns", &[], &body);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["version"], 2);
}

#[test]
fn an_empty_campaign_set_needs_allow_empty() {
    let dir = TempDir::new("empty");
    let file = common::write_file(
        &dir.0,
        "campaigns.json",
        &String::from_utf8(one_campaign("only")).unwrap(),
    );
    let server = Server::start_with(Options {
        campaigns: Some(file.clone()),
        ..Options::default()
    });
    let hint = "the campaign set is empty: every shard would stop bidding. \
                To load it anyway, add ?allow_empty=1 to the request";
    let empty = br#"{"campaigns": []}"#;
    let mut admin = server.admin();

    let resp = admin.send("PUT", "/admin/campaigns", &[], empty);
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(resp.json(), json!({"errors": [hint]}));
    for query in ["allow_empty=0", "allow_empty=yes", "allow_empty"] {
        let resp = admin.send("PUT", &format!("/admin/campaigns?{query}"), &[], empty);
        assert_eq!(resp.status, 400, "{query}: {}", resp.text());
    }
    std::fs::write(&file, empty).unwrap();
    let resp = admin.post("/admin/reload", b"");
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(resp.json(), json!({"errors": [hint]}));
    assert_eq!(version(&server), 1, "refusals change nothing");
    assert_eq!(server.bid(&only_request()).status, 200);

    let resp = admin.post("/admin/reload?allow_empty=1", b"");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["campaigns"], 0);
    assert_eq!(server.bid(&only_request()).status, 204);
    let resp = admin.send("PUT", "/admin/campaigns?allow_empty=1", &[], empty);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["version"], 3);
}

/// A request the campaign `only` bids on.
fn only_request() -> Vec<u8> {
    json!({"id": "r", "imp": [{"id": "1", "banner": {"w": 300, "h": 250}}],
           "site": {"domain": "admin.example.com"}})
    .to_string()
    .into_bytes()
}

#[test]
fn readyz_on_the_admin_listener_follows_the_drain() {
    let server = Server::start_with(Options {
        config: Some("[server]\ndrain_delay_ms = 3000\n".into()),
        env: vec![("SHARDBID_ADMIN_TOKEN".into(), TOKEN.into())],
        ..Options::default()
    });
    let mut probe = Conn::open(server.admin);
    let resp = probe.get("/readyz");
    assert_eq!((resp.status, resp.text().as_str()), (200, "ready\n"));
    // Only GET is a probe: other methods need the token, and then get 405.
    assert_eq!(
        Conn::open(server.admin)
            .send("POST", "/readyz", &[], b"")
            .status,
        401
    );
    for method in ["POST", "HEAD", "DELETE"] {
        let resp = server.admin().send(method, "/readyz", &[], b"");
        assert_eq!(resp.status, 405, "{method}");
        assert_eq!(resp.header("allow"), Some("GET"), "{method}");
    }
    server.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let resp = Conn::open(server.admin).get("/readyz");
        if resp.status == 503 {
            assert_eq!(resp.text(), "draining\n");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "admin /readyz still {}",
            resp.status
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(server.conn().get("/readyz").status, 503);
}
