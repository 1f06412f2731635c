//! shardbid: a thread-per-core OpenRTB bidder.
//!
//! # Layout
//! - [`config`]: typed settings, defaults, validation.
//! - [`money`]: exact integer micro-unit amounts.
//! - [`openrtb`]: request model, decoder, response encoder (pure).
//! - [`targeting`]: campaigns and the indexed, replicated table (pure).
//! - [`auction`]: candidates to priced bids (pure).

pub mod auction;
pub mod config;
pub mod money;
pub mod openrtb;
pub mod targeting;
