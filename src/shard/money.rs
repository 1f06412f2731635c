//! A shard's money at run time: its wallet and frequency caps, the keys its bids'
//! notices are signed with, its event buffer, and the messages that tie it to the
//! other shards and the bank (the control thread).
//!
//! A notice may reach any shard. The one it reaches verifies it (signature, age,
//! price) and answers the exchange at once; the notice then goes to the shard that
//! made the bid (the bid id names it), which alone holds the bid's record and settles
//! it. That shard tells every shard of the impression, for frequency caps. None of
//! this is on the bid path: messages are read on the housekeeping tick.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;

use crossbeam_channel::Sender;
use tracing::warn;

use super::ShardMsg;
use crate::config::{ChargeOn, Config, PriceEncryption};
use crate::events::writer::ShardEvents;
use crate::events::{Event, EventType};
use crate::metrics::ShardMetrics;
use crate::money::budget::FrequencyCap;
use crate::money::caps::Caps;
use crate::money::ledger::{BidKey, Record};
use crate::money::notice::decode_key;
use crate::money::notice::{Notice, NoticeKey, NoticeKind, PriceFormat, Rejection, UserHasher};
use crate::money::wallet::{Report, Settled, Settlement, Terms, Wallet, WalletSettings};
use crate::money::Micros;
use crate::targeting::Table;

/// What a shard sends the control thread.
pub enum ControlMsg {
    /// A shard's news of its purses: spend, leases asked for or given back, counts.
    Reports { shard: usize, reports: Vec<Report> },
}

/// Why a notice was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeError {
    /// Refused: it changes nothing (400 or 403).
    Rejected(Rejection),
    /// The shard that made the bid has stopped (the process is draining): retry (503).
    Unavailable,
}

/// A verified notice on its way to the shard that made its bid.
#[derive(Debug)]
pub struct RoutedNotice {
    pub notice: Notice,
    pub key: BidKey,
}

/// Per exchange (index = exchange id + 1; 0 is `/openrtb2/bid`): its name, which
/// notice charges, and how it writes prices.
#[derive(Debug, Clone)]
pub struct ExchangeMoney {
    pub name: String,
    pub charge_on: NoticeKind,
    pub prices: PriceFormat,
}

/// A shard's money (see the module docs).
pub struct ShardMoney {
    pub shard: usize,
    pub wallet: Wallet,
    pub caps: RefCell<Caps>,
    pub key: NoticeKey,
    pub users: UserHasher,
    pub events: ShardEvents,
    pub exchanges: Vec<ExchangeMoney>,
    pub notice_max_age_s: u64,
    /// Every shard's channel, this one's included.
    peers: Vec<Sender<ShardMsg>>,
    to_control: Sender<ControlMsg>,
    /// Campaign ids by purse, and purses by campaign id: every campaign this process
    /// has loaded (purses outlive the tables that named them).
    names: RefCell<Vec<Box<str>>>,
    purses: RefCell<HashMap<Box<str>, u32>>,
    /// The current table's entry of each purse (`u32::MAX`: not in it).
    entries: RefCell<Vec<u32>>,
    /// Wall-clock now, refreshed by the housekeeping tick: seconds and milliseconds
    /// since the epoch, and the monotonic instant it was read at.
    now: Cell<(u64, i64, std::time::Instant)>,
}

