//! Table::build rejects invalid campaigns and reports every problem, each naming the
//! campaign and the key.

mod targeting_support;

use serde_json::json;
use shardbid::targeting::{CampaignSet, Table};
use targeting_support::*;

fn errors(campaigns: Vec<serde_json::Value>) -> Vec<String> {
    let set: CampaignSet = serde_json::from_value(json!({ "campaigns": campaigns })).unwrap();
    match Table::build(&set, &settings(), 1) {
        Ok(_) => Vec::new(),
        Err(e) => e,
    }
}

fn assert_has(errors: &[String], expected: &str) {
    assert!(
        errors.iter().any(|e| e == expected),
        "missing {expected:?} in {errors:#?}"
    );
}

#[test]
fn every_problem_is_reported_with_campaign_and_key() {
    let e = errors(vec![
        campaign(
            "c7",
            "1",
            json!({"creatives": [{"id": "b", "kind": "banner", "adm": "x", "h": 0}]}),
        ),
        campaign("dup", "1", json!({})),
        campaign("dup", "1", json!({})),
        campaign("money", "-1", json!({"max_cpm": "-2"})),
        campaign("cheap-max", "2", json!({"max_cpm": "1.5"})),
        campaign("no-ads", "1", json!({"creatives": []})),
        campaign(
            "vid",
            "1",
            json!({"creatives": [{"id": "v", "kind": "video", "adm": "x"}]}),
        ),
        campaign(
            "where",
            "1",
            json!({"targeting": {
                "exchanges": ["adx", "openx"],
                "countries": ["US"],
                "dayparts": [{"days": ["mon", "someday"], "from": 20, "to": 8},
                             {"days": [], "from": 0, "to": 25}],
                "domains": {"allow": [""]}
            }}),
        ),
        campaign("urls", "1", json!({"nurl": "ftp://x", "adomain": []})),
        campaign("bad id!", "1", json!({})),
        campaign("", "1", json!({})),
        campaign(
            "twins",
            "1",
            json!({"creatives": [
            {"id": "same", "kind": "native", "adm": "x"},
            {"id": "same", "kind": "native", "adm": " "}]}),
        ),
    ]);
    assert_has(
        &e,
        r#"campaign "c7": creatives[0].w is required for banner creatives"#,
    );
    assert_has(&e, r#"campaign "c7": creatives[0].h must be positive"#);
    assert_has(
        &e,
        r#"campaign "dup": id is also used by campaigns[1]; ids must be unique"#,
    );
    assert_has(&e, r#"campaign "money": bid_cpm must not be negative"#);
    assert_has(
        &e,
        r#"campaign "cheap-max": max_cpm 1.5 must be at least bid_cpm 2"#,
    );
    assert_has(
        &e,
        r#"campaign "no-ads": creatives must hold at least one creative"#,
    );
    assert_has(
        &e,
        r#"campaign "vid": creatives[0].mime is required for video creatives"#,
    );
    assert_has(
        &e,
        r#"campaign "vid": creatives[0].duration is required for video creatives"#,
    );
    assert_has(
        &e,
        r#"campaign "vid": creatives[0].protocol is required for video creatives"#,
    );
    assert_has(
        &e,
        r#"campaign "where": targeting.exchanges[1]: unknown exchange "openx" (configured: adx, example)"#,
    );
    assert_has(
        &e,
        r#"campaign "where": targeting.countries[0] "US" must be an ISO-3166-1 alpha-3 code such as USA"#,
    );
    assert_has(
        &e,
        r#"campaign "where": targeting.dayparts[0].days[1] "someday" is not one of mon, tue, wed, thu, fri, sat, sun"#,
    );
    assert_has(
        &e,
        r#"campaign "where": targeting.dayparts[0]: from (20) must be less than to (8), and to at most 24"#,
    );
    assert_has(
        &e,
        r#"campaign "where": targeting.dayparts[1].days must list at least one day"#,
    );
    assert_has(
        &e,
        r#"campaign "where": targeting.dayparts[1]: from (0) must be less than to (25), and to at most 24"#,
    );
    assert_has(
        &e,
        r#"campaign "where": targeting.domains.allow[0] must not be empty"#,
    );
    assert_has(
        &e,
        r#"campaign "urls": nurl must be an http:// or https:// URL template"#,
    );
    assert_has(
        &e,
        r#"campaign "urls": adomain must list at least one advertiser domain (exchanges drop bids without it)"#,
    );
    assert_has(
        &e,
        r#"campaign "bad id!": id "bad id!" may use only letters, digits, '-', '_' and '.'"#,
    );
    assert_has(&e, "campaigns[10]: id is required");
    assert_has(
        &e,
        r#"campaign "twins": creatives[1].id "same" is used twice in this campaign"#,
    );
    assert_has(
        &e,
        r#"campaign "twins": creatives[1].adm must not be empty"#,
    );
    // The test builders derive adomain and creative ids from the campaign id.
    assert_has(
        &e,
        r#"campaign "bad id!": adomain[0] "bad id!.example" must be a bare domain such as example.com"#,
    );
    assert_has(
        &e,
        r#"campaign "bad id!": creatives[0].id "bad id!-cr" may use only letters, digits, '-', '_' and '.'"#,
    );
    assert_has(
        &e,
        r#"campaign "money": max_cpm -2 must be at least bid_cpm -1"#,
    );
    assert_eq!(e.len(), 25, "{e:#?}");
}

#[test]
fn valid_campaigns_build() {
    assert!(errors(vec![campaign("ok", "0", json!({"max_cpm": "1"}))]).is_empty());
}

#[test]
fn tables_replicate_deeply_and_cross_threads() {
    fn send_static<T: Send + 'static>(_: &T) {}
    let t = table(vec![
        campaign("a", "1", json!({})),
        campaign("b", "2", json!({})),
    ]);
    send_static(&t);
    let replica = t.clone();
    drop(t);
    let won = std::thread::spawn(move || winner(&replica, &request(json!({}))))
        .join()
        .unwrap();
    assert_eq!(won.unwrap(), "b");
}
