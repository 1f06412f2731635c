//! Deterministic traffic: OpenRTB 2.6 bid requests and matching campaign files, both
//! drawn from one vocabulary ([`vocab`]) so that a known share of requests bids.
//!
//! - [`request`]: request `i` of the stream `seed`, built to bid or to get no bid for
//!   a stated reason, as JSON text (imps in `imp`, site or app in `inventory`, device
//!   and user in `audience`, written by the order-keeping writer in `json`).
//! - [`corpus`]: many requests, in memory or as files, and what they hold.
//! - [`campaign`]: campaign files of any size as JSON, consistent with the requests.

mod audience;
pub mod campaign;
pub mod corpus;
mod imp;
mod inventory;
mod json;
pub mod request;
pub mod vocab;
