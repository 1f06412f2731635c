//! Small builders for targeting tests: campaigns and requests as JSON, merged over a
//! plain base so each test states only what it is about.

#![allow(dead_code)]

use std::collections::BTreeMap;

use serde_json::{json, Value};
use shardbid::auction::{self, NoBidReason};
use shardbid::money::Micros;
use shardbid::openrtb::request::BidRequest;
use shardbid::targeting::MatchContext;
use shardbid::targeting::{CampaignSet, Table, TableSettings};

/// Exchanges `adx` (id 0) and `example` (id 1); EUR at 1.08 and GBP at 1.27 USD.
pub fn settings() -> TableSettings {
    TableSettings {
        exchanges: vec!["adx".into(), "example".into()],
        currencies: BTreeMap::from([
            ("EUR".to_string(), Micros(1_080_000)),
            ("GBP".to_string(), Micros(1_270_000)),
        ]),
        default_seat: "shardbid".into(),
        nurl: String::new(),
        burl: String::new(),
    }
}

/// Merges `patch` into `base`: objects key by key, anything else replaced.
pub fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

/// A campaign bidding `price` with one secure 300x250 banner, targeting nothing.
pub fn campaign(id: &str, price: &str, patch: Value) -> Value {
    let mut c = json!({
        "id": id,
        "adomain": [format!("{id}.example")],
        "bid_cpm": price,
        "creatives": [{"id": format!("{id}-cr"), "kind": "banner", "w": 300, "h": 250,
                       "adm": "<a>ad</a>"}]
    });
    merge(&mut c, patch);
    c
}

pub fn table(campaigns: Vec<Value>) -> Table {
    let set: CampaignSet = serde_json::from_value(json!({ "campaigns": campaigns })).unwrap();
    Table::build(&set, &settings(), 1).unwrap_or_else(|e| panic!("{e:#?}"))
}

/// A site request with one 300x250 banner imp and no floor.
pub fn request(patch: Value) -> String {
    let mut r = json!({
        "id": "req-1",
        "imp": [{"id": "1", "banner": {"w": 300, "h": 250}}],
        "site": {"domain": "news.example.com"}
    });
    merge(&mut r, patch);
    r.to_string()
}

pub const CTX: MatchContext = MatchContext {
    exchange: None,
    hour_of_week: 0,
};

/// What one imp got: campaign id, creative id, price and deal id.
#[derive(Debug, PartialEq)]
pub struct Won {
    pub campaign: String,
    pub creative: String,
    pub price: Micros,
    pub deal: Option<String>,
}

/// Runs the auction; per imp (in order) what it got, and the currency.
pub fn run_ctx(
    t: &Table,
    req: &str,
    ctx: &MatchContext,
) -> Result<(Vec<Option<Won>>, &'static str), NoBidReason> {
    let req: BidRequest = serde_json::from_str(req).unwrap();
    let mut bids = Vec::new();
    let cur = auction::run(t, &req, ctx, &mut (), &mut bids)?;
    let mut out: Vec<Option<Won>> = req.imp.iter().map(|_| None).collect();
    for b in &bids {
        assert!(out[b.imp as usize].is_none(), "two bids on one imp");
        let deal = b.deal.map(|d| {
            req.imp[b.imp as usize].pmp.as_ref().unwrap().deals[d as usize]
                .id
                .to_string()
        });
        out[b.imp as usize] = Some(Won {
            campaign: t.campaign(b.campaign).unwrap().id.clone(),
            creative: t.creative(b.campaign, b.creative).unwrap().id.clone(),
            price: b.price,
            deal,
        });
    }
    Ok((out, cur))
}

/// The campaign that wins the first imp, or the no-bid reason.
pub fn winner(t: &Table, req: &str) -> Result<String, NoBidReason> {
    winner_ctx(t, req, &CTX)
}

pub fn winner_ctx(t: &Table, req: &str, ctx: &MatchContext) -> Result<String, NoBidReason> {
    let (won, _) = run_ctx(t, req, ctx)?;
    Ok(won[0]
        .as_ref()
        .expect("first imp has no bid")
        .campaign
        .clone())
}

/// The first imp's bid.
pub fn first(t: &Table, req: &str) -> Result<Won, NoBidReason> {
    let (mut won, _) = run_ctx(t, req, &CTX)?;
    Ok(won.remove(0).expect("first imp has no bid"))
}

pub fn m(s: &str) -> Micros {
    Micros::parse(s).unwrap()
}
