//! Money: exact amounts. Pure code: no runtime, no I/O.
//!
//! - [`micros`]: `Micros`, integer micro-units of a currency, decimal parsing and
//!   formatting, currency conversion.

#![forbid(unsafe_code)]

pub mod micros;

pub use micros::Micros;
