//! The operator's monitoring files, checked with the real tools.
//!
//! - `config/prometheus/alerts.yml` passes `promtool check rules`, and its unit tests,
//!   `alerts_test.yml`, pass `promtool test rules`.
//! - Every alert links to a section of `docs/operations.md` that exists.
//! - A real Prometheus (scraping every second, evaluating the rules every second)
//!   scrapes a real shardbid while the test puts traffic through it that moves every
//!   series: every outcome, no-bid reason and exchange path, four table changes, a
//!   stalled send, and the money side: notices of every kind and outcome (charged,
//!   duplicate, marked, released, late, noted), every reason to refuse one, a frequency
//!   cap, a spent budget, even pacing, the kill switch, a full bid ledger, dropped
//!   events, and an admin request without the token. Then every alert expression and every dashboard query goes through
//!   Prometheus's HTTP API (`/api/v1/query`): each must parse and return at least one
//!   series, and `/api/v1/rules` must list every alert as loaded and healthy. Every
//!   metric the server exposes must appear in the dashboard and in the operations
//!   manual.
//! - The server runs the sample config with four limits lowered so that the load can
//!   reach them in seconds ([`config`]), and an admin token, which Prometheus reads from
//!   a credentials file as docs/operations.md tells operators to.
//!
//! How the queries are made to return something:
//! - An alert returns nothing while it does not fire. Each alert's expression, as
//!   Prometheus lists it in `/api/v1/rules`, runs whole (it must parse), then with its
//!   final threshold comparison removed (`<value> > 0.05` becomes `<value>`), which must
//!   return a series. The rules file writes every alert as `<value> <comparison>
//!   <number>`; an alert written any other way fails this test.
//! - Dashboard queries hold Grafana's variables: `$job` becomes `shardbid` (the scrape
//!   job the alert rules expect), `$instance` and `$campaign` `.+` (the dashboard's
//!   "All") and `$__rate_interval` `1m`. Any other variable fails the test.
//! - Windows stay as written. Prometheus computes `rate()` from any two samples inside
//!   the window, so the alerts' 2m to 6h windows and the dashboard's 1m evaluate over the
//!   few seconds of one-second samples this test collects.
//!
//! `prometheus` and `promtool` come from the Debian package `prometheus`, which CI
//! installs (`.ci/run`). Without them these tests fail; they never skip.

mod common;
#[path = "monitoring/prometheus.rs"]
mod prometheus;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{fixture, root, Conn, Options, Server, FIXTURES, TEST_NOTICE_KEY};
use prometheus::{tool, Prometheus};
use serde_json::{json, Value};
use shardbid::money::notice::{BidFacts, NoticeKey, NoticeKind};
use shardbid::money::Micros;

const ALERTS: &str = "config/prometheus/alerts.yml";
const ALERT_TESTS: &str = "config/prometheus/alerts_test.yml";
const DASHBOARD: &str = "config/grafana/shardbid.json";
const OPERATIONS: &str = "docs/operations.md";

/// The scrape job the alert rules select (`up{job="shardbid"}`).
const JOB: &str = "shardbid";

/// The test server's `admin.token`.
const ADMIN_TOKEN: &str = "monitoring-admin-token-0123456789";

/// Grafana's variables and what the test puts in their place.
const VARIABLES: [(&str, &str); 4] = [
    ("$__rate_interval", "1m"),
    ("$instance", ".+"),
    ("$campaign", ".+"),
    ("$job", JOB),
];

#[test]
fn alert_rules_pass_promtool() {
    for args in [["check", "rules", ALERTS], ["test", "rules", ALERT_TESTS]] {
        let out = tool("promtool")
            .args(args)
            .current_dir(root())
            .output()
            .expect("run promtool");
        assert!(
            out.status.success(),
            "promtool {} failed ({}):\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn every_alert_links_to_a_runbook_section() {
    let rules = read(ALERTS);
    let anchors: Vec<String> = read(OPERATIONS)
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|h| anchor(h.trim_start_matches('#')))
        .collect();
    let alerts = rules.matches("- alert:").count();
    let links: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("runbook_url:"))
        .map(|v| v.trim().trim_matches('"'))
        .collect();
    assert_eq!(links.len(), alerts, "every alert needs a runbook_url");
    for link in links {
        let target = link.strip_prefix("docs/operations.md#");
        assert!(
            target.is_some_and(|a| anchors.iter().any(|h| h == a)),
            "{link}: no such section in {OPERATIONS}"
        );
    }
}

