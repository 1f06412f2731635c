//! The indexed auction against a brute-force reference written straight from the
//! targeting rules: on random campaign sets and requests (small vocabularies, so that
//! most dimensions match and collide), both must pick the same campaign, creative, deal
//! and price for every imp, and give the same no-bid reason: the furthest any campaign
//! got through the stages no match < test < deals only < blocked < currency < below
//! floor.

mod targeting_reference;
mod targeting_support;

use serde_json::{json, Value};
use shardbid::auction;
use shardbid::money::Micros;
use shardbid::openrtb::request::BidRequest;
use shardbid::targeting::MatchContext;
use shardbid::targeting::{CampaignSet, Table};
use shardbid_testkit::rng::Rng;
use targeting_reference::{bid_of, reference, Expected};
use targeting_support::settings;

/// With probability `p`, up to `max` distinct items (see `Rng::pick_some`); else none.
fn opt<T: Clone + PartialEq>(r: &mut Rng, items: &[T], p: f64, max: usize) -> Vec<T> {
    if r.chance(p) {
        r.pick_some(items, max)
    } else {
        Vec::new()
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
    json!({"allow": opt(r, pool, 0.3, 2),
           "deny": opt(r, pool, 0.2, 1)})
}

fn campaign(r: &mut Rng, i: usize, segs: &[String]) -> Value {
    let mut creatives = Vec::new();
    for k in 0..1 + r.below(3) {
        let kind = r.pick(&["banner", "banner", "video", "native"]);
        let (w, h) = r.pick(&SIZES);
        creatives.push(json!({
            "id": format!("cr{k}"), "kind": kind, "w": w, "h": h, "adm": "<ad>",
            "cat": r.pick_some(&CATS, 2), "attr": r.pick_some(&[1u32, 13, 14], 1),
            "mime": r.pick(&MIMES), "duration": r.pick(&[15u32, 30, 60]),
            "protocol": r.pick(&[2u32, 3, 7]), "secure": r.chance(0.8),
        }));
    }
    let bid = r.pick(&PRICES);
    let mut c = json!({
        "id": format!("c{i:05}"), "active": r.chance(0.95), "adomain": [r.pick(&ADOMAINS)],
        "bid_cpm": bid, "creatives": creatives,
        "targeting": {
            "exchanges": opt(r, &["adx", "example"], 0.2, 1),
            "inventory": r.pick(&["any", "any", "site", "app"]),
            "domains": filter(r, &DOMAINS), "bundles": filter(r, &BUNDLES),
            "publishers": filter(r, &PUBS), "categories": filter(r, &CATS),
            "device_types": opt(r, &[1u32, 2, 4, 5], 0.3, 2),
            "os": opt(r, &OS, 0.3, 2),
            "countries": opt(r, &COUNTRIES, 0.3, 2),
            "regions": opt(r, &REGIONS, 0.15, 1),
            "cities": opt(r, &CITIES, 0.15, 1),
            "segments": opt(r, segs, if segs.len() > 300 { 0.9 } else { 0.3 }, 3),
            "deals": opt(r, &DEALS, 0.2, 2),
            "test_requests": r.chance(0.8),
        }
    });
    if r.chance(0.3) {
        c["max_cpm"] = json!(r.pick(&["2", "3.33", "5"]));
        if Micros::parse(c["max_cpm"].as_str().unwrap()) < Micros::parse(bid) {
            c["max_cpm"] = json!(bid);
        }
    }
    if r.chance(0.4) {
        c["seat"] = json!(r.pick(&SEATS));
    }
    if r.chance(0.3) {
        c["bundle"] = json!(r.pick(&BUNDLES));
    }
    if r.chance(0.2) {
        let from = r.below(23);
        c["targeting"]["dayparts"] = json!([{"days": [r.pick(&["mon", "tue", "sun"])], "from": from, "to": from + 1 + r.below(24 - from)}]);
    }
    c
}

fn request(r: &mut Rng, segs: &[String]) -> Value {
    let mut imps = Vec::new();
    for k in 0..1 + r.below(3) {
        let mut imp = json!({"id": format!("i{k}"), "bidfloor": r.pick(&FLOORS)});
        if r.chance(0.3) {
            imp["bidfloorcur"] = json!(r.pick(&["USD", "EUR", "GBP", "JPY"]));
        }
        if r.chance(0.3) {
            imp["secure"] = json!(1);
        }
        if r.chance(0.7) {
            let mut b = json!({"battr": r.pick_some(&[1u32, 13], 1)});
            if r.chance(0.5) {
                let f: Vec<Value> = r
                    .pick_some(&SIZES, 3)
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
        if r.chance(0.3) {
            imp["video"] = json!({"mimes": r.pick_some(&MIMES, 2), "minduration": r.pick(&[0u32, 15, 20]),
                "maxduration": r.pick(&[30u32, 60]), "protocols": r.pick_some(&[2u32, 3, 7], 2),
                "battr": r.pick_some(&[13u32, 14], 1)});
        }
        if r.chance(0.2) {
            imp["native"] = json!({"request": "{}", "battr": r.pick_some(&[14u32], 1)});
        }
        if r.chance(0.3) {
            let deals: Vec<Value> = r
                .pick_some(&DEALS, 3)
                .iter()
                .map(|d| {
                    let mut deal =
                        json!({"id": d, "bidfloor": r.pick(&FLOORS), "wseat": r.pick_some(&SEATS, 1)});
                    if r.chance(0.3) {
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
    let domain = r.mixed_case(domain, 0.3);
    let place = json!({"domain": domain, "bundle": r.pick(&BUNDLES),
        "cat": r.pick_some(&CATS, 2), "publisher": {"id": r.pick(&PUBS)}});
    let country = r.pick(&COUNTRIES);
    let country = r.mixed_case(country, 0.3);
    let geo = json!({"country": country, "region": r.pick(&REGIONS), "city": r.pick(&CITIES)});
    let os = r.pick(&OS);
    let os = r.mixed_case(os, 0.3);
    let many = segs.len() > 300 && r.chance(0.5);
    let seg_ids: Vec<Value> = if many {
        segs.iter().map(|s| json!({"id": s})).collect()
    } else {
        r.pick_some(segs, 3)
            .iter()
            .map(|s| json!({"id": s}))
            .collect()
    };
    let mut req = json!({
        "id": "r", "imp": imps, "test": r.below(2),
        "device": {"devicetype": r.pick(&[1u32, 2, 4, 5]), "os": os},
        "user": {"data": [{"segment": seg_ids}]},
        "cur": r.pick(&[json!([]), json!(["USD"]), json!(["EUR"]), json!(["GBP", "EUR"]), json!(["JPY"])]),
        "bcat": r.pick_some(&CATS, 1), "badv": r.pick_some(&["adv1.com", "adv2.com", "shop.adv2.com"], 1),
        "bapp": r.pick_some(&BUNDLES, 1), "wseat": opt(r, &["shardbid", "Agency1", "Agency2"], 0.2, 2),
        "bseat": opt(r, &SEATS, 0.2, 1),
    });
    match r.below(3) {
        0 => req["site"] = place,
        1 => req["app"] = place,
        _ => {}
    }
    if r.chance(0.5) {
        req["device"]["geo"] = geo;
    } else {
        req["user"]["geo"] = geo;
    }
    req
}

/// Runs `requests` random requests against a random table; returns (imps, imps with a bid).
fn compare(seed: u64, campaigns: usize, requests: usize, big_segments: bool) -> (usize, usize) {
    let mut r = Rng::new(seed);
    let segs = segments(big_segments);
    let set: CampaignSet = serde_json::from_value(json!({
        "campaigns": (0..campaigns).map(|i| campaign(&mut r, i, &segs)).collect::<Vec<_>>()
    }))
    .unwrap();
    let s = settings();
    let table = Table::build(&set, &s, 1).unwrap_or_else(|e| panic!("{e:#?}"));
    // The same table with prefetching the other way: a hint, so the same answers.
    let mut other = table.clone();
    other.set_prefetch(!table.prefetches());
    let (mut bids, mut other_bids) = (Vec::new(), Vec::new());
    let (mut imps, mut won) = (0, 0);
    for n in 0..requests {
        let text = request(&mut r, &segs).to_string();
        let req: BidRequest = serde_json::from_str(&text).unwrap();
        let ctx = MatchContext {
            exchange: [None, Some(0), Some(1)][r.below(3)],
            hour_of_week: r.below(170) as u16,
        };
        let (expected, expected_reason) = reference(&set, &s, &req, &ctx);
        let got = auction::run(&table, &req, &ctx, &mut (), &mut bids);
        let other_got = auction::run(&other, &req, &ctx, &mut (), &mut other_bids);
        assert_eq!(
            (got.err(), &other_bids),
            (other_got.err(), &bids),
            "prefetch {}: seed {seed}, request {n}",
            other.prefetches()
        );
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
    for seed in 1000..1004 {
        assert_mixed(compare(seed, 2048 * 2 + 700, 120, false));
    }
}

#[test]
fn requests_with_more_values_than_the_query_holds_match_the_reference() {
    for seed in 2000..2004 {
        assert_mixed(compare(seed, 600, 60, true));
    }
}
