//! Each targeting rule of placement, audience, time and blocks: campaigns against
//! requests that pass and fail it.

mod targeting_support;

use serde_json::json;
use shardbid::auction::NoBidReason;
use shardbid::targeting::MatchContext;
use targeting_support::*;

#[test]
fn inventory_site_or_app() {
    let t = table(vec![
        campaign(
            "site-only",
            "2",
            json!({"targeting": {"inventory": "site"}}),
        ),
        campaign("app-only", "1", json!({"targeting": {"inventory": "app"}})),
    ]);
    assert_eq!(winner(&t, &request(json!({}))).unwrap(), "site-only");
    let app =
        r#"{"id":"r","imp":[{"id":"1","banner":{"w":300,"h":250}}],"app":{"bundle":"com.a"}}"#;
    assert_eq!(winner(&t, app).unwrap(), "app-only");
    let neither = r#"{"id":"r","imp":[{"id":"1","banner":{"w":300,"h":250}}]}"#;
    assert_eq!(winner(&t, neither), Err(NoBidReason::NoMatch));
}

#[test]
fn domains_match_exactly_or_as_parent_case_insensitively() {
    let t = table(vec![
        campaign(
            "allow",
            "2",
            json!({"targeting": {"domains": {"allow": ["Example.com"]}}}),
        ),
        campaign(
            "deny",
            "1",
            json!({"targeting": {"domains": {"deny": ["sports.example.com"]}}}),
        ),
    ]);
    let site = |d: &str| request(json!({"site": {"domain": d}}));
    assert_eq!(winner(&t, &site("NEWS.example.COM")).unwrap(), "allow");
    assert_eq!(winner(&t, &site("example.com")).unwrap(), "allow");
    assert_eq!(winner(&t, &site("badexample.com")).unwrap(), "deny");
    assert_eq!(winner(&t, &site("other.org")).unwrap(), "deny");
    // Denied for the parent and all its subdomains; the allow campaign still bids.
    let t = table(vec![campaign(
        "deny",
        "1",
        json!({"targeting": {"domains": {"deny": ["example.com"]}}}),
    )]);
    assert_eq!(
        winner(&t, &site("live.sports.example.com")),
        Err(NoBidReason::NoMatch)
    );
    // The page's host stands in for a missing site.domain; app.domain counts too.
    let allow = table(vec![campaign(
        "a",
        "1",
        json!({"targeting": {"domains": {"allow": ["example.com"]}}}),
    )]);
    let page = request(json!({"site": {"domain": null, "page": "https://www.example.com/a"}}));
    assert_eq!(winner(&allow, &page).unwrap(), "a");
    let app = r#"{"id":"r","imp":[{"id":"1","banner":{"w":300,"h":250}}],"app":{"domain":"m.example.com"}}"#;
    assert_eq!(winner(&allow, app).unwrap(), "a");
    let none = request(json!({"site": {"domain": null}}));
    assert_eq!(winner(&allow, &none), Err(NoBidReason::NoMatch));
}

#[test]
fn bundles_and_publishers_allow_and_deny() {
    let t = table(vec![
        campaign(
            "bundle-allow",
            "3",
            json!({"targeting": {"bundles": {"allow": ["com.Game"]}}}),
        ),
        campaign(
            "bundle-deny",
            "2",
            json!({"targeting": {"bundles": {"deny": ["com.rival"]}}}),
        ),
        campaign(
            "pub",
            "1",
            json!({"targeting": {"publishers": {"allow": ["P-1"], "deny": []}}}),
        ),
    ]);
    let app = |bundle: &str, publisher: &str| {
        json!({"id": "r", "imp": [{"id": "1", "banner": {"w": 300, "h": 250}}],
               "app": {"bundle": bundle, "publisher": {"id": publisher}}})
        .to_string()
    };
    assert_eq!(winner(&t, &app("COM.GAME", "x")).unwrap(), "bundle-allow");
    assert_eq!(winner(&t, &app("com.other", "x")).unwrap(), "bundle-deny");
    assert_eq!(winner(&t, &app("com.rival", "P-1")).unwrap(), "pub");
    // Publisher ids match exactly.
    assert_eq!(
        winner(&t, &app("com.rival", "p-1")),
        Err(NoBidReason::NoMatch)
    );
    let t = table(vec![campaign(
        "no-pub",
        "1",
        json!({"targeting": {"publishers": {"deny": ["P-1"]}}}),
    )]);
    assert_eq!(
        winner(&t, &request(json!({"site": {"publisher": {"id": "P-1"}}}))),
        Err(NoBidReason::NoMatch)
    );
    assert!(winner(&t, &request(json!({"site": {"publisher": {"id": "P-2"}}}))).is_ok());
}

