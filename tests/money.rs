//! Money on the real server: notices that settle once and refuse what is forged,
//! budgets that run out and stay out, the kill switch under load, frequency caps on
//! every shard, late notices, an event log that loses nothing on SIGTERM, and spend
//! that survives a restart.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Conn, Options, Server, TempDir};
use serde_json::{json, Value};

/// One banner campaign with the given extra keys, bidding `bid` on 300x250.
fn campaign(id: &str, bid: &str, extra: Value) -> Value {
    let mut c = json!({
        "id": id, "adomain": [format!("{id}.example")], "bid_cpm": bid,
        "creatives": [{"id": format!("{id}-cr"), "kind": "banner", "w": 300, "h": 250, "adm": "x"}]
    });
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn start(campaigns: Vec<Value>, config: &str) -> (Server, TempDir) {
    let dir = TempDir::new("money");
    let path = common::write_file(
        &dir.0,
        "campaigns.json",
        &json!({ "campaigns": campaigns }).to_string(),
    );
    let server = Server::start_with(Options {
        config: Some(config.to_string()),
        campaigns: Some(path),
        ..Options::default()
    });
    (server, dir)
}

/// A banner request for `user` (none: no user key at all).
fn request(id: &str, user: Option<&str>) -> Vec<u8> {
    let mut r = json!({
        "id": id, "tmax": 1000,
        "imp": [{"id": "1", "banner": {"w": 300, "h": 250}}],
        "site": {"domain": "news.example"},
    });
    if let Some(u) = user {
        r["user"] = json!({"id": u});
    }
    serde_json::to_vec(&r).unwrap()
}

/// The bid of an answer, if it has one.
fn bid_of(resp: &common::Response) -> Option<Value> {
    (resp.status == 200).then(|| resp.json()["seatbid"][0]["bid"][0].clone())
}

/// A notice URL's path and query, with the exchange's macros filled in.
fn notice(url: &Value, price: &str) -> String {
    let url = url.as_str().unwrap();
    let path = &url[url.find("/notice/").unwrap()..];
    path.replace("${AUCTION_PRICE}", price)
        .replace("${AUCTION_LOSS}", "102")
}

fn call(server: &Server, path_and_query: &str) -> u16 {
    server.conn().get(path_and_query).status
}

/// A float metric (money series are in micros with decimals).
fn metric_f64(server: &Server, series: &str) -> f64 {
    let page = server.admin().get("/metrics").text();
    page.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {series}"))
}

/// Waits until `cond` holds (a shard settles a notice on its next 10 ms tick).
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within 5 s");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Event lines in `dir`, by type.
fn event_lines(dir: &Path) -> Vec<Value> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    paths.sort();
    paths
        .iter()
        .flat_map(|p| {
            BufReader::new(std::fs::File::open(p).unwrap())
                .lines()
                .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
                .collect::<Vec<Value>>()
        })
        .collect()
}

fn count(lines: &[Value], kind: &str) -> usize {
    lines.iter().filter(|l| l["type"] == kind).count()
}

fn stop(server: &mut Server) {
    server.signal("TERM");
    let status = server.wait(Duration::from_secs(15)).expect("exits");
    assert!(status.success(), "{status:?}");
}

const SPEND: &str = "shardbid_campaign_spend_micros_total{campaign=\"c\"}";

