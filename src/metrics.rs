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
use crate::encoding::Coding;
use crate::events::record::EventType;
use crate::money::notice::{NoticeKind, Rejection};
use crate::money::wallet::Settled;

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
    /// 429: the exchange was over its `max_qps`.
    RateLimited,
}

impl Outcome {
    const LABELS: [&'static str; 7] = [
        "bid",
        "nobid",
        "bad_request",
        "too_large",
        "unsupported_media",
        "timeout",
        "rate_limited",
    ];

    fn index(self) -> usize {
        match self {
            Outcome::Bid => 0,
            Outcome::NoBid(_) => 1,
            Outcome::BadRequest => 2,
            Outcome::TooLarge => 3,
            Outcome::UnsupportedMedia => 4,
            Outcome::Timeout => 5,
            Outcome::RateLimited => 6,
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
    outcomes: [Counter; Outcome::LABELS.len()],
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
    /// The network ring's receives ended for want of a free buffer, and armed again.
    pub ring_buffer_exhaustions: Counter,
    pub ring_rearms: Counter,
    /// Connections' unread bytes moved out of the ring's buffers (they were not reading).
    pub ring_spills: Counter,
    /// Closed connections whose last bytes the ring gave up on after its linger time.
    pub ring_linger_cancels: Counter,
    pub table_version: Gauge,
    /// The load shedder's current limit: requests per executor loop within the target.
    pub admission_limit: Gauge,
    pub campaigns: Gauge,
    /// Notices settled on this shard, by kind and by what they did.
    notices: [[Counter; SETTLED.len()]; 3],
    /// Notices this shard refused, by reason.
    notices_rejected: [Counter; Rejection::ALL.len()],
    /// Events this shard handed to the log, by type, and dropped for want of room.
    events: [Counter; EventType::ALL.len()],
    events_dropped: Counter,
    /// Bids refused because the shard's bid ledger was full of reservations.
    reservations_refused: Counter,
    cap_entries: Gauge,
    cap_evictions: Counter,
    /// What ended or kept out this shard's connections (see [`ConnCounts`]).
    conn: [Counter; 6],
    /// Compressed bid request bodies: gzip, deflate.
    compressed_requests: [Counter; 2],
    /// Bid responses sent gzipped.
    pub gzipped_responses: Counter,
}

/// A shard's connection counts, published on its housekeeping tick.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnCounts {
    /// Closed by each timeout: the request one (answered 408), idle keep-alive, and a
    /// client that took no bytes of a response.
    pub request_timeouts: u64,
    pub idle_timeouts: u64,
    pub send_timeouts: u64,
    /// Closed unread over `server.max_connections`.
    pub refused: u64,
    /// Failed accepts: out of descriptors (EMFILE/ENFILE), anything else.
    pub accept_no_descriptors: u64,
    pub accept_other: u64,
}

impl ConnCounts {
    fn array(&self) -> [u64; 6] {
        [
            self.request_timeouts,
            self.idle_timeouts,
            self.send_timeouts,
            self.refused,
            self.accept_no_descriptors,
            self.accept_other,
        ]
    }
}

/// A shard's money side's own counts, published on its housekeeping tick.
#[derive(Debug, Clone, Copy, Default)]
pub struct MoneyCounts {
    pub events_accepted: [u64; EventType::ALL.len()],
    pub events_dropped: u64,
    pub reservations_refused: u64,
    pub cap_entries: u64,
    pub cap_evictions: u64,
}

/// What a settled notice did, as metrics label it.
const SETTLED: [&str; 6] = [
    "charged",
    "late",
    "marked",
    "released",
    "noted",
    "duplicate",
];

fn settled_index(s: Settled) -> usize {
    match s {
        Settled::Charged { late: false, .. } => 0,
        Settled::Charged { late: true, .. } => 1,
        Settled::Marked => 2,
        Settled::Released => 3,
        Settled::Noted => 4,
        Settled::Duplicate => 5,
    }
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
            ring_buffer_exhaustions: Counter::default(),
            ring_rearms: Counter::default(),
            ring_spills: Counter::default(),
            ring_linger_cancels: Counter::default(),
            table_version: Gauge::default(),
            admission_limit: Gauge::default(),
            campaigns: Gauge::default(),
            notices: Default::default(),
            notices_rejected: Default::default(),
            events: Default::default(),
            events_dropped: Counter::default(),
            reservations_refused: Counter::default(),
            cap_entries: Gauge::default(),
            cap_evictions: Counter::default(),
            conn: Default::default(),
            compressed_requests: Default::default(),
            gzipped_responses: Counter::default(),
        }
    }

    /// Counts a compressed bid request body.
    pub fn compressed_request(&self, coding: Coding) {
        match coding {
            Coding::Gzip => self.compressed_requests[0].inc(),
            Coding::Deflate => self.compressed_requests[1].inc(),
            Coding::Identity => {}
        }
    }

    /// Counts a notice this shard settled.
    pub fn notice_settled(&self, kind: NoticeKind, settled: Settled) {
        self.notices[kind as usize][settled_index(settled)].inc();
    }

    /// Counts a notice this shard refused.
    pub fn notice_rejected(&self, why: Rejection) {
        if let Some(i) = Rejection::ALL.iter().position(|r| *r == why) {
            self.notices_rejected[i].inc();
        }
    }

    /// Takes the shard's connection counts (its housekeeping tick).
    pub fn publish_conns(&self, c: &ConnCounts) {
        for (counter, v) in self.conn.iter().zip(c.array()) {
            counter.set(v);
        }
    }

    /// Publishes the money side's own counts (the housekeeping tick).
    pub fn publish_money(&self, c: &MoneyCounts) {
        for (counter, n) in self.events.iter().zip(c.events_accepted) {
            counter.set(n);
        }
        self.events_dropped.set(c.events_dropped);
        self.reservations_refused.set(c.reservations_refused);
        self.cap_entries.set(c.cap_entries);
        self.cap_evictions.set(c.cap_evictions);
    }

    /// Events this shard handed to the log, by type.
    pub fn events_accepted(&self) -> [u64; EventType::ALL.len()] {
        std::array::from_fn(|i| self.events[i].get())
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
        "shardbid_shard_ring_buffer_exhaustions_total",
        "counter",
        "Connections whose receive the network ring ended because every receive buffer was in use (server.recv_buffers); each was armed again when buffers came back.",
        |s| s.ring_buffer_exhaustions.get(),
    );
    per_shard(
        out,
        shards,
        "shardbid_shard_ring_rearms_total",
        "counter",
        "Receives the network ring armed again after the kernel ended them (buffer exhaustion included).",
        |s| s.ring_rearms.get(),
    );
    per_shard(
        out,
        shards,
        "shardbid_shard_ring_spills_total",
        "counter",
        "Times a connection that was not reading had its unread bytes moved out of the network ring's shared receive buffers into its own memory, and its receive paused.",
        |s| s.ring_spills.get(),
    );
    per_shard(
        out,
        shards,
        "shardbid_shard_ring_linger_cancels_total",
        "counter",
        "Closed connections whose last bytes the client did not take within 5 s; the send was cancelled and the connection closed.",
        |s| s.ring_linger_cancels.get(),
    );
    header(
        out,
        "shardbid_connections_timed_out_total",
        "counter",
        "Traffic connections closed by a timeout: request (a new connection's first request, or a started one, not in full within http.header_read_timeout_ms; answered 408), idle (keep-alive), send (the client took none of a response for its timeout).",
    );
    for (i, t) in ["request", "idle", "send"].iter().enumerate() {
        let v = sum(&|s| s.conn[i].get());
        let _ = writeln!(
            out,
            "shardbid_connections_timed_out_total{{timeout=\"{t}\"}} {v}"
        );
    }
    header(
        out,
        "shardbid_connections_refused_total",
        "counter",
        "Traffic connections closed unread because their shard had server.max_connections open.",
    );
    let _ = writeln!(
        out,
        "shardbid_connections_refused_total {}",
        sum(&|s| s.conn[3].get())
    );
    header(
        out,
        "shardbid_accept_errors_total",
        "counter",
        "Failed accepts on the traffic listener: no_descriptors (EMFILE/ENFILE: the open-files limit), other.",
    );
    for (i, cause) in ["no_descriptors", "other"].iter().enumerate() {
        let v = sum(&|s| s.conn[4 + i].get());
        let _ = writeln!(out, "shardbid_accept_errors_total{{cause=\"{cause}\"}} {v}");
    }
    header(
        out,
        "shardbid_compressed_requests_total",
        "counter",
        "Bid requests whose body came compressed, by Content-Encoding.",
    );
    for (i, coding) in [Coding::Gzip, Coding::Deflate].iter().enumerate() {
        let v = sum(&|s| s.compressed_requests[i].get());
        let label = coding.label();
        let _ = writeln!(
            out,
            "shardbid_compressed_requests_total{{encoding=\"{label}\"}} {v}"
        );
    }
    header(
        out,
        "shardbid_compressed_responses_total",
        "counter",
        "Bid responses sent compressed, by Content-Encoding.",
    );
    let _ = writeln!(
        out,
        "shardbid_compressed_responses_total{{encoding=\"gzip\"}} {}",
        sum(&|s| s.gzipped_responses.get())
    );
    per_shard(
        out,
        shards,
        "shardbid_shard_admission_limit",
        "gauge",
        "Load shedding: bid requests an executor loop can take within http.shed_queue_delay_ms at the recent cost per request (1048576: no measurement yet, or shedding off). Shed requests count as nobid reason=overload.",
        |s| s.admission_limit.get(),
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

/// One campaign's figures for the metrics page (from the bank, summed over shards).
#[derive(Debug, Clone, Default)]
pub struct CampaignFigures {
    pub id: String,
    /// In micros (spend is exact in nanos; a micro has three decimals of it).
    pub spend_micros: f64,
    pub reserved_micros: f64,
    pub remaining_total_micros: Option<f64>,
    pub remaining_daily_micros: Option<f64>,
    /// Even pacing's bid probability (1 for asap).
    pub pacing_probability: f64,
    pub pacing_target_micros_per_s: f64,
    pub pacing_actual_micros_per_s: f64,
    pub bids: u64,
    pub wins: u64,
    pub capped: u64,
    pub late_charges: u64,
    pub paused: bool,
}

/// Renders the money side's series: every shard's notice, event and cap counts, and
/// each campaign's figures.
pub fn render_money(shards: &[&ShardMetrics], campaigns: &[CampaignFigures], out: &mut String) {
    let sum = |f: &dyn Fn(&ShardMetrics) -> u64| shards.iter().map(|s| f(s)).sum::<u64>();
    header(
        out,
        "shardbid_notices_total",
        "counter",
        "Win, billing and loss notices settled, by kind and outcome (charged, late, marked, released, noted, duplicate).",
    );
    for kind in NoticeKind::ALL {
        for (i, outcome) in SETTLED.iter().enumerate() {
            let v = sum(&|s| s.notices[kind as usize][i].get());
            let _ = writeln!(
                out,
                "shardbid_notices_total{{kind=\"{}\",outcome=\"{outcome}\"}} {v}",
                kind.label()
            );
        }
    }
    header(
        out,
        "shardbid_notices_rejected_total",
        "counter",
        "Notices refused, by reason; a refused notice changes nothing.",
    );
    for (i, r) in Rejection::ALL.iter().enumerate() {
        let v = sum(&|s| s.notices_rejected[i].get());
        let _ = writeln!(
            out,
            "shardbid_notices_rejected_total{{reason=\"{}\"}} {v}",
            r.label()
        );
    }
    header(
        out,
        "shardbid_events_total",
        "counter",
        "Events handed to the event log, by type.",
    );
    for t in EventType::ALL {
        let v = sum(&|s| s.events[t as usize].get());
        let _ = writeln!(out, "shardbid_events_total{{type=\"{}\"}} {v}", t.label());
    }
    for (name, kind, help, v) in [
        (
            "shardbid_events_dropped_total",
            "counter",
            "Events dropped because a shard's event buffer was full (the writer fell behind).",
            sum(&|s| s.events_dropped.get()),
        ),
        (
            "shardbid_reservations_refused_total",
            "counter",
            "Bids not made because a shard's bid ledger was full of reservations (money.reservations_per_shard).",
            sum(&|s| s.reservations_refused.get()),
        ),
        (
            "shardbid_frequency_cap_entries",
            "gauge",
            "Users x campaigns counted for frequency caps, over all shards.",
            sum(&|s| s.cap_entries.get()),
        ),
        (
            "shardbid_frequency_cap_evictions_total",
            "counter",
            "Frequency-cap windows forgotten early because a shard's store was full (money.frequency_cap_entries).",
            sum(&|s| s.cap_evictions.get()),
        ),
    ] {
        header(out, name, kind, help);
        let _ = writeln!(out, "{name} {v}");
    }

    type Field = fn(&CampaignFigures) -> Option<f64>;
    let series: [(&str, &str, &str, Field); 11] = [
        (
            "shardbid_campaign_spend_micros_total",
            "counter",
            "Spend charged since the process started, in micros (1,000,000 = 1 USD), counted once, when charged.",
            |c| Some(c.spend_micros),
        ),
        (
            "shardbid_campaign_reserved_micros",
            "gauge",
            "Reserved for bids not yet settled, in micros.",
            |c| Some(c.reserved_micros),
        ),
        (
            "shardbid_campaign_remaining_total_micros",
            "gauge",
            "Total budget not yet spent, in micros (campaigns with a total budget).",
            |c| c.remaining_total_micros,
        ),
        (
            "shardbid_campaign_remaining_daily_micros",
            "gauge",
            "Today's budget not yet spent, in micros (campaigns with a daily budget).",
            |c| c.remaining_daily_micros,
        ),
        (
            "shardbid_campaign_pacing_probability",
            "gauge",
            "Share of matching requests bid on (even pacing; 1 for asap).",
            |c| Some(c.pacing_probability),
        ),
        (
            "shardbid_campaign_pacing_target_micros_per_second",
            "gauge",
            "Spend rate even pacing aims for, in micros per second.",
            |c| Some(c.pacing_target_micros_per_s),
        ),
        (
            "shardbid_campaign_pacing_actual_micros_per_second",
            "gauge",
            "Spend rate over the last pacing step, in micros per second.",
            |c| Some(c.pacing_actual_micros_per_s),
        ),
        (
            "shardbid_campaign_bids_total",
            "counter",
            "Bids made.",
            |c| Some(c.bids as f64),
        ),
        (
            "shardbid_campaign_wins_total",
            "counter",
            "Bids whose win or billing notice came (impressions).",
            |c| Some(c.wins as f64),
        ),
        (
            "shardbid_campaign_capped_total",
            "counter",
            "Bids not made because the user reached the frequency cap.",
            |c| Some(c.capped as f64),
        ),
        (
            "shardbid_campaign_paused",
            "gauge",
            "1 while the campaign is paused (POST /admin/campaigns/{id}/pause).",
            |c| Some(c.paused as u8 as f64),
        ),
    ];
    for (name, kind, help, field) in series {
        header(out, name, kind, help);
        for c in campaigns {
            if let Some(v) = field(c) {
                let _ = write!(out, "{name}{{campaign=");
                label_value(out, &c.id);
                let _ = writeln!(out, "}} {v}");
            }
        }
    }
    header(
        out,
        "shardbid_campaign_late_charges_total",
        "counter",
        "Charges of notices that came after their bid's reservation was released (money.win_timeout_ms).",
    );
    for c in campaigns {
        let _ = write!(out, "shardbid_campaign_late_charges_total{{campaign=");
        label_value(out, &c.id);
        let _ = writeln!(out, "}} {}", c.late_charges);
    }
}

// The process and the admin listener: series of the control thread, not of shards.

/// The process's resources, as Prometheus's process collector names them (read by
/// `crate::process` at scrape time). `None`: not readable here, left out.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessFigures {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<u64>,
    pub virtual_bytes: Option<u64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
    pub start_time_seconds: Option<f64>,
}

