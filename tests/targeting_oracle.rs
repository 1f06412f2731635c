//! The indexed auction against a brute-force reference written straight from the
//! targeting rules: on random campaign sets and requests (small vocabularies, so that
//! most dimensions match and collide), both must pick the same campaign, creative, deal
//! and price for every imp, and give the same no-bid reason: the furthest any campaign
//! got through the stages no match < test < deals only < blocked < currency < below
//! floor.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use shardbid::auction::NoBidReason;
use shardbid::auction::{self, AuctionContext};
use shardbid::money::Micros;
use shardbid::openrtb::request::{BidRequest, Imp};
use shardbid::targeting::campaign::{Campaign, Creative, CreativeKind, Inventory, ListFilter};
use shardbid::targeting::{CampaignSet, Table, TableSettings};

/// splitmix64: a tiny deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
    /// Up to `max` distinct items.
    fn some<T: Clone + PartialEq>(&mut self, items: &[T], max: usize) -> Vec<T> {
        let mut out = Vec::new();
        for _ in 0..self.below(max + 1) {
            let v = self.pick(items);
            if !out.contains(&v) {
                out.push(v);
            }
        }
        out
    }
    /// With `percent` chance, up to `max` distinct items; else none.
    fn opt<T: Clone + PartialEq>(&mut self, items: &[T], percent: u64, max: usize) -> Vec<T> {
        if self.chance(percent) {
            self.some(items, max)
        } else {
            Vec::new()
        }
    }
    /// A string with random ASCII case.
    fn case(&mut self, s: &str) -> String {
        s.chars()
            .map(|c| {
                if self.chance(30) {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect()
    }
}

const SIZES: [(u32, u32); 4] = [(300, 250), (728, 90), (320, 50), (160, 600)];
const MIMES: [&str; 2] = ["video/mp4", "video/webm"];
const DOMAINS: [&str; 4] = ["a.com", "b.com", "news.a.com", "c.org"];
const BUNDLES: [&str; 3] = ["com.x", "com.y", "com.z"];
const PUBS: [&str; 3] = ["p1", "p2", "p3"];
const CATS: [&str; 5] = ["IAB1", "IAB1-1", "IAB2", "IAB2-3", "IAB3"];
const OS: [&str; 3] = ["ios", "android", "windows"];
const COUNTRIES: [&str; 3] = ["USA", "DEU", "GBR"];
const REGIONS: [&str; 2] = ["US-NY", "US-CA"];
const CITIES: [&str; 2] = ["Berlin", "New York"];
const DEALS: [&str; 3] = ["d1", "d2", "d3"];
const SEATS: [&str; 2] = ["Agency1", "Agency2"];
const ADOMAINS: [&str; 3] = ["adv1.com", "shop.adv2.com", "adv3.com"];
const PRICES: [&str; 6] = ["0", "0.5", "1", "1.000001", "2", "3.33"];
const FLOORS: [f64; 5] = [0.0, 0.4, 1.0, 1.5, 2.5];

fn segments(big: bool) -> Vec<String> {
    (0..if big { 400 } else { 10 })
        .map(|i| format!("s{i}"))
        .collect()
}

fn filter(r: &mut Rng, pool: &[&str]) -> Value {
    json!({"allow": r.opt(pool, 30, 2),
           "deny": r.opt(pool, 20, 1)})
}

fn campaign(r: &mut Rng, i: usize, segs: &[String]) -> Value {
    let mut creatives = Vec::new();
    for k in 0..1 + r.below(3) {
        let kind = r.pick(&["banner", "banner", "video", "native"]);
        let (w, h) = r.pick(&SIZES);
        creatives.push(json!({
            "id": format!("cr{k}"), "kind": kind, "w": w, "h": h, "adm": "<ad>",
            "cat": r.some(&CATS, 2), "attr": r.some(&[1u32, 13, 14], 1),
            "mime": r.pick(&MIMES), "duration": r.pick(&[15u32, 30, 60]),
            "protocol": r.pick(&[2u32, 3, 7]), "secure": r.chance(80),
        }));
    }
    let bid = r.pick(&PRICES);
    let mut c = json!({
        "id": format!("c{i:05}"), "active": r.chance(95), "adomain": [r.pick(&ADOMAINS)],
        "bid_cpm": bid, "creatives": creatives,
        "targeting": {
            "exchanges": r.opt(&["adx", "example"], 20, 1),
            "inventory": r.pick(&["any", "any", "site", "app"]),
            "domains": filter(r, &DOMAINS), "bundles": filter(r, &BUNDLES),
            "publishers": filter(r, &PUBS), "categories": filter(r, &CATS),
            "device_types": r.opt(&[1u32, 2, 4, 5], 30, 2),
            "os": r.opt(&OS, 30, 2),
            "countries": r.opt(&COUNTRIES, 30, 2),
            "regions": r.opt(&REGIONS, 15, 1),
            "cities": r.opt(&CITIES, 15, 1),
            "segments": r.opt(segs, if segs.len() > 300 { 90 } else { 30 }, 3),
            "deals": r.opt(&DEALS, 20, 2),
            "test_requests": r.chance(80),
        }
    });
    if r.chance(30) {
        c["max_cpm"] = json!(r.pick(&["2", "3.33", "5"]));
        if Micros::parse(c["max_cpm"].as_str().unwrap()) < Micros::parse(bid) {
            c["max_cpm"] = json!(bid);
        }
    }
    if r.chance(40) {
        c["seat"] = json!(r.pick(&SEATS));
    }
    if r.chance(30) {
        c["bundle"] = json!(r.pick(&BUNDLES));
    }
    if r.chance(20) {
        let from = r.below(23);
        c["targeting"]["dayparts"] = json!([{"days": [r.pick(&["mon", "tue", "sun"])], "from": from, "to": from + 1 + r.below(24 - from)}]);
    }
    c
}

fn request(r: &mut Rng, segs: &[String]) -> Value {
    let mut imps = Vec::new();
    for k in 0..1 + r.below(3) {
        let mut imp = json!({"id": format!("i{k}"), "bidfloor": r.pick(&FLOORS)});
        if r.chance(30) {
            imp["bidfloorcur"] = json!(r.pick(&["USD", "EUR", "GBP", "JPY"]));
        }
        if r.chance(30) {
            imp["secure"] = json!(1);
        }
        if r.chance(70) {
            let mut b = json!({"battr": r.some(&[1u32, 13], 1)});
            if r.chance(50) {
                let f: Vec<Value> = r
                    .some(&SIZES, 3)
                    .iter()
                    .map(|(w, h)| json!({"w": w, "h": h}))
                    .collect();
                b["format"] = json!(f);
            }
            let (w, h) = r.pick(&SIZES);
            b["w"] = json!(w);
            b["h"] = json!(h);
            imp["banner"] = b;
        }
        if r.chance(30) {
            imp["video"] = json!({"mimes": r.some(&MIMES, 2), "minduration": r.pick(&[0u32, 15, 20]),
                "maxduration": r.pick(&[30u32, 60]), "protocols": r.some(&[2u32, 3, 7], 2),
                "battr": r.some(&[13u32, 14], 1)});
        }
        if r.chance(20) {
            imp["native"] = json!({"request": "{}", "battr": r.some(&[14u32], 1)});
        }
        if r.chance(30) {
            let deals: Vec<Value> = r
                .some(&DEALS, 3)
                .iter()
                .map(|d| {
                    let mut deal =
                        json!({"id": d, "bidfloor": r.pick(&FLOORS), "wseat": r.some(&SEATS, 1)});
                    if r.chance(30) {
                        deal["bidfloorcur"] = json!(r.pick(&["USD", "EUR", "JPY"]));
                    }
                    deal
                })
                .collect();
            imp["pmp"] = json!({"private_auction": r.below(2), "deals": deals});
        }
        imps.push(imp);
    }
    let domain = r.pick(&DOMAINS);
    let domain = r.case(domain);
    let place = json!({"domain": domain, "bundle": r.pick(&BUNDLES),
        "cat": r.some(&CATS, 2), "publisher": {"id": r.pick(&PUBS)}});
    let country = r.pick(&COUNTRIES);
    let country = r.case(country);
    let geo = json!({"country": country, "region": r.pick(&REGIONS), "city": r.pick(&CITIES)});
    let os = r.pick(&OS);
    let os = r.case(os);
    let many = segs.len() > 300 && r.chance(50);
    let seg_ids: Vec<Value> = if many {
        segs.iter().map(|s| json!({"id": s})).collect()
    } else {
        r.some(segs, 3).iter().map(|s| json!({"id": s})).collect()
    };
    let mut req = json!({
        "id": "r", "imp": imps, "test": r.below(2),
        "device": {"devicetype": r.pick(&[1u32, 2, 4, 5]), "os": os},
        "user": {"data": [{"segment": seg_ids}]},
        "cur": r.pick(&[json!([]), json!(["USD"]), json!(["EUR"]), json!(["GBP", "EUR"]), json!(["JPY"])]),
        "bcat": r.some(&CATS, 1), "badv": r.some(&["adv1.com", "adv2.com", "shop.adv2.com"], 1),
        "bapp": r.some(&BUNDLES, 1), "wseat": r.opt(&["shardbid", "Agency1", "Agency2"], 20, 2),
        "bseat": r.opt(&SEATS, 20, 1),
    });
    match r.below(3) {
        0 => req["site"] = place,
        1 => req["app"] = place,
        _ => {}
    }
    if r.chance(50) {
        req["device"]["geo"] = geo;
    } else {
        req["user"]["geo"] = geo;
    }
    req
}

fn settings() -> TableSettings {
    TableSettings {
        exchanges: vec!["adx".into(), "example".into()],
        currencies: BTreeMap::from([
            ("EUR".into(), Micros(1_080_000)),
            ("GBP".into(), Micros(1_270_000)),
        ]),
        default_seat: "shardbid".into(),
        nurl: String::new(),
        burl: String::new(),
    }
}

// ---- the reference, straight from the rules ----

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
    ctx: &AuctionContext,
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
    (!req.wseat.is_empty() && !req.wseat.iter().any(|w| w == &seat))
        || req.bseat.iter().any(|b| b == &seat)
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
type Expected = Vec<Option<(String, String, Option<usize>, i64)>>;

/// One campaign on one imp: its bid, or the stage it failed at.
fn bid_of(
    c: &Campaign,
    s: &TableSettings,
    req: &BidRequest,
    imp: &Imp,
    ctx: &AuctionContext,
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
            if !d.wseat.is_empty() && !d.wseat.iter().any(|w| w == &seat) {
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
fn reference(
    set: &CampaignSet,
    s: &TableSettings,
    req: &BidRequest,
    ctx: &AuctionContext,
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

fn compare(seed: u64, campaigns: usize, requests: usize, big_segments: bool) -> (usize, usize) {
    let mut r = Rng(seed);
    let segs = segments(big_segments);
    let set: CampaignSet = serde_json::from_value(json!({
        "campaigns": (0..campaigns).map(|i| campaign(&mut r, i, &segs)).collect::<Vec<_>>()
    }))
    .unwrap();
    let s = settings();
    let table = Table::build(&set, &s, 1).unwrap_or_else(|e| panic!("{e:#?}"));
    let mut bids = Vec::new();
    let (mut imps, mut won) = (0, 0);
    for n in 0..requests {
        let text = request(&mut r, &segs).to_string();
        let req: BidRequest = serde_json::from_str(&text).unwrap();
        let ctx = AuctionContext {
            exchange: [None, Some(0), Some(1)][r.below(3)],
            hour_of_week: r.below(170) as u16,
        };
        let (expected, expected_reason) = reference(&set, &s, &req, &ctx);
        let got = auction::run(&table, &req, &ctx, &mut bids);
        let mut actual: Expected = vec![None; req.imp.len()];
        for b in &bids {
            let c = table.campaign(b.campaign).unwrap();
            actual[b.imp as usize] = Some((
                c.id.clone(),
                c.creatives[b.creative as usize].id.clone(),
                b.deal.map(|d| d as usize),
                b.price.0,
            ));
        }
        assert_eq!(
            actual, expected,
            "seed {seed}, request {n}: {text}\nctx {ctx:?}"
        );
        if got.err() != expected_reason {
            for c in &set.campaigns {
                let stages: Vec<_> = req
                    .imp
                    .iter()
                    .map(|imp| bid_of(c, &s, &req, imp, &ctx, "USD"))
                    .collect();
                eprintln!(
                    "{} {stages:?}\n  {}",
                    c.id,
                    serde_json::to_string(c).unwrap()
                );
            }
        }
        assert_eq!(
            got.err(),
            expected_reason,
            "seed {seed}, request {n}: {text}\nctx {ctx:?}"
        );
        imps += expected.len();
        won += expected.iter().filter(|e| e.is_some()).count();
    }
    (imps, won)
}

/// The comparison means something only if both outcomes are common.
fn assert_mixed((imps, won): (usize, usize)) {
    assert!(
        won * 10 > imps && won * 10 < imps * 9,
        "{won} of {imps} imps got a bid"
    );
}

#[test]
fn small_tables_match_the_reference() {
    let mut total = (0, 0);
    for seed in 0..300 {
        let (imps, won) = compare(seed, 1 + seed as usize % 60, 40, false);
        total = (total.0 + imps, total.1 + won);
    }
    assert_mixed(total);
}

#[test]
fn multi_chunk_tables_match_the_reference() {
    for seed in 1000..1002 {
        assert_mixed(compare(seed, 2048 * 2 + 700, 120, false));
    }
}

#[test]
fn requests_with_more_values_than_the_query_holds_match_the_reference() {
    for seed in 2000..2004 {
        assert_mixed(compare(seed, 600, 60, true));
    }
}
