//! Candidates to priced bids: at most one bid per imp, highest price wins.
//! Pure code: no runtime, no I/O, no allocation beyond the caller's `Vec<Bid>`.
//!
//! For each imp the targeting index yields matching campaigns in price order, one
//! chunk at a time ([`Query`]). Each candidate is then checked where the index cannot
//! (creative fit, `bcat`/`battr`, deal seats) and priced: its `bid_cpm`, raised to the
//! floor when the floor is within its `max_cpm`, never below the floor. All pricing
//! happens in the response currency, in exact micros: the campaign's USD prices are
//! converted rounding down (never over-bid), floors rounding up (never under-bid).
//!
//! The highest price wins; among equal prices the campaign with the higher `bid_cpm`,
//! then the lower campaign id (the table's price order). The walk stops as soon as no
//! later candidate can beat the best price.

use crate::money::Micros;
use crate::openrtb::request::{BidRequest, Imp, Str};
use crate::targeting::campaign::CreativeKind;
use crate::targeting::keys::category_under;
use crate::targeting::posting::{Mask, CHUNK_BITS, CHUNK_WORDS};
use crate::targeting::query::{Query, Stage};
use crate::targeting::scan::Scan;
use crate::targeting::table::{Ad, Currency, Entry};
use crate::targeting::verify;
use crate::targeting::Table;

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
}

impl NoBidReason {
    pub const ALL: [NoBidReason; 7] = [
        NoBidReason::NoCampaigns,
        NoBidReason::NoMatch,
        NoBidReason::Blocked,
        NoBidReason::BelowFloor,
        NoBidReason::Currency,
        NoBidReason::DealsOnly,
        NoBidReason::Test,
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
}

/// Per-request facts that do not come from the body.
#[derive(Debug, Clone, Copy)]
pub struct AuctionContext {
    /// The exchange's id (index in `TableSettings::exchanges`), if the path named one.
    pub exchange: Option<u32>,
    /// Hour of the week in UTC, Monday 00:00 = 0 .. Sunday 23:00 = 167.
    pub hour_of_week: u16,
}

/// Runs the auction: fills `out` (cleared first) with at most one bid per imp and
/// returns the response currency, or the reason for no bid. When several imps fail
/// for different reasons, the reason of the campaign that got furthest is returned
/// (below floor > currency > blocked > deals only > test > no match).
pub fn run(
    table: &Table,
    req: &BidRequest<'_>,
    ctx: &AuctionContext,
    out: &mut Vec<Bid>,
) -> Result<&'static str, NoBidReason> {
    out.clear();
    if table.active_count() == 0 {
        return Err(NoBidReason::NoCampaigns);
    }
    let cur = response_currency(table, req).ok_or(NoBidReason::Currency)?;
    let mut query = Query::empty(table.entries.len());
    query.resolve(&table.index, req, ctx);
    let mut reached = Stage::NoMatch;
    for (i, imp) in req.imp.iter().enumerate() {
        let Ok(i) = u32::try_from(i) else { break };
        match bid_imp(table, req, &mut query, imp, cur) {
            Ok(w) => out.push(Bid {
                imp: i,
                campaign: w.campaign,
                creative: w.creative,
                deal: w.deal,
                price: w.price,
            }),
            Err(stage) => reached = reached.max(stage),
        }
    }
    if out.is_empty() {
        Err(reached.reason())
    } else {
        Ok(cur.code)
    }
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
) -> Result<Win, Stage> {
    let floors = Floors::new(table, imp, cur)?;
    let ix = &table.index;
    query.set_imp(ix, imp);
    if query.ceiling == Some(Stage::NoMatch) {
        // A term admits nobody: nothing can even match.
        return Err(Stage::NoMatch);
    }
    let mut scan = Scan::new(query);
    scan.start(ix);
    let mut reached = Stage::NoMatch;
    let mut best: Option<Win> = None;
    let mut acc: Mask = [0; CHUNK_WORDS];
    for chunk in 0..ix.chunks {
        if query.ceiling.is_some_and(|c| reached >= c) {
            // A term admits nobody: no later chunk can get further.
            break;
        }
        if scan.skip(ix, chunk, reached) {
            continue;
        }
        // Prices never exceed max_cpm: skip chunks where nobody can beat the best bid,
        // or meet any floor once that is already the reason.
        let chunk_max = in_currency(table.chunk_max.get(chunk).copied().unwrap_or_default(), cur);
        if best.is_some_and(|b| chunk_max <= b.price)
            || (chunk_max < floors.min && reached == Stage::BelowFloor)
        {
            continue;
        }
        if !scan.eval(ix, chunk, &mut acc, &mut reached) {
            continue;
        }
        for (w, &word) in acc.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                let campaign =
                    (chunk * CHUNK_BITS + w * 64 + bits.trailing_zeros() as usize) as u32;
                bits &= bits - 1;
                match price(table, req, query, imp, &floors, cur, campaign) {
                    Ok(win) => {
                        if best.is_none_or(|b| win.price > b.price) {
                            best = Some(win);
                        }
                        // Later candidates bid no more than this one, and can only be
                        // raised to a floor: at or above the highest floor, this wins.
                        if win.price >= floors.max {
                            return best.ok_or(reached);
                        }
                    }
                    Err(stage) => reached = reached.max(stage),
                }
            }
        }
    }
    best.ok_or(reached)
}

