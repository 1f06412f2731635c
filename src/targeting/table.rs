//! The immutable, indexed targeting table that every shard holds a replica of.
//!
//! Building a table validates the campaigns, numbers them in price order (highest
//! `bid_cpm` first, ties by id), indexes every targeting dimension (see
//! [`index`](super::index)) and renders each creative's JSON once, so that encoding a
//! bid is mostly copying bytes.

#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};

use crate::json::write_json_string;
use crate::money::Micros;
use crate::targeting::campaign::{Campaign, CampaignSet, Creative, CreativeKind};
use crate::targeting::index::Index;
use crate::targeting::keys::lower_key;
use crate::targeting::posting::CHUNK_BITS;
use crate::targeting::validate::validate;

/// What the table needs from the server config to resolve campaigns.
#[derive(Debug, Clone, Default)]
pub struct TableSettings {
    /// Exchange names from the config, in order; an exchange's id is its index.
    pub exchanges: Vec<String>,
    /// Accepted currencies besides USD: code -> USD per unit.
    pub currencies: BTreeMap<String, Micros>,
    /// Seat for campaigns without one.
    pub default_seat: String,
    /// Default notice URL templates ("" = none).
    pub nurl: String,
    pub burl: String,
}

/// USD per USD, in micros.
pub(crate) const USD_RATE: Micros = Micros(Micros::PER_UNIT);

/// A currency the bidder can price in: its ISO code and USD per unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Currency {
    pub code: &'static str,
    pub rate: Micros,
}

impl Currency {
    pub(crate) const USD: Currency = Currency {
        code: "USD",
        rate: USD_RATE,
    };
}

/// A campaign as the auction sees it.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// Position in the loaded [`CampaignSet`].
    pub source: u32,
    pub id: Box<str>,
    pub bid: Micros,
    pub max: Micros,
    /// Index into the table's seats.
    pub seat: u32,
    /// Bids on `test = 1` requests.
    pub test_ok: bool,
    /// Deal ids, sorted.
    pub deals: Box<[Box<str>]>,
    pub ads: Box<[Ad]>,
}

impl Entry {
    pub(crate) fn holds_deal(&self, id: &str) -> bool {
        self.deals.binary_search_by(|d| (**d).cmp(id)).is_ok()
    }
}

/// A creative as the auction and the encoder see it.
#[derive(Debug, Clone)]
pub(crate) struct Ad {
    pub kind: CreativeKind,
    pub w: u32,
    pub h: u32,
    pub secure: bool,
    pub cat: Box<[Box<str>]>,
    pub attr: Box<[u32]>,
    pub mime: Box<str>,
    pub duration: u32,
    pub protocol: u32,
    /// The bid's campaign-side members, already JSON: `"adm":..,"cid":..,"crid":..,
    /// "adomain":[..],"cat":[..],"w":..,"h":..` (the notice URLs are per bid).
    pub json: Box<[u8]>,
    /// The campaign's own win and billing URL templates (third-party trackers),
    /// `{campaign}` and `{creative}` replaced; empty for none.
    pub trackers: [Box<str>; 2],
}

/// A buyer seat: its id and its id as a JSON string.
#[derive(Debug, Clone)]
pub(crate) struct Seat {
    pub name: Box<str>,
    pub json: Box<[u8]>,
}

/// An immutable snapshot of every campaign, indexed for matching. `Clone` makes a deep,
/// independent replica (one per shard) of everything the request path reads; `Send` so
/// the control thread can ship it.
///
/// The campaign set as loaded is not on the request path: it is kept once, shared by all
/// replicas, for listing what is loaded ([`Table::campaigns`]). Copying it into every
/// shard would more than double a replica's memory.
#[derive(Clone)]
pub struct Table {
    version: u64,
    set: Arc<CampaignSet>,
    /// Campaigns in price order; `Bid::campaign` indexes this.
    pub(crate) entries: Vec<Entry>,
    pub(crate) index: Index,
    pub(crate) seats: Vec<Seat>,
    /// Accepted currencies besides USD.
    pub(crate) currencies: Vec<Currency>,
    /// Per chunk, the highest `max_cpm` among its campaigns (USD).
    pub(crate) chunk_max: Vec<Micros>,
    active: usize,
}

