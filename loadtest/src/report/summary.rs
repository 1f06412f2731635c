//! The end-of-run summary: a table for people, or JSON for scripts.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;
use shardbid::money::Micros;

use super::stats::{Counters, Percentiles};
use crate::engine::{RunResult, RunSpec, SecondPoint};

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct LatencyMs {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl From<Percentiles> for LatencyMs {
    fn from(p: Percentiles) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        LatencyMs {
            count: p.count,
            mean: p.mean / 1000.0,
            p50: ms(p.p50),
            p90: ms(p.p90),
            p99: ms(p.p99),
            p999: ms(p.p999),
            max: ms(p.max),
        }
    }
}

/// How the requests ended.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Outcomes {
    /// 200 responses.
    pub bid: u64,
    /// 204 responses.
    pub no_bid: u64,
    pub other_2xx: u64,
    pub status_1xx_3xx: u64,
    /// 4xx responses by status code.
    pub status_4xx: BTreeMap<u16, u64>,
    /// 5xx responses by status code.
    pub status_5xx: BTreeMap<u16, u64>,
    pub timeout: u64,
    pub conn_error: u64,
    pub bad_response: u64,
}

/// Client-side events.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClientEvents {
    pub sent: u64,
    pub retries: u64,
    pub waited_for_connection: u64,
    pub waited_for_limiter: u64,
    pub dead_letter: u64,
    pub expired: u64,
    pub unsent_at_end: u64,
    pub unfinished_at_end: u64,
    pub connects: u64,
    pub connect_errors: u64,
}

/// The whole summary.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub mode: &'static str,
    pub targets: Vec<String>,
    pub connections: usize,
    pub threads: usize,
    pub bodies: usize,
    pub gzip: bool,
    pub duration_s: f64,
    pub warmup_s: f64,
    /// Requested arrival rate (open loop).
    pub rate: Option<f64>,
    pub limit: Option<u32>,
    pub latency_target_ms: Option<f64>,
    /// Requests created in the recorded window, and per second.
    pub offered: u64,
    pub offered_per_s: f64,
    /// Requests answered with an HTTP response, and per second.
    pub responses: u64,
    pub achieved_per_s: f64,
    /// From the intended send time (open loop) or the send (closed loop).
    pub latency_ms: LatencyMs,
    /// From the last write of the request to its response: the server's share.
    pub service_ms: LatencyMs,
    pub outcomes: Outcomes,
    /// Share of responses that were 200.
    pub bid_rate: f64,
    /// Responses that arrived after `--deadline` (from the intended send time), and
    /// 200s that arrived within it, per second (all 200s without a deadline).
    pub late: u64,
    pub goodput_per_s: f64,
    /// `"price"` fields in 200 responses.
    pub bids: u64,
    /// Mean bid price (CPM), exact to the micro-unit.
    pub mean_bid_price: Option<String>,
    pub price_sum: String,
    pub client: ClientEvents,
    pub seconds: Vec<SecondPoint>,
}

