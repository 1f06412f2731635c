//! Campaign files of any size, consistent with the generated requests, as JSON in
//! shardbid's campaign format (`{"campaigns": [...]}`; prices as decimal strings).
//!
//! Campaign `j` depends only on `(seed, j)` and the campaign count:
//! - `0..BROAD` ([`BROAD_CAMPAIGNS`], fewer if the file is smaller): *broad* campaigns.
//!   Together they cover every lit country; each has creatives for every lit banner
//!   size, video and native, bids 2.00-3.50 (above any floor of a request built to bid)
//!   and has no other targeting. Every request built to bid fits one of them.
//! - the next [`vocab::ANCHOR_DEAL_COUNT`]: one campaign per anchor deal, for private
//!   auctions built to bid.
//! - the rest: *narrow* campaigns with random, realistic targeting (regions, devices, OS,
//!   inventory, domains, segments, deals, dayparts, exchanges ...), drawn from the same
//!   vocabulary. They add bids and index size but are never needed for the intended share.
//!
//! Every campaign targets lit countries only, denies the unsafe domains, holds only lit
//! deals, has creatives of lit sizes only and never bids above `MAX_CAMPAIGN_CPM`: the
//! no-bid requests stay no-bids whatever the count.
//!
//! The JSON leaves out what shardbid defaults (absent seat, bundle, `max_cpm`, notice
//! URLs; empty targeting lists). `shardbid-load campaigns` reads each campaign into
//! shardbid's own types and writes it with serde, so its files are exactly what the
//! server reads.

use serde_json::{json, Value};

use super::vocab;
use crate::rng::Rng;

/// Campaigns that together cover every lit country with no other targeting.
pub const BROAD_CAMPAIGNS: usize = 16;

/// Campaign count from which every request built to bid has a campaign that fits it
/// (broad campaigns plus the anchor-deal campaigns).
pub const FULL_SHARE_MIN_CAMPAIGNS: usize = BROAD_CAMPAIGNS + vocab::ANCHOR_DEAL_COUNT;

/// `count` campaigns for `seed`: `{"campaigns": [...]}`.
pub fn generate(count: usize, seed: u64) -> Value {
    let campaigns: Vec<Value> = (0..count).map(|j| campaign(seed, j, count)).collect();
    json!({ "campaigns": campaigns })
}

/// Campaign `j` of a file of `count` campaigns.
pub fn campaign(seed: u64, j: usize, count: usize) -> Value {
    let mut r = Rng::for_item(seed ^ 0xCA3B_A167, j as u64);
    let broad = BROAD_CAMPAIGNS.min(count);
    if j < broad {
        broad_campaign(&mut r, j, broad)
    } else if j < FULL_SHARE_MIN_CAMPAIGNS {
        anchor_deal_campaign(&mut r, j, j - BROAD_CAMPAIGNS)
    } else {
        narrow_campaign(&mut r, j)
    }
}

fn id(j: usize) -> String {
    format!("cmp-{:06}", j + 1)
}

