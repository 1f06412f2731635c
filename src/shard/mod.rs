//! A shard: one thread, one glommio executor pinned to one core, its own SO_REUSEPORT
//! listener, its connections, and its own replica of the targeting table.
//!
//! Everything here is single-threaded: state lives in `Cell`/`RefCell` behind an `Rc`,
//! and no borrow is held across an `.await`. The only ways in from other threads are
//! the shard's channel (new tables, drain, bank grants, notices and impressions from
//! other shards), read on the housekeeping tick, and the metrics the shard writes for
//! scrapes.

pub mod balance;
pub mod money;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, TryRecvError};
use tracing::{debug, info};

use crate::admission::{Quota, Shedder};
use crate::config::{Config, IoMode, OverQuotaAnswer};
use crate::metrics::ShardMetrics;
use crate::net::clock::set_coarse_now;
use crate::net::conns::{self, Conns};
use crate::net::ring::{NetRing, RingConfig};
use crate::net::ConnLimits;
use crate::openrtb::Decoder;
use crate::pipeline::{BufPool, Scratch};
use crate::targeting::Table;

/// How often a shard checks its control channel. A new table reaches every shard
/// within this interval (plus the build time).
pub const CONTROL_POLL: Duration = Duration::from_millis(10);

/// Messages to a shard, from the control thread or another shard.
pub enum ShardMsg {
    /// A new table replica, swapped in between requests, with each entry's purse.
    Table(Box<Table>, money::Purses),
    /// The drain delay begins: answers close their connections, idle ones are closed.
    Closing,
    /// Stop accepting, finish in-flight requests, close connections, exit.
    Drain,
    /// A verified notice for a bid this shard made.
    Notice(Box<money::RoutedNotice>),
    /// An impression another shard settled: count it for frequency caps.
    Impression {
        user: u64,
        purse: u32,
        cap: crate::money::budget::FrequencyCap,
        at: u64,
    },
    /// The bank's answer to a lease request.
    Grant {
        purse: u32,
        amount: crate::money::Nanos,
    },
    /// The bank wants a purse's unused lease back.
    Recall { purse: u32 },
    /// A campaign paused or resumed.
    Paused { purse: u32, paused: bool },
    /// Even pacing's bid probability for a campaign.
    Pace { purse: u32, probability: f64 },
}

/// Process-wide state that is read outside the request path (readiness, drain).
#[derive(Debug, Default)]
pub struct Global {
    pub shard_count: usize,
    /// Shards that have bound their listener and are serving.
    pub shards_serving: AtomicUsize,
    /// Set on SIGTERM/SIGINT: `/readyz` answers 503 from then on.
    pub draining: AtomicBool,
    /// `POST /admin/drain` asked for the drain (as SIGTERM would).
    pub drain_requested: AtomicBool,
    /// systemd watchdog: housekeeping ticks of every shard and the control thread.
    pub health: Arc<crate::notify::Health>,
}

impl Global {
    pub fn is_ready(&self) -> bool {
        !self.draining.load(Ordering::Relaxed)
            && self.shards_serving.load(Ordering::Relaxed) == self.shard_count
    }
}

/// A served connection's limits, from `[http]` (traffic and admin listeners alike).
pub fn conn_limits(cfg: &Config) -> ConnLimits {
    ConnLimits {
        keep_alive: cfg.http.keep_alive_timeout_ms,
        header_read: cfg.http.header_read_timeout_ms,
        nodelay: cfg.http.tcp_nodelay,
        max_head_bytes: cfg.http.max_head_bytes,
        max_headers: cfg.http.max_headers,
    }
}