impl ShardMoney {
    /// Shard `shard`'s money, as `cfg` sets it up; `epoch` is when the process started
    /// (ms since the epoch), the first part of its bids' ids.
    pub fn from_config(
        cfg: &Config,
        shard: usize,
        epoch: u64,
        events: ShardEvents,
        peers: Vec<Sender<ShardMsg>>,
        to_control: Sender<ControlMsg>,
    ) -> anyhow::Result<ShardMoney> {
        let secret = cfg.money.notice_key.expose().as_bytes();
        let key = NoticeKey::new(secret, &cfg.notice_base_url()).ok_or_else(|| {
            anyhow::anyhow!("money.notice_key and money.notice_base_url must be valid")
        })?;
        let wallet = Wallet::new(WalletSettings {
            shard: shard as u16,
            epoch,
            ledger_capacity: cfg.money.reservations_per_shard,
            charged_capacity: cfg.money.reservations_per_shard,
            win_timeout_s: cfg.money.win_timeout_ms.as_secs().max(1),
            notice_max_age_s: cfg.money.notice_max_age_s,
            lease_min_bids: WalletSettings::LEASE_MIN_BIDS,
        });
        Ok(ShardMoney::new(
            shard,
            wallet,
            Caps::new(cfg.money.frequency_cap_entries),
            key,
            UserHasher::new(secret),
            events,
            exchange_money(cfg),
            cfg.money.notice_max_age_s,
            peers,
            to_control,
        ))
    }

    /// A lone shard's money bound to `table`, for benchmarks and tests of the request
    /// path: no other shard, no bank listening, no event log.
    pub fn solo(cfg: &Config, table: &Table) -> anyhow::Result<ShardMoney> {
        let (tx, rx) = crossbeam_channel::unbounded();
        std::mem::forget(rx);
        let (to_control, _) = crossbeam_channel::unbounded();
        let m = ShardMoney::from_config(cfg, 0, 1, ShardEvents::off(0), vec![tx], to_control)?;
        let purses = Registry::default().purses(table);
        m.bind(table, &purses);
        // Funded as if the bank had leased each budgeted campaign its whole budget.
        for &(p, terms) in purses.iter() {
            let l = terms.limits;
            if let Some(amount) = [l.daily, l.total].into_iter().flatten().min() {
                m.wallet.granted(p, amount);
            }
        }
        Ok(m)
    }

    #[allow(clippy::too_many_arguments)]
    fn new(
        shard: usize,
        wallet: Wallet,
        caps: Caps,
        key: NoticeKey,
        users: UserHasher,
        events: ShardEvents,
        exchanges: Vec<ExchangeMoney>,
        notice_max_age_s: u64,
        peers: Vec<Sender<ShardMsg>>,
        to_control: Sender<ControlMsg>,
    ) -> ShardMoney {
        let m = ShardMoney {
            shard,
            wallet,
            caps: RefCell::new(caps),
            key,
            users,
            events,
            exchanges,
            notice_max_age_s,
            peers,
            to_control,
            names: RefCell::new(Vec::new()),
            purses: RefCell::new(HashMap::new()),
            entries: RefCell::new(Vec::new()),
            now: Cell::new((0, 0, std::time::Instant::now())),
        };
        m.tick_clock();
        m
    }

    /// Wall-clock now (seconds, milliseconds since the epoch), as of the last tick.
    pub fn now(&self) -> (u64, i64) {
        let (s, ms, _) = self.now.get();
        (s, ms)
    }

    /// The wall clock at `at` (a monotonic instant since the last tick), in ms since
    /// the epoch, without reading the clock.
    pub fn wall_ms(&self, at: std::time::Instant) -> i64 {
        let (_, ms, tick) = self.now.get();
        ms + at.saturating_duration_since(tick).as_millis() as i64
    }

    fn tick_clock(&self) {
        let instant = std::time::Instant::now();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        self.now
            .set((now.as_secs(), now.as_millis() as i64, instant));
    }

    /// Binds a new table: the purse and terms of each of its entries.
    pub fn bind(&self, table: &Table, purses: &[(u32, Terms)]) {
        self.wallet.bind(purses);
        let mut names = self.names.borrow_mut();
        let mut by_name = self.purses.borrow_mut();
        let mut entries = self.entries.borrow_mut();
        entries.iter_mut().for_each(|e| *e = u32::MAX);
        for (i, &(p, _)) in purses.iter().enumerate() {
            let Some(id) = table.campaign_id(i as u32) else {
                continue;
            };
            let p = p as usize;
            if names.len() <= p {
                names.resize(p + 1, Box::from(""));
            }
            if entries.len() <= p {
                entries.resize(p + 1, u32::MAX);
            }
            names[p] = id.into();
            entries[p] = i as u32;
            by_name.insert(id.into(), p as u32);
        }
    }

