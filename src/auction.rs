//! Candidates to priced bids: at most one bid per imp, highest price wins.
//! Pure code: no runtime, no I/O, no allocation beyond the caller's `Vec<Bid>`.
//!
//! For each imp, targeting yields the campaigns that may bid, in price order, each with
//! the creative it would show (`targeting::walk`). The auction prices each one: its
//! way to bid (the open auction, or one of the imp's deals it holds, whose `wseat`
//! admits its seat), its `bid_cpm` raised to the floor when the floor is within its
//! `max_cpm`, never below the floor. All pricing
//! happens in the response currency, in exact micros: the campaign's USD prices are
//! converted rounding down (never over-bid), floors rounding up (never under-bid).
//!
//! The highest price wins; among equal prices the campaign with the higher `bid_cpm`,
//! then the lower campaign id (the table's price order). The walk stops as soon as no
//! later candidate can beat the best price.

#![forbid(unsafe_code)]

use std::cell::Cell;

use crate::money::ledger::BidKey;
use crate::money::wallet::{BidMeta, Hold};
use crate::money::Micros;
use crate::openrtb::request::{BidRequest, Imp, Str};
use crate::openrtb::response::{write_response, ResponseBid};
use crate::targeting::query::{Query, Stage};
use crate::targeting::table::{Currency, Entry};
use crate::targeting::walk::{walk, Candidate, Flow};
use crate::targeting::{MatchContext, Table};

/// Why a request got no bid. Every variant is a metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum NoBidReason {
    /// The table holds no active campaign.
    NoCampaigns,
    /// No campaign targets this inventory/user/device/time.
    NoMatch,
    /// Campaigns matched but every one was blocked (bcat, badv, battr, bapp, seats).
    Blocked,
    /// Campaigns matched but none could bid at or above the floor.
    BelowFloor,
    /// The request allows no currency the bidder can price in (in `cur`, or a floor's
    /// currency is unknown).
    Currency,
    /// Private auction and no campaign holds one of its deals.
    DealsOnly,
    /// `test = 1` and no matching campaign bids on test requests.
    Test,
    /// Every campaign that would have bid is paused.
    Paused,
    /// The user has seen every campaign that would have bid as often as its cap allows.
    FrequencyCap,
    /// Every campaign that would have bid has spent (or committed) its budget.
    Budget,
    /// Even pacing skipped this request for every campaign that would have bid.
    Pacing,
    /// The shard was overloaded: the request had waited longer than
    /// `http.shed_queue_delay_ms`, and was answered without being parsed.
    Overload,
    /// The exchange was over its `max_qps`, and its `over_quota` answer is a no-bid.
    Quota,
}

impl NoBidReason {
    /// The reason a campaign that got only as far as `stage` gives.
    pub(crate) fn from_stage(stage: Stage) -> NoBidReason {
        match stage {
            Stage::NoMatch => NoBidReason::NoMatch,
            Stage::Test => NoBidReason::Test,
            Stage::DealsOnly => NoBidReason::DealsOnly,
            Stage::Blocked => NoBidReason::Blocked,
            Stage::Currency => NoBidReason::Currency,
            Stage::BelowFloor => NoBidReason::BelowFloor,
        }
    }

    /// The reason a campaign the money side held back gives.
    pub(crate) fn from_hold(hold: Hold) -> NoBidReason {
        match hold {
            Hold::Paused => NoBidReason::Paused,
            Hold::FrequencyCap => NoBidReason::FrequencyCap,
            Hold::Budget => NoBidReason::Budget,
            Hold::Pacing => NoBidReason::Pacing,
        }
    }

    pub const ALL: [NoBidReason; 13] = [
        NoBidReason::NoCampaigns,
        NoBidReason::NoMatch,
        NoBidReason::Blocked,
        NoBidReason::BelowFloor,
        NoBidReason::Currency,
        NoBidReason::DealsOnly,
        NoBidReason::Test,
        NoBidReason::Paused,
        NoBidReason::FrequencyCap,
        NoBidReason::Budget,
        NoBidReason::Pacing,
        NoBidReason::Overload,
        NoBidReason::Quota,
    ];

