//! A brute-force reference of the auction, written straight from the targeting rules
//! without any index: for each imp, every campaign in price order, each checked stage
//! by stage (no match < test < deals only < blocked < currency < below floor).

use shardbid::auction::NoBidReason;
use shardbid::money::Micros;
use shardbid::openrtb::request::{BidRequest, Imp};
use shardbid::targeting::campaign::{Campaign, Creative, CreativeKind, Inventory, ListFilter};
use shardbid::targeting::MatchContext;
use shardbid::targeting::{CampaignSet, TableSettings};

fn ieq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn under(v: &str, parent: &str, sep: char, suffix: bool) -> bool {
    let (v, p) = (v.to_ascii_lowercase(), parent.to_ascii_lowercase());
    v == p
        || if suffix {
            v.ends_with(&format!("{sep}{p}"))
        } else {
            v.starts_with(&format!("{p}{sep}"))
        }
}

fn list_ok(f: &ListFilter, matches: impl Fn(&str) -> bool) -> bool {
    (f.allow.is_empty() || f.allow.iter().any(|a| matches(a))) && !f.deny.iter().any(|d| matches(d))
}

fn rate(s: &TableSettings, code: &str) -> Option<i128> {
    if ieq(code, "USD") {
        return Some(1_000_000);
    }
    s.currencies
        .iter()
        .find(|(c, _)| ieq(c, code))
        .map(|(_, r)| r.0 as i128)
}

/// Floor in the response currency, rounded up.
fn floor_in(s: &TableSettings, amount: f64, code: Option<&str>, cur: &str) -> Option<i64> {
    let code = code.unwrap_or("USD");
    let m = Micros::from_f64(amount)?.0 as i128;
    if ieq(code, cur) {
        return Some(m as i64);
    }
    let (from, to) = (rate(s, code)?, rate(s, cur)?);
    Some(((m * from + to - 1) / to) as i64)
}

fn usd_in(s: &TableSettings, usd: Micros, cur: &str) -> i64 {
    (usd.0 as i128 * 1_000_000 / rate(s, cur).unwrap()) as i64
}

/// The no-match stage: everything the campaign targets, including its deals.
fn matches(
    c: &Campaign,
    req: &BidRequest,
    imp: &Imp,
    ctx: &MatchContext,
    s: &TableSettings,
) -> bool {
    let t = &c.targeting;
    let dev = req.device.as_ref();
    let geo = req.geo();
    let (kind, domain, bundle, publisher, cats) = if let Some(site) = &req.site {
        let p = site.publisher.as_ref().and_then(|p| p.id.as_deref());
        (
            Inventory::Site,
            site.domain.as_deref(),
            None,
            p,
            &site.cat[..],
        )
    } else if let Some(app) = &req.app {
        let p = app.publisher.as_ref().and_then(|p| p.id.as_deref());
        (
            Inventory::App,
            app.domain.as_deref(),
            app.bundle.as_deref(),
            p,
            &app.cat[..],
        )
    } else {
        (Inventory::Any, None, None, None, &[][..])
    };
    let in_list = |list: &[String], v: Option<&str>| {
        list.is_empty() || v.is_some_and(|v| list.iter().any(|x| ieq(x, v)))
    };
    let hour = ctx.hour_of_week as u32;
    let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let private = imp.pmp.as_ref().is_some_and(|p| p.private_auction == 1);
    let holds_deal = holds_imp_deal(c, imp);
    c.active
        && (t.exchanges.is_empty()
            || ctx.exchange.is_some_and(|e| {
                t.exchanges
                    .iter()
                    .any(|n| Some(n) == s.exchanges.get(e as usize))
            }))
        && (t.dayparts.is_empty()
            || t.dayparts.iter().any(|d| {
                d.days.iter().any(|day| {
                    let i = days.iter().position(|x| x == day).unwrap() as u32;
                    hour / 24 == i && (d.from as u32..d.to as u32).contains(&(hour % 24))
                })
            }))
        && (t.inventory == Inventory::Any || t.inventory == kind)
        && (t.device_types.is_empty()
            || dev
                .and_then(|d| d.devicetype)
                .is_some_and(|d| t.device_types.contains(&d)))
        && in_list(&t.os, dev.and_then(|d| d.os.as_deref()))
        && in_list(&t.countries, geo.and_then(|g| g.country.as_deref()))
        && in_list(&t.regions, geo.and_then(|g| g.region.as_deref()))
        && in_list(&t.cities, geo.and_then(|g| g.city.as_deref()))
        && (t.segments.is_empty() || req.segments().any(|x| t.segments.iter().any(|y| y == x)))
        && list_ok(&t.domains, |p| {
            domain.is_some_and(|d| under(d, p, '.', true))
        })
        && list_ok(&t.bundles, |p| bundle.is_some_and(|b| ieq(b, p)))
        && list_ok(&t.publishers, |p| publisher == Some(p))
        && list_ok(&t.categories, |p| {
            cats.iter().any(|x| under(x, p, '-', false))
        })
        && c.creatives.iter().any(|cr| format_ok(cr, imp))
        && (private || t.deals.is_empty() || holds_deal)
}