#[test]
fn prometheus_evaluates_every_alert_and_dashboard_query() {
    let server = Server::start_with(Options {
        config: Some(config()),
        env: vec![("SHARDBID_ADMIN_TOKEN".into(), ADMIN_TOKEN.into())],
        ..Options::default()
    });
    let mut prom = Prometheus::start(server.admin, JOB, &root().join(ALERTS), ADMIN_TOKEN);
    // Prometheus applies new scrape targets every 5 s: the first scrape comes about 5 s
    // after it starts, and the traffic goes after it so that rates have a before.
    prom.wait_for("first scrape", |p| {
        p.value(&format!("up{{job=\"{JOB}\"}}")) == Some(1.0)
    });

    let _open = drive_load(&server);
    drive_money(&server);
    let page = until_every_series_moved(&server);

    // Wait until Prometheus holds samples from before and after the traffic.
    let served: u64 = server
        .per_shard("shardbid_shard_http_requests_total")
        .iter()
        .sum();
    prom.wait_for("scrape after the traffic", |p| {
        p.value("sum(shardbid_shard_http_requests_total)") == Some(served as f64)
            && p.value(&format!("count_over_time(up{{job=\"{JOB}\"}}[1m])")) >= Some(3.0)
    });
    prom.wait_for("evaluation of every rule", |p| {
        p.alert_rules().iter().all(|r| r["health"] != "unknown")
    });

    let mut failures = check_alerts(&prom);
    let queries = dashboard_queries();
    failures.extend(check_dashboard(&prom, &queries));
    failures.extend(check_coverage(&page, &queries));
    assert!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every alert in the file is loaded and healthy, has a severity, a `for`, its three
/// annotations, parses, and returns a series without its threshold.
fn check_alerts(prom: &Prometheus) -> Vec<String> {
    let mut failures = Vec::new();
    let rules = prom.alert_rules();
    let loaded: Vec<&str> = rules.iter().filter_map(|r| r["name"].as_str()).collect();
    for line in read(ALERTS).lines() {
        if let Some(name) = line.trim().strip_prefix("- alert:").map(str::trim) {
            if !loaded.contains(&name) {
                failures.push(format!("alert {name}: not listed by /api/v1/rules"));
            }
        }
    }
    for rule in &rules {
        let name = rule["name"].as_str().unwrap_or("?");
        let query = rule["query"].as_str().unwrap_or_default();
        if rule["health"] != "ok" {
            failures.push(format!(
                "alert {name}: health {}, {}",
                rule["health"], rule["lastError"]
            ));
        }
        if !matches!(
            rule["labels"]["severity"].as_str(),
            Some("critical" | "warning")
        ) {
            failures.push(format!("alert {name}: severity is not critical or warning"));
        }
        if rule["duration"].as_f64().unwrap_or(0.0) <= 0.0 {
            failures.push(format!("alert {name}: no `for:`"));
        }
        for key in ["summary", "description", "runbook_url"] {
            if rule["annotations"][key].as_str().unwrap_or("").is_empty() {
                failures.push(format!("alert {name}: no {key} annotation"));
            }
        }
        if let Err(e) = prom.query(query) {
            failures.push(format!("alert {name}: {e}\n    {query}"));
        }
        match without_threshold(query) {
            Some(value) => failures.extend(prom.expect_series(&format!("alert {name}"), value)),
            None => failures.push(format!(
                "alert {name}: not written `<value> <comparison> <number>`: {query}"
            )),
        }
    }
    failures
}

/// Every dashboard query returns a series, and so does the metric behind each
/// `label_values(metric, label)` template variable.
fn check_dashboard(prom: &Prometheus, queries: &[(String, String)]) -> Vec<String> {
    let mut failures = Vec::new();
    let mut check = |what: &str, expr: &str| match substitute(expr) {
        Ok(q) => failures.extend(prom.expect_series(what, &q)),
        Err(e) => failures.push(format!("{what}: {e}")),
    };
    for (what, expr) in queries {
        check(what, expr);
    }
    let dashboard: Value = serde_json::from_str(&read(DASHBOARD)).expect("dashboard JSON");
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let query = var["query"]["query"].as_str().or(var["query"].as_str());
        let metric = query
            .and_then(|q| q.strip_prefix("label_values("))
            .and_then(|q| q.rsplit_once(','))
            .map(|(m, _)| m);
        if let Some(metric) = metric {
            check(
                &format!("variable ${}", var["name"].as_str().unwrap_or("?")),
                metric,
            );
        }
    }
    failures
}

