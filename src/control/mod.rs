//! The control thread: the one place that reads campaign files, builds targeting
//! tables and ships a replica to every shard. It also serves the admin API and turns
//! SIGTERM/SIGINT into a drain.
//!
//! A table change is two-phase: build and validate here (an invalid set changes
//! nothing), then send each shard its own deep copy over its crossbeam channel. Shards
//! swap between requests; the control thread confirms the swap by watching each shard's
//! `table_version` metric.

#![forbid(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossbeam_channel::Sender;
use tracing::{info, warn};

pub mod treasury;

use crate::config::Config;
use crate::memory::Trimmer;
use crate::metrics::ShardMetrics;
use crate::net::Conns;
use crate::shard::{self, Global, ShardMsg};
use crate::targeting::{CampaignSet, Table, TableSettings};

/// How long a table change waits for every shard to confirm the swap.
const SWAP_CONFIRM: Duration = Duration::from_secs(2);

/// Reads and parses a campaign file.
pub fn read_campaigns(path: &Path) -> Result<CampaignSet> {
    let text = std::fs::read(path)
        .with_context(|| format!("cannot read campaigns file {}", path.display()))?;
    serde_json::from_slice(&text)
        .with_context(|| format!("{}: not a valid campaign file", path.display()))
}

/// The table settings a config implies.
pub fn table_settings(cfg: &Config) -> TableSettings {
    TableSettings {
        exchanges: cfg.exchanges.keys().cloned().collect(),
        currencies: cfg.currencies.clone(),
        default_seat: cfg.bidding.default_seat.clone(),
        nurl: cfg.bidding.nurl.clone(),
        burl: cfg.bidding.burl.clone(),
    }
}

/// Builds a table, turning validation errors into one message.
pub fn build_table(set: &CampaignSet, settings: &TableSettings, version: u64) -> Result<Table> {
    Table::build(set, settings, version)
        .map_err(|errors| anyhow::anyhow!("invalid campaigns:\n  {}", errors.join("\n  ")))
}

/// Why a table change did not happen. The old set stays in every case but
/// `Unconfirmed`.
#[derive(Debug)]
pub enum ChangeError {
    /// The campaigns sent are invalid: the client's fault.
    Invalid(Vec<String>),
    /// The set is empty and the request did not say it means that: the client's fault.
    Empty,
    /// The campaigns file on the server is invalid: ours.
    InvalidFile(Vec<String>),
    /// The campaigns file on the server could not be read or parsed: ours.
    Unreadable(String),
    /// Every shard got the table but not all confirmed in time: ours.
    Unconfirmed { version: u64 },
}

/// Result of a successful change.
#[derive(Debug, Clone, Copy)]
pub struct Installed {
    pub version: u64,
    pub campaigns: usize,
    pub took: Duration,
}

/// State of the control thread.
pub struct Control {
    pub settings: TableSettings,
    pub campaigns_file: PathBuf,
    pub shards: Vec<Sender<ShardMsg>>,
    pub metrics: Vec<Arc<ShardMetrics>>,
    pub global: Arc<Global>,
    /// The campaign set behind the current table, for `GET /admin/campaigns`.
    current: RefCell<Arc<CampaignSet>>,
    version: Cell<u64>,
    /// Connections of the admin listener.
    pub conns: Conns,
    /// Purses, pauses and the money figures (see [`treasury`]).
    pub money: treasury::MoneyShared,
    /// When to hand freed memory back to the OS, and what it returned.
    pub memory: RefCell<Trimmer>,
}

impl Control {
    pub fn new(
        settings: TableSettings,
        campaigns_file: PathBuf,
        shards: Vec<Sender<ShardMsg>>,
        metrics: Vec<Arc<ShardMetrics>>,
        global: Arc<Global>,
        (version, initial): (u64, Arc<CampaignSet>),
        money: treasury::MoneyShared,
    ) -> Control {
        Control {
            settings,
            campaigns_file,
            shards,
            metrics,
            global,
            current: RefCell::new(initial),
            version: Cell::new(version),
            conns: Conns::default(),
            money,
            memory: RefCell::new(Trimmer::new(0)),
        }
    }

    /// Hands freed memory back to the OS whenever the open traffic connections fall by
    /// `closed` from their highest (see [`crate::memory`]); 0, as built, never.
    pub fn trim_memory_after(mut self, closed: usize) -> Control {
        self.memory = RefCell::new(Trimmer::new(closed));
        self
    }

    /// Open traffic connections, all shards together.
    fn open_connections(&self) -> usize {
        let open: u64 = self.metrics.iter().map(|m| m.connections_open.get()).sum();
        open as usize
    }

    /// Trims the allocator if enough connections closed since the last trim.
    fn trim_memory(&self, now: Instant) {
        let open = self.open_connections();
        if let Some(t) = self.memory.borrow_mut().check(open, now) {
            info!(
                open,
                before_mib = t.before >> 20,
                after_mib = t.after >> 20,
                took_us = t.took.as_micros() as u64,
                "Freed memory handed back to the OS"
            );
        }
    }

