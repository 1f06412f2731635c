//! The BidResponse encoder: writes JSON straight into a reused buffer.

use crate::auction::Bid;
use crate::openrtb::request::BidRequest;
use crate::targeting::Table;

/// Writes the BidResponse for `bids` (at least one) into `out` (cleared first).
pub fn write_response(
    req: &BidRequest<'_>,
    table: &Table,
    bids: &[Bid],
    cur: &str,
    out: &mut Vec<u8>,
) {
    let _ = (req, table, bids, cur, out);
    todo!("encoder")
}
