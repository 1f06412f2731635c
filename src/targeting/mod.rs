//! Campaigns and the indexed targeting table. Pure code: no runtime, no I/O.
//!
//! - [`campaign`]: the campaign file format.
//! - `validate`: every problem in a campaign set, by campaign and key.
//! - `keys`: how strings are normalised and hashed for the index.
//! - `posting`: sets of campaigns, dense or sparse, read one chunk at a time.
//! - `lists`: posting sets built from the campaigns' lists.
//! - `index`: the posting sets of every targeting dimension.
//! - `placement`: the site/app facts and creative formats a request offers.
//! - `query`: a request resolved to terms over the index.
//! - `scan`: one imp's terms intersected chunk by chunk, best prices first.
//! - `verify`: exact per-candidate checks for terms too large for a query.
//! - `walk`: one imp's candidates, in price order, each with its creative.
//! - [`table`]: the immutable table every shard holds a replica of.

pub mod campaign;
pub(crate) mod index;
pub(crate) mod keys;
pub(crate) mod lists;
pub(crate) mod placement;
pub(crate) mod posting;
pub(crate) mod query;
pub(crate) mod scan;
pub mod table;
mod validate;
pub(crate) mod verify;
pub(crate) mod walk;

pub use campaign::{Campaign, CampaignSet, Creative};
pub use table::{Table, TableSettings};

/// Per-request facts that matching needs besides the request body.
#[derive(Debug, Clone, Copy, Default)]
pub struct MatchContext {
    /// The exchange's id (index in `TableSettings::exchanges`), if the path named one.
    pub exchange: Option<u32>,
    /// Hour of the week in UTC, Monday 00:00 = 0 .. Sunday 23:00 = 167.
    pub hour_of_week: u16,
}