/// The settings every shard reads on the request path, resolved once from the config.
#[derive(Debug, Clone)]
pub struct ShardSettings {
    pub max_body_bytes: usize,
    /// Timeouts and head limits of each traffic connection.
    pub conn: ConnLimits,
    /// Open connections this shard serves at most (resolved against the open-files
    /// limit at start).
    pub max_connections: usize,
    pub max_imps: usize,
    pub default_tmax_ms: u32,
    pub network_margin_ms: u32,
    /// Exchange names in config order; an exchange's id is its index.
    pub exchanges: Vec<String>,
    /// Network margin per exchange id.
    pub exchange_margins_ms: Vec<u32>,
    /// `max_qps` (0: none) and the answer over it, per exchange id.
    pub exchange_quotas: Vec<(u64, OverQuotaAnswer)>,
    /// Whether bid responses to each exchange id may be gzipped.
    pub exchange_gzip: Vec<bool>,
    /// The smallest bid response that is gzipped.
    pub gzip_min_bytes: usize,
    /// Load shedding's queueing-delay target (zero: off).
    pub shed_queue_delay: Duration,
    /// Shards in the process (an exchange's quota is shared among them).
    pub shards: usize,
    /// The network ring's sizes, when connections use one (`server.io = "ring"`).
    pub ring: Option<RingConfig>,
}

impl ShardSettings {
    pub fn from_config(cfg: &Config) -> ShardSettings {
        let margin = cfg.bidding.network_margin_ms;
        ShardSettings {
            max_body_bytes: cfg.http.max_body_bytes,
            conn: conn_limits(cfg),
            max_connections: cfg.server.max_connections,
            max_imps: cfg.http.max_imps,
            default_tmax_ms: cfg.bidding.default_tmax_ms,
            network_margin_ms: margin,
            exchanges: cfg.exchanges.keys().cloned().collect(),
            exchange_margins_ms: cfg
                .exchanges
                .values()
                .map(|e| e.network_margin_ms.unwrap_or(margin))
                .collect(),
            exchange_quotas: cfg
                .exchanges
                .values()
                .map(|e| (e.max_qps, e.over_quota))
                .collect(),
            exchange_gzip: cfg.exchanges.values().map(|e| e.gzip_responses).collect(),
            gzip_min_bytes: cfg.http.gzip_min_bytes,
            shed_queue_delay: cfg.http.shed_queue_delay_ms,
            shards: cfg.shard_count(),
            ring: (cfg.server.io == IoMode::Ring).then_some(RingConfig {
                entries: 1024,
                buffers: cfg.server.recv_buffers,
                buffer_bytes: cfg.server.recv_buffer_bytes,
            }),
        }
    }

    /// The id of the exchange named in a bid path.
    pub fn exchange_id(&self, name: &str) -> Option<u32> {
        self.exchanges
            .iter()
            .position(|e| e == name)
            .map(|i| i as u32)
    }

    /// The bidder's own time budget for a request.
    pub fn budget(&self, tmax_ms: Option<u32>, exchange: Option<u32>) -> Duration {
        let tmax = tmax_ms.filter(|&t| t > 0).unwrap_or(self.default_tmax_ms);
        let margin = exchange
            .and_then(|e| self.exchange_margins_ms.get(e as usize).copied())
            .unwrap_or(self.network_margin_ms);
        Duration::from_millis(tmax.saturating_sub(margin) as u64)
    }
}

/// One shard's state, shared with its tasks by `Rc`.
pub struct Shard {
    pub id: usize,
    pub settings: Rc<ShardSettings>,
    pub global: Arc<Global>,
    pub metrics: Arc<ShardMetrics>,
    pub conns: Conns,
    table: RefCell<Rc<Table>>,
    /// Request bodies: a small pool, since bodies of several connections can be in
    /// flight at once while they are read.
    bodies: BufPool,
    scratch: RefCell<Scratch>,
    stopped: Cell<bool>,
    /// Hour of the week, refreshed by housekeeping so requests need no clock read.
    hour: Cell<u16>,
    /// Budgets, caps, notices and events.
    pub money: money::ShardMoney,
    /// The shard's channel (read on the housekeeping tick, and once more at the end).
    rx: Receiver<ShardMsg>,
    /// Load shedding, before a request is parsed.
    pub shedder: Shedder,
    /// Each exchange's share of its `max_qps`, by exchange id.
    pub quotas: Vec<Quota>,
    /// The shard's network ring (`server.io = "ring"`); its driver task is started by
    /// the shard's thread.
    pub ring: Option<Rc<NetRing>>,
}

