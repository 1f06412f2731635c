//! Deterministic traffic: OpenRTB 2.6 bid requests and matching campaign files.

mod audience;
pub mod campaign;
pub mod corpus;
mod imp;
mod inventory;
mod json;
#[cfg(test)]
mod reference;
pub mod request;
pub mod rng;
pub mod vocab;