    pub const fn label(self) -> &'static str {
        match self {
            NoBidReason::NoCampaigns => "no_campaigns",
            NoBidReason::NoMatch => "no_match",
            NoBidReason::Blocked => "blocked",
            NoBidReason::BelowFloor => "below_floor",
            NoBidReason::Currency => "currency",
            NoBidReason::DealsOnly => "deals_only",
            NoBidReason::Test => "test",
            NoBidReason::Paused => "paused",
            NoBidReason::FrequencyCap => "frequency_cap",
            NoBidReason::Budget => "budget",
            NoBidReason::Pacing => "pacing",
            NoBidReason::Overload => "overload",
            NoBidReason::Quota => "quota",
        }
    }
}

/// One winning bid: indexes into the request and the table, and the price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bid {
    /// Index into `req.imp`.
    pub imp: u32,
    /// Campaign index in the table.
    pub campaign: u32,
    /// Creative index within the campaign.
    pub creative: u32,
    /// Index into `req.imp[imp].pmp.deals` for a deal bid.
    pub deal: Option<u32>,
    /// CPM price in the response currency.
    pub price: Micros,
    /// The bid's identity, when the money side recorded it (see [`Gate::take`]).
    pub key: Option<BidKey>,
}

/// The money side of a shard, as the auction sees it: whether a campaign may bid, and
/// taking the bids it makes. Prices are CPM micros in USD.
pub trait Gate {
    /// May table entry `campaign` bid `price`? Asked of every candidate the auction
    /// would take, in price order.
    fn admit(&mut self, campaign: u32, price: Micros) -> Result<(), Hold>;
    /// The auction takes this bid: reserve its price and record it.
    fn take(&mut self, campaign: u32, price: Micros, meta: BidMeta)
        -> Result<Option<BidKey>, Hold>;
}

/// No money side: every campaign may bid, and bids are not recorded.
impl Gate for () {
    fn admit(&mut self, _: u32, _: Micros) -> Result<(), Hold> {
        Ok(())
    }

    fn take(&mut self, _: u32, _: Micros, _: BidMeta) -> Result<Option<BidKey>, Hold> {
        Ok(None)
    }
}

/// How far the campaign that got furthest got: a targeting stage, or past pricing and
/// held back by the money side. Later is the more informative no-bid reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Reach {
    Stage(Stage),
    Held(Hold),
}

impl Reach {
    fn reason(self) -> NoBidReason {
        match self {
            Reach::Stage(s) => NoBidReason::from_stage(s),
            Reach::Held(h) => NoBidReason::from_hold(h),
        }
    }
}

/// Runs the auction: fills `out` (cleared first) with at most one bid per imp and
/// returns the response currency, or the reason for no bid. When several imps fail
/// for different reasons, the reason of the campaign that got furthest is returned
/// (pacing > budget > frequency cap > paused > below floor > currency > blocked >
/// deals only > test > no match). `gate` is the shard's money side (`&mut ()` for
/// none).
pub fn run(
    table: &Table,
    req: &BidRequest<'_>,
    ctx: &MatchContext,
    gate: &mut impl Gate,
    out: &mut Vec<Bid>,
) -> Result<&'static str, NoBidReason> {
    out.clear();
    if table.active_count() == 0 {
        return Err(NoBidReason::NoCampaigns);
    }
    let cur = response_currency(table, req).ok_or(NoBidReason::Currency)?;
    let mut query = Query::empty(table.entries.len());
    query.resolve(&table.index, req, ctx);
    let mut reached = Reach::Stage(Stage::NoMatch);
    for (i, imp) in req.imp.iter().enumerate() {
        let Ok(i) = u32::try_from(i) else { break };
        let won = bid_imp(table, req, &mut query, imp, cur, gate).and_then(|w| {
            let meta = BidMeta {
                creative: w.creative,
                exchange: 0,
                price: w.price,
            };
            let key = gate
                .take(w.campaign, usd_ceil(w.price, cur), meta)
                .map_err(Reach::Held)?;
            Ok((w, key))
        });
        match won {
            Ok((w, key)) => out.push(Bid {
                imp: i,
                campaign: w.campaign,
                creative: w.creative,
                deal: w.deal,
                price: w.price,
                key,
            }),
            Err(r) => reached = reached.max(r),
        }
    }
    if out.is_empty() {
        Err(reached.reason())
    } else {
        Ok(cur.code)
    }
}

