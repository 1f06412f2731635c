//! A deterministic generator of varied campaigns and bid requests for the targeting
//! benchmarks: realistic mixes of formats, sizes, prices and targeting, with skewed
//! (popular-first) picks from large pools of domains, apps, segments and advertisers.

#![allow(dead_code)]

use serde_json::{json, Value};
use shardbid::money::Micros;
use shardbid::targeting::campaign::{
    Campaign, CampaignSet, Creative, CreativeKind, Daypart, Inventory, ListFilter, Targeting,
};

/// splitmix64.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    /// An index below `n`, low indexes (popular items) much more likely.
    pub fn skewed(&mut self, n: usize) -> usize {
        let x = (self.next() % 1_000_000) as f64 / 1_000_000.0;
        ((x * x * x) * n as f64) as usize
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

const DOMAINS: usize = 20_000;
const BUNDLES: usize = 5_000;
const PUBLISHERS: usize = 2_000;
const ADVERTISERS: usize = 20_000;
const SEGMENTS: usize = 50_000;
const DEALS: usize = 2_000;
const REGIONS: usize = 500;
const CITIES: usize = 2_000;
const COUNTRIES: [&str; 20] = [
    "USA", "GBR", "DEU", "FRA", "CAN", "JPN", "BRA", "IND", "AUS", "ESP", "ITA", "MEX", "NLD",
    "SWE", "POL", "TUR", "KOR", "ARG", "ZAF", "IRL",
];
const OS: [&str; 5] = ["iOS", "Android", "Windows", "OS X", "Linux"];
const BANNERS: [(u32, u32); 10] = [
    (300, 250),
    (300, 250),
    (300, 250),
    (728, 90),
    (320, 50),
    (160, 600),
    (300, 600),
    (970, 250),
    (336, 280),
    (320, 480),
];
const MIMES: [&str; 3] = ["video/mp4", "video/webm", "application/javascript"];

fn category(r: &mut Rng) -> String {
    let top = 1 + r.skewed(26);
    if r.chance(50) {
        format!("IAB{top}")
    } else {
        format!("IAB{top}-{}", 1 + r.below(10))
    }
}

fn list(
    r: &mut Rng,
    percent: u64,
    max: usize,
    mut item: impl FnMut(&mut Rng) -> String,
) -> Vec<String> {
    if !r.chance(percent) {
        return Vec::new();
    }
    (0..1 + r.below(max)).map(|_| item(r)).collect()
}

fn filter(
    r: &mut Rng,
    allow: u64,
    deny: u64,
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
    let (w, h) = r.pick(&BANNERS);
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
        attr: if r.chance(15) { vec![r.pick(&[1u32, 3, 6, 13, 14])] } else { Vec::new() },
        mime: video.then(|| r.pick(&MIMES).to_string()),
        duration: video.then(|| r.pick(&[6u32, 15, 15, 30, 60])),
        protocol: video.then(|| r.pick(&[2u32, 3, 3, 7])),
        secure: r.chance(90),
    }
}