#[test]
fn content_categories_match_subcategories() {
    let t = table(vec![
        campaign(
            "autos",
            "2",
            json!({"targeting": {"categories": {"allow": ["iab2"]}}}),
        ),
        campaign(
            "not-news",
            "1",
            json!({"targeting": {"categories": {"deny": ["IAB12"]}}}),
        ),
    ]);
    let cats = |c: serde_json::Value| request(json!({"site": {"cat": c}}));
    assert_eq!(winner(&t, &cats(json!(["IAB2-1"]))).unwrap(), "autos");
    assert_eq!(winner(&t, &cats(json!(["IAB21"]))).unwrap(), "not-news");
    assert_eq!(
        winner(&t, &cats(json!(["IAB12-3"]))),
        Err(NoBidReason::NoMatch)
    );
    assert_eq!(
        winner(&t, &cats(json!(["IAB2-1", "IAB12"]))).unwrap(),
        "autos"
    );
    // A narrower allowed category does not match its parent.
    let narrow = table(vec![campaign(
        "n",
        "1",
        json!({"targeting": {"categories": {"allow": ["IAB2-1"]}}}),
    )]);
    assert_eq!(
        winner(&narrow, &cats(json!(["IAB2"]))),
        Err(NoBidReason::NoMatch)
    );
}

#[test]
fn bcat_blocks_creative_categories_and_their_subcategories() {
    let t = table(vec![campaign(
        "two-ads",
        "1",
        json!({"creatives": [
            {"id": "beer", "kind": "banner", "w": 300, "h": 250, "adm": "x", "cat": ["IAB8-5"]},
            {"id": "soda", "kind": "banner", "w": 300, "h": 250, "adm": "x", "cat": ["IAB8-1"]}
        ]}),
    )]);
    assert_eq!(first(&t, &request(json!({}))).unwrap().creative, "beer");
    assert_eq!(
        first(&t, &request(json!({"bcat": ["iab8-5"]})))
            .unwrap()
            .creative,
        "soda"
    );
    assert_eq!(
        winner(&t, &request(json!({"bcat": ["IAB8"]}))),
        Err(NoBidReason::Blocked)
    );
    assert_eq!(
        first(&t, &request(json!({"bcat": ["IAB8-5-1", "IAB80"]})))
            .unwrap()
            .creative,
        "beer"
    );
}

#[test]
fn badv_blocks_advertiser_domains_and_subdomains() {
    let t = table(vec![
        campaign("shop", "2", json!({"adomain": ["Shop.Brand.com"]})),
        campaign("other", "1", json!({})),
    ]);
    assert_eq!(
        winner(&t, &request(json!({"badv": ["brand.com"]}))).unwrap(),
        "other"
    );
    assert_eq!(
        winner(&t, &request(json!({"badv": ["shop.brand.COM"]}))).unwrap(),
        "other"
    );
    assert_eq!(
        winner(&t, &request(json!({"badv": ["x.shop.brand.com"]}))).unwrap(),
        "shop"
    );
}

#[test]
fn bapp_blocks_the_advertised_app() {
    let t = table(vec![campaign(
        "installs",
        "1",
        json!({"bundle": "com.Game.App"}),
    )]);
    assert_eq!(
        winner(&t, &request(json!({"bapp": ["com.game.app"]}))),
        Err(NoBidReason::Blocked)
    );
    assert!(winner(&t, &request(json!({"bapp": ["com.game"]}))).is_ok());
}

#[test]
fn seats_are_allowed_and_blocked_by_wseat_and_bseat() {
    let t = table(vec![
        campaign("agency", "2", json!({"seat": "Agency1"})),
        campaign("house", "1", json!({})),
    ]);
    assert_eq!(winner(&t, &request(json!({}))).unwrap(), "agency");
    assert_eq!(
        winner(&t, &request(json!({"bseat": ["Agency1"]}))).unwrap(),
        "house"
    );
    assert_eq!(
        winner(&t, &request(json!({"wseat": ["shardbid"]}))).unwrap(),
        "house"
    );
    assert_eq!(
        winner(&t, &request(json!({"wseat": ["Agency1"]}))).unwrap(),
        "agency"
    );
    let nobody = request(json!({"wseat": ["Agency9"], "bseat": []}));
    assert_eq!(winner(&t, &nobody), Err(NoBidReason::Blocked));
    assert_eq!(
        winner(&t, &request(json!({"bseat": ["Agency1", "shardbid"]}))),
        Err(NoBidReason::Blocked)
    );
}

