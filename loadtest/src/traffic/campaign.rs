//! Campaign files of any size, consistent with the generated requests.
//!
//! Built with shardbid's own campaign types and written with serde, so the file format
//! can never drift from what the server reads. Campaign `j` depends only on
//! `(seed, j)` and the campaign count:
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

use shardbid::money::Micros;
use shardbid::targeting::campaign::{
    Campaign, CampaignSet, Creative, CreativeKind, Daypart, Inventory, ListFilter, Targeting,
};

use std::io::Write;

use super::rng::Rng;
use super::vocab;

/// Campaigns that together cover every lit country with no other targeting.
pub const BROAD_CAMPAIGNS: usize = 16;

/// Campaign count from which every request built to bid has a campaign that fits it
/// (broad campaigns plus the anchor-deal campaigns).
pub const FULL_SHARE_MIN_CAMPAIGNS: usize = BROAD_CAMPAIGNS + vocab::ANCHOR_DEAL_COUNT;

/// `count` campaigns for `seed`.
pub fn generate(count: usize, seed: u64) -> CampaignSet {
    CampaignSet {
        campaigns: (0..count).map(|j| campaign(seed, j, count)).collect(),
        ..CampaignSet::default()
    }
}

/// Writes the JSON of `generate(count, seed)` to `out` one campaign at a time, so that
/// files of millions of campaigns need no more memory than one campaign.
pub fn write_json(out: &mut impl Write, count: usize, seed: u64) -> std::io::Result<()> {
    out.write_all(b"{\"campaigns\":[")?;
    for j in 0..count {
        if j > 0 {
            out.write_all(b",")?;
        }
        serde_json::to_writer(&mut *out, &campaign(seed, j, count))?;
    }
    out.write_all(b"]}")?;
    out.flush()
}

