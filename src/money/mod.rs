//! Money: exact amounts. Pure code: no runtime, no I/O.
//!
//! - [`micros`]: `Micros`, integer micro-units of a currency, decimal parsing and
//!   formatting, currency conversion; `Nanos`, the unit of spend.
//! - [`notice`]: signed win, billing and loss notice URLs, their verification, and
//!   clearing prices (plain, or encrypted by Google Authorized Buyers).

#![forbid(unsafe_code)]

pub mod micros;
pub mod notice;

pub use micros::{Micros, Nanos};
