//! Ports and restarts: a second process cannot silently share the ports, SIGTERM under
//! keep-alive load leaves no request that reached the server unanswered, and a rolling
//! restart (`--takeover`) under load fails no request.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{fixture, free_addr, root, Options, Server};

/// What keep-alive clients saw: requests answered, and requests written whose
/// connection ended before their answer came (the count that must stay 0).
#[derive(Default)]
struct Tally {
    answered: AtomicU64,
    unanswered: AtomicU64,
    closes: AtomicU64,
}

/// Reads one response; `Ok(close)` says whether it carried `Connection: close`.
fn read_response(conn: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap_or(0));
            if buf.len() >= end + 4 + len {
                buf.drain(..end + 4 + len);
                return Ok(head.contains("connection: close"));
            }
        }
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// `threads` keep-alive clients sending bid requests to `addr` until `stop`, each
/// reconnecting when an answer closes its connection, and giving up when connecting
/// is refused for 300 ms (the listener is gone).
fn load(
    addr: SocketAddr,
    threads: usize,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) -> Vec<std::thread::JoinHandle<()>> {
    let body = fixture("simple-banner.json");
    let request = [
        format!(
            "POST /openrtb2/bid HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes(),
        body,
    ]
    .concat();
    (0..threads)
        .map(|_| {
            let (stop, tally, request) = (stop.clone(), tally.clone(), request.clone());
            std::thread::spawn(move || {
                let mut refused_since: Option<Instant> = None;
                while !stop.load(Ordering::Relaxed) {
                    let mut conn = match TcpStream::connect(addr) {
                        Ok(c) => c,
                        Err(_) => {
                            let since = *refused_since.get_or_insert_with(Instant::now);
                            if since.elapsed() > Duration::from_millis(300) {
                                return;
                            }
                            std::thread::sleep(Duration::from_millis(5));
                            continue;
                        }
                    };
                    refused_since = None;
                    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let mut buf = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        if conn.write_all(&request).is_err() {
                            // Nothing of it reached the server's application.
                            break;
                        }
                        match read_response(&mut conn, &mut buf) {
                            Ok(close) => {
                                tally.answered.fetch_add(1, Ordering::Relaxed);
                                if close {
                                    tally.closes.fetch_add(1, Ordering::Relaxed);
                                    break;
                                }
                            }
                            Err(_) => {
                                tally.unanswered.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                        }
                    }
                }
            })
        })
        .collect()
}

fn run_binary(args: &[&str]) -> (Option<i32>, String) {
    let events = common::TempDir::in_memory("events");
    let out = Command::new(env!("CARGO_BIN_EXE_shardbid"))
        .args(args)
        .env("SHARDBID_NOTICE_KEY", "a test key of our own")
        .env("SHARDBID_EVENTS_DIR", &events.0)
        .env_remove("SHARDBID_LISTEN")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_second_process_on_the_same_ports_is_refused() {
    let (traffic, admin) = (free_addr(), free_addr());
    let first = Server::start_with(Options {
        listen: Some(traffic),
        admin_listen: Some(admin),
        ..Options::default()
    });
    let config = root().join("config/shardbid.toml");
    let config = config.to_str().unwrap();
    let (t, a, other) = (
        traffic.to_string(),
        admin.to_string(),
        free_addr().to_string(),
    );
    // The same traffic port: refused, naming it and the way to replace a running one.
    let (code, err) = run_binary(&["--config", config, "--listen", &t, "--admin-listen", &other]);
    assert_ne!(code, Some(0), "{err}");
    assert!(
        err.contains(&format!("server.listen {t}")) && err.contains("--takeover"),
        "{err}"
    );
    // Another traffic port, the same admin port: refused, naming it.
    let (code, err) = run_binary(&["--config", config, "--listen", &other, "--admin-listen", &a]);
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains(&format!("server.admin_listen {a}")), "{err}");
    // The first one never noticed.
    assert_eq!(first.bid(&fixture("simple-banner.json")).status, 200);
    assert_eq!(first.admin().get("/healthz").status, 200);
}

#[test]
fn sigterm_under_keep_alive_load_leaves_no_request_unanswered() {
    let mut server = Server::start_with(Options {
        config: Some("[server]\ndrain_delay_ms = 500\ndrain_timeout_ms = 5000\n".into()),
        ..Options::default()
    });
    let (stop, tally) = (Arc::new(AtomicBool::new(false)), Arc::new(Tally::default()));
    let clients = load(server.traffic, 8, stop.clone(), tally.clone());
    std::thread::sleep(Duration::from_millis(500));
    let before = tally.answered.load(Ordering::Relaxed);
    assert!(before > 100, "the load runs ({before} answers)");
    server.signal("TERM");
    let status = server.wait(Duration::from_secs(15)).expect("exits");
    assert!(status.success(), "{status:?}");
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let (answered, unanswered, closes) = (
        tally.answered.load(Ordering::Relaxed),
        tally.unanswered.load(Ordering::Relaxed),
        tally.closes.load(Ordering::Relaxed),
    );
    assert_eq!(
        unanswered, 0,
        "{unanswered} requests unanswered of {answered}"
    );
    // During the drain delay answers closed their connections, and clients came back.
    assert!(closes >= 8, "{closes} answers closed their connection");
    assert!(answered > before, "served during the drain delay");
}

#[test]
fn a_rolling_restart_under_load_fails_no_request() {
    let (traffic, admin) = (free_addr(), free_addr());
    let config = "[server]\ndrain_delay_ms = 500\ndrain_timeout_ms = 5000\n";
    let mut old = Server::start_with(Options {
        config: Some(config.into()),
        listen: Some(traffic),
        admin_listen: Some(admin),
        ..Options::default()
    });
    let (stop, tally) = (Arc::new(AtomicBool::new(false)), Arc::new(Tally::default()));
    let clients = load(traffic, 8, stop.clone(), tally.clone());
    std::thread::sleep(Duration::from_millis(300));
    // The new process serves first, then asks the old one to drain and takes the admin
    // port once it is free.
    let new = Server::start_with(Options {
        config: Some(config.into()),
        listen: Some(traffic),
        admin_listen: Some(admin),
        args: vec!["--takeover".into()],
        ..Options::default()
    });
    let status = old
        .wait(Duration::from_secs(15))
        .expect("the old process exits");
    assert!(status.success(), "{status:?}");
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let unanswered = tally.unanswered.load(Ordering::Relaxed);
    let answered = tally.answered.load(Ordering::Relaxed);
    assert_eq!(
        unanswered, 0,
        "{unanswered} requests unanswered of {answered}"
    );
    assert!(new.metric("shardbid_bid_requests_total{outcome=\"bid\"}") > 0);
    assert!(old.log.lock().unwrap().contains("Draining"));
    assert!(new
        .log
        .lock()
        .unwrap()
        .contains("Takeover: the process being replaced is draining"));
    let _ = new.admin().get("/healthz");
    let mut conn = TcpStream::connect(admin).unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "the admin port is the new process's"
    );
}
