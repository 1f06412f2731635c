//! The targeting bench's campaigns and requests: realistic mixes of formats, sizes,
//! prices and targeting, with skewed (popular-first) picks from large pools of domains,
//! apps, segments and advertisers.
//!
//! A bench-specific layer on `shardbid_testkit` (its RNG and its vocabulary of countries,
//! OS, banner sizes and MIME types), not `shardbid_testkit::traffic` itself, because
//! what this bench measures needs a different shape of data:
//! - scale: up to 100,000 campaigns over pools of 20,000 domains, 5,000 apps, 50,000
//!   segments and 20,000 advertisers (the load generator's vocabulary has 1,600
//!   domains, 320 apps, 6,000 segments and 80 advertisers), so that the index's memory
//!   and prefetching are those of a large table;
//! - popularity: values drawn popular-first ([`Rng::skewed`]), so that some posting
//!   lists are long and most are short, where the load generator draws uniformly;
//! - one imp per request, so that each timing is one imp's auction; and no built-in
//!   bid share (the load generator's requests are built to bid or not against its own
//!   campaigns).

use serde_json::{json, Value};
use shardbid::money::Micros;
use shardbid::targeting::campaign::{
    Campaign, CampaignSet, Creative, CreativeKind, Daypart, Inventory, ListFilter, Targeting,
};
use shardbid_testkit::rng::Rng;
use shardbid_testkit::traffic::vocab;

const DOMAINS: usize = 20_000;
const BUNDLES: usize = 5_000;
const PUBLISHERS: usize = 2_000;
const ADVERTISERS: usize = 20_000;
const SEGMENTS: usize = 50_000;
const DEALS: usize = 2_000;
const REGIONS: usize = 500;
const CITIES: usize = 2_000;

/// A country code, popular first: the vocabulary's lit countries (USA first), then its
/// dark ones.
fn country(r: &mut Rng) -> &'static str {
    let (lit, dark) = (vocab::LIT_COUNTRIES, vocab::DARK_COUNTRIES);
    let i = r.skewed(lit.len() + dark.len());
    lit.get(i).unwrap_or_else(|| &dark[i - lit.len()]).code
}

/// A banner size, popular first (300x250 most of all).
fn banner(r: &mut Rng) -> (u32, u32) {
    *r.pick_skewed(vocab::LIT_BANNER_SIZES)
}

/// A video MIME type: the one every generated video has, or another.
fn mime(r: &mut Rng) -> &'static str {
    let i = r.below(1 + vocab::OTHER_VIDEO_MIMES.len());
    i.checked_sub(1)
        .map_or(vocab::VIDEO_MIME, |i| vocab::OTHER_VIDEO_MIMES[i])
}

fn category(r: &mut Rng) -> String {
    let top = 1 + r.skewed(26);
    if r.chance(0.5) {
        format!("IAB{top}")
    } else {
        format!("IAB{top}-{}", 1 + r.below(10))
    }
}

/// With probability `p`, one to `max` items; else none.
fn list(r: &mut Rng, p: f64, max: usize, mut item: impl FnMut(&mut Rng) -> String) -> Vec<String> {
    if !r.chance(p) {
        return Vec::new();
    }
    (0..1 + r.below(max)).map(|_| item(r)).collect()
}

fn filter(
    r: &mut Rng,
    allow: f64,
    deny: f64,
    max: usize,
    item: impl FnMut(&mut Rng) -> String + Copy,
) -> ListFilter {
    ListFilter {
        allow: list(r, allow, max, item),
        deny: list(r, deny, max.min(5), item),
    }
}