/// A price in the response currency as USD micros, rounded up (what a bid reserves
/// is never less than it may be charged).
fn usd_ceil(price: Micros, cur: Currency) -> Micros {
    if cur.code == Currency::USD.code {
        return price;
    }
    let num = price.0 as i128 * cur.rate.0 as i128;
    let den = Micros::PER_UNIT as i128;
    Micros(((num + den - 1).div_euclid(den)).clamp(0, i64::MAX as i128) as i64)
}

/// Writes the BidResponse for the bids [`run`] chose into `out` (cleared first), in
/// currency `cur` (what `run` returned). See [`write_response`].
pub fn encode(req: &BidRequest<'_>, table: &Table, bids: &[Bid], cur: &str, out: &mut Vec<u8>) {
    write_response(req, response_bids(table, bids), cur, out);
}

/// [`encode`] with each bid's id and extra members (its notice URLs): `spans[i]` are
/// the ranges of `notes` that hold bid `i`'s.
pub fn encode_with(
    req: &BidRequest<'_>,
    table: &Table,
    bids: &[Bid],
    cur: &str,
    notes: &[u8],
    spans: &[(std::ops::Range<usize>, std::ops::Range<usize>)],
    out: &mut Vec<u8>,
) {
    let with_notes = response_bids(table, bids)
        .zip(spans)
        .map(|(rb, (id, extra))| ResponseBid {
            id: notes.get(id.clone()),
            extra: notes.get(extra.clone()).unwrap_or_default(),
            ..rb
        });
    write_response(req, with_notes, cur, out);
}

/// The bids as the encoder writes them: each with its seat and creative JSON.
fn response_bids<'a>(
    table: &'a Table,
    bids: &'a [Bid],
) -> impl Iterator<Item = ResponseBid<'a>> + Clone + 'a {
    bids.iter().map(move |b| {
        let entry = table.entries.get(b.campaign as usize);
        let seat = entry.map_or(u32::MAX, |e| e.seat);
        ResponseBid {
            imp: b.imp,
            price: b.price,
            seat,
            seat_json: table.seats.get(seat as usize).map_or(b"\"\"", |s| &s.json),
            ad_json: entry
                .and_then(|e| e.ads.get(b.creative as usize))
                .map_or(&[][..], |ad| &ad.json),
            deal: b.deal,
            id: None,
            extra: &[],
        }
    })
}

/// The response currency: USD when `cur` is empty or allows it, else the first allowed
/// currency the bidder knows.
fn response_currency(table: &Table, req: &BidRequest<'_>) -> Option<Currency> {
    if req.cur.is_empty() || req.cur.iter().any(|c| c.trim().eq_ignore_ascii_case("USD")) {
        return Some(Currency::USD);
    }
    req.cur.iter().find_map(|c| table.currency(c.trim()))
}

/// The best bid on one imp so far.
#[derive(Clone, Copy)]
struct Win {
    campaign: u32,
    creative: u32,
    deal: Option<u32>,
    price: Micros,
}

