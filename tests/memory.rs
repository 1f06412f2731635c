//! Memory after an attack, on the real server: thousands of connections each hold a
//! head just under `http.max_head_bytes`, then a body partly sent, then close. Once
//! they are gone, the process's steady resident memory under good traffic must be
//! within 10% of what it was before the attack.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{fixture, Options, Server};

/// Connections per attack wave: enough that the peak stands far above the steady size.
const ATTACKERS: usize = 2_000;
/// A head's bytes, just under the 16 KiB default `http.max_head_bytes`, never finished.
const HEAD_BYTES: usize = 15 * 1024;
/// A body's declared length (under the 256 KiB default `http.max_body_bytes`) and the
/// part of it that is sent.
const BODY_DECLARED: usize = 200 * 1024;
const BODY_SENT: usize = 160 * 1024;

/// Resident memory of `pid` in bytes (`VmRSS` of `/proc/<pid>/status`).
fn rss(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = text.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line["VmRSS:".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    kib * 1024
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Good traffic: `per_conn` bid requests on each of 8 keep-alive connections, from 4
/// threads.
fn good_traffic(server: &Server, per_conn: usize) {
    let body = fixture("simple-banner.json");
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let mut conns = [server.conn(), server.conn()];
                for _ in 0..per_conn {
                    for c in &mut conns {
                        let r = c.post("/openrtb2/bid/example", &body);
                        assert!(matches!(r.status, 200 | 204), "{}", r.status);
                    }
                }
            });
        }
    });
}

/// Resident memory in steady state: good traffic, then the smallest of a few readings
/// (a reading taken while a burst of work is in flight only adds).
fn steady(server: &Server) -> u64 {
    let mut least = u64::MAX;
    for _ in 0..3 {
        good_traffic(server, 250);
        std::thread::sleep(Duration::from_millis(200));
        least = least.min(rss(server.pid()));
    }
    least
}

/// Opens `n` connections and sends each `bytes`, from 4 threads.
fn attack(addr: SocketAddr, n: usize, bytes: &[u8]) -> Vec<TcpStream> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(move || {
                    (0..n / 4)
                        .filter_map(|_| {
                            let mut c = TcpStream::connect(addr).ok()?;
                            c.write_all(bytes).ok()?;
                            Some(c)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

/// Waits until the server holds no traffic connection.
fn until_closed(server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let open: u64 = server
            .per_shard("shardbid_shard_connections_open")
            .iter()
            .sum();
        if open == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{open} connections still open");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits up to `within` for `server`'s resident memory to reach `goal`, with good
/// traffic meanwhile; returns the steady size at the end.
fn settled(server: &Server, goal: u64, within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    loop {
        let now = steady(server);
        if now <= goal || Instant::now() >= deadline {
            return now;
        }
    }
}

#[test]
fn memory_returns_after_an_attack_of_large_heads_and_bodies() {
    let started = Instant::now();
    let server = Server::start_with(Options {
        config: Some("[http]\nheader_read_timeout_ms = 30000\n".into()),
        ..Options::default()
    });
    // Warm up: the shards' scratch space, pools and the allocator's arenas reach
    // their steady size.
    good_traffic(&server, 500);
    let before = steady(&server);

    let mut head = b"POST /openrtb2/bid/example HTTP/1.1\r\nhost: x\r\nx-pad: ".to_vec();
    head.resize(HEAD_BYTES, b'a');
    let mut body = format!(
        "POST /openrtb2/bid/example HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {BODY_DECLARED}\r\n\r\n"
    )
    .into_bytes();
    body.resize(body.len() + BODY_SENT, b' ');

    let mut peak = 0;
    for wave in [&head, &body] {
        let held = attack(server.traffic, ATTACKERS, wave);
        assert!(held.len() > ATTACKERS * 9 / 10, "{} connected", held.len());
        // Until the server has read what was sent (its memory stops growing).
        let mut last = 0;
        loop {
            std::thread::sleep(Duration::from_millis(300));
            let now = rss(server.pid());
            peak = peak.max(now);
            if now <= last + (1 << 20) {
                break;
            }
            last = now;
        }
        drop(held);
        until_closed(&server);
    }

    let goal = before + before / 10;
    let after = settled(&server, goal, Duration::from_secs(5));
    eprintln!(
        "resident memory: before {:.1} MiB, peak {:.1} MiB, after {:.1} MiB ({:+.1}%), {:.1} s",
        mib(before),
        mib(peak),
        mib(after),
        (after as f64 / before as f64 - 1.0) * 100.0,
        started.elapsed().as_secs_f64()
    );
    for line in server.log.lock().unwrap().lines() {
        if line.contains("handed back") {
            eprintln!("{line}");
        }
    }
    assert!(
        peak > 2 * before,
        "the attack did not show: peak {peak} against {before} before"
    );
    assert!(
        after <= goal,
        "after the attack the server holds {:.1} MiB, more than 10% over the {:.1} MiB before",
        mib(after),
        mib(before)
    );
    assert!(server.metric("shardbid_memory_trims_total") >= 1);
    assert!(server.metric("shardbid_memory_returned_bytes_total") > 0);
}
