//! shardbid-testkit: what shardbid's tests, benches and load generator share, written
//! once. Dev-only (`publish = false`), and independent of the `shardbid` crate: its
//! generators write JSON, which each user reads into shardbid's own types.
//!
//! # Layout
//! - [`rng`]: one seeded SplitMix64 generator with every draw the users need
//!   (uniform, ranges, chances, slice picks, popular-first picks, weights, samples,
//!   hex ids); the same sequence on every platform and version.
//! - [`alloc`]: a counting global allocator: heap calls of the calling thread (so the
//!   test harness's and criterion's threads never show up), live and peak heap bytes
//!   of the process.
//! - [`traffic`]: realistic OpenRTB 2.6 requests and matching campaign files, seeded,
//!   drawn from one vocabulary so that a known share of requests bids (behind
//!   `shardbid-load corpus` and `campaigns`, and the decode bench's corpus).

pub mod alloc;
pub mod rng;
pub mod traffic;