#[test]
fn a_billing_notice_charges_once_and_forgeries_change_nothing() {
    let (mut server, _dir) = start(
        vec![campaign(
            "c",
            "2.00",
            json!({"budget": {"total": "100.00"}}),
        )],
        "",
    );
    let bid = bid_of(&server.bid(&request("a1", Some("u1")))).expect("a bid");
    assert_eq!(bid["cid"], "c");
    let id = bid["id"].as_str().unwrap().to_string();
    for m in ["nurl", "burl", "lurl"] {
        let url = bid[m].as_str().unwrap();
        assert!(url.contains(&format!("&b={id}&")), "{m}: {url}");
    }

    // A win only marks the bid (this exchange charges on billing).
    assert_eq!(call(&server, &notice(&bid["nurl"], "1.5")), 200);
    // Billing at 1.50 CPM: one impression costs 1,500 micros, charged once.
    let billing = notice(&bid["burl"], "1.5");
    assert_eq!(call(&server, &billing), 200);
    eventually("the charge", || metric_f64(&server, SPEND) == 1500.0);
    for _ in 0..3 {
        assert_eq!(call(&server, &billing), 200, "a retry is answered 200 ...");
    }
    // Forged: one byte of the signature changed; tampered: the bid price raised.
    let i = billing.find("&s=").unwrap() + 3;
    let mut forged = billing.clone().into_bytes();
    forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    assert_eq!(call(&server, &forged), 403);
    assert_eq!(
        call(&server, &billing.replace("&p=2000000&", "&p=9000000&")),
        403
    );
    assert_eq!(
        call(&server, &notice(&bid["burl"], "2.01")),
        400,
        "above the bid"
    );
    assert_eq!(call(&server, &notice(&bid["burl"], "-1")), 400);
    assert_eq!(call(&server, &notice(&bid["burl"], "abc")), 400);
    assert_eq!(
        call(&server, &notice(&bid["burl"], "${AUCTION_PRICE}")),
        400
    );
    assert_eq!(call(&server, "/notice/billing?a=1&b=2"), 400);
    assert_eq!(call(&server, "/notice/refund?a=1"), 404);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        metric_f64(&server, SPEND),
        1500.0,
        "... and charges nothing"
    );
    let settled = |o: &str| {
        server.metric(&format!(
            "shardbid_notices_total{{kind=\"billing\",outcome=\"{o}\"}}"
        ))
    };
    assert_eq!((settled("charged"), settled("duplicate")), (1, 3));
    let rejected = |r: &str| {
        server.metric(&format!(
            "shardbid_notices_rejected_total{{reason=\"{r}\"}}"
        ))
    };
    assert_eq!(rejected("forged"), 2);
    assert_eq!(rejected("above_bid"), 1);
    assert_eq!(rejected("bad_price"), 3);
    assert_eq!(rejected("malformed"), 1);

    let live = server.admin().get("/admin/campaigns").json()["live"]["campaigns"]["c"].clone();
    assert_eq!(live["spend_micros"], 1500);
    assert_eq!(live["wins"], 1);
    assert_eq!(live["remaining_total_micros"], 100_000_000 - 1500);

    let events = server.events_dir.clone();
    stop(&mut server);
    let lines = event_lines(&events);
    assert_eq!(count(&lines, "bid"), 1);
    assert_eq!(count(&lines, "win"), 1);
    assert_eq!(count(&lines, "billing"), 1);
    assert_eq!(count(&lines, "rejected"), 7);
    let billed = lines.iter().find(|l| l["type"] == "billing").unwrap();
    assert_eq!(billed["bid_id"], id.as_str());
    assert_eq!(billed["auction_id"], "a1");
    assert_eq!(billed["price_micros"], 1_500_000);
    assert_eq!(billed["charged_micros"], 1500);
    assert_eq!(billed["late"], false);
    let forged = lines.iter().find(|l| l["reason"] == "forged").unwrap();
    assert_eq!(forged["type"], "rejected");
    assert_eq!(forged["notice"], "billing");
}

#[test]
fn an_exchange_that_charges_on_win_is_charged_by_the_win() {
    let (server, _dir) = start(
        vec![campaign("c", "2.00", json!({"budget": {"daily": "10.00"}}))],
        "[exchanges.ex]\ncharge_on = \"win\"\n",
    );
    let resp = server.conn().post("/openrtb2/bid/ex", &request("a", None));
    let bid = bid_of(&resp).expect("a bid");
    assert_eq!(call(&server, &notice(&bid["burl"], "1")), 200);
    assert_eq!(call(&server, &notice(&bid["nurl"], "1")), 200);
    eventually("the win's charge", || metric_f64(&server, SPEND) == 1000.0);
    assert_eq!(
        server.metric("shardbid_notices_total{kind=\"billing\",outcome=\"marked\"}"),
        1
    );
}

