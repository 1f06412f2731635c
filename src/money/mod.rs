//! Money: exact amounts. Pure code: no runtime, no I/O.
//!
//! - [`micros`]: `Micros`, integer micro-units of a currency, decimal parsing and
//!   formatting, currency conversion; `Nanos`, the unit of spend.
//! - [`budget`]: a campaign's budget, pacing and frequency cap, as written in the
//!   campaign file.
//! - [`bank`]: every budget, what is spent of it and what each shard holds of it,
//!   behind the interface a shared store can implement.
//! - [`day`]: days in the configured time zone, for daily budgets.
//! - [`pacing`]: even pacing's bid probability, corrected from actual spend.
//! - [`caps`]: frequency caps, counted per shard.
//! - [`ledger`]: a shard's record of its bids: reservations, settlement, duplicates.
//! - [`wallet`]: a shard's money: leases of each budget, reserving, settling notices.
//! - [`notice`]: signed win, billing and loss notice URLs, their verification, and
//!   clearing prices (plain, or encrypted by Google Authorized Buyers).

#![forbid(unsafe_code)]

pub mod bank;
pub mod budget;
pub mod caps;
pub mod day;
pub mod ledger;
pub mod micros;
pub mod notice;
pub mod pacing;
pub mod wallet;

pub use micros::{Micros, Nanos};
