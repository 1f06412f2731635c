//! The auction and the encoder allocate nothing per request: after the reused output
//! buffers have grown once, matching and encoding every fixture makes no heap call.

use std::path::Path;

use shardbid::auction;
use shardbid::openrtb::request::BidRequest;
use shardbid::targeting::MatchContext;
use shardbid::targeting::{CampaignSet, Table, TableSettings};
use shardbid_testkit::alloc::{self, Counting};

#[global_allocator]
static ALLOC: Counting = Counting;

#[test]
fn auction_and_encoding_do_not_allocate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let set: CampaignSet =
        serde_json::from_slice(&std::fs::read(root.join("config/campaigns.json")).unwrap())
            .unwrap();
    let settings = TableSettings {
        exchanges: vec!["adx".into(), "example".into()],
        currencies: [("EUR".to_string(), shardbid::money::Micros(1_080_000))].into(),
        default_seat: "shardbid".into(),
        ..TableSettings::default()
    };
    let table = Table::build(&set, &settings, 1).unwrap();
    let bodies: Vec<Vec<u8>> = std::fs::read_dir(root.join("tests/fixtures"))
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    let requests: Vec<BidRequest> = bodies
        .iter()
        .map(|b| serde_json::from_slice(b).unwrap())
        .collect();
    assert_eq!(requests.len(), 6);

    let mut bids = Vec::new();
    let mut out = Vec::new();
    let mut pass = |count: &mut usize| {
        for req in &requests {
            for hour in [0, 100] {
                for exchange in [None, Some(0), Some(1)] {
                    let ctx = MatchContext {
                        exchange,
                        hour_of_week: hour,
                    };
                    if let Ok(cur) = auction::run(&table, req, &ctx, &mut (), &mut bids) {
                        auction::encode(req, &table, &bids, cur, &mut out);
                        *count += 1;
                    }
                    assert!(!out.is_empty());
                }
            }
        }
    };
    let mut warm = 0;
    pass(&mut warm);
    assert_eq!(warm, 36, "every fixture bids in every context");
    let before = alloc::calls() as usize;
    let mut counted = 0;
    for _ in 0..10 {
        pass(&mut counted);
    }
    assert_eq!(
        alloc::calls() as usize - before,
        0,
        "heap calls in {counted} auctions"
    );
}