#[test]
fn a_budget_runs_out_and_only_settling_makes_room() {
    // 0.01 USD: five bids at CPM 2.00 reserve it all (each may cost 2,000,000 nanos).
    let (server, _dir) = start(
        vec![campaign("c", "2.00", json!({"budget": {"total": "0.01"}}))],
        "",
    );
    let mut c = server.conn();
    // The one connection's shard holds half the budget at first; the rest comes over
    // from the other shard within a few control rounds.
    let bids = bid_until(&mut c, "a", 5);
    assert_eq!(bids.len(), 5, "five reservations fill the budget");
    for i in 0..15 {
        let resp = c.post("/openrtb2/bid", &request(&format!("x{i}"), None));
        assert_eq!(resp.status, 204, "no sixth reservation");
    }
    assert!(server.metric("shardbid_nobid_total{reason=\"budget\"}") >= 15);
    let reserved = "shardbid_campaign_reserved_micros{campaign=\"c\"}";
    eventually("reservations reported", || {
        metric_f64(&server, reserved) == 10_000.0
    });

    // One billed at 1.00 (1,000,000 nanos spent, 1,000,000 back), four lost: room for
    // four more bids (9,000,000 nanos), not five.
    assert_eq!(call(&server, &notice(&bids[0]["burl"], "1")), 200);
    for b in &bids[1..] {
        assert_eq!(call(&server, &notice(&b["lurl"], "")), 200);
    }
    eventually("the loss notices", || metric_f64(&server, reserved) == 0.0);
    assert_eq!(bid_until(&mut c, "b", 4).len(), 4);
    for i in 0..15 {
        let resp = c.post("/openrtb2/bid", &request(&format!("y{i}"), None));
        assert_eq!(resp.status, 204, "room for four more bids, not five");
    }
    assert_eq!(metric_f64(&server, SPEND), 1000.0);
    let live = server.admin().get("/admin/campaigns").json()["live"]["campaigns"]["c"].clone();
    assert_eq!(live["remaining_total_micros"], 9000);
    assert_eq!(live["reserved_micros"], 8000);
}

/// Bids on `c` (requests `{prefix}0`, `{prefix}1` ...) until `n` got a bid, for at
/// most 5 s.
fn bid_until(c: &mut common::Conn, prefix: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut bids = Vec::new();
    let mut i = 0;
    while bids.len() < n && Instant::now() < deadline {
        if let Some(b) = bid_of(&c.post("/openrtb2/bid", &request(&format!("{prefix}{i}"), None))) {
            bids.push(b);
        }
        i += 1;
        std::thread::sleep(Duration::from_millis(10));
    }
    bids
}

