//! Prices, floors, deals, currencies, tie-breaks, and the reason for every no-bid.

mod targeting_support;

use serde_json::{json, Value};
use shardbid::auction::NoBidReason;
use shardbid::money::Micros;
use targeting_support::*;

fn imp(patch: Value) -> String {
    let mut imp = json!({"id": "1", "banner": {"w": 300, "h": 250}});
    merge(&mut imp, patch);
    request(json!({ "imp": [imp] }))
}

fn deal(id: &str, floor: f64, patch: Value) -> Value {
    let mut d = json!({"id": id, "bidfloor": floor});
    merge(&mut d, patch);
    d
}

#[test]
fn price_is_raised_to_the_floor_within_max_cpm() {
    let t = table(vec![campaign("c", "1", json!({"max_cpm": "2"}))]);
    let at = |floor: f64| first(&t, &imp(json!({ "bidfloor": floor }))).map(|w| w.price);
    assert_eq!(at(0.0), Ok(m("1")));
    assert_eq!(at(0.5), Ok(m("1")));
    assert_eq!(at(1.5), Ok(m("1.5")));
    assert_eq!(at(2.0), Ok(m("2")));
    assert_eq!(at(2.000001), Err(NoBidReason::BelowFloor));
    // Without max_cpm the campaign never pays more than its bid.
    let t = table(vec![campaign("c", "1", json!({}))]);
    assert_eq!(
        first(&t, &imp(json!({"bidfloor": 1.01}))),
        Err(NoBidReason::BelowFloor)
    );
}

#[test]
fn zero_price_is_never_bid() {
    let t = table(vec![campaign("free", "0", json!({"max_cpm": "1"}))]);
    assert_eq!(first(&t, &imp(json!({}))), Err(NoBidReason::BelowFloor));
    assert_eq!(
        first(&t, &imp(json!({"bidfloor": 0.2}))).unwrap().price,
        m("0.2")
    );
}

#[test]
fn floors_in_other_currencies_are_converted() {
    let t = table(vec![campaign("c", "1", json!({"max_cpm": "5"}))]);
    // 1 EUR = 1.08 USD, 1 GBP = 1.27 USD.
    let price = |floor: f64, cur: &str| {
        first(&t, &imp(json!({"bidfloor": floor, "bidfloorcur": cur}))).map(|w| w.price)
    };
    assert_eq!(price(2.0, "EUR"), Ok(m("2.16")));
    assert_eq!(price(2.0, "gbp"), Ok(m("2.54")));
    assert_eq!(price(2.0, "USD"), Ok(m("2")));
    assert_eq!(price(0.5, "EUR"), Ok(m("1")));
    assert_eq!(price(1.0, "JPY"), Err(NoBidReason::Currency));
    // Conversion rounds the floor up: never a micro below it.
    assert_eq!(price(1.000001, "GBP"), Ok(m("1.270002")));
}

#[test]
fn response_currency_follows_cur() {
    let t = table(vec![campaign("c", "2", json!({"max_cpm": "5"}))]);
    let run = |patch: Value| {
        run_ctx(&t, &request(patch), &CTX).map(|(w, cur)| (w[0].as_ref().unwrap().price, cur))
    };
    assert_eq!(run(json!({})), Ok((m("2"), "USD")));
    assert_eq!(run(json!({"cur": ["EUR", "USD"]})), Ok((m("2"), "USD")));
    // 2 USD is 1.851851.. EUR: rounded down, never more than the campaign priced.
    assert_eq!(
        run(json!({"cur": ["JPY", "eur", "GBP"]})),
        Ok((m("1.851851"), "EUR"))
    );
    assert_eq!(run(json!({"cur": ["GBP"]})), Ok((m("1.574803"), "GBP")));
    assert_eq!(run(json!({"cur": ["JPY"]})), Err(NoBidReason::Currency));
}

#[test]
fn converted_price_never_falls_below_the_floor() {
    let t = table(vec![campaign("c", "1", json!({"max_cpm": "3"}))]);
    let eur = |floor: f64, cur: Option<&str>| {
        let mut i = json!({"bidfloor": floor});
        if let Some(c) = cur {
            i["bidfloorcur"] = json!(c);
        }
        let r = request(json!({"cur": ["EUR"], "imp": [merge_imp(i)]}));
        run_ctx(&t, &r, &CTX).map(|(w, _)| w[0].as_ref().unwrap().price)
    };
    // A floor in the response currency is met exactly.
    assert_eq!(eur(2.0, Some("EUR")), Ok(m("2")));
    assert_eq!(eur(2.777777, Some("EUR")), Ok(m("2.777777")));
    // 3 USD max is 2.777777 EUR: a 2.777778 EUR floor is out of reach.
    assert_eq!(eur(2.777778, Some("EUR")), Err(NoBidReason::BelowFloor));
    // A USD floor in EUR rounds up: 1.5 USD = 1.388888.. EUR -> 1.388889.
    assert_eq!(eur(1.5, None), Ok(m("1.388889")));
    // A GBP floor in EUR: 1 GBP = 1.175925.. EUR -> 1.175926.
    assert_eq!(eur(1.0, Some("GBP")), Ok(m("1.175926")));
}

