//! Money under load, on the real server with `shardbid-load run --notices` as the
//! exchange: budgets small enough to run out during the test; `/metrics` sampled all
//! along. Settled spend per campaign must equal the sum of the clearing prices of the
//! notices the server accepted; no budget may ever be exceeded (spend and reservations
//! together); duplicates, forgeries and over-price notices change nothing; and after
//! SIGTERM under load the event log holds, per type, what the server counted.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Options, Server, TempDir};
use serde_json::{json, Value};

/// `shardbid-load`, built by `cargo test --workspace` next to this test's binary.
fn load_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let bin = dir.join("shardbid-load");
    assert!(
        bin.exists(),
        "{} is missing: run the tests with `cargo test --workspace`",
        bin.display()
    );
    bin
}

/// Budgets in USD: `tiny` runs out within a second of load, `small` within a few.
fn campaigns() -> Value {
    let c = |id: &str, bid: &str, budget: Value| {
        json!({
            "id": id, "adomain": [format!("{id}.example")], "bid_cpm": bid, "budget": budget,
            "targeting": {"domains": {"allow": [format!("{id}.example")]}},
            "creatives": [{"id": format!("{id}-cr"), "kind": "banner", "w": 300, "h": 250, "adm": "x"}]
        })
    };
    json!({"campaigns": [
        c("tiny", "2.00", json!({"total": "0.02"})),
        c("small", "1.50", json!({"total": "1.00", "daily": "0.10"})),
        c("roomy", "1.00", json!({"total": "1000.00"})),
    ]})
}

/// One request per campaign domain, each for its own users (no caps here).
fn corpus(dir: &std::path::Path) {
    for (i, site) in ["tiny", "small", "roomy"].iter().enumerate() {
        for u in 0..4 {
            let body = json!({
                "id": format!("r{i}{u}"), "tmax": 500,
                "imp": [{"id": "1", "banner": {"w": 300, "h": 250}}],
                "site": {"domain": format!("{site}.example")},
                "user": {"id": format!("user-{i}-{u}")},
            });
            std::fs::write(dir.join(format!("{site}-{u}.json")), body.to_string()).unwrap();
        }
    }
}

/// The money series of one scrape: (spend, reserved) micros by campaign, and the
/// counters by name.
fn scrape(server: &Server) -> (BTreeMap<String, (f64, f64)>, BTreeMap<String, f64>) {
    let page = server.admin().get("/metrics").text();
    let mut money = BTreeMap::new();
    let mut all = BTreeMap::new();
    for line in page.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, v)) = line.rsplit_once(' ') else {
            continue;
        };
        let v: f64 = v.parse().unwrap_or(f64::NAN);
        all.insert(series.to_string(), v);
        for (name, slot) in [
            ("shardbid_campaign_spend_micros_total{campaign=\"", 0),
            ("shardbid_campaign_reserved_micros{campaign=\"", 1),
        ] {
            if let Some(rest) = series.strip_prefix(name) {
                let id = rest.trim_end_matches("\"}").to_string();
                let e: &mut (f64, f64) = money.entry(id).or_default();
                if slot == 0 {
                    e.0 = v;
                } else {
                    e.1 = v;
                }
            }
        }
    }
    (money, all)
}