fn creative(r: &mut Rng, id: String) -> Creative {
    let kind = match r.below(100) {
        0..=74 => CreativeKind::Banner,
        75..=89 => CreativeKind::Video,
        _ => CreativeKind::Native,
    };
    let (w, h) = banner(r);
    let video = kind == CreativeKind::Video;
    Creative {
        adm: format!(
            "<a href=\"https://brand.example/c/{id}?b=${{AUCTION_BID_ID}}\"><img src=\"https://cdn.brand.example/{id}.jpg\" width=\"{w}\" height=\"{h}\"></a>"
        ),
        id,
        kind,
        w: (kind == CreativeKind::Banner).then_some(w),
        h: (kind == CreativeKind::Banner).then_some(h),
        cat: (0..1 + r.below(2)).map(|_| category(r)).collect(),
        attr: if r.chance(0.15) { vec![*r.pick(&[1u32, 3, 6, 13, 14])] } else { Vec::new() },
        mime: video.then(|| mime(r).to_string()),
        duration: video.then(|| *r.pick(&[6u32, 15, 15, 30, 60])),
        protocol: video.then(|| *r.pick(&[2u32, 3, 3, 7])),
        secure: r.chance(0.9),
    }
}

/// `n` campaigns, the same for the same seed.
pub fn campaigns(n: usize, seed: u64) -> CampaignSet {
    let mut r = Rng::new(seed);
    let campaigns = (0..n)
        .map(|i| {
            let r = &mut r;
            // Prices from 0.05 to ~20 USD CPM, most of them low.
            let bid = Micros(50_000 + (r.skewed(2_000) as i64) * 10_000 + r.below(10_000) as i64);
            let dayparts = if r.chance(0.25) {
                let from = r.below(20) as u8;
                vec![Daypart {
                    days: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][..1 + r.below(7)]
                        .iter()
                        .map(|d| d.to_string())
                        .collect(),
                    from,
                    to: from + 1 + r.below(24 - from as usize) as u8,
                }]
            } else {
                Vec::new()
            };
            let targeting = Targeting {
                exchanges: list(r, 0.2, 1, |r| ["adx", "example"][r.below(2)].to_string()),
                inventory: [
                    Inventory::Any,
                    Inventory::Any,
                    Inventory::Site,
                    Inventory::Site,
                    Inventory::App,
                ][r.below(5)],
                domains: filter(r, 0.15, 0.1, 20, |r| {
                    format!("site{}.example", r.skewed(DOMAINS))
                }),
                bundles: filter(r, 0.08, 0.05, 10, |r| {
                    format!("com.app{}", r.skewed(BUNDLES))
                }),
                publishers: filter(r, 0.05, 0.05, 5, |r| format!("pub{}", r.skewed(PUBLISHERS))),
                categories: filter(r, 0.25, 0.2, 3, category),
                device_types: if r.chance(0.3) {
                    vec![*r.pick(&[1u32, 2, 4, 5]), *r.pick(&[3u32, 4, 6, 7])]
                } else {
                    Vec::new()
                },
                os: list(r, 0.3, 2, |r| r.pick(vocab::OSES).to_string()),
                countries: list(r, 0.5, 5, |r| country(r).to_string()),
                regions: list(r, 0.1, 3, |r| format!("R-{}", r.skewed(REGIONS))),
                cities: list(r, 0.1, 3, |r| format!("City{}", r.skewed(CITIES))),
                segments: list(r, 0.4, 10, |r| format!("seg{}", r.skewed(SEGMENTS))),
                deals: list(r, 0.03, 2, |r| format!("deal{}", r.skewed(DEALS))),
                dayparts,
                test_requests: r.chance(0.9),
            };
            let id = format!("cmp-{i:06}");
            Campaign {
                name: String::new(),
                active: r.chance(0.95),
                seat: r.chance(0.1).then(|| format!("seat{}", r.below(20))),
                adomain: vec![format!("brand{}.example", r.skewed(ADVERTISERS))],
                bundle: r
                    .chance(0.1)
                    .then(|| format!("com.app{}", r.skewed(BUNDLES))),
                bid_cpm: bid,
                max_cpm: r
                    .chance(0.5)
                    .then(|| Micros(bid.0 + bid.0 * r.below(50) as i64 / 100)),
                nurl: None,
                burl: None,
                budget: None,
                pacing: Default::default(),
                frequency_cap: None,
                targeting,
                creatives: (0..1 + r.below(3))
                    .map(|k| creative(r, format!("{id}-{k}")))
                    .collect(),
                id,
            }
        })
        .collect();
    CampaignSet {
        campaigns,
        ..CampaignSet::default()
    }
}