fn holds_imp_deal(c: &Campaign, imp: &Imp) -> bool {
    imp.pmp
        .iter()
        .flat_map(|p| &p.deals)
        .any(|d| c.targeting.deals.iter().any(|x| x == d.id.as_str()))
}

/// The format a creative is indexed under: kind, size or MIME, and security.
fn format_ok(cr: &Creative, imp: &Imp) -> bool {
    if imp.secure == Some(1) && !cr.secure {
        return false;
    }
    match cr.kind {
        CreativeKind::Banner => imp
            .banner
            .as_ref()
            .is_some_and(|b| b.sizes().any(|s| (Some(s.0), Some(s.1)) == (cr.w, cr.h))),
        CreativeKind::Video => imp.video.as_ref().is_some_and(|v| {
            v.mimes.is_empty() || v.mimes.iter().any(|m| ieq(m, cr.mime.as_deref().unwrap()))
        }),
        CreativeKind::Native => imp.native.is_some(),
    }
}

/// The blocked stage, campaign-wide: seats, advertiser, app, and blocks every creative has.
fn blocked(c: &Campaign, req: &BidRequest, imp: &Imp, seat: &str) -> bool {
    let battr: &[u32] = match (&imp.banner, &imp.video, &imp.native) {
        (Some(b), None, None) => &b.battr,
        (None, Some(v), None) => &v.battr,
        (None, None, Some(n)) => &n.battr,
        _ => &[],
    };
    (!req.wseat.is_empty() && !req.wseat.iter().any(|w| w == seat))
        || req.bseat.iter().any(|b| b == seat)
        || c.adomain
            .iter()
            .any(|a| req.badv.iter().any(|b| under(a, b, '.', true)))
        || c.bundle
            .as_ref()
            .is_some_and(|b| req.bapp.iter().any(|x| ieq(x, b)))
        || req.bcat.iter().any(|b| {
            c.creatives
                .iter()
                .all(|cr| cr.cat.iter().any(|x| under(x, b, '-', false)))
        })
        || battr
            .iter()
            .any(|a| c.creatives.iter().all(|cr| cr.attr.contains(a)))
}

/// The first creative that fits and is not blocked, else how far the best one got.
fn creative(c: &Campaign, req: &BidRequest, imp: &Imp) -> Result<usize, u8> {
    let mut fail = NO_MATCH;
    for (i, cr) in c.creatives.iter().enumerate() {
        if imp.secure == Some(1) && !cr.secure {
            continue;
        }
        let battr = match cr.kind {
            CreativeKind::Banner => match &imp.banner {
                Some(b) if b.sizes().any(|s| (Some(s.0), Some(s.1)) == (cr.w, cr.h)) => &b.battr,
                _ => continue,
            },
            CreativeKind::Video => match &imp.video {
                Some(v) => {
                    let mime = cr.mime.as_deref().unwrap();
                    let d = cr.duration.unwrap();
                    let p = cr.protocol.unwrap();
                    let ok = (v.mimes.is_empty() || v.mimes.iter().any(|m| ieq(m, mime)))
                        && v.minduration.is_none_or(|x| d >= x)
                        && v.maxduration.is_none_or(|x| d <= x)
                        && ((v.protocols.is_empty() && v.protocol.is_none())
                            || v.protocols.contains(&p)
                            || v.protocol == Some(p));
                    if !ok {
                        continue;
                    }
                    &v.battr
                }
                None => continue,
            },
            CreativeKind::Native => match &imp.native {
                Some(n) => &n.battr,
                None => continue,
            },
        };
        if cr.attr.iter().any(|a| battr.contains(a))
            || cr
                .cat
                .iter()
                .any(|c| req.bcat.iter().any(|b| under(c, b, '-', false)))
        {
            fail = BLOCKED;
            continue;
        }
        return Ok(i);
    }
    Err(fail)
}

// Stages, in the order the auction reports them (a later one is more informative).
const NO_MATCH: u8 = 0;
const TEST: u8 = 1;
const DEALS_ONLY: u8 = 2;
const BLOCKED: u8 = 3;
const CURRENCY: u8 = 4;
const BELOW_FLOOR: u8 = 5;

fn reason(stage: u8) -> NoBidReason {
    [
        NoBidReason::NoMatch,
        NoBidReason::Test,
        NoBidReason::DealsOnly,
        NoBidReason::Blocked,
        NoBidReason::Currency,
        NoBidReason::BelowFloor,
    ][stage as usize]
}

/// (campaign id, creative id, deal index, price) per imp.
pub type Expected = Vec<Option<(String, String, Option<usize>, i64)>>;