    /// The exchange of a bid path (`None`: `/openrtb2/bid`).
    pub fn exchange(&self, id: Option<u32>) -> Option<&ExchangeMoney> {
        self.exchanges.get(id.map_or(0, |e| e as usize + 1))
    }

    fn exchange_named(&self, name: &str) -> Option<&ExchangeMoney> {
        self.exchanges.iter().find(|e| e.name == name)
    }

    /// A notice query that arrived at this shard for `kind`: verified, then settled
    /// here or handed to the shard that made the bid.
    pub fn receive(
        &self,
        kind: NoticeKind,
        query: &str,
        table: &Table,
        metrics: &ShardMetrics,
    ) -> Result<(), NoticeError> {
        let (now_s, now_ms) = self.now();
        let verified = self
            .key
            .verify(kind, query, now_s, self.notice_max_age_s, |x| {
                self.exchange_named(x)
                    .map_or(PriceFormat::Plain, |e| e.prices.clone())
            })
            .and_then(|n| match BidKey::parse(&n.facts.bid_id) {
                Some(key) => Ok((n, key)),
                None => Err(Rejection::Malformed),
            });
        let (notice, key) = match verified {
            Ok(v) => v,
            Err(rejection) => {
                metrics.notice_rejected(rejection);
                self.log_rejection(kind, query, rejection, now_ms);
                return Err(NoticeError::Rejected(rejection));
            }
        };
        let owner = key.shard as usize % self.peers.len().max(1);
        if owner == self.shard {
            self.settle(RoutedNotice { notice, key }, table, metrics);
            return Ok(());
        }
        // The owner reads it on its next tick. An owner that has already stopped (the
        // process is shutting down) cannot settle it: the exchange is told to retry.
        let routed = ShardMsg::Notice(Box::new(RoutedNotice { notice, key }));
        match self.peers.get(owner).map(|p| p.send(routed)) {
            Some(Ok(())) => Ok(()),
            _ => Err(NoticeError::Unavailable),
        }
    }

    /// Settles a notice for a bid this shard made (or is responsible for).
    pub fn settle(&self, n: RoutedNotice, table: &Table, metrics: &ShardMetrics) {
        let (now_s, now_ms) = self.now();
        let f = &n.notice.facts;
        let exchange = self.exchange_named(&f.exchange);
        let charge_on = exchange.map_or(NoticeKind::Billing, |e| e.charge_on);
        let purse = self.purses.borrow().get(f.campaign.as_str()).copied();
        let price_usd = n
            .notice
            .price
            .map(|p| to_usd(p, &f.currency, table))
            .unwrap_or(Micros::ZERO);
        let kind = match n.notice.kind {
            NoticeKind::Win => EventType::Win,
            NoticeKind::Billing => EventType::Billing,
            NoticeKind::Loss => EventType::Loss,
        };
        let event = Event {
            auction_id: &f.auction_id,
            imp_id: &f.imp_id,
            bid_id: &f.bid_id,
            campaign: &f.campaign,
            creative: &f.creative,
            exchange: &f.exchange,
            bid_micros: f.bid.0,
            price_micros: n.notice.price.map(|p| p.0),
            ..Event::new(kind, now_ms, self.shard as u16)
        };
        let Some(purse) = purse else {
            // A campaign this process does not know (removed before a restart): the
            // notice is logged, charging nothing, as there is no budget to charge.
            warn!(campaign = %f.campaign, "Notice for an unknown campaign");
            metrics.notice_settled(n.notice.kind, Settled::Noted);
            self.events.push(&event);
            return;
        };
        let s = Settlement {
            kind: n.notice.kind,
            charge_on,
            key: n.key,
            purse,
            price: price_usd.per_impression(),
            issued: f.issued,
        };
        let mut seen = None;
        let settled = self.wallet.settle(&s, now_s, |p| seen = Some(p));
        metrics.notice_settled(n.notice.kind, settled);
        if let (Some(p), true) = (seen, f.user != 0) {
            if let Some(cap) = self.wallet.with(p, |purse| purse.terms().cap).flatten() {
                for peer in &self.peers {
                    let _ = peer.send(ShardMsg::Impression {
                        user: f.user,
                        purse: p,
                        cap,
                        at: now_s,
                    });
                }
            }
        }
        if settled == Settled::Duplicate {
            return;
        }
        let (charged, late) = match settled {
            Settled::Charged { price, late } => (Some(price.0), late),
            _ => (None, false),
        };
        let tracker = match n.notice.kind {
            NoticeKind::Loss => String::new(),
            k => {
                let entry = self.entries.borrow().get(purse as usize).copied();
                let which = (k == NoticeKind::Billing) as usize;
                let template = entry.map_or("", |e| table.tracker(e, &f.creative, which));
                fill_macros(template, &n.notice)
            }
        };
        self.events.push(&Event {
            charged_nanos: charged,
            late,
            tracker: &tracker,
            ..event
        });
    }