fn run_load(server: &Server, corpus: &std::path::Path, seconds: u64) -> std::process::Child {
    Command::new(load_binary())
        .args(["run", "--url"])
        .arg(format!("http://{}/openrtb2/bid", server.traffic))
        .arg("--corpus")
        .arg(corpus)
        .args([
            "-c",
            "8",
            "-d",
            &format!("{seconds}s"),
            "--notices",
            "--json",
            "-q",
        ])
        .args(["--win-share", "0.4", "--duplicate-share", "0.2"])
        .args(["--forged-share", "0.1", "--over-price-share", "0.1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn budgets_hold_and_spend_is_the_sum_of_accepted_prices_under_load() {
    let dir = TempDir::new("money-load");
    let file = common::write_file(&dir.0, "campaigns.json", &campaigns().to_string());
    let corpus_dir = dir.0.join("corpus");
    std::fs::create_dir_all(&corpus_dir).unwrap();
    corpus(&corpus_dir);
    let server = Server::start_with(Options {
        config: Some(String::new()),
        campaigns: Some(file),
        ..Options::default()
    });
    let budget = BTreeMap::from([("tiny", 20_000.0), ("small", 100_000.0), ("roomy", 1e9)]);

    // Sample /metrics while the load runs: spend + reservations never above a budget.
    let stop = Arc::new(AtomicBool::new(false));
    let worst = Arc::new(Mutex::new(BTreeMap::<String, f64>::new()));
    let sampler = {
        let (stop, worst, admin) = (stop.clone(), worst.clone(), server.admin);
        std::thread::spawn(move || {
            let mut samples = 0;
            while !stop.load(Ordering::Relaxed) {
                let page = common::Conn::open(admin).get("/metrics").text();
                let mut committed = BTreeMap::<String, f64>::new();
                for line in page.lines().filter(|l| l.starts_with("shardbid_campaign_")) {
                    for name in ["spend_micros_total", "reserved_micros"] {
                        let prefix = format!("shardbid_campaign_{name}{{campaign=\"");
                        if let Some(rest) = line.strip_prefix(&prefix) {
                            let (id, v) = rest.split_once("\"} ").unwrap();
                            *committed.entry(id.to_string()).or_default() +=
                                v.parse::<f64>().unwrap();
                        }
                    }
                }
                let mut w = worst.lock().unwrap();
                for (id, c) in committed {
                    let e = w.entry(id).or_insert(0.0);
                    *e = e.max(c);
                }
                samples += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            samples
        })
    };
    let out = run_load(&server, &corpus_dir, 4)
        .wait_with_output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.join().unwrap();
    assert!(samples > 20, "{samples} samples");

    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let notices = &report["notices"];
    let sent = |what: &str, status: &str| notices["sent"][what][status].as_u64().unwrap_or(0);
    let (money, all) = scrape(&server);

    for (id, worst) in worst.lock().unwrap().iter() {
        let b = budget[id.as_str()];
        assert!(
            *worst <= b + 1e-6,
            "{id}: spend + reserved reached {worst} of {b}"
        );
    }
    for (id, (spend, _)) in &money {
        let expected = notices["expected_spend_micros"][id].as_f64().unwrap_or(0.0);
        assert!(
            (spend - expected).abs() < 0.0005,
            "{id}: spent {spend} micros, the accepted billing notices say {expected}"
        );
        assert!(*spend <= budget[id.as_str()]);
    }
    // The small budgets ran out: the server refused bids for want of budget.
    assert!(all["shardbid_nobid_total{reason=\"budget\"}"] > 0.0);
    assert!(money["tiny"].0 > 10_000.0, "tiny spent {}", money["tiny"].0);
    // Nothing but the original billing notices charged.
    let n = |s: &str| all[s] as u64;
    assert_eq!(
        n("shardbid_notices_total{kind=\"billing\",outcome=\"charged\"}"),
        sent("billing", "200")
    );
    assert_eq!(
        n("shardbid_notices_total{kind=\"billing\",outcome=\"duplicate\"}"),
        sent("billing duplicate", "200")
    );
    assert_eq!(
        n("shardbid_notices_rejected_total{reason=\"forged\"}"),
        sent("billing forged", "403")
    );
    assert_eq!(
        n("shardbid_notices_rejected_total{reason=\"above_bid\"}"),
        sent("billing over price", "400")
    );
    assert!(sent("billing duplicate", "200") > 10 && sent("billing forged", "403") > 5);
    assert!(sent("billing", "200") + sent("loss", "200") > 100);
}

#[test]
fn after_sigterm_under_load_the_event_log_matches_the_counts() {
    let dir = TempDir::new("money-term");
    let file = common::write_file(&dir.0, "campaigns.json", &campaigns().to_string());
    let corpus_dir = dir.0.join("corpus");
    std::fs::create_dir_all(&corpus_dir).unwrap();
    corpus(&corpus_dir);
    let mut server = Server::start_with(Options {
        config: Some("[server]\ndrain_delay_ms = 300\n".into()),
        campaigns: Some(file),
        ..Options::default()
    });
    let load = run_load(&server, &corpus_dir, 3);
    std::thread::sleep(Duration::from_millis(1200));
    // The last scrape before SIGTERM: counted so far (the log must hold at least this).
    let (_, before) = scrape(&server);
    server.signal("TERM");
    let status = server.wait(Duration::from_secs(20)).expect("exits");
    assert!(status.success());
    let _ = load.wait_with_output();
    let log = server.log.lock().unwrap().clone();
    let closed = log
        .lines()
        .find(|l| l.contains("Event log closed"))
        .unwrap_or_else(|| panic!("{log}"));
    let mut lines: BTreeMap<String, u64> = BTreeMap::new();
    for entry in std::fs::read_dir(&server.events_dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for l in text.lines() {
            let v: Value = serde_json::from_str(l).unwrap();
            *lines
                .entry(v["type"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    for kind in ["bid", "win", "billing", "loss", "expired", "rejected"] {
        let written: u64 = closed
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{kind}=")))
            .and_then(|v| v.parse().ok())
            .unwrap();
        let on_disk = lines.get(kind).copied().unwrap_or(0);
        assert_eq!(on_disk, written, "{kind}: {closed}");
        let counted_before = before[&format!("shardbid_events_total{{type=\"{kind}\"}}")] as u64;
        assert!(
            on_disk >= counted_before,
            "{kind}: {on_disk} on disk, {counted_before} counted"
        );
    }
    assert_eq!(before["shardbid_events_dropped_total"], 0.0);
    assert!(
        !log.contains("Event log: the events written differ"),
        "{log}"
    );
    assert!(lines["bid"] > 100 && lines["billing"] > 10, "{lines:?}");
}