/// One campaign on one imp: its bid, or the stage it failed at.
pub fn bid_of(
    c: &Campaign,
    s: &TableSettings,
    req: &BidRequest,
    imp: &Imp,
    ctx: &MatchContext,
    cur: &str,
) -> Result<(usize, Option<usize>, i64), u8> {
    let seat = c.seat.as_deref().unwrap_or(&s.default_seat);
    let private = imp.pmp.as_ref().is_some_and(|p| p.private_auction == 1);
    if !matches(c, req, imp, ctx, s) {
        return Err(NO_MATCH);
    }
    if req.test == 1 && !c.targeting.test_requests {
        return Err(TEST);
    }
    if private && !holds_imp_deal(c, imp) {
        return Err(DEALS_ONLY);
    }
    if blocked(c, req, imp, seat) {
        return Err(BLOCKED);
    }
    let k = creative(c, req, imp)?;
    let bid = usd_in(s, c.bid_cpm, cur);
    let max = usd_in(s, c.max_cpm.unwrap_or(c.bid_cpm), cur);
    let mut fail = NO_MATCH;
    let mut best: Option<(Option<usize>, i64)> = None;
    let mut consider = |deal: Option<usize>, floor: Option<i64>, fail: &mut u8| match floor {
        None => *fail = (*fail).max(CURRENCY),
        Some(f) if f > max || bid.max(f) <= 0 => *fail = (*fail).max(BELOW_FLOOR),
        Some(f) => {
            if best.is_none_or(|b| bid.max(f) < b.1) {
                best = Some((deal, bid.max(f)));
            }
        }
    };
    if c.targeting.deals.is_empty() {
        let floor = floor_in(s, imp.bidfloor, imp.bidfloorcur.as_deref(), cur);
        consider(None, floor, &mut fail);
    } else {
        for (i, d) in imp.pmp.iter().flat_map(|p| &p.deals).enumerate() {
            if !c.targeting.deals.iter().any(|x| x == d.id.as_str()) {
                continue;
            }
            if !d.wseat.is_empty() && !d.wseat.iter().any(|w| w == seat) {
                fail = fail.max(BLOCKED);
                continue;
            }
            consider(
                Some(i),
                floor_in(s, d.bidfloor, d.bidfloorcur.as_deref(), cur),
                &mut fail,
            );
        }
    }
    best.map(|(deal, price)| (k, deal, price)).ok_or(fail)
}

/// Every imp's winner, and the no-bid reason when no imp has one.
pub fn reference(
    set: &CampaignSet,
    s: &TableSettings,
    req: &BidRequest,
    ctx: &MatchContext,
) -> (Expected, Option<NoBidReason>) {
    let nobody = vec![None; req.imp.len()];
    if !set.campaigns.iter().any(|c| c.active) {
        return (nobody, Some(NoBidReason::NoCampaigns));
    }
    let cur = if req.cur.is_empty() || req.cur.iter().any(|c| ieq(c, "USD")) {
        "USD".to_string()
    } else {
        match req.cur.iter().find(|c| rate(s, c).is_some()) {
            Some(c) => c.to_string(),
            None => return (nobody, Some(NoBidReason::Currency)),
        }
    };
    let mut order: Vec<&Campaign> = set.campaigns.iter().collect();
    order.sort_by(|a, b| b.bid_cpm.cmp(&a.bid_cpm).then(a.id.cmp(&b.id)));
    let mut furthest = NO_MATCH;
    let bids: Expected = req
        .imp
        .iter()
        .map(|imp| {
            // An imp nobody can price: no usable floor at all.
            let private = imp.pmp.as_ref().is_some_and(|p| p.private_auction == 1);
            let open_floor = floor_in(s, imp.bidfloor, imp.bidfloorcur.as_deref(), &cur);
            let deals = imp.pmp.iter().flat_map(|p| &p.deals);
            let deal_floors: Vec<_> = deals
                .map(|d| floor_in(s, d.bidfloor, d.bidfloorcur.as_deref(), &cur))
                .collect();
            if (private || open_floor.is_none()) && deal_floors.iter().all(Option::is_none) {
                let mut missing = if private { DEALS_ONLY } else { CURRENCY };
                if deal_floors.iter().any(Option::is_none) {
                    missing = missing.max(CURRENCY);
                }
                furthest = furthest.max(missing);
                return None;
            }
            let mut best: Option<(String, String, Option<usize>, i64)> = None;
            for c in &order {
                match bid_of(c, s, req, imp, ctx, &cur) {
                    Ok((k, deal, price)) => {
                        if best.as_ref().is_none_or(|b| price > b.3) {
                            best = Some((c.id.clone(), c.creatives[k].id.clone(), deal, price));
                        }
                    }
                    Err(stage) => furthest = furthest.max(stage),
                }
            }
            best
        })
        .collect();
    let reason = (!bids.iter().any(Option::is_some)).then(|| reason(furthest));
    (bids, reason)
}
