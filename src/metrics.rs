//! Per-shard metrics, summed only when `/metrics` is scraped.
//!
//! Each shard owns one [`ShardMetrics`] on its own cache lines and is the only writer of
//! it. A counter increment is a relaxed load and store (plain `mov`s on x86): no
//! read-modify-write, no lock, no line shared with another core. The scraper reads with
//! relaxed loads and may see a value a few increments old, which is what a scrape means.

#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::auction::NoBidReason;

/// A counter with a single writer (its shard).
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    /// Publishes a count kept elsewhere by the same thread (it only ever grows).
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Relaxed);
    }

    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// A value that goes up and down, with a single writer (its shard).
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Relaxed);
    }

    #[inline]
    pub fn inc(&self) {
        self.set(self.get().wrapping_add(1));
    }

    /// Decrements, stopping at zero.
    #[inline]
    pub fn dec(&self) {
        self.set(self.get().saturating_sub(1));
    }

    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// How a bid request ended. Every variant is a label of `shardbid_bid_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Bid,
    NoBid(NoBidReason),
    BadRequest,
    TooLarge,
    UnsupportedMedia,
    Timeout,
}

impl Outcome {
    const LABELS: [&'static str; 6] = [
        "bid",
        "nobid",
        "bad_request",
        "too_large",
        "unsupported_media",
        "timeout",
    ];

    fn index(self) -> usize {
        match self {
            Outcome::Bid => 0,
            Outcome::NoBid(_) => 1,
            Outcome::BadRequest => 2,
            Outcome::TooLarge => 3,
            Outcome::UnsupportedMedia => 4,
            Outcome::Timeout => 5,
        }
    }
}

/// Upper bounds of the latency histogram buckets, in microseconds.
pub const LATENCY_BUCKETS_US: [u64; 14] = [
    25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 20_000, 50_000, 100_000, 250_000, 1_000_000,
];

/// One shard's counters. Aligned so that two shards' metrics never share a cache line.
#[derive(Debug)]
#[repr(align(128))]
pub struct ShardMetrics {
    /// Every HTTP request on the traffic listener (bid, health, errors).
    pub http_requests: Counter,
    outcomes: [Counter; 6],
    nobid: [Counter; NoBidReason::ALL.len()],
    /// Bid requests per exchange: index 0 is the exchange-less path, then config order.
    exchanges: Box<[Counter]>,
    /// Histogram of bid request handling time: one counter per bucket plus `+Inf`.
    latency: [Counter; LATENCY_BUCKETS_US.len() + 1],
    latency_sum_us: Counter,
    pub connections_open: Gauge,
    pub connections_total: Counter,
    /// Connections this shard accepted and handed to a less-loaded shard.
    pub connections_handed_off: Counter,
    /// Responses the client's socket did not take in full at once (see `http::outbox`).
    pub sends_stalled: Counter,
    pub table_version: Gauge,
    pub campaigns: Gauge,
}

impl ShardMetrics {
    pub fn new(exchanges: usize) -> ShardMetrics {
        ShardMetrics {
            http_requests: Counter::default(),
            outcomes: Default::default(),
            nobid: Default::default(),
            exchanges: (0..=exchanges).map(|_| Counter::default()).collect(),
            latency: Default::default(),
            latency_sum_us: Counter::default(),
            connections_open: Gauge::default(),
            connections_total: Counter::default(),
            connections_handed_off: Counter::default(),
            sends_stalled: Counter::default(),
            table_version: Gauge::default(),
            campaigns: Gauge::default(),
        }
    }

    /// Records one finished bid request.
    #[inline]
    pub fn record(&self, exchange: Option<u32>, outcome: Outcome, took: Duration) {
        self.outcomes[outcome.index()].inc();
        if let Outcome::NoBid(reason) = outcome {
            self.nobid[reason as usize].inc();
        }
        let slot = exchange.map_or(0, |e| e as usize + 1);
        if let Some(c) = self.exchanges.get(slot) {
            c.inc();
        }
        let us = took.as_micros().min(u64::MAX as u128) as u64;
        let bucket = LATENCY_BUCKETS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        self.latency[bucket].inc();
        self.latency_sum_us.add(us);
    }

    pub fn outcome(&self, outcome: Outcome) -> u64 {
        match outcome {
            Outcome::NoBid(reason) => self.nobid[reason as usize].get(),
            other => self.outcomes[other.index()].get(),
        }
    }
}