#[test]
fn device_os_geo_and_segments() {
    let t = table(vec![
        campaign(
            "ios-phones",
            "4",
            json!({"targeting": {"os": ["iOS"], "device_types": [4]}}),
        ),
        campaign(
            "berlin",
            "3",
            json!({"targeting": {"countries": ["deu"], "regions": ["DE-BE"], "cities": ["berlin"]}}),
        ),
        campaign(
            "segment",
            "2",
            json!({"targeting": {"segments": ["s1", "s2"]}}),
        ),
    ]);
    let dev = |os: &str, t: u32| request(json!({"device": {"os": os, "devicetype": t}}));
    assert_eq!(winner(&t, &dev("IOS", 4)).unwrap(), "ios-phones");
    assert_eq!(winner(&t, &dev("iOS", 5)), Err(NoBidReason::NoMatch));
    assert_eq!(winner(&t, &dev("Android", 4)), Err(NoBidReason::NoMatch));
    let geo = json!({"country": "DEU", "region": "de-be", "city": "Berlin"});
    assert_eq!(
        winner(&t, &request(json!({"device": {"geo": geo.clone()}}))).unwrap(),
        "berlin"
    );
    // The user's home geo counts when the device has none.
    assert_eq!(
        winner(&t, &request(json!({"user": {"geo": geo}}))).unwrap(),
        "berlin"
    );
    let hamburg = json!({"country": "DEU", "region": "DE-HH", "city": "Hamburg"});
    assert_eq!(
        winner(&t, &request(json!({"device": {"geo": hamburg}}))),
        Err(NoBidReason::NoMatch)
    );
    let segs = |ids: serde_json::Value| {
        let segment: Vec<_> = ids
            .as_array()
            .unwrap()
            .iter()
            .map(|i| json!({"id": i}))
            .collect();
        request(json!({"user": {"data": [{"id": "dmp", "segment": []}, {"segment": segment}]}}))
    };
    assert_eq!(winner(&t, &segs(json!(["s9", "s2"]))).unwrap(), "segment");
    assert_eq!(
        winner(&t, &segs(json!(["S1"]))),
        Err(NoBidReason::NoMatch),
        "segment ids are exact"
    );
}

#[test]
fn dayparts_follow_the_hour_of_the_week() {
    let t = table(vec![
        campaign(
            "weekday-lunch",
            "2",
            json!({"targeting": {"dayparts": [
            {"days": ["mon", "Fri"], "from": 11, "to": 14}]}}),
        ),
        campaign("always", "1", json!({})),
    ]);
    let at = |hour| {
        winner_ctx(
            &t,
            &request(json!({})),
            &MatchContext {
                exchange: None,
                hour_of_week: hour,
            },
        )
    };
    assert_eq!(at(11).unwrap(), "weekday-lunch", "Monday 11:00");
    assert_eq!(at(13).unwrap(), "weekday-lunch", "Monday 13:00");
    assert_eq!(at(14).unwrap(), "always", "Monday 14:00 is outside");
    assert_eq!(at(24 + 12).unwrap(), "always", "Tuesday");
    assert_eq!(at(4 * 24 + 11).unwrap(), "weekday-lunch", "Friday");
    assert_eq!(at(200).unwrap(), "always", "out of range");
}

#[test]
fn exchanges_by_configured_name() {
    let t = table(vec![
        campaign(
            "adx-only",
            "2",
            json!({"targeting": {"exchanges": ["adx"]}}),
        ),
        campaign("anywhere", "1", json!({})),
    ]);
    let on = |e| {
        winner_ctx(
            &t,
            &request(json!({})),
            &MatchContext {
                exchange: e,
                hour_of_week: 0,
            },
        )
    };
    assert_eq!(on(Some(0)).unwrap(), "adx-only");
    assert_eq!(on(Some(1)).unwrap(), "anywhere");
    assert_eq!(on(None).unwrap(), "anywhere");
    assert_eq!(on(Some(9)).unwrap(), "anywhere");
}

#[test]
fn test_requests_and_inactive_campaigns() {
    let t = table(vec![
        campaign("paused", "9", json!({"active": false})),
        campaign(
            "billable-only",
            "2",
            json!({"targeting": {"test_requests": false}}),
        ),
        campaign("any", "1", json!({})),
    ]);
    assert_eq!(winner(&t, &request(json!({}))).unwrap(), "billable-only");
    assert_eq!(winner(&t, &request(json!({"test": 1}))).unwrap(), "any");
}
