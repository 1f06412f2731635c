//! Generated traffic against shardbid itself: the requests of `shardbid_testkit::traffic`
//! are valid bid requests for shardbid, the campaign files build a table, and a request
//! bids exactly when it was built to (checked with a plain reference matcher).

use std::collections::{BTreeMap, BTreeSet};

use shardbid::money::Micros;
use shardbid::openrtb::request::BidRequest;
use shardbid::targeting::campaign::{CampaignSet, CreativeKind};
use shardbid::targeting::table::{Table, TableSettings};
use shardbid_load::campaigns::generate;
use shardbid_testkit::traffic::campaign::{BROAD_CAMPAIGNS, FULL_SHARE_MIN_CAMPAIGNS};
use shardbid_testkit::traffic::request::{self, Generated, Intent, Mix};
use shardbid_testkit::traffic::vocab;

#[path = "traffic/reference.rs"]
mod reference;

fn corpus(seed: u64, n: u64) -> Vec<Generated> {
    (0..n)
        .map(|i| request::generate(seed, i, &Mix::default()))
        .collect()
}

#[test]
fn every_request_is_a_valid_bid_request_for_shardbid() {
    for g in corpus(7, 3000) {
        let v: serde_json::Value =
            serde_json::from_str(&g.body).unwrap_or_else(|e| panic!("{e}: {}", g.body));
        assert!(v.is_object());
        let req: BidRequest<'_> =
            serde_json::from_slice(g.body.as_bytes()).unwrap_or_else(|e| panic!("{e}: {}", g.body));
        assert_eq!(req.validate(), Ok(()), "{}", g.body);
        assert!(
            req.geo().and_then(|g| g.country.as_deref()).is_some(),
            "every request has a country"
        );
        assert!(req.tmax.is_some());
    }
}

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
            c.max_cpm.unwrap_or(c.bid_cpm) <= Micros(vocab::MAX_CAMPAIGN_CPM as i64 * 1_000_000)
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