/// The commit this binary was built from (`build.rs`): a short hash, or `unknown`.
pub const BUILD_COMMIT: &str = env!("BUILD_COMMIT");

/// Renders the standard `process_*` series and `shardbid_build_info`.
pub fn render_process(p: &ProcessFigures, out: &mut String) {
    let as_f64 = |v: Option<u64>| v.map(|v| v as f64);
    let series: [(&str, &str, &str, Option<f64>); 6] = [
        (
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            p.cpu_seconds,
        ),
        (
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            as_f64(p.resident_bytes),
        ),
        (
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            as_f64(p.virtual_bytes),
        ),
        (
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            as_f64(p.open_fds),
        ),
        (
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            as_f64(p.max_fds),
        ),
        (
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            p.start_time_seconds,
        ),
    ];
    for (name, kind, help, value) in series {
        if let Some(v) = value {
            header(out, name, kind, help);
            let _ = writeln!(out, "{name} {v}");
        }
    }
    header(
        out,
        "shardbid_build_info",
        "gauge",
        "Always 1; the labels name the version and the commit this binary was built from.",
    );
    out.push_str("shardbid_build_info{version=");
    label_value(out, env!("CARGO_PKG_VERSION"));
    out.push_str(",commit=");
    label_value(out, BUILD_COMMIT);
    out.push_str("} 1\n");
}