/// Load on several connections; a campaign paused mid-run bids on no request sent
/// 100 ms or more after the pause was answered, on any shard; resumed, it bids again.
#[test]
fn the_kill_switch_stops_every_shard_within_100_ms_under_load() {
    let (server, _dir) = start(vec![campaign("c", "1.00", json!({}))], "");
    let stop = Arc::new(AtomicBool::new(false));
    // (sent at, bid from c) of every request.
    let seen = Arc::new(Mutex::new(Vec::<(Instant, bool)>::new()));
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (stop, seen, addr) = (stop.clone(), seen.clone(), server.traffic);
            std::thread::spawn(move || {
                let mut conn = Conn::open(addr);
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    let r = conn.post("/openrtb2/bid", &request(&format!("{w}-{i}"), None));
                    assert!(r.status == 200 || r.status == 204, "{}", r.status);
                    seen.lock().unwrap().push((sent, r.status == 200));
                    i += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let pause = server
        .admin()
        .send("POST", "/admin/campaigns/c/pause", &[], b"");
    let paused_at = Instant::now();
    assert_eq!(pause.status, 200, "{}", pause.text());
    assert_eq!(pause.json()["paused"], true);
    std::thread::sleep(Duration::from_millis(600));
    let resume = server
        .admin()
        .send("POST", "/admin/campaigns/c/resume", &[], b"");
    let resumed_at = Instant::now();
    assert_eq!(resume.status, 200);
    std::thread::sleep(Duration::from_millis(400));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let seen = seen.lock().unwrap();
    let bids_in = |from: Instant, to: Instant| {
        seen.iter()
            .filter(|(t, bid)| *bid && *t >= from && *t < to)
            .count()
    };
    let sent_in =
        |from: Instant, to: Instant| seen.iter().filter(|(t, _)| *t >= from && *t < to).count();
    let cutoff = paused_at + Duration::from_millis(100);
    assert!(
        sent_in(cutoff, resumed_at) > 50,
        "load went on while paused"
    );
    assert_eq!(
        bids_in(cutoff, resumed_at),
        0,
        "a bid 100 ms or more after the pause"
    );
    assert!(bids_in(resumed_at + Duration::from_millis(100), Instant::now()) > 10);
    assert!(server.metric("shardbid_nobid_total{reason=\"paused\"}") > 0);
    assert_eq!(
        server
            .admin()
            .send("POST", "/admin/campaigns/nope/pause", &[], b"")
            .status,
        404
    );
}

/// An impression's notice reaches every shard: the same user's next request, 100 ms
/// later, on any connection (so any shard), gets no bid from the capped campaign.
#[test]
fn a_frequency_cap_holds_on_every_shard() {
    let (server, _dir) = start(
        vec![campaign(
            "c",
            "1.00",
            json!({"frequency_cap": {"impressions": 1, "window_s": 3600}}),
        )],
        "",
    );
    let bid = bid_of(&server.bid(&request("a", Some("alice")))).expect("a bid");
    assert_eq!(call(&server, &notice(&bid["burl"], "0.5")), 200);
    // The impression reaches every shard on its next tick.
    eventually("the impression on every shard", || {
        server.metric("shardbid_frequency_cap_entries") >= 2
    });
    let mut conns: Vec<_> = (0..32).map(|_| server.conn()).collect();
    for c in &mut conns {
        assert_eq!(c.get("/healthz").status, 200);
    }
    let shards_used = server.per_shard("shardbid_shard_connections_open");
    assert!(shards_used.iter().all(|&n| n > 0), "{shards_used:?}");
    for c in &mut conns {
        let r = c.post("/openrtb2/bid", &request("b", Some("alice")));
        assert_eq!(r.status, 204, "capped user got a bid");
        assert!(bid_of(&c.post("/openrtb2/bid", &request("c", Some("bob")))).is_some());
        assert!(
            bid_of(&c.post("/openrtb2/bid", &request("d", None))).is_some(),
            "no user key: not capped"
        );
    }
    assert_eq!(
        server.metric("shardbid_nobid_total{reason=\"frequency_cap\"}"),
        32
    );
}

/// A notice after the win timeout released its reservation is still charged, as late;
/// what spend can exceed the budget by is that late charge.
#[test]
fn a_late_notice_is_charged_and_counted_late() {
    let (server, _dir) = start(
        vec![campaign("c", "2.00", json!({"budget": {"total": "10.00"}}))],
        "[money]\nwin_timeout_ms = 1000\nnotice_max_age_s = 60\n",
    );
    let bid = bid_of(&server.bid(&request("a", None))).expect("a bid");
    let reserved = "shardbid_campaign_reserved_micros{campaign=\"c\"}";
    eventually("the reservation", || {
        metric_f64(&server, reserved) == 2000.0
    });
    eventually("expiry", || metric_f64(&server, reserved) == 0.0);
    assert_eq!(call(&server, &notice(&bid["burl"], "1.2")), 200);
    eventually("the late charge", || metric_f64(&server, SPEND) == 1200.0);
    assert_eq!(
        server.metric("shardbid_notices_total{kind=\"billing\",outcome=\"late\"}"),
        1
    );
    assert_eq!(
        server.metric("shardbid_campaign_late_charges_total{campaign=\"c\"}"),
        1
    );
    assert_eq!(call(&server, &notice(&bid["burl"], "1.2")), 200);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        metric_f64(&server, SPEND),
        1200.0,
        "a late duplicate is not charged"
    );
}

#[test]
fn an_expired_notice_is_refused() {
    let (server, _dir) = start(
        vec![campaign("c", "2.00", json!({}))],
        "[money]\nwin_timeout_ms = 1000\nnotice_max_age_s = 1\n",
    );
    let bid = bid_of(&server.bid(&request("a", None))).expect("a bid");
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(call(&server, &notice(&bid["burl"], "1")), 403);
    assert_eq!(
        server.metric("shardbid_notices_rejected_total{reason=\"expired\"}"),
        1
    );
}

/// A loss notice carries the winner's price, above the bid as a rule: it releases the
/// reservation. A campaign removed by a reload is still charged for the bids it made
/// before; after a restart without it, its notices are logged, charging nothing.
#[test]
fn a_loss_above_the_bid_releases_and_removed_campaigns_are_accounted() {
    let events = TempDir::new("events-removed");
    let env = vec![(
        "SHARDBID_EVENTS_DIR".to_string(),
        events.0.display().to_string(),
    )];
    let dir = TempDir::new("money");
    let c = campaign("c", "2.00", json!({"budget": {"total": "10.00"}}));
    let d = campaign("d", "1.00", json!({"budget": {"total": "10.00"}}));
    let both = common::write_file(
        &dir.0,
        "both.json",
        &json!({ "campaigns": [c, d] }).to_string(),
    );
    let only_d = json!({ "campaigns": [d] }).to_string();
    let only_d_path = common::write_file(&dir.0, "d.json", &only_d);
    let opts = |campaigns: &Path| Options {
        config: Some(String::new()),
        campaigns: Some(campaigns.to_path_buf()),
        env: env.clone(),
        ..Options::default()
    };
    let mut first = Server::start_with(opts(&both));
    let reserved = "shardbid_campaign_reserved_micros{campaign=\"c\"}";
    let lost = bid_of(&first.bid(&request("a", None))).expect("a bid");
    eventually("the reservation", || metric_f64(&first, reserved) == 2000.0);
    assert_eq!(call(&first, &notice(&lost["lurl"], "3.10")), 200);
    eventually("the release", || metric_f64(&first, reserved) == 0.0);

    let won = bid_of(&first.bid(&request("b", None))).expect("a bid");
    let later = bid_of(&first.bid(&request("c", None))).expect("a bid");
    assert_eq!((&won["cid"], &later["cid"]), (&json!("c"), &json!("c")));
    let put = first
        .admin()
        .send("PUT", "/admin/campaigns", &[], only_d.as_bytes());
    assert_eq!(put.status, 200, "{}", put.text());
    assert_eq!(call(&first, &notice(&won["burl"], "1.5")), 200);
    eventually("the charge", || metric_f64(&first, SPEND) == 1500.0);
    stop(&mut first);

    let mut second = Server::start_with(opts(&only_d_path));
    assert_eq!(call(&second, &notice(&later["burl"], "1.25")), 200);
    eventually("the notice", || {
        second.metric("shardbid_notices_total{kind=\"billing\",outcome=\"noted\"}") == 1
    });
    stop(&mut second);
    let lines = event_lines(&events.0);
    let loss = lines.iter().find(|l| l["type"] == "loss").unwrap();
    assert_eq!(loss["price_micros"], 3_100_000);
    let billed: Vec<&Value> = lines.iter().filter(|l| l["type"] == "billing").collect();
    assert_eq!(billed.len(), 2, "{billed:?}");
    assert_eq!(billed[0]["charged_micros"], 1500);
    assert_eq!(billed[1]["bid_id"], later["id"]);
    assert_eq!(billed[1]["price_micros"], 1_250_000);
    assert!(billed[1].get("charged_micros").is_none(), "{}", billed[1]);
}

/// Spend and settled notices come back from the event log: a restarted server counts
/// what was spent against the budget, and a retried notice is still a duplicate.
#[test]
fn spend_survives_a_restart() {
    let events = TempDir::new("events-restart");
    let campaigns = vec![campaign("c", "2.00", json!({"budget": {"total": "1.00"}}))];
    let env = vec![(
        "SHARDBID_EVENTS_DIR".to_string(),
        events.0.display().to_string(),
    )];
    let dir = TempDir::new("money");
    let path = common::write_file(
        &dir.0,
        "c.json",
        &json!({ "campaigns": campaigns }).to_string(),
    );
    let opts = || Options {
        config: Some(String::new()),
        campaigns: Some(path.clone()),
        env: env.clone(),
        ..Options::default()
    };
    let mut first = Server::start_with(opts());
    let bid = bid_of(&first.bid(&request("a", None))).expect("a bid");
    let billing = notice(&bid["burl"], "1.75");
    assert_eq!(call(&first, &billing), 200);
    eventually("the charge", || metric_f64(&first, SPEND) == 1750.0);
    stop(&mut first);

    let second = Server::start_with(opts());
    assert!(second
        .log
        .lock()
        .unwrap()
        .contains("Spend restored from the event log"));
    let live =
        |s: &Server| s.admin().get("/admin/campaigns").json()["live"]["campaigns"]["c"].clone();
    eventually("restored spend", || live(&second)["spend_micros"] == 1750);
    // The counter counts this process's charges: a restart reads as a reset, not a spike.
    assert_eq!(metric_f64(&second, SPEND), 0.0);
    assert_eq!(call(&second, &billing), 200);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        second.metric("shardbid_notices_total{kind=\"billing\",outcome=\"duplicate\"}"),
        1
    );
    assert_eq!(live(&second)["spend_micros"], 1750);
    assert_eq!(live(&second)["remaining_total_micros"], 1_000_000 - 1750);
}