impl Summary {
    /// Summarises a finished run.
    pub fn new(spec: &RunSpec, result: &RunResult) -> Summary {
        let c: &Counters = &result.stats.counters;
        let secs = spec.duration.as_secs_f64();
        let per_s = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        let pick = |lo: u16, hi: u16| {
            c.statuses()
                .filter(|(s, _)| (lo..=hi).contains(s))
                .collect::<BTreeMap<u16, u64>>()
        };
        let outcomes = Outcomes {
            bid: c.bid_responses(),
            no_bid: c.no_bid_responses(),
            other_2xx: c.status_range(200, 299) - c.bid_responses() - c.no_bid_responses(),
            status_1xx_3xx: c.status_range(100, 199) + c.status_range(300, 399),
            status_4xx: pick(400, 499),
            status_5xx: pick(500, 599),
            timeout: c.timeout,
            conn_error: c.conn_error,
            bad_response: c.bad_response,
        };
        Summary {
            mode: if spec.open_loop() { "open" } else { "closed" },
            targets: spec.targets.iter().map(|t| t.url.clone()).collect(),
            connections: spec.connections,
            threads: result.threads,
            bodies: spec.bodies.len(),
            gzip: spec.gzip,
            duration_s: secs,
            warmup_s: spec.warmup.as_secs_f64(),
            rate: spec.rate,
            limit: spec.limit,
            latency_target_ms: spec.latency_target.map(|d| d.as_secs_f64() * 1000.0),
            offered: c.offered,
            offered_per_s: per_s(c.offered),
            responses: c.responses,
            achieved_per_s: per_s(c.responses),
            latency_ms: Percentiles::of(&result.stats.latency).into(),
            service_ms: Percentiles::of(&result.stats.service).into(),
            outcomes,
            bid_rate: if c.responses > 0 {
                c.bid_responses() as f64 / c.responses as f64
            } else {
                0.0
            },
            late: c.late,
            goodput_per_s: per_s(c.bids_in_time),
            bids: c.bids,
            mean_bid_price: (c.bids > 0)
                .then(|| Micros(c.price_micros / c.bids as i64).to_string()),
            price_sum: Micros(c.price_micros).to_string(),
            client: ClientEvents {
                sent: c.sent,
                retries: c.retries,
                waited_for_connection: c.waited_for_connection,
                waited_for_limiter: c.waited_for_limiter,
                dead_letter: c.dead_letter,
                expired: c.expired,
                unsent_at_end: c.unsent,
                unfinished_at_end: c.unfinished,
                connects: c.connects,
                connect_errors: c.connect_errors,
            },
            seconds: result.seconds.clone(),
        }
    }