/// `n` campaigns, the same for the same seed.
pub fn campaigns(n: usize, seed: u64) -> CampaignSet {
    let mut r = Rng(seed);
    let campaigns = (0..n)
        .map(|i| {
            let r = &mut r;
            // Prices from 0.05 to ~20 USD CPM, most of them low.
            let bid = Micros(50_000 + (r.skewed(2_000) as i64) * 10_000 + r.below(10_000) as i64);
            let dayparts = if r.chance(25) {
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
                exchanges: list(r, 20, 1, |r| ["adx", "example"][r.below(2)].to_string()),
                inventory: [
                    Inventory::Any,
                    Inventory::Any,
                    Inventory::Site,
                    Inventory::Site,
                    Inventory::App,
                ][r.below(5)],
                domains: filter(r, 15, 10, 20, |r| {
                    format!("site{}.example", r.skewed(DOMAINS))
                }),
                bundles: filter(r, 8, 5, 10, |r| format!("com.app{}", r.skewed(BUNDLES))),
                publishers: filter(r, 5, 5, 5, |r| format!("pub{}", r.skewed(PUBLISHERS))),
                categories: filter(r, 25, 20, 3, category),
                device_types: if r.chance(30) {
                    vec![r.pick(&[1u32, 2, 4, 5]), r.pick(&[3u32, 4, 6, 7])]
                } else {
                    Vec::new()
                },
                os: list(r, 30, 2, |r| r.pick(&OS).to_string()),
                countries: list(r, 50, 5, |r| {
                    COUNTRIES[r.skewed(COUNTRIES.len())].to_string()
                }),
                regions: list(r, 10, 3, |r| format!("R-{}", r.skewed(REGIONS))),
                cities: list(r, 10, 3, |r| format!("City{}", r.skewed(CITIES))),
                segments: list(r, 40, 10, |r| format!("seg{}", r.skewed(SEGMENTS))),
                deals: list(r, 3, 2, |r| format!("deal{}", r.skewed(DEALS))),
                dayparts,
                test_requests: r.chance(90),
            };
            let id = format!("cmp-{i:06}");
            Campaign {
                name: String::new(),
                active: r.chance(95),
                seat: r.chance(10).then(|| format!("seat{}", r.below(20))),
                adomain: vec![format!("brand{}.example", r.skewed(ADVERTISERS))],
                bundle: r
                    .chance(10)
                    .then(|| format!("com.app{}", r.skewed(BUNDLES))),
                bid_cpm: bid,
                max_cpm: r
                    .chance(50)
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
    let floor = r.pick(&[0.0, 0.1, 0.5, 1.0, 2.0, 3.0]);
    let mut imp = json!({"id": "1", "bidfloor": floor});
    if r.chance(5) {
        imp["bidfloorcur"] = json!("EUR");
    }
    if r.chance(70) {
        imp["secure"] = json!(1);
    }
    match r.below(100) {
        0..=69 => {
            let (w, h) = r.pick(&BANNERS);
            let mut b = json!({"w": w, "h": h});
            if r.chance(40) {
                let f: Vec<Value> = (0..1 + r.below(3))
                    .map(|_| r.pick(&BANNERS))
                    .map(|(w, h)| json!({"w": w, "h": h}))
                    .collect();
                b["format"] = json!(f);
            }
            if r.chance(30) {
                b["battr"] = json!([r.pick(&[1u32, 3, 6]), r.pick(&[13u32, 14])]);
            }
            imp["banner"] = b;
        }
        70..=84 => {
            imp["video"] = json!({"mimes": ["video/mp4", r.pick(&MIMES)], "minduration": 5,
                "maxduration": r.pick(&[15u32, 30, 60]), "protocols": [2, 3, r.pick(&[5u32, 7])],
                "w": 640, "h": 480});
        }
        _ => imp["native"] = json!({"request": "{\"native\":{}}", "ver": "1.2"}),
    }
    if r.chance(5) {
        let deals: Vec<Value> = (0..1 + r.below(3))
            .map(|_| json!({"id": format!("deal{}", r.skewed(DEALS)), "bidfloor": r.pick(&[1.0, 2.5, 4.0])}))
            .collect();
        imp["pmp"] = json!({"private_auction": r.chance(40) as u8, "deals": deals});
    }
    imp
}

/// `n` one-imp bid requests as JSON text, the same for the same seed.
pub fn requests(n: usize, seed: u64) -> Vec<String> {
    let mut r = Rng(seed);
    (0..n)
        .map(|i| {
            let r = &mut r;
            let segments: Vec<Value> = (0..r.below(30))
                .map(|_| json!({"id": format!("seg{}", r.skewed(SEGMENTS))}))
                .collect();
            let cats: Vec<String> = (0..1 + r.below(3)).map(|_| category(r)).collect();
            let publisher = json!({"id": format!("pub{}", r.skewed(PUBLISHERS))});
            let country = COUNTRIES[r.skewed(COUNTRIES.len())];
            let mut req = json!({
                "id": format!("req-{i}"),
                "imp": [imp(r)],
                "device": {"devicetype": r.pick(&[1u32, 2, 3, 4, 5]), "os": r.pick(&OS),
                           "geo": {"country": country, "region": format!("R-{}", r.skewed(REGIONS)),
                                   "city": format!("City{}", r.skewed(CITIES))}},
                "user": {"id": "u", "data": [{"id": "dmp", "segment": segments}]},
                "test": r.chance(5) as u8,
                "tmax": 100,
            });
            if r.chance(70) {
                let sub = if r.chance(50) { "www." } else { "" };
                req["site"] = json!({"domain": format!("{sub}site{}.example", r.skewed(DOMAINS)),
                    "cat": cats, "publisher": publisher, "page": "https://example/page"});
            } else {
                req["app"] = json!({"bundle": format!("com.app{}", r.skewed(BUNDLES)), "cat": cats,
                    "publisher": publisher});
            }
            if r.chance(30) {
                req["bcat"] = json!((0..3 + r.below(6)).map(|_| category(r)).collect::<Vec<_>>());
            }
            if r.chance(20) {
                req["badv"] = json!((0..1 + r.below(10))
                    .map(|_| format!("brand{}.example", r.skewed(ADVERTISERS)))
                    .collect::<Vec<_>>());
            }
            if r.chance(5) {
                req["cur"] = json!(["EUR"]);
            }
            req.to_string()
        })
        .collect()
}
