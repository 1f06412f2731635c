//! Candidates to priced bids: at most one bid per imp, highest price wins.
//! Pure code: no runtime, no I/O.

use crate::money::Micros;
use crate::openrtb::request::BidRequest;
use crate::targeting::Table;

/// Why a request got no bid. Every variant is a metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum NoBidReason {
    /// The table holds no active campaign.
    NoCampaigns,
    /// No campaign targets this inventory/user/device/time.
    NoMatch,
    /// Campaigns matched but every one was blocked (bcat, badv, battr, bapp, seats).
    Blocked,
    /// Campaigns matched but none could bid at or above the floor.
    BelowFloor,
    /// The request allows no currency the bidder can price in.
    Currency,
    /// Private auction and no campaign holds one of its deals.
    DealsOnly,
    /// `test = 1` and no matching campaign bids on test requests.
    Test,
}

impl NoBidReason {
    pub const ALL: [NoBidReason; 7] = [
        NoBidReason::NoCampaigns,
        NoBidReason::NoMatch,
        NoBidReason::Blocked,
        NoBidReason::BelowFloor,
        NoBidReason::Currency,
        NoBidReason::DealsOnly,
        NoBidReason::Test,
    ];

    pub const fn label(self) -> &'static str {
        match self {
            NoBidReason::NoCampaigns => "no_campaigns",
            NoBidReason::NoMatch => "no_match",
            NoBidReason::Blocked => "blocked",
            NoBidReason::BelowFloor => "below_floor",
            NoBidReason::Currency => "currency",
            NoBidReason::DealsOnly => "deals_only",
            NoBidReason::Test => "test",
        }
    }
}

/// One winning bid: indexes into the request and the table, and the price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bid {
    /// Index into `req.imp`.
    pub imp: u32,
    /// Campaign index in the table.
    pub campaign: u32,
    /// Creative index within the campaign.
    pub creative: u32,
    /// Index into `req.imp[imp].pmp.deals` for a deal bid.
    pub deal: Option<u32>,
    /// CPM price in the response currency.
    pub price: Micros,
}

/// Per-request facts that do not come from the body.
#[derive(Debug, Clone, Copy)]
pub struct AuctionContext {
    /// The exchange's id (index in `TableSettings::exchanges`), if the path named one.
    pub exchange: Option<u32>,
    /// Hour of the week in UTC, Monday 00:00 = 0 .. Sunday 23:00 = 167.
    pub hour_of_week: u16,
}

/// Runs the auction: fills `out` (cleared first) with at most one bid per imp and
/// returns the response currency, or the reason for no bid.
pub fn run(
    table: &Table,
    req: &BidRequest<'_>,
    ctx: &AuctionContext,
    out: &mut Vec<Bid>,
) -> Result<&'static str, NoBidReason> {
    let _ = (table, req, ctx, out);
    todo!("auction")
}