    /// The counts the metrics page shows.
    pub fn counts(&self) -> crate::metrics::MoneyCounts {
        let caps = self.caps.borrow();
        crate::metrics::MoneyCounts {
            events_accepted: self.events.accepted(),
            events_dropped: self.events.dropped(),
            reservations_refused: self.wallet.ledger_full.get(),
            cap_entries: caps.len() as u64,
            cap_evictions: caps.evicted,
        }
    }

    /// Counts an impression another shard (or this one) settled.
    pub fn impression(&self, user: u64, purse: u32, cap: FrequencyCap, at: u64) {
        self.caps.borrow_mut().count(user, purse, cap, at);
    }

    fn log_rejection(&self, kind: NoticeKind, query: &str, why: Rejection, now_ms: i64) {
        // What the refused notice claims, unverified, for whoever investigates.
        let field = |k: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
                .map(|v| &v[..v.len().min(128)])
                .unwrap_or("")
        };
        self.events.push(&Event {
            auction_id: field("a"),
            imp_id: field("i"),
            bid_id: field("b"),
            campaign: field("c"),
            creative: field("r"),
            exchange: field("x"),
            bid_micros: field("p").parse().unwrap_or(0),
            reason: why.label(),
            notice: kind.label(),
            ..Event::new(EventType::Rejected, now_ms, self.shard as u16)
        });
    }

    /// The housekeeping tick: the clock, expired reservations, reports to the bank,
    /// caps, and the event buffer.
    pub fn tick(&self, table: &Table) {
        self.tick_clock();
        let (now_s, now_ms) = self.now();
        let names = self.names.borrow();
        let entries = self.entries.borrow();
        let mut num = [0u8; 48];
        self.wallet.expire(now_s, |r: &Record| {
            let key = BidKey {
                epoch: self.wallet.settings().epoch,
                shard: self.wallet.settings().shard,
                seq: r.seq,
            };
            let campaign = names.get(r.purse as usize).map_or("", |n| &**n);
            let creative = entries
                .get(r.purse as usize)
                .and_then(|&e| table.creative(e, r.creative))
                .map_or("", |c| c.id.as_str());
            let exchange = self
                .exchanges
                .get(r.exchange as usize)
                .map_or("", |e| &*e.name);
            self.events.push(&Event {
                bid_id: key.fmt_into(&mut num),
                campaign,
                creative,
                exchange,
                bid_micros: r.price,
                ..Event::new(EventType::Expired, now_ms, self.shard as u16)
            });
        });
        drop((names, entries));
        let mut reports = Vec::new();
        self.wallet.tick(|r| reports.push(r));
        if !reports.is_empty() {
            let _ = self.to_control.send(ControlMsg::Reports {
                shard: self.shard,
                reports,
            });
        }
        if now_ms % 1000 < 10 {
            self.caps.borrow_mut().expire(now_s);
        }
        self.events.flush();
    }
}

