//! Campaign swaps under load, timeouts, and graceful shutdown of the real server.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{fixture, Conn, Options, Server};
use serde_json::{json, Value};

fn campaign_set(crid: &str) -> Value {
    json!({"campaigns": [{
        "id": "swap", "adomain": ["acme.com"], "bid_cpm": "1.00",
        "creatives": [{"id": crid, "kind": "banner", "w": 300, "h": 250, "adm": "x"}]
    }]})
}

#[test]
fn campaign_swap_under_load_fails_no_request() {
    let server = Server::start();
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let body = fixture("simple-banner.json");
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (stop, ok, failed, body, addr) = (
                stop.clone(),
                ok.clone(),
                failed.clone(),
                body.clone(),
                server.traffic,
            );
            std::thread::spawn(move || {
                let mut conn = Conn::open(addr);
                while !stop.load(Ordering::Relaxed) {
                    match conn.post("/openrtb2/bid", &body).status {
                        // Both the old and the new campaigns bid on this request.
                        200 => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();

    let mut admin = server.admin();
    for round in 0..10 {
        let crid = format!("creative-{round}");
        let started = Instant::now();
        let resp = admin.send(
            "PUT",
            "/admin/campaigns",
            &[],
            campaign_set(&crid).to_string().as_bytes(),
        );
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(resp.json()["version"], json!(round + 2));
        // The swap is confirmed on every shard before the admin call returns: a
        // shard applies it within its 10 ms housekeeping tick, so even a busy
        // machine confirms well within a second.
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "swap took {:?}",
            started.elapsed()
        );
        let bid = server.bid(&body);
        assert_eq!(bid.status, 200);
        assert_eq!(bid.json()["seatbid"][0]["bid"][0]["crid"], json!(crid));
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    assert!(
        ok.load(Ordering::Relaxed) > 20,
        "too little load: {}",
        ok.load(Ordering::Relaxed)
    );
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    for shard in 0..2 {
        assert_eq!(
            server.metric(&format!(
                "shardbid_shard_table_version{{shard=\"{shard}\"}}"
            )),
            11
        );
    }
}

#[test]
fn invalid_campaigns_are_rejected_and_the_old_set_stays() {
    let server = Server::start();
    let before = server.admin().get("/admin/campaigns").json();
    let bad = json!({"campaigns": [
        {"id": "dup", "adomain": [], "bid_cpm": "1", "creatives": []},
        {"id": "dup", "adomain": [], "bid_cpm": "1", "creatives": [{"id": "c", "kind": "banner", "adm": "x"}]}
    ]});
    let resp = server
        .admin()
        .send("PUT", "/admin/campaigns", &[], bad.to_string().as_bytes());
    assert_eq!(resp.status, 400);
    let errors = resp.json()["errors"].as_array().unwrap().clone();
    assert!(errors.len() >= 2, "{errors:?}");
    assert!(
        errors.iter().all(|e| e.as_str().unwrap().contains("dup")),
        "{errors:?}"
    );
    let not_json = server
        .admin()
        .send("PUT", "/admin/campaigns", &[], b"{\"campaigns\": [");
    assert_eq!(not_json.status, 400);
    let after = server.admin().get("/admin/campaigns").json();
    assert_eq!(before, after);
    assert_eq!(server.metric("shardbid_table_version"), 1);
    assert!(matches!(
        server.bid(&fixture("simple-banner.json")).status,
        200
    ));
}

#[test]
fn reload_rereads_the_campaigns_file() {
    let dir = common::TempDir::new("reload");
    let path = common::write_file(&dir.0, "c.json", &campaign_set("first").to_string());
    let server = Server::start_with(Options {
        campaigns: Some(path.clone()),
        ..Options::default()
    });
    let body = fixture("simple-banner.json");
    assert_eq!(
        server.bid(&body).json()["seatbid"][0]["bid"][0]["crid"],
        "first"
    );
    std::fs::write(&path, campaign_set("second").to_string()).unwrap();
    let resp = server.admin().send("POST", "/admin/reload", &[], b"");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        server.bid(&body).json()["seatbid"][0]["bid"][0]["crid"],
        "second"
    );
    // A campaigns file the server cannot use is the server's fault, not the client's.
    std::fs::write(&path, "not json").unwrap();
    let resp = server.admin().send("POST", "/admin/reload", &[], b"");
    assert_eq!(resp.status, 500);
    assert!(resp.json()["errors"][0]
        .as_str()
        .unwrap()
        .contains("not a valid campaign file"));
    std::fs::write(&path, campaign_set("").to_string()).unwrap();
    let resp = server.admin().send("POST", "/admin/reload", &[], b"");
    assert_eq!(resp.status, 500);
    assert!(!resp.json()["errors"].as_array().unwrap().is_empty());
    std::fs::remove_file(&path).unwrap();
    let resp = server.admin().send("POST", "/admin/reload", &[], b"");
    assert_eq!(resp.status, 500);
    assert!(resp.json()["errors"][0]
        .as_str()
        .unwrap()
        .contains("cannot read"));
    assert_eq!(
        server.bid(&body).json()["seatbid"][0]["bid"][0]["crid"],
        "second"
    );
}

#[test]
fn slow_heads_and_bodies_are_cut_but_idle_keep_alive_survives() {
    let server = Server::start_with(Options {
        config: Some("[http]\nheader_read_timeout_ms = 300\nkeep_alive_timeout_ms = 5000\n".into()),
        ..Options::default()
    });
    // Slowloris: a partial head is cut after the header timeout (plus sweep slack).
    let mut slow = server.conn();
    std::io::Write::write_all(
        &mut slow.stream,
        b"POST /openrtb2/bid HTTP/1.1\r\nhost: x\r\n",
    )
    .unwrap();
    let started = Instant::now();
    slow.stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut answer = Vec::new();
    let ended = std::io::Read::read_to_end(&mut slow.stream, &mut answer);
    assert!(
        ended.is_ok(),
        "slow header connection was not closed: {ended:?}"
    );
    assert!(
        answer.starts_with(b"HTTP/1.1 408 "),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "closed too early: {:?}",
        started.elapsed()
    );

    // The same holds for the body: a request must arrive whole within the timeout.
    let mut slow_body = server.conn();
    std::io::Write::write_all(
        &mut slow_body.stream,
        b"POST /openrtb2/bid HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{\"id\":",
    )
    .unwrap();
    let started = Instant::now();
    slow_body
        .stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut answer = Vec::new();
    let ended = std::io::Read::read_to_end(&mut slow_body.stream, &mut answer);
    assert!(
        ended.is_ok(),
        "slow body connection was not closed: {ended:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "closed too early: {:?}",
        started.elapsed()
    );
    // The request did not arrive in time: 408.
    assert!(
        answer.starts_with(b"HTTP/1.1 408 "),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    // An idle keep-alive connection outlives the header timeout.
    let mut idle = server.conn();
    assert_eq!(idle.get("/healthz").status, 200);
    std::thread::sleep(Duration::from_millis(900));
    assert_eq!(idle.get("/healthz").status, 200);
}

#[test]
fn idle_keep_alive_connections_are_closed_after_the_idle_timeout() {
    let server = Server::start_with(Options {
        config: Some("[http]\nkeep_alive_timeout_ms = 400\n".into()),
        ..Options::default()
    });
    let mut idle = server.conn();
    assert_eq!(idle.get("/healthz").status, 200);
    assert!(idle.closed_within(Duration::from_secs(3)));
}

/// A client that sends requests but never reads the answers fills its socket; once the
/// server's responses have waited past the connection's timeout, the connection is
/// closed instead of held forever.
#[test]
fn a_client_that_never_reads_is_cut_off_after_the_timeout() {
    let server = Server::start_with(Options {
        config: Some("[http]\nkeep_alive_timeout_ms = 400\nheader_read_timeout_ms = 400\n".into()),
        ..Options::default()
    });
    let open = || -> u64 {
        server
            .per_shard("shardbid_shard_connections_open")
            .iter()
            .sum()
    };
    let conn = server.conn();
    let mut writer = conn.stream.try_clone().unwrap();
    let body = fixture("simple-banner.json");
    std::thread::spawn(move || {
        let head = format!(
            "POST /openrtb2/bid HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        // Ends with an error once the server closes the connection.
        for _ in 0..100_000 {
            let sent = std::io::Write::write_all(&mut writer, head.as_bytes())
                .and_then(|()| std::io::Write::write_all(&mut writer, &body));
            if sent.is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(open(), 1, "the connection is served");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while open() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "a client that reads nothing is still connected after 5 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(conn);
}

#[test]
fn sigterm_drains_in_flight_requests_then_exits_zero() {
    let mut server = Server::start_with(Options {
        config: Some("[server]\ndrain_delay_ms = 400\ndrain_timeout_ms = 5000\n".into()),
        ..Options::default()
    });
    // A request in flight, with a deadline long enough to outlast the drain delay:
    // head and half the body sent.
    let mut req: Value = serde_json::from_slice(&fixture("simple-banner.json")).unwrap();
    req["tmax"] = json!(5000);
    let body = serde_json::to_vec(&req).unwrap();
    let mut inflight = server.conn();
    let head = format!(
        "POST /openrtb2/bid HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    std::io::Write::write_all(&mut inflight.stream, head.as_bytes()).unwrap();
    std::io::Write::write_all(&mut inflight.stream, &body[..body.len() / 2]).unwrap();
    // An idle keep-alive connection.
    let mut idle = server.conn();
    assert_eq!(idle.get("/healthz").status, 200);
    std::thread::sleep(Duration::from_millis(50));

    server.signal("TERM");
    std::thread::sleep(Duration::from_millis(100));
    // During the drain delay readiness is withdrawn, the process still serves.
    assert_eq!(server.conn().get("/readyz").status, 503);
    assert_eq!(idle.get("/readyz").status, 503);

    std::thread::sleep(Duration::from_millis(500));
    std::io::Write::write_all(&mut inflight.stream, &body[body.len() / 2..]).unwrap();
    let resp = inflight
        .read_response()
        .expect("in-flight request answered");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(inflight.closed_within(Duration::from_secs(3)));

    let status = server.wait(Duration::from_secs(6)).unwrap_or_else(|| {
        panic!(
            "did not exit within the drain timeout:\n{}",
            server.log.lock().unwrap()
        )
    });
    assert!(status.success(), "exit status {status:?}");
    let log = server.log.lock().unwrap().clone();
    assert!(log.contains("Stopped"), "{log}");
}
