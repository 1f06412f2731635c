//! Campaigns and the indexed targeting table. Pure code: no runtime, no I/O.
//!
//! - [`campaign`]: the campaign file format.
//! - `validate`: every problem in a campaign set, by campaign and key.
//! - `keys`: how strings are normalised and hashed for the index.
//! - `posting`: sets of campaigns, dense or sparse, read one chunk at a time.
//! - `index`: the posting sets of every targeting dimension.
//! - `query`: a request resolved to terms over the index, matched chunk by chunk.
//! - [`table`]: the immutable table every shard holds a replica of.

pub mod campaign;
pub(crate) mod index;
pub(crate) mod keys;
pub(crate) mod posting;
pub(crate) mod query;
pub mod table;
mod validate;

pub use campaign::{Campaign, CampaignSet, Creative};
pub use table::{Table, TableSettings};
