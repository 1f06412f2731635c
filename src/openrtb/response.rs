//! The BidResponse encoder: writes JSON straight into a reused buffer.
//!
//! Campaign-side members of a bid (`adm`, notice URLs, `cid`, `crid`, `adomain`, `cat`,
//! size) and seat ids are rendered as JSON when the table is built; per request only
//! the request's own strings (ids) are escaped and the price formatted.

use crate::auction::Bid;
use crate::money::fmt_u64;
use crate::openrtb::request::BidRequest;
use crate::targeting::Table;

/// Writes the BidResponse for `bids` (at least one) into `out` (cleared first):
/// `{"id":..,"seatbid":[{"seat":..,"bid":[..]}],"cur":..}`, one `seatbid` per seat in
/// order of first appearance. Each bid's `id` is `{impid}-{n}` with `n` its position in
/// `bids`, unique within the response.
pub fn write_response(
    req: &BidRequest<'_>,
    table: &Table,
    bids: &[Bid],
    cur: &str,
    out: &mut Vec<u8>,
) {
    out.clear();
    out.extend_from_slice(b"{\"id\":");
    write_json_string(out, &req.id);
    out.extend_from_slice(b",\"seatbid\":[");
    let seat_of = |b: &Bid| table.entries.get(b.campaign as usize).map(|e| e.seat);
    let mut first_seat = true;
    for (i, bid) in bids.iter().enumerate() {
        let seat = seat_of(bid);
        if bids[..i].iter().any(|b| seat_of(b) == seat) {
            continue;
        }
        let Some(s) = seat.and_then(|s| table.seats.get(s as usize)) else {
            continue;
        };
        if !first_seat {
            out.push(b',');
        }
        first_seat = false;
        out.extend_from_slice(b"{\"seat\":");
        out.extend_from_slice(&s.json);
        out.extend_from_slice(b",\"bid\":[");
        let mut first_bid = true;
        for (n, b) in bids.iter().enumerate().skip(i) {
            if seat_of(b) != seat {
                continue;
            }
            if !first_bid {
                out.push(b',');
            }
            first_bid = false;
            write_bid(req, table, b, n, out);
        }
        out.extend_from_slice(b"]}");
    }
    out.extend_from_slice(b"],\"cur\":");
    write_json_string(out, cur);
    out.push(b'}');
}

fn write_bid(req: &BidRequest<'_>, table: &Table, bid: &Bid, n: usize, out: &mut Vec<u8>) {
    let imp = req.imp.get(bid.imp as usize);
    let imp_id = imp.map_or("", |i| i.id.as_str());
    out.extend_from_slice(b"{\"id\":\"");
    let escaped_imp_id = out.len()..{
        write_escaped(out, imp_id);
        out.len()
    };
    out.push(b'-');
    let mut buf = [0u8; 20];
    out.extend_from_slice(fmt_u64(&mut buf, n as u64));
    out.extend_from_slice(b"\",\"impid\":\"");
    out.extend_from_within(escaped_imp_id);
    out.push(b'"');
    out.extend_from_slice(b",\"price\":");
    bid.price.write_decimal(out);
    let ad = table
        .entries
        .get(bid.campaign as usize)
        .and_then(|e| e.ads.get(bid.creative as usize));
    if let Some(ad) = ad {
        out.push(b',');
        out.extend_from_slice(&ad.json);
    }
    let deal = bid
        .deal
        .and_then(|d| imp?.pmp.as_ref()?.deals.get(d as usize));
    if let Some(d) = deal {
        out.extend_from_slice(b",\"dealid\":");
        write_json_string(out, &d.id);
    }
    out.push(b'}');
}

/// Writes `s` as a JSON string, quotes included.
pub fn write_json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    write_escaped(out, s);
    out.push(b'"');
}