/// Renders the admin listener's own series.
pub fn render_admin(unauthorized: u64, out: &mut String) {
    header(
        out,
        "shardbid_admin_unauthorized_total",
        "counter",
        "Admin requests refused with 401: no bearer token, or not admin.token.",
    );
    let _ = writeln!(out, "shardbid_admin_unauthorized_total {unauthorized}");
}

/// Renders what handing freed memory back to the OS did (`crate::memory`).
pub fn render_memory(trims: u64, returned_bytes: u64, out: &mut String) {
    header(
        out,
        "shardbid_memory_trims_total",
        "counter",
        "Times freed memory was handed back to the OS after traffic connections closed (server.memory_trim_connections).",
    );
    let _ = writeln!(out, "shardbid_memory_trims_total {trims}");
    header(
        out,
        "shardbid_memory_returned_bytes_total",
        "counter",
        "Resident memory those trims handed back to the OS, in bytes.",
    );
    let _ = writeln!(out, "shardbid_memory_returned_bytes_total {returned_bytes}");
}

/// Writes a label value, quoted and escaped as the text format requires.
fn label_value(out: &mut String, v: &str) {
    out.push('"');
    for ch in v.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
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

    #[test]
    fn process_series_are_the_standard_ones_and_unreadable_ones_are_left_out() {
        let mut out = String::new();
        let figures = ProcessFigures {
            cpu_seconds: Some(1.25),
            resident_bytes: Some(4096),
            open_fds: Some(12),
            max_fds: Some(1024),
            start_time_seconds: Some(1.7e9),
            ..ProcessFigures::default()
        };
        render_process(&figures, &mut out);
        for line in [
            "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 1.25\n",
            "process_resident_memory_bytes 4096\n",
            "process_open_fds 12\n",
            "process_max_fds 1024\n",
            "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds 1700000000\n",
        ] {
            assert!(out.contains(line), "{line:?} in\n{out}");
        }
        assert!(!out.contains("process_virtual_memory_bytes"), "{out}");
        let info = format!(
            "shardbid_build_info{{version=\"{}\",commit=\"{BUILD_COMMIT}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        );
        assert!(out.ends_with(&info), "{out}");
        assert!(!BUILD_COMMIT.is_empty());
    }
}