/// Renders every shard's metrics in the Prometheus text format (version 0.0.4).
pub fn render(shards: &[&ShardMetrics], exchanges: &[String], out: &mut String) {
    let sum = |f: &dyn Fn(&ShardMetrics) -> u64| shards.iter().map(|s| f(s)).sum::<u64>();

    header(
        out,
        "shardbid_bid_requests_total",
        "counter",
        "Bid requests by outcome.",
    );
    for (i, label) in Outcome::LABELS.iter().enumerate() {
        let _ = writeln!(
            out,
            "shardbid_bid_requests_total{{outcome=\"{label}\"}} {}",
            sum(&|s| s.outcomes[i].get())
        );
    }

    header(
        out,
        "shardbid_nobid_total",
        "counter",
        "Bid requests answered 204, by no-bid reason.",
    );
    for reason in NoBidReason::ALL {
        let v = sum(&|s| s.nobid[reason as usize].get());
        let _ = writeln!(
            out,
            "shardbid_nobid_total{{reason=\"{}\"}} {v}",
            reason.label()
        );
    }

    header(
        out,
        "shardbid_exchange_requests_total",
        "counter",
        "Bid requests by exchange (\"\" is /openrtb2/bid).",
    );
    for (i, name) in std::iter::once("")
        .chain(exchanges.iter().map(String::as_str))
        .enumerate()
    {
        let v = sum(&|s| s.exchanges.get(i).map_or(0, Counter::get));
        let _ = writeln!(
            out,
            "shardbid_exchange_requests_total{{exchange=\"{name}\"}} {v}"
        );
    }

    header(
        out,
        "shardbid_bid_duration_seconds",
        "histogram",
        "Time from when the shard picked the request up to its response, bid requests.",
    );
    let mut cumulative = 0;
    for (i, bound) in LATENCY_BUCKETS_US.iter().enumerate() {
        cumulative += sum(&|s| s.latency[i].get());
        let _ = writeln!(
            out,
            "shardbid_bid_duration_seconds_bucket{{le=\"{}\"}} {cumulative}",
            *bound as f64 / 1e6
        );
    }
    cumulative += sum(&|s| s.latency[LATENCY_BUCKETS_US.len()].get());
    let _ = writeln!(
        out,
        "shardbid_bid_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
    );
    let _ = writeln!(
        out,
        "shardbid_bid_duration_seconds_sum {}",
        sum(&|s| s.latency_sum_us.get()) as f64 / 1e6
    );
    let _ = writeln!(out, "shardbid_bid_duration_seconds_count {cumulative}");

    per_shard(
        out,
        shards,
        "shardbid_shard_http_requests_total",
        "counter",
        "HTTP requests per shard (shows how SO_REUSEPORT spreads connections).",
        |s| s.http_requests.get(),
    );
    per_shard(
        out,
        shards,
        "shardbid_shard_connections_open",
        "gauge",
        "Open connections per shard.",
        |s| s.connections_open.get(),
    );
    per_shard(
        out,
        shards,
        "shardbid_shard_connections_total",
        "counter",
        "Connections served per shard (accepted there or handed in by another shard).",
        |s| s.connections_total.get(),
    );
    per_shard(
        out,
        shards,
        "shardbid_shard_connections_handed_off_total",
        "counter",
        "Connections a shard accepted and handed to a less-loaded shard (server.balance_connections).",
        |s| s.connections_handed_off.get(),
    );
    per_shard(
        out,
        shards,
        "shardbid_shard_sends_stalled_total",
        "counter",
        "Responses the client's socket did not take in full at once (a slow reader); the rest followed as the socket drained.",
        |s| s.sends_stalled.get(),
    );
    per_shard(
        out,
        shards,
        "shardbid_shard_table_version",
        "gauge",
        "Targeting table version each shard serves.",
        |s| s.table_version.get(),
    );

    header(
        out,
        "shardbid_campaigns",
        "gauge",
        "Campaigns in the table served by shard 0.",
    );
    let _ = writeln!(
        out,
        "shardbid_campaigns {}",
        shards.first().map_or(0, |s| s.campaigns.get())
    );
    header(
        out,
        "shardbid_table_version",
        "gauge",
        "Lowest table version served by any shard.",
    );
    let _ = writeln!(
        out,
        "shardbid_table_version {}",
        shards
            .iter()
            .map(|s| s.table_version.get())
            .min()
            .unwrap_or(0)
    );
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn per_shard(
    out: &mut String,
    shards: &[&ShardMetrics],
    name: &str,
    kind: &str,
    help: &str,
    f: impl Fn(&ShardMetrics) -> u64,
) {
    header(out, name, kind, help);
    for (i, s) in shards.iter().enumerate() {
        let _ = writeln!(out, "{name}{{shard=\"{i}\"}} {}", f(s));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_shards_and_buckets() {
        let a = ShardMetrics::new(1);
        let b = ShardMetrics::new(1);
        a.record(None, Outcome::Bid, Duration::from_micros(30));
        b.record(
            Some(0),
            Outcome::NoBid(NoBidReason::BelowFloor),
            Duration::from_micros(700),
        );
        b.record(Some(0), Outcome::Timeout, Duration::from_secs(5));
        let mut out = String::new();
        render(&[&a, &b], &["adx".to_string()], &mut out);
        assert!(
            out.contains("shardbid_bid_requests_total{outcome=\"bid\"} 1\n"),
            "{out}"
        );
        assert!(out.contains("shardbid_nobid_total{reason=\"below_floor\"} 1\n"));
        assert!(out.contains("shardbid_exchange_requests_total{exchange=\"adx\"} 2\n"));
        assert!(out.contains("shardbid_bid_duration_seconds_bucket{le=\"0.00005\"} 1\n"));
        assert!(out.contains("shardbid_bid_duration_seconds_bucket{le=\"0.001\"} 2\n"));
        assert!(out.contains("shardbid_bid_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(out.contains("shardbid_bid_duration_seconds_count 3\n"));
        assert_eq!(b.outcome(Outcome::NoBid(NoBidReason::BelowFloor)), 1);
    }
}
