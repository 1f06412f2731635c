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
    write_escaped(out, imp_id);
    out.push(b'-');
    let mut buf = [0u8; 20];
    out.extend_from_slice(fmt_u64(&mut buf, n as u64));
    out.extend_from_slice(b"\",\"impid\":");
    write_json_string(out, imp_id);
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

/// Writes the JSON escape of `s` (no quotes): `"`, `\` and control characters.
fn write_escaped(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let mut unicode = [b'\\', b'u', b'0', b'0', 0, 0];
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => {
                unicode[4] = HEX[(b >> 4) as usize];
                unicode[5] = HEX[(b & 15) as usize];
                &unicode
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}
