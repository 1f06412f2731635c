//! The operator's monitoring files, checked with the real tools.
//!
//! - `config/prometheus/alerts.yml` passes `promtool check rules`, and its unit tests,
//!   `alerts_test.yml`, pass `promtool test rules`.
//! - Every alert links to a section of `docs/operations.md` that exists.
//! - A real Prometheus (scraping every second, evaluating the rules every second)
//!   scrapes a real shardbid while the test puts traffic through it that moves every
//!   series: every outcome, no-bid reason and exchange path, three table changes, a
//!   stalled send. Then every alert expression and every dashboard query goes through
//!   Prometheus's HTTP API (`/api/v1/query`): each must parse and return at least one
//!   series, and `/api/v1/rules` must list every alert as loaded and healthy. Every
//!   metric the server exposes must appear in the dashboard and in the operations
//!   manual.
//!
//! How the queries are made to return something:
//! - An alert returns nothing while it does not fire. Each alert's expression, as
//!   Prometheus lists it in `/api/v1/rules`, runs whole (it must parse), then with its
//!   final threshold comparison removed (`<value> > 0.05` becomes `<value>`), which must
//!   return a series. The rules file writes every alert as `<value> <comparison>
//!   <number>`; an alert written any other way fails this test.
//! - Dashboard queries hold Grafana's variables: `$job` becomes `shardbid` (the scrape
//!   job the alert rules expect), `$instance` `.+` (the dashboard's "All") and
//!   `$__rate_interval` `1m`. Any other variable fails the test.
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

use common::{fixture, root, Conn, Server, FIXTURES};
use prometheus::{tool, Prometheus};
use serde_json::{json, Value};

const ALERTS: &str = "config/prometheus/alerts.yml";
const ALERT_TESTS: &str = "config/prometheus/alerts_test.yml";
const DASHBOARD: &str = "config/grafana/shardbid.json";
const OPERATIONS: &str = "docs/operations.md";

/// The scrape job the alert rules select (`up{job="shardbid"}`).
const JOB: &str = "shardbid";

/// Grafana's variables and what the test puts in their place.
const VARIABLES: [(&str, &str); 3] = [
    ("$__rate_interval", "1m"),
    ("$instance", ".+"),
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
    let server = Server::start();
    let mut prom = Prometheus::start(server.admin, JOB, &root().join(ALERTS));
    // Prometheus applies new scrape targets every 5 s: the first scrape comes about 5 s
    // after it starts, and the traffic goes after it so that rates have a before.
    prom.wait_for("first scrape", |p| {
        p.value(&format!("up{{job=\"{JOB}\"}}")) == Some(1.0)
    });

    let _open = drive_load(&server);
    let page = server.admin().get("/metrics").text();
    assert_every_series_moved(&page);

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
    for header in [("content-type", "text/html"), ("content-encoding", "gzip")] {
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

/// Every series on the page is above zero: counters moved, gauges hold something.
/// Per-shard series count as one per family (a hand-off or a stall happens on one
/// shard); of a histogram's buckets, `+Inf` stands for the rest.
fn assert_every_series_moved(page: &str) {
    let mut still = Vec::new();
    let mut per_shard: Vec<(&str, f64)> = Vec::new();
    for line in page.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let value: f64 = value.parse().unwrap_or(0.0);
        let name = series.split('{').next().unwrap_or(series);
        if series.contains("shard=\"") {
            match per_shard.iter_mut().find(|(n, _)| *n == name) {
                Some((_, sum)) => *sum += value,
                None => per_shard.push((name, value)),
            }
        } else if (!name.ends_with("_bucket") || series.contains("le=\"+Inf\"")) && value <= 0.0 {
            still.push(series.to_string());
        }
    }
    still.extend(
        per_shard
            .iter()
            .filter(|(_, sum)| *sum <= 0.0)
            .map(|(n, _)| format!("{n} (every shard)")),
    );
    assert!(
        still.is_empty(),
        "the load did not move:\n{}\n{page}",
        still.join("\n")
    );
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
