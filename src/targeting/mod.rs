//! Campaigns and the indexed targeting table. Pure code: no runtime, no I/O.

pub mod campaign;
pub mod table;

pub use campaign::{Campaign, CampaignSet, Creative};
pub use table::{Table, TableSettings};