/// Checks and prices one candidate: its first creative that fits and is not blocked,
/// and its cheapest admissible way to bid (the open auction or one of its deals).
fn price(
    table: &Table,
    req: &BidRequest<'_>,
    q: &Query,
    imp: &Imp<'_>,
    floors: &Floors,
    cur: Currency,
    campaign: u32,
) -> Result<Win, Stage> {
    let e: &Entry = table.entries.get(campaign as usize).ok_or(Stage::NoMatch)?;
    let seat = table.seats.get(e.seat as usize).map_or("", |s| &*s.name);
    if q.degraded {
        verify::stages(q, &table.index, req, imp, e, campaign, seat)?;
    } else if q.verify != 0 {
        verify::check(q.verify, &table.index, req, campaign, seat)?;
        if q.verify & verify::AD_BLOCKS != 0 && verify::every_ad_blocked(e, req, imp) {
            return Err(Stage::Blocked);
        }
    }
    let creative = pick_creative(e, req, imp)?;
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
        campaign,
        creative,
        deal,
        price,
    })
}

/// The campaign's first creative that fits the imp and is not blocked.
fn pick_creative(e: &Entry, req: &BidRequest<'_>, imp: &Imp<'_>) -> Result<u32, Stage> {
    let mut fail = Stage::NoMatch;
    for (i, ad) in e.ads.iter().enumerate() {
        let Some(battr) = fits(ad, imp) else { continue };
        let blocked = ad.attr.iter().any(|a| battr.contains(a))
            || ad
                .cat
                .iter()
                .any(|c| req.bcat.iter().any(|b| category_under(c, b.trim())));
        if blocked {
            fail = Stage::Blocked;
            continue;
        }
        return u32::try_from(i).map_err(|_| Stage::NoMatch);
    }
    Err(fail)
}

/// Whether a creative fits the imp's format, size and security; if so, the blocked
/// attributes of that format.
fn fits<'i>(ad: &Ad, imp: &'i Imp<'_>) -> Option<&'i [u32]> {
    if imp.secure == Some(1) && !ad.secure {
        return None;
    }
    match ad.kind {
        CreativeKind::Banner => {
            let b = imp.banner.as_ref()?;
            b.sizes().any(|s| s == (ad.w, ad.h)).then_some(&b.battr[..])
        }
        CreativeKind::Video => {
            let v = imp.video.as_ref()?;
            let mime = v.mimes.is_empty()
                || v.mimes
                    .iter()
                    .any(|m| m.trim().eq_ignore_ascii_case(&ad.mime));
            let duration = v.minduration.is_none_or(|min| ad.duration >= min)
                && v.maxduration.is_none_or(|max| ad.duration <= max);
            let protocol = (v.protocols.is_empty() && v.protocol.is_none())
                || v.protocols.contains(&ad.protocol)
                || v.protocol == Some(ad.protocol);
            (mime && duration && protocol).then_some(&v.battr[..])
        }
        CreativeKind::Native => imp.native.as_ref().map(|n| &n.battr[..]),
    }
}