/// Every metric family on the page is used by a dashboard query and described (in
/// backquotes) in the operations manual.
fn check_coverage(page: &str, queries: &[(String, String)]) -> Vec<String> {
    let manual = read(OPERATIONS);
    let mut failures = Vec::new();
    for family in page.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let name = family.split(' ').next().unwrap_or_default();
        if !queries.iter().any(|(_, e)| e.contains(name)) {
            failures.push(format!("metric {name}: no dashboard panel uses it"));
        }
        if !manual.contains(&format!("`{name}`")) {
            failures.push(format!("metric {name}: not described in {OPERATIONS}"));
        }
    }
    failures
}

/// `<value> <comparison> <number>` → `<value>`, as Prometheus prints expressions.
fn without_threshold(query: &str) -> Option<&str> {
    let (rest, number) = query.trim_end().rsplit_once(' ')?;
    number.parse::<f64>().ok()?;
    let (value, op) = rest.trim_end().rsplit_once(' ')?;
    ["==", "!=", ">", "<", ">=", "<="]
        .contains(&op)
        .then_some(value.trim())
}

/// Every `targets[].expr` of the dashboard, named by panel title and query id.
fn dashboard_queries() -> Vec<(String, String)> {
    let dashboard: Value = serde_json::from_str(&read(DASHBOARD)).expect("dashboard JSON");
    let mut queries = Vec::new();
    panel_queries(&dashboard["panels"], &mut queries);
    queries
}

/// The queries of `panels`, rows' nested panels included.
fn panel_queries(panels: &Value, out: &mut Vec<(String, String)>) {
    for panel in panels.as_array().into_iter().flatten() {
        let title = panel["title"].as_str().unwrap_or("?");
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                let reference = target["refId"].as_str().unwrap_or("?");
                out.push((format!("panel \"{title}\" {reference}"), expr.to_string()));
            }
        }
        panel_queries(&panel["panels"], out);
    }
}

fn substitute(expr: &str) -> Result<String, String> {
    let mut q = expr.to_string();
    for (name, value) in VARIABLES {
        q = q.replace(name, value);
    }
    match q.find('$') {
        Some(i) => Err(format!("unknown variable at `{}`", &q[i..])),
        None => Ok(q),
    }
}

/// Puts traffic through every path that moves a series, and returns keep-alive
/// connections still open (so the open-connections gauge is not zero).
fn drive_load(server: &Server) -> Vec<Conn> {
    let fixtures: Vec<Vec<u8>> = FIXTURES.iter().map(|f| fixture(f)).collect();
    // 32 connections: the kernel's hash alone leaves one shard more than two
    // connections ahead, so the balancer hands some over.
    let mut conns: Vec<Conn> = (0..32).map(|_| server.conn()).collect();
    let paths = [
        "/openrtb2/bid",
        "/openrtb2/bid/example",
        "/openrtb2/bid/adx",
    ];
    for (i, conn) in conns.iter_mut().enumerate() {
        for body in &fixtures {
            let status = conn.post(paths[i % paths.len()], body).status;
            assert!(matches!(status, 200 | 204), "{status}");
        }
        assert_eq!(conn.get("/readyz").status, 200);
    }

    // Every no-bid reason the sample campaigns allow, and a late answer.
    let conn = &mut conns[0];
    let all_categories: Vec<String> = (1..=26).map(|i| format!("IAB{i}")).collect();
    for edit in [
        json!({"cur": ["JPY"]}),
        json!({"imp": [{"id": "1", "bidfloor": 1000.0, "banner": {"w": 300, "h": 250}}]}),
        json!({"imp": [{"id": "1", "banner": {"w": 1, "h": 1}}]}),
        json!({"bcat": all_categories}),
        json!({"imp": [{"id": "1", "banner": {"w": 300, "h": 250},
                        "pmp": {"private_auction": 1, "deals": [{"id": "no-such-deal"}]}}]}),
        json!({"tmax": 1}),
    ] {
        let resp = conn.post("/openrtb2/bid", &banner(edit.clone()));
        assert_eq!(resp.status, 204, "{edit}: {}", resp.text());
    }

    // Client errors: 400, 415, 413.
    for body in [&b"{\"id\": "[..], &b"{\"id\": \"no-imp\"}"[..]] {
        assert_eq!(conn.post("/openrtb2/bid", body).status, 400);
    }
    for header in [("content-type", "text/html"), ("content-encoding", "br")] {
        let resp = conn.send("POST", "/openrtb2/bid", &[header], &fixtures[0]);
        assert_eq!(resp.status, 415);
    }
    let mut big = server.conn();
    big.stream
        .write_all(b"POST /openrtb2/bid HTTP/1.1\r\nhost: t\r\ncontent-length: 1000000\r\n\r\n")
        .unwrap();
    assert_eq!(big.read_response().expect("413").status, 413);

    // Table 2: one campaign that skips test requests and whose markup (8 MiB) is more
    // than the sockets' buffers hold, so its response stalls while the client reads
    // nothing.
    let huge = "x".repeat(8 << 20);
    install(
        server,
        &campaign("huge", true, json!({"test_requests": false}), &huge),
        2,
    );
    let resp = conns[0].post("/openrtb2/bid", &banner(json!({"test": 1})));
    assert_eq!(resp.status, 204, "test request, no campaign for it");
    let mut slow = server.conn();
    let body = banner(json!({}));
    slow.write_request("POST", "/openrtb2/bid", &[], &body);
    let deadline = Instant::now() + Duration::from_secs(5);
    while stalls(server) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let resp = slow.read_response().expect("the stalled response");
    assert!(resp.status == 200 && resp.body.len() > 8 << 20);

    // An admin request without the token.
    assert_eq!(Conn::open(server.admin).get("/metrics").status, 401);

    // Table 3: no active campaign. Table 4: the campaigns file again.
    install(server, &campaign("off", false, json!({}), "<b>off</b>"), 3);
    assert_eq!(conns[0].post("/openrtb2/bid", &body).status, 204);
    let resp = server.admin().post("/admin/reload", b"");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["version"], 4);
    conns
}