    /// The summary as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The summary as a table.
    pub fn to_table(&self) -> String {
        let mut s = String::new();
        let pct = |n: u64, of: u64| {
            if of > 0 {
                100.0 * n as f64 / of as f64
            } else {
                0.0
            }
        };
        let _ = writeln!(
            s,
            "shardbid-load: {} loop, {} connection(s), {} thread(s), {:.1} s recorded after {:.1} s warm-up, {} bodies{}",
            self.mode,
            self.connections,
            self.threads,
            self.duration_s,
            self.warmup_s,
            self.bodies,
            if self.gzip { ", gzip" } else { "" }
        );
        for t in &self.targets {
            let _ = writeln!(s, "  target {t}");
        }
        let _ = writeln!(s);
        if let Some(r) = self.rate {
            let _ = writeln!(s, "  requested rate    {:>12.1} /s", r);
        }
        if let Some(l) = self.limit {
            let _ = writeln!(
                s,
                "  client limit      {:>12} /s per target{}",
                l,
                self.latency_target_ms
                    .map(|t| format!(", adaptive above p99 {t} ms"))
                    .unwrap_or_default()
            );
        }
        let _ = writeln!(
            s,
            "  offered           {:>12}   {:>10.1} /s",
            self.offered, self.offered_per_s
        );
        let _ = writeln!(
            s,
            "  responses         {:>12}   {:>10.1} /s",
            self.responses, self.achieved_per_s
        );
        let _ = writeln!(s);
        let row = |s: &mut String, name: &str, l: &LatencyMs| {
            let _ = writeln!(
                s,
                "  {name:<17} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                l.p50, l.p90, l.p99, l.p999, l.max, l.mean
            );
        };
        let _ = writeln!(
            s,
            "  latency (ms)            p50       p90       p99     p99.9       max      mean"
        );
        row(
            &mut s,
            if self.mode == "open" {
                "from intended"
            } else {
                "request"
            },
            &self.latency_ms,
        );
        row(&mut s, "service", &self.service_ms);
        let _ = writeln!(s);
        let o = &self.outcomes;
        let total = self.responses + o.timeout + o.conn_error + o.bad_response;
        let _ = writeln!(s, "  outcomes");
        let line = |s: &mut String, name: &str, n: u64| {
            let _ = writeln!(s, "    {name:<20} {n:>12}  {:>6.2}%", pct(n, total));
        };
        line(&mut s, "bid (200)", o.bid);
        line(&mut s, "no bid (204)", o.no_bid);
        if o.other_2xx > 0 {
            line(&mut s, "other 2xx", o.other_2xx);
        }
        if o.status_1xx_3xx > 0 {
            line(&mut s, "1xx/3xx", o.status_1xx_3xx);
        }
        for (code, n) in o.status_4xx.iter().chain(&o.status_5xx) {
            line(&mut s, &code.to_string(), *n);
        }
        let five: u64 = o.status_5xx.values().sum();
        line(&mut s, "5xx (all)", five);
        line(&mut s, "timeout", o.timeout);
        line(&mut s, "connection error", o.conn_error);
        if self.late > 0 {
            line(&mut s, "late (past deadline)", self.late);
        }
        if o.bad_response > 0 {
            line(&mut s, "bad response", o.bad_response);
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "  bid rate {:.2}%   bids {}   mean bid price {} CPM   (sum {})",
            100.0 * self.bid_rate,
            self.bids,
            self.mean_bid_price.as_deref().unwrap_or("-"),
            self.price_sum
        );
        let _ = writeln!(
            s,
            "  goodput {:.0}/s (200s within the deadline; all 200s without one)",
            self.goodput_per_s
        );
        let c = &self.client;
        let _ = writeln!(
            s,
            "  client: sent {}, retries {}, waited for a connection {}, held by the limiter {}, dead-lettered {}, expired {}, unsent at end {}, unfinished at end {}, connects {} ({} failed)",
            c.sent,
            c.retries,
            c.waited_for_connection,
            c.waited_for_limiter,
            c.dead_letter,
            c.expired,
            c.unsent_at_end,
            c.unfinished_at_end,
            c.connects,
            c.connect_errors
        );
        if c.unsent_at_end + c.unfinished_at_end + c.dead_letter + c.expired > 0 {
            let _ = writeln!(
                s,
                "  note: {} requests got no answer inside the run (queued, in flight, dropped or expired); the latency percentiles exclude them and understate the tail",
                c.unsent_at_end + c.unfinished_at_end + c.dead_letter + c.expired
            );
        }
        s
    }
}