/// A USD amount, exact, as the campaign format writes prices: `"2.50"`.
fn usd(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// An active campaign bidding `bid_cents` that denies the unsafe domains and targets
/// nothing else yet.
fn base(j: usize, name: &str, bid_cents: u64) -> Value {
    let adv = vocab::advertiser(j);
    json!({
        "id": id(j),
        "name": format!("{adv} {name}"),
        "active": true,
        "adomain": [adv],
        "bid_cpm": usd(bid_cents),
        "targeting": {
            "domains": {"deny": vocab::UNSAFE_DOMAINS},
            "test_requests": true,
        },
        "creatives": [],
    })
}

fn creative_id(j: usize, k: usize) -> String {
    format!("cr-{:06}-{k:02}", j + 1)
}

fn banner(j: usize, k: usize, (w, h): (u32, u32), cat: &str, attr: &[u32]) -> Value {
    let id = creative_id(j, k);
    json!({
        "adm": format!(
            "<a href=\"https://click.shardbid.example/c?cr={id}&price=${{AUCTION_PRICE}}\"><img src=\"https://cdn.shardbid.example/{id}/{w}x{h}.jpg\" width=\"{w}\" height=\"{h}\"/></a>"
        ),
        "id": id,
        "kind": "banner",
        "w": w,
        "h": h,
        "cat": [cat],
        "attr": attr,
        "secure": true,
    })
}

fn video(j: usize, k: usize, (duration, protocol): (u32, u32), cat: &str) -> Value {
    let id = creative_id(j, k);
    json!({
        "adm": format!(
            "<VAST version=\"{}\"><Ad id=\"{id}\"><InLine><AdSystem>shardbid</AdSystem><Impression><![CDATA[https://imp.shardbid.example/v?cr={id}&price=${{AUCTION_PRICE}}]]></Impression><Creatives><Creative><Linear><Duration>00:00:{duration:02}</Duration><MediaFiles><MediaFile delivery=\"progressive\" type=\"{}\" width=\"1280\" height=\"720\"><![CDATA[https://cdn.shardbid.example/{id}.mp4]]></MediaFile></MediaFiles></Linear></Creative></Creatives></InLine></Ad></VAST>",
            if protocol == 7 { "4.0" } else { "3.0" },
            vocab::VIDEO_MIME
        ),
        "id": id,
        "kind": "video",
        "cat": [cat],
        "mime": vocab::VIDEO_MIME,
        "duration": duration,
        "protocol": protocol,
        "secure": true,
    })
}

fn native(j: usize, k: usize, cat: &str) -> Value {
    let id = creative_id(j, k);
    json!({
        "adm": format!(
            "{{\"native\":{{\"ver\":\"1.2\",\"assets\":[{{\"id\":1,\"title\":{{\"text\":\"Offer {id}\"}}}},{{\"id\":2,\"img\":{{\"url\":\"https://cdn.shardbid.example/{id}.jpg\",\"w\":1200,\"h\":627}}}}],\"link\":{{\"url\":\"https://click.shardbid.example/n?cr={id}\"}}}}}}"
        ),
        "id": id,
        "kind": "native",
        "cat": [cat],
        "secure": true,
    })
}

/// Creatives for every lit banner size, both video durations and native.
fn full_creatives(r: &mut Rng, j: usize) -> Value {
    let cat = *r.pick(vocab::CREATIVE_CATS);
    let mut out: Vec<Value> = vocab::LIT_BANNER_SIZES
        .iter()
        .enumerate()
        .map(|(k, &s)| banner(j, k, s, cat, &[]))
        .collect();
    let n = out.len();
    for (k, &v) in vocab::VIDEO_CREATIVES.iter().enumerate() {
        out.push(video(j, n + k, v, cat));
    }
    out.push(native(j, out.len(), cat));
    Value::Array(out)
}

fn broad_campaign(r: &mut Rng, j: usize, broad: usize) -> Value {
    let mut c = base(j, "run of network", 200 + (j as u64 % 16) * 10);
    let countries: Vec<&str> = vocab::LIT_COUNTRIES
        .iter()
        .enumerate()
        .filter(|(i, _)| i % broad == j)
        .map(|(_, c)| c.code)
        .collect();
    c["targeting"]["countries"] = json!(countries);
    c["creatives"] = full_creatives(r, j);
    c
}

fn anchor_deal_campaign(r: &mut Rng, j: usize, deal: usize) -> Value {
    let mut c = base(j, "private marketplace", 400);
    c["max_cpm"] = json!(usd(500));
    let countries: Vec<&str> = vocab::LIT_COUNTRIES.iter().map(|c| c.code).collect();
    c["targeting"]["countries"] = json!(countries);
    c["targeting"]["deals"] = json!([vocab::lit_deal(deal)]);
    c["creatives"] = full_creatives(r, j);
    c
}

/// Sorted, without repeats.
fn set(mut xs: Vec<String>) -> Vec<String> {
    xs.sort();
    xs.dedup();
    xs
}

fn narrow_campaign(r: &mut Rng, j: usize) -> Value {
    let bid = r.range(10, 2000);
    let mut c = base(j, "targeted", bid);
    c["active"] = json!(!r.chance(0.05));
    if r.chance(0.5) {
        let max = r.range(bid, vocab::MAX_CAMPAIGN_CPM as u64 * 100);
        c["max_cpm"] = json!(usd(max));
    }
    if r.chance(0.15) {
        c["seat"] = json!(format!("seat-{}", r.range(1, 20)));
    }
    if r.chance(0.2) {
        let id = id(j);
        c["nurl"] = json!(format!(
            "https://win.shardbid.example/n?c={id}&p=${{AUCTION_PRICE}}"
        ));
        c["burl"] = json!(format!(
            "https://bill.shardbid.example/b?c={id}&p=${{AUCTION_PRICE}}"
        ));
    }
    let t = &mut c["targeting"];
    let countries = r.sample(vocab::LIT_COUNTRIES.len(), 1, 3);
    if r.chance(0.3) {
        let (mut regions, mut cities) = (Vec::new(), Vec::new());
        for &ci in &countries {
            let country = &vocab::LIT_COUNTRIES[ci];
            let region = r.pick(country.regions);
            regions.push(region.code);
            if r.chance(0.3) {
                cities.push(*r.pick(region.cities));
            }
        }
        t["regions"] = json!(regions);
        t["cities"] = json!(cities);
    }
    let countries: Vec<&str> = countries
        .into_iter()
        .map(|i| vocab::LIT_COUNTRIES[i].code)
        .collect();
    t["countries"] = json!(countries);
    let inventory = *r.weighted(&[(70, "any"), (15, "site"), (15, "app")]);
    t["inventory"] = json!(inventory);
    if r.chance(0.4) {
        let n = r.range(1, 3) as usize;
        let types: Vec<u32> = r
            .sample_indices(vocab::DEVICE_TYPES.len(), n)
            .into_iter()
            .map(|i| vocab::DEVICE_TYPES[i])
            .collect();
        t["device_types"] = json!(types);
    }
    if r.chance(0.3) {
        let n = r.range(1, 2) as usize;
        let oses: Vec<&str> = r
            .sample_indices(vocab::OSES.len(), n)
            .into_iter()
            .map(|i| vocab::OSES[i])
            .collect();
        t["os"] = json!(oses);
    }
    if inventory != "app" && r.chance(0.15) {
        let allow: Vec<String> = (0..r.range(1, 20))
            .map(|_| vocab::domain(r.below(vocab::DOMAIN_COUNT)))
            .collect();
        t["domains"]["allow"] = json!(allow);
    } else if r.chance(0.1) {
        let domain = vocab::domain(r.below(vocab::DOMAIN_COUNT));
        let deny = t["domains"]["deny"].as_array_mut();
        deny.expect("every campaign denies the unsafe domains")
            .push(json!(domain));
    }
    if inventory == "app" && r.chance(0.3) {
        let allow: Vec<String> = (0..r.range(1, 10))
            .map(|_| vocab::app(r.below(vocab::APP_COUNT)).0)
            .collect();
        t["bundles"] = json!({ "allow": allow });
    }
    if r.chance(0.1) {
        let allow: Vec<String> = (0..r.range(1, 5))
            .map(|_| vocab::publisher(r.below(vocab::PUBLISHER_COUNT)))
            .collect();
        t["publishers"] = json!({ "allow": allow });
    }
    if r.chance(0.2) {
        let allow = (0..r.range(1, 3))
            .map(|_| r.pick(vocab::CONTENT_CATS).to_string())
            .collect();
        t["categories"] = json!({ "allow": set(allow) });
    }
    if r.chance(0.35) {
        let segments = (0..r.range(1, 10))
            .map(|_| vocab::segment(r.below(vocab::SEGMENT_COUNT)).1)
            .collect();
        t["segments"] = json!(set(segments));
    }
    if r.chance(0.1) {
        let deals = (0..r.range(1, 3))
            .map(|_| vocab::lit_deal(r.below(vocab::LIT_DEAL_COUNT)))
            .collect();
        t["deals"] = json!(set(deals));
    }
    if r.chance(0.1) {
        let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
        let from = r.range(0, 20);
        let to = r.range(from + 1, 24);
        let weekend = r.chance(0.3);
        let days: Vec<&str> = days
            .iter()
            .skip(if weekend { 5 } else { 0 })
            .take(if weekend { 2 } else { 5 })
            .copied()
            .collect();
        t["dayparts"] = json!([{ "days": days, "from": from, "to": to }]);
    }
    if r.chance(0.1) {
        t["exchanges"] = json!([r.pick(vocab::EXCHANGES)]);
    }
    t["test_requests"] = json!(!r.chance(0.1));
    // Creatives: one to three, of one kind.
    let cat = *r.pick(vocab::CREATIVE_CATS);
    let attr: Vec<u32> = if r.chance(0.2) {
        vec![*r.pick(vocab::CREATIVE_ATTRS)]
    } else {
        Vec::new()
    };
    let kind = *r.weighted(&[(70, "banner"), (20, "video"), (10, "native")]);
    let n = r.range(1, 3) as usize;
    let creatives: Vec<Value> = (0..n)
        .map(|k| match kind {
            "banner" => banner(j, k, *r.pick(vocab::LIT_BANNER_SIZES), cat, &attr),
            "video" => video(j, k, *r.pick(vocab::VIDEO_CREATIVES), cat),
            _ => native(j, k, cat),
        })
        .collect();
    c["creatives"] = json!(creatives);
    c
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn campaigns_are_deterministic_and_independent_of_count() {
        assert_eq!(generate(100, 5), generate(100, 5));
        assert_ne!(generate(100, 5), generate(100, 6));
        let small = generate(100, 5);
        let large = generate(1000, 5);
        assert_eq!(
            small["campaigns"].as_array().unwrap()[..],
            large["campaigns"].as_array().unwrap()[..100]
        );
    }

    #[test]
    fn ids_are_unique() {
        let set = generate(600, 11);
        let campaigns = set["campaigns"].as_array().unwrap();
        let ids: BTreeSet<&str> = campaigns
            .iter()
            .map(|c| c["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), 600);
        let creatives: Vec<&str> = campaigns
            .iter()
            .flat_map(|c| c["creatives"].as_array().unwrap())
            .map(|cr| cr["id"].as_str().unwrap())
            .collect();
        let distinct: BTreeSet<&str> = creatives.iter().copied().collect();
        assert_eq!(distinct.len(), creatives.len());
    }
}