/// The simple-banner fixture with `edit`'s fields replacing its own, and a long tmax.
fn banner(edit: Value) -> Vec<u8> {
    let mut req: Value = serde_json::from_slice(&fixture("simple-banner.json")).unwrap();
    req["tmax"] = json!(10_000);
    for (k, v) in edit.as_object().unwrap() {
        req[k] = v.clone();
    }
    serde_json::to_vec(&req).unwrap()
}

fn campaign(id: &str, active: bool, targeting: Value, adm: &str) -> Value {
    json!({"campaigns": [{
        "id": id, "active": active, "adomain": ["monitoring.example"], "bid_cpm": "1.00",
        "targeting": targeting,
        "creatives": [{"id": id, "kind": "banner", "w": 300, "h": 250, "adm": adm}]
    }]})
}

fn install(server: &Server, set: &Value, version: u64) {
    let body = serde_json::to_vec(set).unwrap();
    let resp = server.admin().send(
        "PUT",
        "/admin/campaigns",
        &[("content-type", "application/json")],
        &body,
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["version"], version);
}

fn stalls(server: &Server) -> u64 {
    server
        .per_shard("shardbid_shard_sends_stalled_total")
        .iter()
        .sum()
}

/// Series that stay at 0 whatever the load, because nothing the server does can move
/// them: a loss notice never charges or marks a bid, and only a loss releases one.
/// They are exported so that every kind has every outcome.
const NEVER_MOVE: [&str; 5] = [
    "shardbid_notices_total{kind=\"win\",outcome=\"released\"}",
    "shardbid_notices_total{kind=\"billing\",outcome=\"released\"}",
    "shardbid_notices_total{kind=\"loss\",outcome=\"charged\"}",
    "shardbid_notices_total{kind=\"loss\",outcome=\"late\"}",
    "shardbid_notices_total{kind=\"loss\",outcome=\"marked\"}",
];