/// An imp's floors in the response currency.
struct Floors {
    /// The open-auction floor, if the open auction is allowed and its currency known.
    open: Result<Micros, Stage>,
    /// The lowest and highest floor of any way to bid.
    min: Micros,
    max: Micros,
}

impl Floors {
    fn new(table: &Table, imp: &Imp<'_>, cur: Currency) -> Result<Floors, Stage> {
        let private = imp.pmp.as_ref().is_some_and(|p| p.private_auction == 1);
        let open = if private {
            Err(Stage::DealsOnly)
        } else {
            floor(table, imp.bidfloor, &imp.bidfloorcur, cur).ok_or(Stage::Currency)
        };
        let mut min = open.ok();
        let mut max = open.ok();
        let mut missing = open.err().unwrap_or(Stage::NoMatch);
        for d in imp.pmp.iter().flat_map(|p| &p.deals) {
            match floor(table, d.bidfloor, &d.bidfloorcur, cur) {
                Some(f) => {
                    min = Some(min.map_or(f, |m| m.min(f)));
                    max = Some(max.map_or(f, |m| m.max(f)));
                }
                None => missing = missing.max(Stage::Currency),
            }
        }
        match (min, max) {
            (Some(min), Some(max)) => Ok(Floors { open, min, max }),
            _ => Err(missing),
        }
    }
}

/// A floor converted to the response currency, rounding up; `None` when its currency
/// (USD when absent) is unknown.
fn floor(table: &Table, amount: f64, code: &Option<Str<'_>>, cur: Currency) -> Option<Micros> {
    let amount = Micros::from_f64(amount)?;
    let from = match code.as_deref().map(str::trim) {
        None | Some("") => Currency::USD,
        Some(c) => table.currency(c)?,
    };
    if from.code == cur.code {
        return Some(amount);
    }
    let num = amount.0 as i128 * from.rate.0 as i128;
    let den = (cur.rate.0 as i128).max(1);
    let v = (num + den - 1).div_euclid(den);
    Some(Micros(v.clamp(0, i64::MAX as i128) as i64))
}

/// A USD price in the response currency, rounding down.
#[inline]
fn in_currency(usd: Micros, cur: Currency) -> Micros {
    if cur.code == Currency::USD.code {
        usd
    } else {
        usd.from_usd(cur.rate)
    }
}

fn bid_imp(
    table: &Table,
    req: &BidRequest<'_>,
    query: &mut Query,
    imp: &Imp<'_>,
    cur: Currency,
    gate: &mut impl Gate,
) -> Result<Win, Reach> {
    let floors = Floors::new(table, imp, cur).map_err(Reach::Stage)?;
    let mut reached = Stage::NoMatch;
    let mut held: Option<Hold> = None;
    let best: Cell<Option<Win>> = Cell::new(None);
    // Prices never exceed max_cpm: skip chunks where nobody can beat the best bid, or
    // meet any floor once that is already the reason.
    let worth = |chunk_max: Micros, reached: Stage| {
        let chunk_max = in_currency(chunk_max, cur);
        !(best.get().is_some_and(|b| chunk_max <= b.price)
            || (chunk_max < floors.min && reached == Stage::BelowFloor))
    };
    let visit = |c: Candidate, reached: &mut Stage| match price(table, imp, &floors, cur, c) {
        Ok(win) => {
            if let Err(hold) = gate.admit(win.campaign, usd_ceil(win.price, cur)) {
                // Priced, then held back: further than any targeting stage.
                held = held.max(Some(hold));
                *reached = (*reached).max(Stage::BelowFloor);
                return Flow::Continue;
            }
            if best.get().is_none_or(|b| win.price > b.price) {
                best.set(Some(win));
            }
            // Later candidates bid no more than this one, and can only be raised to a
            // floor: at or above the highest floor, this wins.
            if win.price >= floors.max {
                Flow::Stop
            } else {
                Flow::Continue
            }
        }
        Err(stage) => {
            *reached = (*reached).max(stage);
            Flow::Continue
        }
    };
    walk(table, query, req, imp, &mut reached, worth, visit);
    best.get().ok_or(match held {
        Some(h) => Reach::Held(h),
        None => Reach::Stage(reached),
    })
}