/// A campaign's tracker template with the notice's OpenRTB macros filled in.
fn fill_macros(template: &str, n: &Notice) -> String {
    if template.is_empty() {
        return String::new();
    }
    let price = n.price.map(|p| p.to_string()).unwrap_or_default();
    let currency = if n.facts.currency.is_empty() {
        "USD"
    } else {
        &n.facts.currency
    };
    let mut out = template.to_string();
    for (m, v) in [
        ("${AUCTION_PRICE}", price.as_str()),
        ("${AUCTION_ID}", &n.facts.auction_id),
        ("${AUCTION_IMP_ID}", &n.facts.imp_id),
        ("${AUCTION_BID_ID}", &n.facts.bid_id),
        ("${AUCTION_CURRENCY}", currency),
    ] {
        if out.contains(m) {
            let mut enc = Vec::new();
            crate::money::notice::percent_encode(v.as_bytes(), &mut enc);
            out = out.replace(m, &String::from_utf8_lossy(&enc));
        }
    }
    out
}

/// A clearing price in `currency` (empty: USD) as USD micros, rounded up, at the
/// configured rate.
fn to_usd(price: Micros, currency: &str, table: &Table) -> Micros {
    if currency.is_empty() || currency.eq_ignore_ascii_case("USD") {
        return price;
    }
    match table.currency(currency) {
        Some(c) => {
            let num = price.0 as i128 * c.rate.0 as i128;
            let den = Micros::PER_UNIT as i128;
            Micros(((num + den - 1).div_euclid(den)).clamp(0, i64::MAX as i128) as i64)
        }
        None => price,
    }
}

/// Campaign ids and their purses: every campaign this process has loaded keeps its
/// number for good, so leases, reservations and counts survive reloads.
#[derive(Debug, Default)]
pub struct Registry {
    by_id: HashMap<String, u32>,
    names: Vec<String>,
}

impl Registry {
    pub fn purse(&mut self, id: &str) -> u32 {
        if let Some(&p) = self.by_id.get(id) {
            return p;
        }
        let p = self.names.len() as u32;
        self.names.push(id.to_string());
        self.by_id.insert(id.to_string(), p);
        p
    }

    pub fn get(&self, id: &str) -> Option<u32> {
        self.by_id.get(id).copied()
    }

    pub fn name(&self, p: u32) -> &str {
        self.names.get(p as usize).map_or("", String::as_str)
    }

    /// Each entry's purse and terms, for a new table.
    pub fn purses(&mut self, table: &Table) -> Purses {
        (0..table.entry_count() as u32)
            .filter_map(|i| {
                let c = table.campaign(i)?;
                let limits = c.budget.map(|b| b.limits()).unwrap_or_default();
                let max = c.max_cpm.unwrap_or(c.bid_cpm).max(c.bid_cpm);
                Some((
                    self.purse(&c.id),
                    Terms {
                        limits,
                        pacing: c.pacing,
                        cap: c.frequency_cap,
                        max_bid: max.per_impression(),
                    },
                ))
            })
            .collect()
    }
}

/// What the shards ship with a table: each entry's purse and terms.
pub type Purses = Arc<[(u32, Terms)]>;

/// Each exchange's money settings (index 0: `/openrtb2/bid`).
fn exchange_money(cfg: &Config) -> Vec<ExchangeMoney> {
    let plain = ExchangeMoney {
        name: String::new(),
        charge_on: NoticeKind::Billing,
        prices: PriceFormat::Plain,
    };
    std::iter::once(plain)
        .chain(cfg.exchanges.iter().map(|(name, ex)| ExchangeMoney {
            name: name.clone(),
            charge_on: match ex.charge_on {
                ChargeOn::Billing => NoticeKind::Billing,
                ChargeOn::Win => NoticeKind::Win,
            },
            prices: match ex.price_encryption {
                PriceEncryption::None => PriceFormat::Plain,
                PriceEncryption::Google => PriceFormat::Google {
                    encryption_key: decode_key(ex.encryption_key.expose()).unwrap_or_default(),
                    integrity_key: decode_key(ex.integrity_key.expose()).unwrap_or_default(),
                },
            },
        }))
        .collect()
}