/// Series this load leaves at 0: they need a client that idles for the keep-alive time
/// (150 s), reads none of its answers, more connections than a shard takes, or a
/// process out of descriptors. tests/limits.rs and tests/lifecycle.rs produce each
/// and check its count.
const NOT_DRIVEN: [&str; 17] = [
    "shardbid_connections_timed_out_total{timeout=\"idle\"}",
    "shardbid_connections_timed_out_total{timeout=\"send\"}",
    "shardbid_connections_refused_total",
    "shardbid_accept_errors_total{cause=\"no_descriptors\"}",
    "shardbid_accept_errors_total{cause=\"other\"}",
    // Trims need hundreds of connections to close (tests/memory.rs drives them).
    "shardbid_memory_trims_total",
    "shardbid_memory_returned_bytes_total",
    // Exchange quotas and load shedding: tests/overload.rs drives them (test servers
    // run without shedding).
    "shardbid_bid_requests_total{outcome=\"rate_limited\"}",
    "shardbid_nobid_total{reason=\"quota\"}",
    "shardbid_nobid_total{reason=\"overload\"}",
    // Compressed bodies and gzip responses: tests/encoding.rs drives them.
    "shardbid_compressed_requests_total{encoding=\"gzip\"}",
    "shardbid_compressed_requests_total{encoding=\"deflate\"}",
    "shardbid_compressed_responses_total{encoding=\"gzip\"}",
    // The network ring's buffers running out, a client that sends and does not read,
    // and a closed connection's bytes nobody took for 5 s: tests/ring_io.rs drives the
    // first three.
    "shardbid_shard_ring_buffer_exhaustions_total",
    "shardbid_shard_ring_rearms_total",
    "shardbid_shard_ring_spills_total",
    "shardbid_shard_ring_linger_cancels_total",
];

/// Waits (up to 30 s) until every series on the page has moved, keeping money in
/// motion meanwhile ([`nudge`]): shards report to the bank every 10 ms and even pacing
/// steps every 5 s, so a money series moves a little after the load that moves it.
/// A connection that never sends a request is closed after the request timeout (10 s),
/// counted as a request timeout. Returns the page.
fn until_every_series_moved(server: &Server) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    let _silent = std::net::TcpStream::connect(server.traffic).unwrap();
    let mut conn = server.conn();
    loop {
        nudge(server, &mut conn);
        std::thread::sleep(Duration::from_millis(100));
        let page = server.admin().get("/metrics").text();
        let still = unmoved(&page);
        if still.is_empty() {
            return page;
        }
        assert!(
            Instant::now() < deadline,
            "the load did not move:\n{}\n{page}",
            still.join("\n")
        );
    }
}

/// The series on the page not above zero (counters that did not move, gauges that hold
/// nothing), but for [`NEVER_MOVE`]. Per-shard and per-campaign series count as one
/// per family (a hand-off, a stall or a pause happens on one shard or campaign); of a
/// histogram's buckets, `+Inf` stands for the rest.
fn unmoved(page: &str) -> Vec<String> {
    let mut still = Vec::new();
    let mut families: Vec<(&str, f64)> = Vec::new();
    for line in page.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let value: f64 = value.parse().unwrap_or(0.0);
        let name = series.split('{').next().unwrap_or(series);
        if series.contains("shard=\"") || series.contains("campaign=\"") {
            match families.iter_mut().find(|(n, _)| *n == name) {
                Some((_, sum)) => *sum += value,
                None => families.push((name, value)),
            }
        } else if (!name.ends_with("_bucket") || series.contains("le=\"+Inf\""))
            && value <= 0.0
            && !NEVER_MOVE.contains(&series)
            && !NOT_DRIVEN.contains(&series)
        {
            still.push(series.to_string());
        }
    }
    still.extend(
        families
            .iter()
            .filter(|(n, sum)| *sum <= 0.0 && !NOT_DRIVEN.contains(n))
            .map(|(n, _)| format!("{n} (every shard or campaign)")),
    );
    still
}

/// The sample config, with the limits the money load must reach in seconds lowered:
/// a reservation expires after 1 s (`expired` events, late charges), a shard's ledger
/// holds 1,024 bids (the least allowed) and its frequency-cap store one user, its
/// event buffer 4 KiB (the least allowed), and a request may carry 2,000 imps (to fill
/// the ledger in a few requests). `gdx` is an exchange that encrypts prices
/// as Google does, with the example keys of Google's documentation.
fn config() -> String {
    let mut text = read("config/shardbid.toml");
    for (from, to) in [
        ("win_timeout_ms = 300000", "win_timeout_ms = 1000"),
        (
            "reservations_per_shard = 1048576",
            "reservations_per_shard = 1024",
        ),
        (
            "frequency_cap_entries = 1048576",
            "frequency_cap_entries = 1",
        ),
        ("buffer_bytes = 4194304", "buffer_bytes = 4096"),
        ("max_imps = 50", "max_imps = 2000"),
        // Shedding stays off, as in every test server (tests/overload.rs turns it on):
        // on a busy machine a 10 ms target sheds requests whose answers are checked.
        ("shed_queue_delay_ms = 10", "shed_queue_delay_ms = 0"),
    ] {
        assert_eq!(
            text.matches(from).count(),
            1,
            "`{from}` in config/shardbid.toml"
        );
        text = text.replace(from, to);
    }
    text.push_str(
        "\n[exchanges.gdx]\nprice_encryption = \"google\"\n\
         encryption_key = \"skU7Ax_NL5pPAFyKdkfZjZz2-VhIN8bjj1rVFOaJ_5o=\"\n\
         integrity_key = \"arO23ykdNqUQ5LEoQ0FVmPkBd7xB5CO89PDZlSjpFxo=\"\n",
    );
    text
}