/// What `GET /admin/campaigns` returns, `PUT /admin/campaigns` takes back unchanged.
#[test]
fn the_campaign_listing_can_be_put_back_as_it_is() {
    let server = Server::start();
    let listed = server.admin().get("/admin/campaigns");
    assert_eq!(listed.status, 200);
    let doc = listed.json();
    assert!(doc["live"]["campaigns"].as_object().unwrap().len() > 10);
    let put = server
        .admin()
        .send("PUT", "/admin/campaigns", &[], listed.text().as_bytes());
    assert_eq!(put.status, 200, "{}", put.text());
    assert_eq!(
        server.admin().get("/admin/campaigns").json()["campaigns"],
        doc["campaigns"]
    );
}

/// Under load with notices, then SIGTERM: every event the shards accepted is on disk,
/// and per type the log's lines are what the server counted.
#[test]
fn sigterm_under_load_leaves_every_event_on_disk() {
    let (mut server, _dir) = start(
        vec![campaign(
            "c",
            "1.00",
            json!({"budget": {"total": "1000.00"}}),
        )],
        "[server]\ndrain_delay_ms = 200\n",
    );
    let events = server.events_dir.clone();
    let stop_flag = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (stop_flag, addr) = (stop_flag.clone(), server.traffic);
            std::thread::spawn(move || {
                let mut conn = Conn::open(addr);
                let mut i = 0;
                while !stop_flag.load(Ordering::Relaxed) {
                    conn.write_request(
                        "POST",
                        "/openrtb2/bid",
                        &[],
                        &request(&format!("{w}-{i}"), None),
                    );
                    let Some(r) = conn.read_response() else { break };
                    if let Some(b) = bid_of(&r) {
                        let url = notice(&b[["burl", "lurl"][i % 2]], "0.5");
                        conn.write_request("GET", &url, &[], b"");
                        if conn.read_response().is_none() {
                            break;
                        }
                    }
                    i += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    server.signal("TERM");
    std::thread::sleep(Duration::from_millis(300));
    stop_flag.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let status = server.wait(Duration::from_secs(15)).expect("exits");
    assert!(status.success());
    let log = server.log.lock().unwrap().clone();
    let closed = log
        .lines()
        .find(|l| l.contains("Event log closed"))
        .unwrap_or_else(|| panic!("{log}"));
    let lines = event_lines(&events);
    for kind in ["bid", "win", "billing", "loss", "expired", "rejected"] {
        let logged: usize = closed
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{kind}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{kind} in {closed}"));
        assert_eq!(count(&lines, kind), logged, "{kind}");
    }
    assert!(
        count(&lines, "bid") > 50 && count(&lines, "billing") > 10,
        "{closed}"
    );
    assert!(
        !log.contains("Event log: the events written differ"),
        "{log}"
    );
    // Spend in the log is the sum of the charges.
    let charged: f64 = lines
        .iter()
        .filter_map(|l| l["charged_micros"].as_f64())
        .sum();
    assert_eq!(charged, 500.0 * count(&lines, "billing") as f64);
}