impl Table {
    /// Validates and indexes a campaign set. Errors list every problem, each naming
    /// the campaign (and creative) it is about.
    pub fn build(
        set: &CampaignSet,
        settings: &TableSettings,
        version: u64,
    ) -> Result<Table, Vec<String>> {
        let errors = validate(set, settings);
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut order: Vec<u32> = (0..set.campaigns.len() as u32).collect();
        order.sort_by(|&a, &b| {
            let (a, b) = (&set.campaigns[a as usize], &set.campaigns[b as usize]);
            b.bid_cpm.cmp(&a.bid_cpm).then_with(|| a.id.cmp(&b.id))
        });
        let sorted: Vec<&Campaign> = order.iter().map(|&i| &set.campaigns[i as usize]).collect();

        let mut seats: Vec<Seat> = Vec::new();
        let mut seat_ids: HashMap<&str, usize> = HashMap::new();
        let mut entries = Vec::with_capacity(sorted.len());
        for (&source, c) in order.iter().zip(&sorted) {
            let name = c.seat.as_deref().unwrap_or(&settings.default_seat).trim();
            let seat = *seat_ids.entry(name).or_insert_with(|| {
                let mut json = Vec::new();
                write_json_string(&mut json, name);
                seats.push(Seat {
                    name: name.into(),
                    json: json.into(),
                });
                seats.len() - 1
            });
            let mut deals: Vec<Box<str>> =
                c.targeting.deals.iter().map(|d| d.trim().into()).collect();
            deals.sort();
            deals.dedup();
            entries.push(Entry {
                source,
                id: c.id.as_str().into(),
                bid: c.bid_cpm,
                max: c.max_cpm.unwrap_or(c.bid_cpm).max(c.bid_cpm),
                seat: seat as u32,
                test_ok: c.targeting.test_requests,
                deals: deals.into(),
                ads: c
                    .creatives
                    .iter()
                    .map(|cr| compile_ad(c, cr, settings))
                    .collect(),
            });
        }
        let seat_names: Vec<&str> = entries
            .iter()
            .map(|e| &*seats[e.seat as usize].name)
            .collect();
        let index = Index::build(&sorted, &seat_names, &settings.exchanges);
        let chunk_max = (0..index.chunks)
            .map(|c| {
                let end = ((c + 1) * CHUNK_BITS).min(entries.len());
                let chunk = entries.get(c * CHUNK_BITS..end).unwrap_or(&[]);
                chunk.iter().map(|e| e.max).max().unwrap_or(Micros::ZERO)
            })
            .collect();
        let currencies = settings
            .currencies
            .iter()
            .filter(|(code, rate)| rate.0 > 0 && !code.eq_ignore_ascii_case("USD"))
            .map(|(code, &rate)| Currency {
                code: intern(code),
                rate,
            })
            .collect();
        Ok(Table {
            version,
            set: Arc::new(set.clone()),
            active: entries
                .iter()
                .filter(|e| set.campaigns[e.source as usize].active)
                .count(),
            entries,
            index,
            seats,
            currencies,
            chunk_max,
        })
    }

    /// The version this table was built with.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Whether matching prefetches the index's memory: chosen at build, on when the
    /// posting sets outgrow a core's L2 cache.
    pub fn prefetches(&self) -> bool {
        self.index.cold
    }

    /// Overrides [`Table::prefetches`]. Answers never depend on it; tests use this to
    /// check that.
    #[doc(hidden)]
    pub fn set_prefetch(&mut self, on: bool) {
        self.index.cold = on;
    }

    /// Number of campaigns loaded, active or not.
    pub fn campaign_count(&self) -> usize {
        self.set.campaigns.len()
    }

    /// Number of entries (campaigns in price order); `Bid::campaign` is below it.
    pub fn entry_count(&self) -> usize {
        self.entries.len()
    }

    /// Number of campaigns that may bid.
    pub fn active_count(&self) -> usize {
        self.active
    }

    /// The loaded campaigns, in file order (for listing what is loaded).
    pub fn campaigns(&self) -> &[Campaign] {
        &self.set.campaigns
    }

    /// The loaded campaign set, as given to [`Table::build`].
    pub fn campaign_set(&self) -> &CampaignSet {
        &self.set
    }

    /// The loaded campaign set, shared (every replica of a table holds the same one).
    pub fn shared_campaign_set(&self) -> Arc<CampaignSet> {
        self.set.clone()
    }

    /// The id of the campaign behind `Bid::campaign` (read from this replica).
    pub fn campaign_id(&self, index: u32) -> Option<&str> {
        self.entries.get(index as usize).map(|e| &*e.id)
    }