impl Shard {
    /// A shard serving `table`; `money` must be bound to it ([`money::ShardMoney::bind`]).
    pub fn new(
        id: usize,
        settings: Rc<ShardSettings>,
        global: Arc<Global>,
        metrics: Arc<ShardMetrics>,
        table: Table,
        money: money::ShardMoney,
        rx: Receiver<ShardMsg>,
    ) -> Shard {
        metrics.table_version.set(table.version());
        metrics.campaigns.set(table.campaign_count() as u64);
        let decoder = Decoder::with_max_imps(settings.max_imps);
        let shedder = Shedder::new(settings.shed_queue_delay);
        let quotas = settings
            .exchange_quotas
            .iter()
            .map(|&(qps, _)| Quota::new(qps, settings.shards))
            .collect();
        let ring = settings.ring.and_then(|cfg| match NetRing::new(cfg) {
            Ok(ring) => Some(ring),
            Err(e) => {
                tracing::warn!(shard = id, error = %e, "Cannot make the network ring; serving with server.io = \"poll\"");
                None
            }
        });
        Shard {
            id,
            settings,
            global,
            metrics,
            conns: Conns::default(),
            table: RefCell::new(Rc::new(table)),
            bodies: BufPool::default(),
            scratch: RefCell::new(Scratch::with_decoder(decoder)),
            stopped: Cell::new(false),
            hour: Cell::new(hour_of_week(SystemTime::now())),
            money,
            rx,
            shedder,
            quotas,
            ring,
        }
    }

    /// Hour of the week in UTC (for dayparting), at most `CONTROL_POLL` old.
    pub fn hour_of_week(&self) -> u16 {
        self.hour.get()
    }

    /// The table to run a request against. A request keeps its `Rc` until it is done,
    /// so a swap never changes the table under an in-flight request.
    pub fn table(&self) -> Rc<Table> {
        self.table.borrow().clone()
    }

    /// Takes a body buffer from the pool (empty, with capacity from earlier use).
    pub fn take_body(&self) -> Vec<u8> {
        self.bodies.take()
    }

    /// Returns a body buffer to the pool (see [`BufPool::put`]).
    pub fn put_body(&self, body: Vec<u8>) {
        self.bodies.put(body);
    }

    /// The reusable scratch space. The borrow must not be held across an `.await`.
    pub fn scratch(&self) -> std::cell::RefMut<'_, Scratch> {
        self.scratch.borrow_mut()
    }

    fn swap_table(&self, table: Table, purses: &[(u32, crate::money::wallet::Terms)]) {
        let (version, campaigns) = (table.version(), table.campaign_count());
        self.money.bind(&table, purses);
        *self.table.borrow_mut() = Rc::new(table);
        self.metrics.table_version.set(version);
        self.metrics.campaigns.set(campaigns as u64);
        debug!(shard = self.id, version, campaigns, "Table swapped");
    }

    /// Applies control messages until the channel is empty. Returns false once the
    /// shard must drain.
    fn poll_control(&self) -> bool {
        let rx = &self.rx;
        loop {
            let w = &self.money.wallet;
            match rx.try_recv() {
                Ok(ShardMsg::Table(t, purses)) => self.swap_table(*t, &purses),
                Ok(ShardMsg::Closing) => self.conns.start_closing(),
                Ok(ShardMsg::Drain) | Err(TryRecvError::Disconnected) => {
                    self.stopped.set(true);
                    return false;
                }
                Ok(ShardMsg::Notice(n)) => self.money.settle(*n, &self.table(), &self.metrics),
                Ok(ShardMsg::Impression {
                    user,
                    purse,
                    cap,
                    at,
                }) => self.money.impression(user, purse, cap, at),
                Ok(ShardMsg::Grant { purse, amount }) => w.granted(purse, amount),
                Ok(ShardMsg::Recall { purse }) => w.recall(purse),
                Ok(ShardMsg::Paused { purse, paused }) => w.set_paused(purse, paused),
                Ok(ShardMsg::Pace { purse, probability }) => w.set_pace(purse, probability),
                Err(TryRecvError::Empty) => return true,
            }
        }
    }
}