fn imp(r: &mut Rng) -> Value {
    let floor = *r.pick(&[0.0, 0.1, 0.5, 1.0, 2.0, 3.0]);
    let mut imp = json!({"id": "1", "bidfloor": floor});
    if r.chance(0.05) {
        imp["bidfloorcur"] = json!("EUR");
    }
    if r.chance(0.7) {
        imp["secure"] = json!(1);
    }
    match r.below(100) {
        0..=69 => {
            let (w, h) = banner(r);
            let mut b = json!({"w": w, "h": h});
            if r.chance(0.4) {
                let f: Vec<Value> = (0..1 + r.below(3))
                    .map(|_| banner(r))
                    .map(|(w, h)| json!({"w": w, "h": h}))
                    .collect();
                b["format"] = json!(f);
            }
            if r.chance(0.3) {
                b["battr"] = json!([r.pick(&[1u32, 3, 6]), r.pick(&[13u32, 14])]);
            }
            imp["banner"] = b;
        }
        70..=84 => {
            imp["video"] = json!({"mimes": [vocab::VIDEO_MIME, mime(r)], "minduration": 5,
                "maxduration": r.pick(&[15u32, 30, 60]), "protocols": [2, 3, r.pick(&[5u32, 7])],
                "w": 640, "h": 480});
        }
        _ => imp["native"] = json!({"request": "{\"native\":{}}", "ver": "1.2"}),
    }
    if r.chance(0.05) {
        let deals: Vec<Value> = (0..1 + r.below(3))
            .map(|_| json!({"id": format!("deal{}", r.skewed(DEALS)), "bidfloor": r.pick(&[1.0, 2.5, 4.0])}))
            .collect();
        imp["pmp"] = json!({"private_auction": r.chance(0.4) as u8, "deals": deals});
    }
    imp
}

/// `n` one-imp bid requests as JSON text, the same for the same seed.
pub fn requests(n: usize, seed: u64) -> Vec<String> {
    let mut r = Rng::new(seed);
    (0..n)
        .map(|i| {
            let r = &mut r;
            let segments: Vec<Value> = (0..r.below(30))
                .map(|_| json!({"id": format!("seg{}", r.skewed(SEGMENTS))}))
                .collect();
            let cats: Vec<String> = (0..1 + r.below(3)).map(|_| category(r)).collect();
            let publisher = json!({"id": format!("pub{}", r.skewed(PUBLISHERS))});
            let country = country(r);
            let mut req = json!({
                "id": format!("req-{i}"),
                "imp": [imp(r)],
                "device": {"devicetype": r.pick(&[1u32, 2, 3, 4, 5]), "os": r.pick(vocab::OSES),
                           "geo": {"country": country, "region": format!("R-{}", r.skewed(REGIONS)),
                                   "city": format!("City{}", r.skewed(CITIES))}},
                "user": {"id": "u", "data": [{"id": "dmp", "segment": segments}]},
                "test": r.chance(0.05) as u8,
                "tmax": 100,
            });
            if r.chance(0.7) {
                let sub = if r.chance(0.5) { "www." } else { "" };
                req["site"] = json!({"domain": format!("{sub}site{}.example", r.skewed(DOMAINS)),
                    "cat": cats, "publisher": publisher, "page": "https://example/page"});
            } else {
                req["app"] = json!({"bundle": format!("com.app{}", r.skewed(BUNDLES)), "cat": cats,
                    "publisher": publisher});
            }
            if r.chance(0.3) {
                req["bcat"] = json!((0..3 + r.below(6)).map(|_| category(r)).collect::<Vec<_>>());
            }
            if r.chance(0.2) {
                req["badv"] = json!((0..1 + r.below(10))
                    .map(|_| format!("brand{}.example", r.skewed(ADVERTISERS)))
                    .collect::<Vec<_>>());
            }
            if r.chance(0.05) {
                req["cur"] = json!(["EUR"]);
            }
            req.to_string()
        })
        .collect()
}