/// 1,900 micros (0.0019 CPM), encrypted with the `gdx` keys (Google's example), and the
/// same with one character changed.
const GOOGLE_PRICE: &str = "YWJjMTIzZGVmNDU2Z2hpN7fhCuPemCAWJRxOgA";
const GOOGLE_PRICE_ALTERED: &str = "YWJjMTIzZGVmNDU2Z2hpN7fhCuPemCde_6msaw";

/// Table 5: one campaign per money case, each alone on its site's domain.
fn money_campaigns() -> Value {
    let campaign = |id: &str, bid: &str, money: Value| {
        let mut c = json!({
            "id": id, "adomain": ["monitoring.example"], "bid_cpm": bid,
            "targeting": {"domains": {"allow": [format!("{id}.example")]}},
            "creatives": [{"id": id, "kind": "banner", "w": 300, "h": 250, "adm": "<b>ad</b>"}]
        });
        for (k, v) in money.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    json!({"campaigns": [
        campaign("spend", "2.00", json!({"budget": {"total": "100", "daily": "50"}})),
        campaign("cap", "2.00", json!({"budget": {"total": "100"},
                                       "frequency_cap": {"impressions": 1, "window_s": 3600}})),
        // Less than one bid's worth: every request is a budget no-bid.
        campaign("broke", "1.00", json!({"budget": {"total": "0.0005"}})),
        campaign("pause", "1.00", json!({"budget": {"total": "100"}})),
        campaign("even", "1.00", json!({"budget": {"daily": "1.00"}, "pacing": "even"})),
        campaign("bulk", "0.10", json!({"budget": {"total": "1000"}})),
    ]})
}

/// A request with `imps` 300x250 banners on `{site}.example`, for `user`.
fn money_request(site: &str, user: Option<&str>, imps: usize) -> Vec<u8> {
    let imp: Vec<Value> = (1..=imps)
        .map(|i| json!({"id": i.to_string(), "banner": {"w": 300, "h": 250}}))
        .collect();
    let mut req = json!({
        "id": format!("money-{site}"), "tmax": 10_000, "imp": imp,
        "site": {"domain": format!("{site}.example")},
    });
    if let Some(u) = user {
        req["user"] = json!({"id": u});
    }
    serde_json::to_vec(&req).unwrap()
}

/// The bid for a request on `{site}.example` at `path`, asked until one comes (within
/// 5 s): a shard bids on a campaign with a budget once the bank's lease reaches it.
fn bid_on(conn: &mut Conn, path: &str, site: &str, user: Option<&str>) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let resp = conn.post(path, &money_request(site, user, 1));
        if resp.status == 200 {
            return resp.json()["seatbid"][0]["bid"][0].clone();
        }
        assert_eq!(resp.status, 204, "{path} on {site}: {}", resp.text());
        assert!(
            Instant::now() < deadline,
            "no bid on {site} at {path} in 5 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Asks for a no-bid on `{site}.example` until one comes (within 5 s): a pause or an
/// impression reaches every shard on its next tick.
fn no_bid_on(conn: &mut Conn, site: &str, user: Option<&str>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while conn
        .post("/openrtb2/bid", &money_request(site, user, 1))
        .status
        != 204
    {
        assert!(Instant::now() < deadline, "still bids on {site} after 5 s");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A bid's notice URL (`nurl`, `burl`, `lurl`) as the exchange calls it: path and
/// query, `${AUCTION_PRICE}` filled with `price`, `${AUCTION_LOSS}` with 102.
fn notice(bid: &Value, member: &str, price: &str) -> String {
    let url = bid[member]
        .as_str()
        .unwrap_or_else(|| panic!("no {member} in {bid}"));
    url[url.find("/notice/").expect("a notice URL")..]
        .replace("${AUCTION_PRICE}", price)
        .replace("${AUCTION_LOSS}", "102")
}

/// The notice with one character of its signature changed.
fn forged(notice: &str) -> String {
    let i = notice.find("&s=").expect("a signature") + 3;
    let c = if notice[i..].starts_with('A') {
        "B"
    } else {
        "A"
    };
    format!("{}{c}{}", &notice[..i], &notice[i + 1..])
}

/// A notice signed here with the test servers' key, for a bid of an earlier process
/// (its id's epoch is 1): the server cannot tell it from one it wrote.
fn signed(kind: NoticeKind, campaign: &str, issued: u64) -> String {
    let key = NoticeKey::new(TEST_NOTICE_KEY.as_bytes(), "http://127.0.0.1").unwrap();
    let facts = BidFacts {
        auction_id: "monitoring",
        imp_id: "1",
        bid_id: "1-0-1",
        campaign,
        creative: campaign,
        bid: Micros(1_000_000),
        currency: "",
        exchange: "",
        issued,
        user: 0,
    };
    let mut url = Vec::new();
    key.write_url(kind, &facts, &mut url);
    let url = String::from_utf8(url).unwrap();
    url[url.find("/notice/").unwrap()..]
        .replace("${AUCTION_PRICE}", "0.5")
        .replace("${AUCTION_LOSS}", "102")
}

/// Sends a notice and checks the answer: `status` and, for a refusal, its reason.
fn expect(server: &Server, notice: &str, status: u16, reason: &str) {
    let resp = server.conn().get(notice);
    assert_eq!(resp.status, status, "{notice}: {}", resp.text());
    assert_eq!(resp.text().trim_end(), reason, "{notice}");
}

/// A campaign's spend, in micros.
fn spend(server: &Server, campaign: &str) -> f64 {
    let series = format!("shardbid_campaign_spend_micros_total{{campaign=\"{campaign}\"}} ");
    let page = server.admin().get("/metrics").text();
    page.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Puts the money side through every path that moves one of its series, on table 5
/// ([`money_campaigns`]). What the server did with each notice shows only in
/// `shardbid_notices_total`, which [`until_every_series_moved`] checks.
fn drive_money(server: &Server) {
    install(server, &money_campaigns(), 5);
    let mut conn = server.conn();

    // Bids whose notices come after their reservations expired (a late charge): on
    // /openrtb2/bid the billing notice charges, on `example` the win notice does.
    let late_billing = bid_on(&mut conn, "/openrtb2/bid", "spend", None);
    let late_win = bid_on(&mut conn, "/openrtb2/bid/example", "spend", None);
    let made = Instant::now();

    // Even pacing: one charge at the full price (1,000 times the day's budget per
    // second): the next pacing step throttles the campaign.
    let even = bid_on(&mut conn, "/openrtb2/bid", "even", None);
    expect(server, &notice(&even, "burl", "1.00"), 200, "");

    // One shard's ledger filled with 1,100-imp requests: once the bank's leases have
    // grown to it, the 1,025th reservation is refused, and the shard's 4 KiB event
    // buffer drops most of the bid events.
    let mut bulk = server.conn();
    let body = money_request("bulk", None, 1100);
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.metric("shardbid_reservations_refused_total") == 0 {
        assert!(Instant::now() < deadline, "the bid ledger never filled");
        let status = bulk.post("/openrtb2/bid", &body).status;
        assert!(matches!(status, 200 | 204), "{status}");
        std::thread::sleep(Duration::from_millis(20));
    }

    // A bid on /openrtb2/bid, which charges on billing: charged, then a duplicate; the
    // win notice only marks it; a loss after the charge is noted. A notice that reaches
    // another shard than the bid's is settled on that shard's next tick, so the loss
    // waits until the charge shows. Then every reason to refuse a notice that a bid's
    // own URLs can show.
    let bid = bid_on(&mut conn, "/openrtb2/bid", "spend", None);
    for _ in 0..2 {
        expect(server, &notice(&bid, "burl", "1.50"), 200, "");
        expect(server, &notice(&bid, "nurl", "1.50"), 200, "");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while spend(server, "spend") == 0.0 {
        assert!(Instant::now() < deadline, "the charge did not show in 5 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    expect(server, &notice(&bid, "lurl", ""), 200, "");
    expect(
        server,
        &forged(&notice(&bid, "burl", "1.50")),
        403,
        "forged",
    );
    expect(server, &notice(&bid, "burl", "1000"), 400, "above_bid");
    expect(server, &notice(&bid, "burl", "abc"), 400, "bad_price");
    expect(server, "/notice/billing?a=1", 400, "malformed");
    // A loss releases the reservation; its retry is a duplicate.
    let lost = bid_on(&mut conn, "/openrtb2/bid", "spend", None);
    for _ in 0..2 {
        expect(server, &notice(&lost, "lurl", ""), 200, "");
    }
    // `example` charges on win: the win notice charges, the billing notice marks.
    let won = bid_on(&mut conn, "/openrtb2/bid/example", "spend", None);
    expect(server, &notice(&won, "nurl", "1.50"), 200, "");
    expect(server, &notice(&won, "burl", "1.50"), 200, "");
    // `gdx` encrypts prices: an altered one fails its integrity check, a good one
    // charges.
    let google = bid_on(&mut conn, "/openrtb2/bid/gdx", "spend", None);
    expect(
        server,
        &notice(&google, "burl", GOOGLE_PRICE_ALTERED),
        403,
        "bad_price_signature",
    );
    expect(server, &notice(&google, "burl", GOOGLE_PRICE), 200, "");
    // Notices of an earlier process's bids: two hours old, refused; for a campaign this
    // process never loaded, noted (nothing to charge).
    let now = unix_now();
    expect(
        server,
        &signed(NoticeKind::Billing, "spend", now - 7200),
        403,
        "expired",
    );
    expect(server, &signed(NoticeKind::Win, "gone", now), 200, "");
    expect(server, &signed(NoticeKind::Billing, "gone", now), 200, "");

    // A frequency cap of one impression: after the first user's, they get no bid. A
    // second user's impression evicts the first's window (each shard holds one).
    let first = bid_on(&mut conn, "/openrtb2/bid", "cap", Some("user-1"));
    expect(server, &notice(&first, "burl", "1.00"), 200, "");
    no_bid_on(&mut conn, "cap", Some("user-1"));
    let second = bid_on(&mut conn, "/openrtb2/bid", "cap", Some("user-2"));
    expect(server, &notice(&second, "burl", "1.00"), 200, "");

    // A budget smaller than one bid.
    let resp = conn.post("/openrtb2/bid", &money_request("broke", None, 1));
    assert_eq!(resp.status, 204, "{}", resp.text());

    // The kill switch: paused, no bid; resumed, bids again; paused again, and left so
    // (shardbid_campaign_paused). An unknown campaign is 404.
    let switch = |id: &str, action: &str| {
        let resp = server
            .admin()
            .post(&format!("/admin/campaigns/{id}/{action}"), b"");
        (resp.status, resp.json())
    };
    let paused = json!({"campaign": "pause", "paused": true});
    assert_eq!(switch("pause", "pause"), (200, paused.clone()));
    no_bid_on(&mut conn, "pause", None);
    let resumed = json!({"campaign": "pause", "paused": false});
    assert_eq!(switch("pause", "resume"), (200, resumed));
    bid_on(&mut conn, "/openrtb2/bid", "pause", None);
    assert_eq!(switch("pause", "pause"), (200, paused));
    assert_eq!(switch("no-such-campaign", "pause").0, 404);

    // The late notices, once the reservations of their bids have expired (1 s after
    // the second they were made in, at the latest).
    std::thread::sleep(Duration::from_millis(2500).saturating_sub(made.elapsed()));
    expect(server, &notice(&late_billing, "burl", "1.00"), 200, "");
    expect(server, &notice(&late_win, "nurl", "1.00"), 200, "");
}

/// Money in motion while [`until_every_series_moved`] waits: a bid on the evenly paced
/// campaign charged at the least price (its actual pacing rate; once pacing throttles
/// it, most of these requests are pacing no-bids), and a bid left unsettled (a
/// reservation).
fn nudge(server: &Server, conn: &mut Conn) {
    for _ in 0..40 {
        let resp = conn.post("/openrtb2/bid", &money_request("even", None, 1));
        if resp.status == 200 {
            let bid = resp.json()["seatbid"][0]["bid"][0].clone();
            expect(server, &notice(&bid, "burl", "0.000001"), 200, "");
            break;
        }
    }
    let status = conn
        .post("/openrtb2/bid", &money_request("spend", None, 1))
        .status;
    assert!(matches!(status, 200 | 204), "{status}");
}

/// A heading's anchor as GitHub makes it: lower case, spaces to `-`, punctuation
/// other than `-` and `_` dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}