/// Campaign `j` of a file of `count` campaigns.
pub fn campaign(seed: u64, j: usize, count: usize) -> Campaign {
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

fn usd_cents(cents: u64) -> Micros {
    Micros(cents as i64 * 10_000)
}

fn unsafe_deny() -> ListFilter {
    ListFilter {
        allow: Vec::new(),
        deny: vocab::UNSAFE_DOMAINS
            .iter()
            .map(|d| d.to_string())
            .collect(),
    }
}

fn base(j: usize, name: &str, bid_cents: u64) -> Campaign {
    let adv = vocab::advertiser(j);
    Campaign {
        id: id(j),
        name: format!("{adv} {name}"),
        active: true,
        seat: None,
        adomain: vec![adv],
        bundle: None,
        bid_cpm: usd_cents(bid_cents),
        max_cpm: None,
        nurl: None,
        burl: None,
        budget: None,
        pacing: Default::default(),
        frequency_cap: None,
        targeting: Targeting {
            domains: unsafe_deny(),
            test_requests: true,
            ..Targeting::default()
        },
        creatives: Vec::new(),
    }
}

fn creative_id(j: usize, k: usize) -> String {
    format!("cr-{:06}-{k:02}", j + 1)
}

fn banner(j: usize, k: usize, (w, h): (u32, u32), cat: &str, attr: Vec<u32>) -> Creative {
    let id = creative_id(j, k);
    Creative {
        adm: format!(
            "<a href=\"https://click.shardbid.example/c?cr={id}&price=${{AUCTION_PRICE}}\"><img src=\"https://cdn.shardbid.example/{id}/{w}x{h}.jpg\" width=\"{w}\" height=\"{h}\"/></a>"
        ),
        id,
        kind: CreativeKind::Banner,
        w: Some(w),
        h: Some(h),
        cat: vec![cat.to_string()],
        attr,
        mime: None,
        duration: None,
        protocol: None,
        secure: true,
    }
}

fn video(j: usize, k: usize, (duration, protocol): (u32, u32), cat: &str) -> Creative {
    let id = creative_id(j, k);
    Creative {
        adm: format!(
            "<VAST version=\"{}\"><Ad id=\"{id}\"><InLine><AdSystem>shardbid</AdSystem><Impression><![CDATA[https://imp.shardbid.example/v?cr={id}&price=${{AUCTION_PRICE}}]]></Impression><Creatives><Creative><Linear><Duration>00:00:{duration:02}</Duration><MediaFiles><MediaFile delivery=\"progressive\" type=\"{}\" width=\"1280\" height=\"720\"><![CDATA[https://cdn.shardbid.example/{id}.mp4]]></MediaFile></MediaFiles></Linear></Creative></Creatives></InLine></Ad></VAST>",
            if protocol == 7 { "4.0" } else { "3.0" },
            vocab::VIDEO_MIME
        ),
        id,
        kind: CreativeKind::Video,
        w: None,
        h: None,
        cat: vec![cat.to_string()],
        attr: Vec::new(),
        mime: Some(vocab::VIDEO_MIME.to_string()),
        duration: Some(duration),
        protocol: Some(protocol),
        secure: true,
    }
}

fn native(j: usize, k: usize, cat: &str) -> Creative {
    let id = creative_id(j, k);
    Creative {
        adm: format!(
            "{{\"native\":{{\"ver\":\"1.2\",\"assets\":[{{\"id\":1,\"title\":{{\"text\":\"Offer {id}\"}}}},{{\"id\":2,\"img\":{{\"url\":\"https://cdn.shardbid.example/{id}.jpg\",\"w\":1200,\"h\":627}}}}],\"link\":{{\"url\":\"https://click.shardbid.example/n?cr={id}\"}}}}}}"
        ),
        id,
        kind: CreativeKind::Native,
        w: None,
        h: None,
        cat: vec![cat.to_string()],
        attr: Vec::new(),
        mime: None,
        duration: None,
        protocol: None,
        secure: true,
    }
}

/// Creatives for every lit banner size, both video durations and native.
fn full_creatives(r: &mut Rng, j: usize) -> Vec<Creative> {
    let cat = *r.pick(vocab::CREATIVE_CATS);
    let mut out: Vec<Creative> = vocab::LIT_BANNER_SIZES
        .iter()
        .enumerate()
        .map(|(k, &s)| banner(j, k, s, cat, Vec::new()))
        .collect();
    let n = out.len();
    for (k, &v) in vocab::VIDEO_CREATIVES.iter().enumerate() {
        out.push(video(j, n + k, v, cat));
    }
    out.push(native(j, out.len(), cat));
    out
}

fn broad_campaign(r: &mut Rng, j: usize, broad: usize) -> Campaign {
    let mut c = base(j, "run of network", 200 + (j as u64 % 16) * 10);
    c.targeting.countries = vocab::LIT_COUNTRIES
        .iter()
        .enumerate()
        .filter(|(i, _)| i % broad == j)
        .map(|(_, c)| c.code.to_string())
        .collect();
    c.creatives = full_creatives(r, j);
    c
}

fn anchor_deal_campaign(r: &mut Rng, j: usize, deal: usize) -> Campaign {
    let mut c = base(j, "private marketplace", 400);
    c.max_cpm = Some(usd_cents(500));
    c.targeting.countries = vocab::LIT_COUNTRIES
        .iter()
        .map(|c| c.code.to_string())
        .collect();
    c.targeting.deals = vec![vocab::lit_deal(deal)];
    c.creatives = full_creatives(r, j);
    c
}

fn narrow_campaign(r: &mut Rng, j: usize) -> Campaign {
    let bid = r.range(10, 2000);
    let mut c = base(j, "targeted", bid);
    c.active = !r.chance(0.05);
    if r.chance(0.5) {
        c.max_cpm = Some(usd_cents(
            r.range(bid, vocab::MAX_CAMPAIGN_CPM as u64 * 100),
        ));
    }
    if r.chance(0.15) {
        c.seat = Some(format!("seat-{}", r.range(1, 20)));
    }
    if r.chance(0.2) {
        c.nurl = Some(format!(
            "https://win.shardbid.example/n?c={}&p=${{AUCTION_PRICE}}",
            c.id
        ));
        c.burl = Some(format!(
            "https://bill.shardbid.example/b?c={}&p=${{AUCTION_PRICE}}",
            c.id
        ));
    }
    let t = &mut c.targeting;
    let countries = r.sample(vocab::LIT_COUNTRIES.len(), 1, 3);
    if r.chance(0.3) {
        for &ci in &countries {
            let country = &vocab::LIT_COUNTRIES[ci];
            let region = r.pick(country.regions);
            t.regions.push(region.code.to_string());
            if r.chance(0.3) {
                t.cities.push(r.pick(region.cities).to_string());
            }
        }
    }
    t.countries = countries
        .into_iter()
        .map(|i| vocab::LIT_COUNTRIES[i].code.to_string())
        .collect();
    t.inventory = *r.weighted(&[
        (70, Inventory::Any),
        (15, Inventory::Site),
        (15, Inventory::App),
    ]);
    if r.chance(0.4) {
        let n = r.range(1, 3) as usize;
        t.device_types = r
            .sample_indices(vocab::DEVICE_TYPES.len(), n)
            .into_iter()
            .map(|i| vocab::DEVICE_TYPES[i])
            .collect();
    }
    if r.chance(0.3) {
        let n = r.range(1, 2) as usize;
        t.os = r
            .sample_indices(vocab::OSES.len(), n)
            .into_iter()
            .map(|i| vocab::OSES[i].to_string())
            .collect();
    }
    if t.inventory != Inventory::App && r.chance(0.15) {
        t.domains.allow = (0..r.range(1, 20))
            .map(|_| vocab::domain(r.below(vocab::DOMAIN_COUNT)))
            .collect();
    } else if r.chance(0.1) {
        t.domains
            .deny
            .push(vocab::domain(r.below(vocab::DOMAIN_COUNT)));
    }
    if t.inventory == Inventory::App && r.chance(0.3) {
        t.bundles.allow = (0..r.range(1, 10))
            .map(|_| vocab::app(r.below(vocab::APP_COUNT)).0)
            .collect();
    }
    if r.chance(0.1) {
        t.publishers.allow = (0..r.range(1, 5))
            .map(|_| vocab::publisher(r.below(vocab::PUBLISHER_COUNT)))
            .collect();
    }
    if r.chance(0.2) {
        t.categories.allow = (0..r.range(1, 3))
            .map(|_| r.pick(vocab::CONTENT_CATS).to_string())
            .collect();
        t.categories.allow.sort();
        t.categories.allow.dedup();
    }
    if r.chance(0.35) {
        t.segments = (0..r.range(1, 10))
            .map(|_| vocab::segment(r.below(vocab::SEGMENT_COUNT)).1)
            .collect();
        t.segments.sort();
        t.segments.dedup();
    }
    if r.chance(0.1) {
        t.deals = (0..r.range(1, 3))
            .map(|_| vocab::lit_deal(r.below(vocab::LIT_DEAL_COUNT)))
            .collect();
        t.deals.sort();
        t.deals.dedup();
    }
    if r.chance(0.1) {
        let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
        let from = r.range(0, 20) as u8;
        let to = r.range(from as u64 + 1, 24) as u8;
        let weekend = r.chance(0.3);
        t.dayparts.push(Daypart {
            days: days
                .iter()
                .skip(if weekend { 5 } else { 0 })
                .take(if weekend { 2 } else { 5 })
                .map(|d| d.to_string())
                .collect(),
            from,
            to,
        });
    }
    if r.chance(0.1) {
        t.exchanges = vec![r.pick(vocab::EXCHANGES).to_string()];
    }
    t.test_requests = !r.chance(0.1);
    // Creatives: one to three, of one kind.
    let cat = *r.pick(vocab::CREATIVE_CATS);
    let attr = if r.chance(0.2) {
        vec![*r.pick(vocab::CREATIVE_ATTRS)]
    } else {
        Vec::new()
    };
    let kind = *r.weighted(&[
        (70, CreativeKind::Banner),
        (20, CreativeKind::Video),
        (10, CreativeKind::Native),
    ]);
    let n = r.range(1, 3) as usize;
    c.creatives = (0..n)
        .map(|k| match kind {
            CreativeKind::Banner => {
                banner(j, k, *r.pick(vocab::LIT_BANNER_SIZES), cat, attr.clone())
            }
            CreativeKind::Video => video(j, k, *r.pick(vocab::VIDEO_CREATIVES), cat),
            CreativeKind::Native => native(j, k, cat),
        })
        .collect();
    c
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use shardbid::openrtb::request::BidRequest;
    use shardbid::targeting::table::{Table, TableSettings};

    use super::super::reference;
    use super::super::request::{self, Intent, Mix};
    use super::*;

    #[test]
    fn file_round_trips_and_ids_are_unique() {
        let set = generate(600, 11);
        let text = serde_json::to_string(&set).unwrap();
        let back: CampaignSet = serde_json::from_str(&text).unwrap();
        assert_eq!(back, set);
        let ids: BTreeSet<&str> = set.campaigns.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids.len(), 600);
        let crids: BTreeSet<&str> = set
            .campaigns
            .iter()
            .flat_map(|c| c.creatives.iter().map(|cr| cr.id.as_str()))
            .collect();
        assert_eq!(
            crids.len(),
            set.campaigns
                .iter()
                .map(|c| c.creatives.len())
                .sum::<usize>()
        );
        let settings = TableSettings {
            exchanges: vocab::EXCHANGES.iter().map(|e| e.to_string()).collect(),
            currencies: BTreeMap::from([
                ("EUR".to_string(), Micros(1_080_000)),
                ("GBP".to_string(), Micros(1_270_000)),
            ]),
            default_seat: vocab::DEFAULT_SEAT.to_string(),
            ..TableSettings::default()
        };
        assert!(Table::build(&back, &settings, 1).is_ok());
    }

    #[test]
    fn streamed_file_is_exactly_the_serialised_set() {
        for n in [0, 1, 30] {
            let mut out = Vec::new();
            write_json(&mut out, n, 4).unwrap();
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&generate(n, 4)).unwrap()
            );
        }
    }

    #[test]
    fn campaigns_are_deterministic_and_independent_of_count() {
        assert_eq!(generate(100, 5), generate(100, 5));
        assert_ne!(generate(100, 5), generate(100, 6));
        let small = generate(100, 5);
        let large = generate(1000, 5);
        assert_eq!(small.campaigns[..], large.campaigns[..100]);
    }

    #[test]
    fn every_campaign_keeps_the_no_bid_requests_no_bids() {
        let set = generate(2000, 3);
        let lit: BTreeSet<&str> = vocab::LIT_COUNTRIES.iter().map(|c| c.code).collect();
        for c in &set.campaigns {
            assert!(
                !c.targeting.countries.is_empty()
                    && c.targeting
                        .countries
                        .iter()
                        .all(|x| lit.contains(x.as_str())),
                "{}",
                c.id
            );
            assert!(vocab::UNSAFE_DOMAINS.iter().all(|d| c
                .targeting
                .domains
                .deny
                .iter()
                .any(|x| x == d)));
            assert!(
                c.max_cpm.unwrap_or(c.bid_cpm)
                    <= Micros(vocab::MAX_CAMPAIGN_CPM as i64 * 1_000_000)
            );
            assert!(c.max_cpm.is_none_or(|m| m >= c.bid_cpm));
            assert!(c.targeting.deals.iter().all(|d| d.starts_with("SB-DEAL-")));
            assert!(!c.creatives.is_empty());
            for cr in &c.creatives {
                if cr.kind == CreativeKind::Banner {
                    let size = (cr.w.unwrap(), cr.h.unwrap());
                    assert!(vocab::LIT_BANNER_SIZES.contains(&size));
                }
                assert!(cr
                    .cat
                    .iter()
                    .all(|x| vocab::CREATIVE_CATS.contains(&x.as_str())));
            }
        }
        // The broad campaigns together cover every lit country.
        let covered: BTreeSet<&str> = set.campaigns[..BROAD_CAMPAIGNS]
            .iter()
            .flat_map(|c| c.targeting.countries.iter().map(String::as_str))
            .collect();
        assert_eq!(covered, lit);
        // Small files still cover every lit country.
        let tiny = generate(3, 3);
        let covered: BTreeSet<&str> = tiny
            .campaigns
            .iter()
            .flat_map(|c| c.targeting.countries.iter().map(String::as_str))
            .collect();
        assert_eq!(covered, lit);
    }

    #[test]
    fn requests_bid_exactly_as_intended() {
        let set = generate(400, 21);
        let core = &set.campaigns[..FULL_SHARE_MIN_CAMPAIGNS];
        let mut bids = 0;
        for i in 0..1500 {
            let g = request::generate(77, i, &Mix::default());
            let req: BidRequest<'_> = serde_json::from_slice(g.body.as_bytes()).unwrap();
            match g.intent {
                Intent::Bid => {
                    bids += 1;
                    assert!(
                        core.iter()
                            .any(|c| c.targeting.dayparts.is_empty() && reference::fits(c, &req)),
                        "no campaign for {}",
                        g.body
                    );
                }
                Intent::NoBid(kind) => {
                    let hit = set.campaigns.iter().find(|c| reference::fits(c, &req));
                    assert!(
                        hit.is_none(),
                        "{kind:?} request fits {:?}: {}",
                        hit.map(|c| &c.id),
                        g.body
                    );
                }
            }
        }
        assert!(bids > 300);
    }
}