/// Prices one candidate: its cheapest admissible way to bid (the open auction or one
/// of the imp's deals it holds).
fn price(
    table: &Table,
    imp: &Imp<'_>,
    floors: &Floors,
    cur: Currency,
    c: Candidate,
) -> Result<Win, Stage> {
    let e: &Entry = table
        .entries
        .get(c.campaign as usize)
        .ok_or(Stage::NoMatch)?;
    let bid = in_currency(e.bid, cur);
    let max = in_currency(e.max, cur);
    let mut best: Option<(Option<u32>, Micros)> = None;
    let mut fail = Stage::NoMatch;
    let mut consider = |deal: Option<u32>, floor: Micros, fail: &mut Stage| {
        let p = bid.max(floor);
        if floor > max || p <= Micros::ZERO {
            *fail = (*fail).max(Stage::BelowFloor);
        } else if best.is_none_or(|(_, b)| p < b) {
            best = Some((deal, p));
        }
    };
    if e.deals.is_empty() {
        match floors.open {
            Ok(f) => consider(None, f, &mut fail),
            Err(stage) => fail = fail.max(stage),
        }
    } else {
        // Only through a deal of this imp that the campaign holds.
        let seat = table.seats.get(e.seat as usize).map_or("", |s| &*s.name);
        let private = imp.pmp.as_ref().is_some_and(|p| p.private_auction == 1);
        fail = if private {
            Stage::DealsOnly
        } else {
            Stage::NoMatch
        };
        for (i, d) in imp.pmp.iter().flat_map(|p| &p.deals).enumerate() {
            if !e.holds_deal(d.id.trim()) {
                continue;
            }
            if !d.wseat.is_empty() && !d.wseat.iter().any(|s| s == seat) {
                fail = fail.max(Stage::Blocked);
                continue;
            }
            match floor(table, d.bidfloor, &d.bidfloorcur, cur) {
                Some(f) => consider(u32::try_from(i).ok(), f, &mut fail),
                None => fail = fail.max(Stage::Currency),
            }
        }
    }
    let (deal, price) = best.ok_or(fail)?;
    Ok(Win {
        campaign: c.campaign,
        creative: c.creative,
        deal,
        price,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::openrtb::BidRequest;
    use crate::targeting::{CampaignSet, TableSettings};

    fn table() -> Table {
        let set: CampaignSet = serde_json::from_value(json!({"campaigns": [
            {"id": "house", "adomain": ["house.example", "shop.house.example"], "bid_cpm": "1.25",
             "nurl": "https://n.example/win?c={campaign}&cr={creative}&p=${AUCTION_PRICE}",
             "creatives": [{"id": "rect", "kind": "banner", "w": 300, "h": 250,
                            "adm": "<a href=\"x\">\"quoted\"\n</a>", "cat": ["IAB1", "IAB2-3"]}]},
            {"id": "agency", "seat": "Agency\"1", "adomain": ["agency.example"], "bid_cpm": "2",
             "max_cpm": "3", "targeting": {"deals": ["deal\\1"]},
             "creatives": [{"id": "vid", "kind": "video", "mime": "video/mp4", "duration": 15,
                            "protocol": 3, "adm": "<VAST/>"}]}
        ]}))
        .unwrap();
        let settings = TableSettings {
            default_seat: "shardbid".into(),
            burl: "https://b.example/bill?c={campaign}&cr={creative}&id=${AUCTION_ID}".into(),
            currencies: [("EUR".to_string(), Micros(1_080_000))].into(),
            ..TableSettings::default()
        };
        Table::build(&set, &settings, 7).unwrap()
    }

    #[test]
    fn response_carries_every_field_escaped() {
        let t = table();
        let body = json!({
            "id": "req \"1\"\\\u{1}é",
            "cur": ["EUR"],
            "imp": [
                {"id": "a\"1", "banner": {"w": 300, "h": 250}},
                {"id": "v\n2", "video": {"mimes": ["video/mp4"]},
                 "pmp": {"private_auction": 1, "deals": [{"id": "deal\\1", "bidfloor": 2.5}]}},
                {"id": "a\"1", "banner": {"w": 300, "h": 250}}
            ]
        })
        .to_string();
        let req: BidRequest = serde_json::from_str(&body).unwrap();
        let ctx = MatchContext {
            exchange: None,
            hour_of_week: 0,
        };
        let mut bids = Vec::new();
        let cur = run(&t, &req, &ctx, &mut (), &mut bids).unwrap();
        assert_eq!((cur, bids.len()), ("EUR", 3));
        let mut out = b"stale bytes".to_vec();
        encode(&req, &t, &bids, cur, &mut out);
        let v: Value = serde_json::from_slice(&out).unwrap();

        assert_eq!(v["id"], "req \"1\"\\\u{1}é");
        assert_eq!(v["cur"], "EUR");
        let seatbid = v["seatbid"].as_array().unwrap();
        assert_eq!(seatbid.len(), 2, "one seatbid per seat");
        assert_eq!(seatbid[0]["seat"], "shardbid");
        assert_eq!(seatbid[1]["seat"], "Agency\"1");

        let house = seatbid[0]["bid"].as_array().unwrap();
        assert_eq!(house.len(), 2);
        let b = house[0].as_object().unwrap();
        let keys: Vec<&str> = b.keys().map(|k| k.as_str()).collect();
        let mut expected = vec![
            "id", "impid", "price", "adm", "cid", "crid", "adomain", "cat", "w", "h",
        ];
        expected.sort();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(sorted, expected);
        assert_eq!(b["id"], "a\"1-0");
        assert_eq!(b["impid"], "a\"1");
        // 1.25 USD in EUR, rounded down.
        assert_eq!(b["price"].to_string(), "1.157407");
        assert_eq!(b["adm"], "<a href=\"x\">\"quoted\"\n</a>");
        // The campaign's own notice URLs are trackers, not the bid's nurl/burl (the
        // money side writes those per bid).
        assert_eq!(
            t.tracker(0, "vid", 1),
            "https://b.example/bill?c=agency&cr=vid&id=${AUCTION_ID}"
        );
        assert_eq!(
            t.tracker(1, "rect", 0),
            "https://n.example/win?c=house&cr=rect&p=${AUCTION_PRICE}"
        );
        assert_eq!(b["cid"], "house");
        assert_eq!(b["crid"], "rect");
        assert_eq!(b["adomain"], json!(["house.example", "shop.house.example"]));
        assert_eq!(b["cat"], json!(["IAB1", "IAB2-3"]));
        assert_eq!((b["w"].as_u64(), b["h"].as_u64()), (Some(300), Some(250)));
        assert_eq!(
            house[1]["id"], "a\"1-2",
            "bid ids are unique even for repeated imp ids"
        );
        assert_eq!(house[1]["impid"], "a\"1");

        let d = seatbid[1]["bid"][0].as_object().unwrap();
        assert_eq!(d["id"], "v\n2-1");
        assert_eq!(d["impid"], "v\n2");
        assert_eq!(d["dealid"], "deal\\1");
        // Raised to the 2.5 USD deal floor, converted up: 2.314815 EUR.
        assert_eq!(d["price"].to_string(), "2.314815");
        assert_eq!(d["cid"], "agency");
        assert_eq!(d["crid"], "vid");
        assert_eq!(d["adm"], "<VAST/>");
        assert!(d.get("nurl").is_none() && d.get("w").is_none() && d.get("cat").is_none());
    }
}