fn merge_imp(patch: Value) -> Value {
    let mut imp = json!({"id": "1", "banner": {"w": 300, "h": 250}});
    merge(&mut imp, patch);
    imp
}

#[test]
fn deal_campaigns_bid_only_through_their_deals() {
    let t = table(vec![campaign(
        "deal-camp",
        "2",
        json!({"seat": "Agency1", "max_cpm": "4", "targeting": {"deals": ["D1", "D2"]}}),
    )]);
    assert_eq!(first(&t, &imp(json!({}))), Err(NoBidReason::NoMatch));
    let other = imp(json!({"pmp": {"deals": [deal("D9", 1.0, json!({}))]}}));
    assert_eq!(first(&t, &other), Err(NoBidReason::NoMatch));
    let w = first(
        &t,
        &imp(json!({"pmp": {"private_auction": 1, "deals": [
        deal("D9", 1.0, json!({})), deal("D2", 3.0, json!({"wseat": ["Agency1", "Agency2"]}))]}})),
    )
    .unwrap();
    assert_eq!((w.price, w.deal.as_deref()), (m("3"), Some("D2")));
    // The deal's wseat must name the campaign's seat.
    let seat = imp(json!({"pmp": {"deals": [deal("D1", 1.0, json!({"wseat": ["Agency2"]}))]}}));
    assert_eq!(first(&t, &seat), Err(NoBidReason::Blocked));
    // Above max_cpm, the deal floor is out of reach.
    let high = imp(json!({"pmp": {"deals": [deal("D1", 4.5, json!({}))]}}));
    assert_eq!(first(&t, &high), Err(NoBidReason::BelowFloor));
    // Of two held deals, the one it can bid cheapest on.
    let two =
        imp(json!({"pmp": {"deals": [deal("D1", 3.5, json!({})), deal("D2", 2.5, json!({}))]}}));
    assert_eq!(first(&t, &two).unwrap().deal.as_deref(), Some("D2"));
}

#[test]
fn deal_floors_have_their_own_currency() {
    let t = table(vec![campaign(
        "d",
        "1",
        json!({"max_cpm": "9", "targeting": {"deals": ["D1"]}}),
    )]);
    // The imp's EUR floor currency is not inherited: the deal's 2.0 is USD.
    let r = imp(
        json!({"bidfloor": 5.0, "bidfloorcur": "EUR", "pmp": {"deals": [deal("D1", 2.0, json!({}))]}}),
    );
    assert_eq!(first(&t, &r).unwrap().price, m("2"));
    let r = imp(json!({"pmp": {"deals": [deal("D1", 2.0, json!({"bidfloorcur": "EUR"}))]}}));
    assert_eq!(first(&t, &r).unwrap().price, m("2.16"));
    let r = imp(json!({"pmp": {"deals": [deal("D1", 2.0, json!({"bidfloorcur": "XYZ"}))]}}));
    assert_eq!(first(&t, &r), Err(NoBidReason::Currency));
}

#[test]
fn private_auctions_exclude_open_campaigns() {
    let t = table(vec![
        campaign("open", "3", json!({})),
        campaign("deal", "1", json!({"targeting": {"deals": ["D1"]}})),
    ]);
    let pmp = |private: u8| {
        imp(json!({"pmp": {"private_auction": private, "deals": [deal("D1", 0.5, json!({}))]}}))
    };
    let w = first(&t, &pmp(0)).unwrap();
    assert_eq!((w.campaign.as_str(), w.deal), ("open", None));
    let w = first(&t, &pmp(1)).unwrap();
    assert_eq!(
        (w.campaign.as_str(), w.deal.as_deref()),
        ("deal", Some("D1"))
    );
    let open_only = table(vec![campaign("open", "3", json!({}))]);
    assert_eq!(first(&open_only, &pmp(1)), Err(NoBidReason::DealsOnly));
    let no_deals = imp(json!({"pmp": {"private_auction": 1, "deals": []}}));
    assert_eq!(first(&t, &no_deals), Err(NoBidReason::DealsOnly));
}

#[test]
fn highest_price_wins_even_when_a_floor_raises_a_lower_bid() {
    let t = table(vec![
        campaign("open-3", "3", json!({})),
        campaign(
            "deal-2",
            "2",
            json!({"max_cpm": "5", "targeting": {"deals": ["D1"]}}),
        ),
    ]);
    let r = imp(json!({"pmp": {"deals": [deal("D1", 4.0, json!({}))]}}));
    let w = first(&t, &r).unwrap();
    assert_eq!((w.campaign.as_str(), w.price), ("deal-2", m("4")));
    let r = imp(json!({"pmp": {"deals": [deal("D1", 2.5, json!({}))]}}));
    assert_eq!(first(&t, &r).unwrap().campaign, "open-3");
}

