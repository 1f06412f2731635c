//! The BidResponse encoder: writes JSON straight into a reused buffer.
//!
//! Campaign-side members of a bid (`adm`, notice URLs, `cid`, `crid`, `adomain`, `cat`,
//! size) and seat ids are rendered as JSON when the table is built; per request only
//! the request's own strings (ids) are escaped and the price formatted.

#![forbid(unsafe_code)]

use crate::json::{fmt_u64, write_escaped, write_json_string};
use crate::money::Micros;
use crate::openrtb::request::BidRequest;

/// One bid as the encoder writes it: what the request does not say, prepared by the
/// caller (the auction's winner, its seat and creative already rendered as JSON).
#[derive(Debug, Clone, Copy)]
pub struct ResponseBid<'a> {
    /// Index into `req.imp`.
    pub imp: u32,
    /// CPM price in the response currency.
    pub price: Micros,
    /// Identifies the seat: bids with equal `seat` share one `seatbid`.
    pub seat: u32,
    /// The seat's id as a JSON string, quotes included.
    pub seat_json: &'a [u8],
    /// The bid's campaign-side members, already JSON (`"adm":..,"cid":..,...`).
    pub ad_json: &'a [u8],
    /// Index into `req.imp[imp].pmp.deals` for a deal bid.
    pub deal: Option<u32>,
    /// The bid's `id` (JSON-safe, no quotes); `None`: `{impid}-{n}`.
    pub id: Option<&'a [u8]>,
    /// More members, already JSON, each with its leading comma (the notice URLs).
    pub extra: &'a [u8],
}

/// Writes the BidResponse for `bids` (at least one) into `out` (cleared first):
/// `{"id":..,"seatbid":[{"seat":..,"bid":[..]}],"cur":..}`, one `seatbid` per seat in
/// order of first appearance. Each bid's `id` is `{impid}-{n}` with `n` its position in
/// `bids`, unique within the response.
pub fn write_response<'a, I>(req: &BidRequest<'_>, bids: I, cur: &str, out: &mut Vec<u8>)
where
    I: Iterator<Item = ResponseBid<'a>> + Clone,
{
    out.clear();
    out.extend_from_slice(b"{\"id\":");
    write_json_string(out, &req.id);
    out.extend_from_slice(b",\"seatbid\":[");
    let mut first_seat = true;
    for (i, bid) in bids.clone().enumerate() {
        if bids.clone().take(i).any(|b| b.seat == bid.seat) {
            continue;
        }
        if !first_seat {
            out.push(b',');
        }
        first_seat = false;
        out.extend_from_slice(b"{\"seat\":");
        out.extend_from_slice(bid.seat_json);
        out.extend_from_slice(b",\"bid\":[");
        let mut first_bid = true;
        for (n, b) in bids.clone().enumerate().skip(i) {
            if b.seat != bid.seat {
                continue;
            }
            if !first_bid {
                out.push(b',');
            }
            first_bid = false;
            write_bid(req, &b, n, out);
        }
        out.extend_from_slice(b"]}");
    }
    out.extend_from_slice(b"],\"cur\":");
    write_json_string(out, cur);
    out.push(b'}');
}

fn write_bid(req: &BidRequest<'_>, bid: &ResponseBid<'_>, n: usize, out: &mut Vec<u8>) {
    let imp = req.imp.get(bid.imp as usize);
    let imp_id = imp.map_or("", |i| i.id.as_str());
    out.extend_from_slice(b"{\"id\":\"");
    match bid.id {
        Some(id) => {
            out.extend_from_slice(id);
            out.extend_from_slice(b"\",\"impid\":\"");
            write_escaped(out, imp_id);
        }
        None => {
            let escaped_imp_id = out.len()..{
                write_escaped(out, imp_id);
                out.len()
            };
            out.push(b'-');
            let mut buf = [0u8; 20];
            out.extend_from_slice(fmt_u64(&mut buf, n as u64));
            out.extend_from_slice(b"\",\"impid\":\"");
            out.extend_from_within(escaped_imp_id);
        }
    }
    out.push(b'"');
    out.extend_from_slice(b",\"price\":");
    bid.price.write_decimal(out);
    if !bid.ad_json.is_empty() {
        out.push(b',');
        out.extend_from_slice(bid.ad_json);
    }
    out.extend_from_slice(bid.extra);
    let deal = bid
        .deal
        .and_then(|d| imp?.pmp.as_ref()?.deals.get(d as usize));
    if let Some(d) = deal {
        out.extend_from_slice(b",\"dealid\":");
        write_json_string(out, &d.id);
    }
    out.push(b'}');
}