    /// The campaign behind `Bid::campaign`.
    pub fn campaign(&self, index: u32) -> Option<&Campaign> {
        let e = self.entries.get(index as usize)?;
        self.set.campaigns.get(e.source as usize)
    }

    /// The creative behind `Bid::campaign` and `Bid::creative`.
    pub fn creative(&self, campaign: u32, creative: u32) -> Option<&Creative> {
        self.campaign(campaign)?.creatives.get(creative as usize)
    }

    /// The campaign's own win (`0`) or billing (`1`) tracker template of a creative,
    /// by ids; "" when it has none.
    pub fn tracker(&self, campaign: u32, creative_id: &str, which: usize) -> &str {
        let Some(e) = self.entries.get(campaign as usize) else {
            return "";
        };
        let Some(c) = self.set.campaigns.get(e.source as usize) else {
            return "";
        };
        c.creatives
            .iter()
            .position(|cr| cr.id == creative_id)
            .and_then(|i| e.ads.get(i))
            .and_then(|ad| ad.trackers.get(which))
            .map_or("", |t| &**t)
    }

    /// The seat a campaign bids with.
    pub fn seat(&self, campaign: u32) -> Option<&str> {
        let e = self.entries.get(campaign as usize)?;
        self.seats.get(e.seat as usize).map(|s| &*s.name)
    }

    /// The currency `code` (case-insensitive), if the bidder can price in it.
    pub(crate) fn currency(&self, code: &str) -> Option<Currency> {
        if code.eq_ignore_ascii_case("USD") {
            return Some(Currency::USD);
        }
        self.currencies
            .iter()
            .find(|c| c.code.eq_ignore_ascii_case(code))
            .copied()
    }
}

impl fmt::Debug for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Table")
            .field("version", &self.version)
            .field("campaigns", &self.set.campaigns.len())
            .field("active", &self.active)
            .field("postings", &self.index.pool.len())
            .finish()
    }
}

/// Renders a creative's campaign-side bid members as JSON.
fn compile_ad(c: &Campaign, cr: &Creative, settings: &TableSettings) -> Ad {
    let mut json = Vec::with_capacity(cr.adm.len() + 256);
    json.extend_from_slice(b"\"adm\":");
    write_json_string(&mut json, &cr.adm);
    json.extend_from_slice(b",\"cid\":");
    write_json_string(&mut json, &c.id);
    json.extend_from_slice(b",\"crid\":");
    write_json_string(&mut json, &cr.id);
    write_json_list(&mut json, "adomain", &c.adomain);
    if !cr.cat.is_empty() {
        write_json_list(&mut json, "cat", &cr.cat);
    }
    if let (Some(w), Some(h)) = (cr.w, cr.h) {
        json.extend_from_slice(format!(",\"w\":{w},\"h\":{h}").as_bytes());
    }
    let tracker = |own: &Option<String>, default: &str| -> Box<str> {
        own.as_deref()
            .unwrap_or(default)
            .replace("{campaign}", &c.id)
            .replace("{creative}", &cr.id)
            .into()
    };
    Ad {
        trackers: [
            tracker(&c.nurl, &settings.nurl),
            tracker(&c.burl, &settings.burl),
        ],
        kind: cr.kind,
        w: cr.w.unwrap_or(0),
        h: cr.h.unwrap_or(0),
        secure: cr.secure,
        cat: cr.cat.iter().map(|s| s.trim().into()).collect(),
        attr: cr.attr.clone().into(),
        mime: cr.mime.as_deref().map(lower_key).unwrap_or_default(),
        duration: cr.duration.unwrap_or(0),
        protocol: cr.protocol.unwrap_or(0),
        json: json.into(),
    }
}

fn write_json_list(out: &mut Vec<u8>, key: &str, items: &[String]) {
    out.extend_from_slice(format!(",\"{key}\":[").as_bytes());
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_string(out, s.trim());
    }
    out.push(b']');
}

/// A `'static` copy of a currency code. Codes come from the server config, so the few
/// distinct ones are kept for the life of the process; this runs only when a table is
/// built, never on the request path.
fn intern(code: &str) -> &'static str {
    static CODES: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let mut codes = CODES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = codes.iter().find(|c| **c == code) {
        return c;
    }
    let c: &'static str = Box::leak(code.to_owned().into_boxed_str());
    codes.push(c);
    c
}