/// Writes the JSON escape of `s` (no quotes): `"`, `\\` and control characters.
fn write_escaped(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = clean_words(bytes);
    while let Some(&b) = bytes.get(i) {
        i += 1;
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.extend_from_slice(bytes.get(start..i - 1).unwrap_or_default());
        write_escape(out, b);
        start = i;
        i += clean_words(bytes.get(i..).unwrap_or_default());
    }
    out.extend_from_slice(bytes.get(start..).unwrap_or_default());
}

/// How many leading bytes of `bytes`, in whole 8-byte words, need no escaping: each word
/// is tested at once for a byte below 0x20, a `"` or a `\\` (ids are mostly long hex).
fn clean_words(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Whether some byte of `x` is below `n` (n <= 0x80), the classic bit trick.
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGH != 0;
    let mut clean = 0;
    for word in bytes.chunks_exact(8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        let x = u64::from_le_bytes(w);
        if below(x, 0x20) || below(x ^ (ONES * 0x22), 1) || below(x ^ (ONES * 0x5c), 1) {
            break;
        }
        clean += 8;
    }
    clean
}

/// The escape of one byte that JSON requires escaped.
#[cold]
fn write_escape(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match b {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        _ => out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[(b >> 4) as usize],
            HEX[(b & 15) as usize],
        ]),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::auction::{self, AuctionContext};
    use crate::money::Micros;
    use crate::targeting::{CampaignSet, TableSettings};

    fn table() -> Table {
        let set: CampaignSet = serde_json::from_value(json!({"campaigns": [
            {"id": "house", "adomain": ["house.example", "shop.house.example"], "bid_cpm": "1.25",
             "nurl": "https://n.example/win?c={campaign}&cr={creative}&p=${AUCTION_PRICE}",
             "creatives": [{"id": "rect", "kind": "banner", "w": 300, "h": 250,
                            "adm": "<a href=\"x\">\"quoted\"\n</a>", "cat": ["IAB1", "IAB2-3"]}]},
            {"id": "agency", "seat": "Agency\"1", "adomain": ["agency.example"], "bid_cpm": "2",
             "max_cpm": "3", "targeting": {"deals": ["deal\\1"]},
             "creatives": [{"id": "vid", "kind": "video", "mime": "video/mp4", "duration": 15,
                            "protocol": 3, "adm": "<VAST/>"}]}
        ]}))
        .unwrap();
        let settings = TableSettings {
            default_seat: "shardbid".into(),
            burl: "https://b.example/bill?c={campaign}&cr={creative}&id=${AUCTION_ID}".into(),
            currencies: [("EUR".to_string(), Micros(1_080_000))].into(),
            ..TableSettings::default()
        };
        Table::build(&set, &settings, 7).unwrap()
    }

    #[test]
    fn response_carries_every_field_escaped() {
        let t = table();
        let body = json!({
            "id": "req \"1\"\\\u{1}é",
            "cur": ["EUR"],
            "imp": [
                {"id": "a\"1", "banner": {"w": 300, "h": 250}},
                {"id": "v\n2", "video": {"mimes": ["video/mp4"]},
                 "pmp": {"private_auction": 1, "deals": [{"id": "deal\\1", "bidfloor": 2.5}]}},
                {"id": "a\"1", "banner": {"w": 300, "h": 250}}
            ]
        })
        .to_string();
        let req: BidRequest = serde_json::from_str(&body).unwrap();
        let ctx = AuctionContext {
            exchange: None,
            hour_of_week: 0,
        };
        let mut bids = Vec::new();
        let cur = auction::run(&t, &req, &ctx, &mut bids).unwrap();
        assert_eq!((cur, bids.len()), ("EUR", 3));
        let mut out = b"stale bytes".to_vec();
        write_response(&req, &t, &bids, cur, &mut out);
        let v: Value = serde_json::from_slice(&out).unwrap();

        assert_eq!(v["id"], "req \"1\"\\\u{1}é");
        assert_eq!(v["cur"], "EUR");
        let seatbid = v["seatbid"].as_array().unwrap();
        assert_eq!(seatbid.len(), 2, "one seatbid per seat");
        assert_eq!(seatbid[0]["seat"], "shardbid");
        assert_eq!(seatbid[1]["seat"], "Agency\"1");

        let house = seatbid[0]["bid"].as_array().unwrap();
        assert_eq!(house.len(), 2);
        let b = house[0].as_object().unwrap();
        let keys: Vec<&str> = b.keys().map(|k| k.as_str()).collect();
        let mut expected = vec![
            "id", "impid", "price", "adm", "nurl", "burl", "cid", "crid", "adomain", "cat", "w",
            "h",
        ];
        expected.sort();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(sorted, expected);
        assert_eq!(b["id"], "a\"1-0");
        assert_eq!(b["impid"], "a\"1");
        // 1.25 USD in EUR, rounded down.
        assert_eq!(b["price"].to_string(), "1.157407");
        assert_eq!(b["adm"], "<a href=\"x\">\"quoted\"\n</a>");
        assert_eq!(
            b["nurl"],
            "https://n.example/win?c=house&cr=rect&p=${AUCTION_PRICE}"
        );
        assert_eq!(
            b["burl"],
            "https://b.example/bill?c=house&cr=rect&id=${AUCTION_ID}"
        );
        assert_eq!(b["cid"], "house");
        assert_eq!(b["crid"], "rect");
        assert_eq!(b["adomain"], json!(["house.example", "shop.house.example"]));
        assert_eq!(b["cat"], json!(["IAB1", "IAB2-3"]));
        assert_eq!((b["w"].as_u64(), b["h"].as_u64()), (Some(300), Some(250)));
        assert_eq!(
            house[1]["id"], "a\"1-2",
            "bid ids are unique even for repeated imp ids"
        );
        assert_eq!(house[1]["impid"], "a\"1");

        let d = seatbid[1]["bid"][0].as_object().unwrap();
        assert_eq!(d["id"], "v\n2-1");
        assert_eq!(d["impid"], "v\n2");
        assert_eq!(d["dealid"], "deal\\1");
        // Raised to the 2.5 USD deal floor, converted up: 2.314815 EUR.
        assert_eq!(d["price"].to_string(), "2.314815");
        assert_eq!(d["cid"], "agency");
        assert_eq!(d["crid"], "vid");
        assert_eq!(d["adm"], "<VAST/>");
        assert!(d.get("nurl").is_none() && d.get("w").is_none() && d.get("cat").is_none());
        assert_eq!(
            d["burl"],
            "https://b.example/bill?c=agency&cr=vid&id=${AUCTION_ID}"
        );
    }

    #[test]
    fn escapes_what_json_requires() {
        let mut out = Vec::new();
        write_json_string(&mut out, "a\"b\\c\u{0}\u{1f}\t\r\n\u{8}\u{c}é/");
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#""a\"b\\c\u0000\u001f\t\r\n\b\fé/""#
        );
        let back: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, "a\"b\\c\u{0}\u{1f}\t\r\n\u{8}\u{c}é/");
    }

    #[test]
    fn escapes_like_serde_json_at_every_position_of_long_ids() {
        // Long ids go through the 8-bytes-at-a-time scan: a byte that needs escaping
        // must be found at any offset, also next to multi-byte UTF-8.
        for special in ['"', '\\', '\u{0}', '\u{1f}', '\n', '\u{7f}', 'é', '€'] {
            for len in [0, 1, 7, 8, 9, 15, 16, 17, 40] {
                for at in 0..=len {
                    let mut id: String = "0123456789abcdef0123456789abcdef01234567"
                        .chars()
                        .take(len)
                        .collect();
                    id.insert(at, special);
                    let mut out = Vec::new();
                    write_json_string(&mut out, &id);
                    assert_eq!(
                        std::str::from_utf8(&out).unwrap(),
                        serde_json::to_string(&id).unwrap(),
                        "{id:?}"
                    );
                }
            }
        }
    }
}