/// The shard's housekeeping task: control messages, then timeouts, until drained.
pub async fn housekeeping(shard: Rc<Shard>) {
    let mut last_sweep = std::time::Instant::now();
    set_coarse_now(last_sweep);
    while shard.poll_control() {
        glommio::timer::sleep(CONTROL_POLL).await;
        shard.hour.set(hour_of_week(SystemTime::now()));
        let now = std::time::Instant::now();
        set_coarse_now(now);
        shard.global.health.shard_tick(shard.id, now); // systemd watchdog heartbeat
        let ring = shard.ring.as_ref().map(|r| r.stats());
        let ring_count = |f: fn(&crate::net::ring::RingStats) -> u64| ring.map_or(0, f);
        shard
            .metrics
            .sends_stalled
            .set(shard.conns.send_stalls() + ring_count(|r| r.short_sends.get()));
        let m = &shard.metrics;
        m.ring_buffer_exhaustions
            .set(ring_count(|r| r.buffer_exhaustions.get()));
        m.ring_rearms.set(ring_count(|r| r.rearms.get()));
        m.ring_spills.set(ring_count(|r| r.spills.get()));
        m.ring_linger_cancels
            .set(ring_count(|r| r.linger_cancels.get()));
        shard
            .metrics
            .admission_limit
            .set(u64::from(shard.shedder.limit()));
        let st = shard.conns.stats();
        shard.metrics.publish_conns(&crate::metrics::ConnCounts {
            request_timeouts: st.request_timeouts.get(),
            idle_timeouts: st.idle_timeouts.get(),
            send_timeouts: st.send_timeouts.get(),
            refused: st.refused.get(),
            accept_no_descriptors: st.accept_no_descriptors.get(),
            accept_other: st.accept_other.get(),
        });
        shard.money.tick(&shard.table());
        shard.metrics.publish_money(&shard.money.counts());
        shard.conns.close_idle(now);
        if now.duration_since(last_sweep) >= conns::SWEEP_EVERY {
            shard.conns.sweep(now);
            last_sweep = now;
        }
    }
    info!(shard = shard.id, open = shard.conns.open(), "Draining");
    shard.conns.drain();
}

/// The last of a shard's money work once its connections are done: notices other
/// shards sent it meanwhile, the last reports, and every event it holds, handed to
/// the writer.
pub fn finish(shard: &Shard) {
    while let Ok(msg) = shard.rx.try_recv() {
        if let ShardMsg::Notice(n) = msg {
            shard.money.settle(*n, &shard.table(), &shard.metrics);
        }
    }
    shard.money.tick(&shard.table());
    shard.metrics.publish_money(&shard.money.counts());
    shard.money.events.close();
}

/// Hour of the week in UTC, Monday 00:00 = 0 .. Sunday 23:00 = 167.
pub fn hour_of_week(now: SystemTime) -> u16 {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let hours = secs / 3600;
    let days = hours / 24;
    // 1970-01-01 was a Thursday, day 3 of a Monday-based week.
    (((days + 3) % 7) * 24 + hours % 24) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hour_of_week_is_monday_based_utc() {
        // 2024-01-01 00:00 UTC was a Monday.
        let monday = UNIX_EPOCH + Duration::from_secs(1_704_067_200);
        assert_eq!(hour_of_week(monday), 0);
        assert_eq!(hour_of_week(monday + Duration::from_secs(3600 * 25)), 25);
        assert_eq!(hour_of_week(monday + Duration::from_secs(3600 * 167)), 167);
        assert_eq!(hour_of_week(monday + Duration::from_secs(3600 * 168)), 0);
    }

    #[test]
    fn budget_is_tmax_minus_margin() {
        let mut cfg = Config::default();
        cfg.exchanges.insert(
            "adx".into(),
            crate::config::ExchangeConfig {
                network_margin_ms: Some(30),
                ..Default::default()
            },
        );
        let s = ShardSettings::from_config(&cfg);
        assert_eq!(s.budget(Some(120), None), Duration::from_millis(100));
        assert_eq!(s.budget(None, None), Duration::from_millis(80));
        assert_eq!(
            s.budget(Some(120), s.exchange_id("adx")),
            Duration::from_millis(90)
        );
        assert_eq!(s.budget(Some(10), None), Duration::ZERO);
        assert_eq!(s.exchange_id("nope"), None);
    }
}