/// The live line for one second, as printed to stderr while a run goes on.
pub fn progress_line(p: &SecondPoint) -> String {
    let mut s = format!(
        "[{:>4}s{}] {:>8} resp/s  p99 {:>8.3} ms  bid {:>5.1}%  errors {:>5}  queue {:>6}  in flight {:>5}",
        p.second + 1,
        if p.warmup {
            " warm-up"
        } else if p.drain {
            " drain"
        } else {
            ""
        },
        p.responses,
        p.p99_us as f64 / 1000.0,
        if p.responses > 0 { 100.0 * p.bid_responses as f64 / p.responses as f64 } else { 0.0 },
        p.errors,
        p.queue,
        p.in_flight
    );
    if let Some(l) = p.limit {
        let _ = write!(s, "  limit {l}/s");
    }
    if p.dead_letter + p.expired + p.retries > 0 {
        let _ = write!(
            s,
            "  dead {} expired {} retries {}",
            p.dead_letter, p.expired, p.retries
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::control::backoff::Backoff;
    use crate::http::target;
    use crate::report::stats::{record, Outcome, Stats};

    fn spec() -> RunSpec {
        RunSpec {
            targets: vec![
                target::parse("http://127.0.0.1:8080/openrtb2/bid/example", false).unwrap(),
            ],
            bodies: vec![b"{}".to_vec()],
            gzip: false,
            rate: Some(100.0),
            connections: 4,
            threads: 1,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            deadline: None,
            limit: None,
            latency_target: None,
            queue: 10,
            notices: None,
            backoff: Backoff {
                retries: 0,
                base: 1,
                max: 1,
            },
        }
    }

    fn result() -> RunResult {
        let mut stats = Stats::default();
        let c = &mut stats.counters;
        c.offered = 1000;
        c.sent = 1000;
        for i in 0..990u64 {
            let status = match i % 10 {
                0..=2 => 200,
                3 => 429,
                9 => 503,
                _ => 204,
            };
            c.count(Outcome::Status(status));
            record(&mut stats.latency, 1000 + i);
            record(&mut stats.service, 500 + i);
        }
        c.count(Outcome::Timeout);
        c.unsent = 9;
        // 297 bids at 1.25 and 0.000001 each: the mean must stay exact.
        c.bids = 297;
        c.price_micros = 297 * 1_250_001;
        RunResult {
            stats,
            seconds: Vec::new(),
            threads: 1,
            elapsed: Duration::from_secs(11),
        }
    }

    #[test]
    fn summary_figures_are_exact() {
        let s = Summary::new(&spec(), &result());
        assert_eq!(s.mode, "open");
        assert_eq!((s.offered, s.responses), (1000, 990));
        assert!((s.offered_per_s - 100.0).abs() < 1e-9);
        assert!((s.achieved_per_s - 99.0).abs() < 1e-9);
        assert_eq!(
            (s.outcomes.bid, s.outcomes.no_bid, s.outcomes.timeout),
            (297, 495, 1)
        );
        assert_eq!(s.outcomes.status_4xx.get(&429), Some(&99));
        assert_eq!(s.outcomes.status_5xx.get(&503), Some(&99));
        assert!((s.bid_rate - 0.3).abs() < 1e-9);
        assert_eq!(s.mean_bid_price.as_deref(), Some("1.250001"));
        assert_eq!(s.price_sum, "371.250297");
        assert!(
            (s.latency_ms.p50 - 1.495).abs() < 0.01,
            "{}",
            s.latency_ms.p50
        );
        assert!(s.latency_ms.max >= 1.989 && s.latency_ms.max < 1.991);
        assert!(s.service_ms.p99 < s.latency_ms.p99);
    }

    #[test]
    fn table_and_json_show_the_same_run() {
        let s = Summary::new(&spec(), &result());
        let table = s.to_table();
        assert!(table.contains("open loop, 4 connection(s)"));
        assert!(table.contains("bid (200)"));
        assert!(table.contains("429"));
        assert!(table.contains("mean bid price 1.250001 CPM"));
        assert!(table.contains("unsent at end 9"));
        assert!(table.contains("understate the tail"));
        let v: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        assert_eq!(v["outcomes"]["status_4xx"]["429"], 99);
        assert_eq!(v["outcomes"]["bid"], 297);
        assert_eq!(v["client"]["unsent_at_end"], 9);
        assert_eq!(v["mean_bid_price"], "1.250001");
        assert!(v["latency_ms"]["p999"].as_f64().unwrap() > 1.9);
    }

    #[test]
    fn progress_line_shows_rate_p99_errors_and_queue() {
        let p = SecondPoint {
            second: 4,
            warmup: false,
            drain: false,
            offered: 1000,
            responses: 998,
            bid_responses: 250,
            errors: 3,
            dead_letter: 0,
            expired: 2,
            retries: 0,
            p50_us: 400,
            p99_us: 1234,
            max_us: 5000,
            queue: 17,
            in_flight: 8,
            limit: Some(900),
        };
        let line = progress_line(&p);
        for want in [
            "[   5s]",
            "998 resp/s",
            "p99    1.234 ms",
            "bid  25.1%",
            "errors     3",
            "queue     17",
            "limit 900/s",
            "expired 2",
        ] {
            assert!(line.contains(want), "{want:?} not in {line:?}");
        }
    }
}