#[test]
fn ties_go_to_the_higher_bid_then_the_lower_id() {
    let t = table(vec![
        campaign("b-camp", "1.5", json!({})),
        campaign("a-camp", "1.5", json!({})),
        campaign("c-camp", "1", json!({"max_cpm": "3"})),
    ]);
    assert_eq!(winner(&t, &imp(json!({}))).unwrap(), "a-camp");
    // All three raised to a 2.0 floor? Only c-camp can pay it.
    assert_eq!(
        winner(&t, &imp(json!({"bidfloor": 2.0}))).unwrap(),
        "c-camp"
    );
    let t = table(vec![
        campaign("low-bid", "1", json!({"max_cpm": "3"})),
        campaign("high-bid", "2", json!({"max_cpm": "3"})),
    ]);
    // Both priced at the 2.5 floor: the higher bid_cpm wins the tie.
    let w = first(&t, &imp(json!({"bidfloor": 2.5}))).unwrap();
    assert_eq!((w.campaign.as_str(), w.price), ("high-bid", m("2.5")));
}

#[test]
fn every_no_bid_has_its_reason() {
    let empty = table(vec![]);
    assert_eq!(
        winner(&empty, &imp(json!({}))),
        Err(NoBidReason::NoCampaigns)
    );
    let paused = table(vec![campaign("p", "1", json!({"active": false}))]);
    assert_eq!(
        winner(&paused, &imp(json!({}))),
        Err(NoBidReason::NoCampaigns)
    );

    let t = table(vec![campaign(
        "c",
        "1",
        json!({"targeting": {"countries": ["USA"], "test_requests": false},
               "creatives": [{"id": "cr", "kind": "banner", "w": 300, "h": 250, "adm": "x", "cat": ["IAB8"]}]}),
    )]);
    let usa = json!({"device": {"geo": {"country": "USA"}}});
    let req = |patch: Value| {
        let mut r = usa.clone();
        merge(&mut r, patch);
        request(r)
    };
    assert!(winner(&t, &req(json!({}))).is_ok());
    assert_eq!(winner(&t, &request(json!({}))), Err(NoBidReason::NoMatch));
    assert_eq!(
        winner(&t, &req(json!({"bcat": ["IAB8"]}))),
        Err(NoBidReason::Blocked)
    );
    assert_eq!(
        winner(
            &t,
            &req(json!({"imp": [merge_imp(json!({"bidfloor": 5.0}))]}))
        ),
        Err(NoBidReason::BelowFloor)
    );
    assert_eq!(
        winner(&t, &req(json!({"cur": ["CHF"]}))),
        Err(NoBidReason::Currency)
    );
    let private =
        json!({"imp": [merge_imp(json!({"pmp": {"private_auction": 1, "deals": [{"id": "D"}]}}))]});
    assert_eq!(winner(&t, &req(private)), Err(NoBidReason::DealsOnly));
    assert_eq!(winner(&t, &req(json!({"test": 1}))), Err(NoBidReason::Test));
    for r in NoBidReason::ALL {
        assert!(!r.label().is_empty());
    }
}

#[test]
fn the_most_informative_reason_is_reported() {
    let t = table(vec![
        campaign("blocked", "5", json!({"adomain": ["blocked.example"]})),
        campaign("cheap", "1", json!({})),
        campaign(
            "elsewhere",
            "9",
            json!({"targeting": {"countries": ["FRA"]}}),
        ),
    ]);
    // One campaign blocked, one below the floor, one not targeted: below floor wins.
    let r =
        request(json!({"badv": ["blocked.example"], "imp": [merge_imp(json!({"bidfloor": 2.0}))]}));
    assert_eq!(winner(&t, &r), Err(NoBidReason::BelowFloor));
    // Blocked beats not targeted.
    let r = request(json!({"badv": ["blocked.example", "cheap.example"]}));
    assert_eq!(winner(&t, &r), Err(NoBidReason::Blocked));
    // Across imps, the furthest any imp got.
    let r = request(
        json!({"badv": ["blocked.example", "cheap.example"], "imp": [
        {"id": "a", "banner": {"w": 1, "h": 1}},
        {"id": "b", "banner": {"w": 300, "h": 250}}]}),
    );
    assert_eq!(winner(&t, &r), Err(NoBidReason::Blocked));
}

#[test]
fn prices_are_exact_micros() {
    let t = table(vec![campaign(
        "c",
        "1.000001",
        json!({"max_cpm": "2.999999"}),
    )]);
    assert_eq!(first(&t, &imp(json!({}))).unwrap().price, Micros(1_000_001));
    assert_eq!(
        first(&t, &imp(json!({"bidfloor": 2.999999})))
            .unwrap()
            .price,
        Micros(2_999_999)
    );
}