    pub fn current(&self) -> (u64, Arc<CampaignSet>) {
        (self.version.get(), self.current.borrow().clone())
    }

    /// Validates and builds `set`, sends every shard a replica, and waits until every
    /// shard serves it. An empty set, which stops every bid, only with `allow_empty`.
    pub async fn install(
        &self,
        set: CampaignSet,
        allow_empty: bool,
    ) -> Result<Installed, ChangeError> {
        if set.campaigns.is_empty() && !allow_empty {
            return Err(ChangeError::Empty);
        }
        let started = Instant::now();
        let version = self.version.get() + 1;
        let table = Table::build(&set, &self.settings, version).map_err(ChangeError::Invalid)?;
        let campaigns = table.campaign_count();
        self.version.set(version);
        *self.current.borrow_mut() = table.shared_campaign_set();
        let purses = self.money.registry.borrow_mut().purses(&table);
        *self.money.pending.borrow_mut() = Some(purses.clone());
        self.broadcast(table, purses);

        let deadline = Instant::now() + SWAP_CONFIRM;
        while !self
            .metrics
            .iter()
            .all(|m| m.table_version.get() >= version)
        {
            if Instant::now() >= deadline {
                warn!(version, "Not every shard confirmed the new table");
                return Err(ChangeError::Unconfirmed { version });
            }
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        let took = started.elapsed();
        info!(
            version,
            campaigns,
            took_ms = took.as_millis() as u64,
            "Campaigns installed"
        );
        let shards = self.shards.len();
        let status =
            format!("Serving on {shards} shards; campaigns v{version} ({campaigns} campaigns)");
        crate::notify::status(&status); // systemd: STATUS=
        Ok(Installed {
            version,
            campaigns,
            took,
        })
    }

    /// Re-reads the campaigns file and installs it.
    pub async fn reload(&self, allow_empty: bool) -> Result<Installed, ChangeError> {
        let set = read_campaigns(&self.campaigns_file)
            .map_err(|e| ChangeError::Unreadable(format!("{e:#}")))?;
        match self.install(set, allow_empty).await {
            Err(ChangeError::Invalid(list)) => Err(ChangeError::InvalidFile(list)),
            other => other,
        }
    }

    fn broadcast(&self, table: Table, purses: shard::money::Purses) {
        let mut table = Some(table);
        for (i, tx) in self.shards.iter().enumerate() {
            // Each shard gets its own deep copy; the last one takes the original.
            let replica = if i + 1 == self.shards.len() {
                table.take()
            } else {
                table.clone()
            };
            if let Some(t) = replica {
                // A shard that already exited has dropped its receiver; nothing to do.
                let _ = tx.send(ShardMsg::Table(Box::new(t), purses.clone()));
            }
        }
    }

    /// Pauses (or resumes) campaign `id` on every shard; `false` for an unknown id.
    pub fn pause(&self, id: &str, paused: bool) -> bool {
        let Some(purse) = self.money.registry.borrow().get(id) else {
            return false;
        };
        self.money.asked.set(true);
        let mut set = self.money.paused.borrow_mut();
        if paused {
            set.insert(purse);
        } else {
            set.remove(&purse);
        }
        for tx in &self.shards {
            let _ = tx.send(ShardMsg::Paused { purse, paused });
        }
        info!(campaign = id, paused, "Campaign paused state changed");
        true
    }

    /// Starts the drain: `/readyz` turns 503 now, shards stop accepting after
    /// `delay` and finish what is in flight.
    pub async fn drain(&self, delay: Duration) {
        self.global.draining.store(true, Ordering::Relaxed);
        crate::notify::stopping("Draining"); // systemd: STOPPING=1
        info!(
            delay_ms = delay.as_millis() as u64,
            "Draining: readyz answers 503, answers close their connections"
        );
        for tx in &self.shards {
            let _ = tx.send(ShardMsg::Closing);
        }
        if !delay.is_zero() {
            glommio::timer::sleep(delay).await;
        }
        for tx in &self.shards {
            let _ = tx.send(ShardMsg::Drain);
        }
    }
}

/// The control thread's money loop: the bank's rounds every 10 ms, until `stop`.
pub async fn money_loop(
    control: Rc<Control>,
    mut treasury: treasury::Treasury,
    stop: Arc<AtomicBool>,
) {
    loop {
        treasury.round(&control.money).await;
        if stop.load(Ordering::Relaxed) {
            return;
        }
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
}

/// The control thread's housekeeping: admin connection timeouts, handing freed memory
/// back to the OS after many connections closed, and the signal flag.
/// Returns when a signal asked for shutdown (after starting the drain) or `stop` is set.
pub async fn watch(
    control: Rc<Control>,
    signal: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    drain_delay: Duration,
) {
    loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        if signal.load(Ordering::Relaxed) || control.global.drain_requested.load(Ordering::Relaxed)
        {
            control.drain(drain_delay).await;
            return;
        }
        let now = Instant::now();
        control.global.health.control_tick(now); // systemd watchdog heartbeat
        control.conns.sweep(now);
        control.trim_memory(now);
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
}
