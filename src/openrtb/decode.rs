//! Bytes to [`BidRequest`]: simd-json builds its tape (structural scan and in-place
//! unescaping) into buffers the [`Decoder`] keeps between requests, then a reader of
//! our own walks the tape into the typed model, skipping every value the model does
//! not hold in one step.
//!
//! # Why this decoder
//! Measured with `cargo bench --bench decode` (criterion; x86-64-v3 build; AMD EPYC
//! Zen 3 VM, 2 cores, noisy neighbours), the same borrowed model, every body copied
//! into a reused buffer and validated, µs per request:
//!
//! | corpus                                  | serde_json | sonic-rs | simd-json serde | simd-json tape (this) |
//! |-----------------------------------------|-----------:|---------:|----------------:|----------------------:|
//! | BENCH TABLE                             |            |          |                 |                       |
//!
//! The tape reader wins because it does the least: the tape is built in one SIMD
//! pass, strings borrow even when escaped (unescaped in place), an unknown value of
//! any size (`ext`, `ua`, `companionad`) is skipped by its node count instead of being
//! visited, and no allocation is made beyond the model's own `Vec`s (the tape and
//! simd-json's buffers are reused). The serde derives in `request.rs` remain the
//! reference: tests check that this reader and `serde_json` agree on every body.

mod model;
mod tape;

use simd_json::{Buffers, Tape};

use self::tape::{Cursor, Malformed};
use super::request::BidRequest;

/// Why a body is not a bid request. Maps to 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Not JSON, or JSON of the wrong shape.
    Syntax,
    /// JSON, but not a valid bid request (no `id`, no `imp`, an `imp` or a deal
    /// without `id`).
    Invalid,
}

impl DecodeError {
    /// A short description, fit for the body of the 400 response.
    pub const fn as_str(&self) -> &'static str {
        match self {
            DecodeError::Syntax => "malformed bid request JSON",
            DecodeError::Invalid => "invalid bid request: id, imp or imp.id missing",
        }
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for DecodeError {}

/// Deepest nesting accepted, as serde_json's default recursion limit.
const MAX_DEPTH: usize = 128;

/// Body size the buffers are first sized for; they grow to the largest body seen.
const INITIAL_BODY: usize = 4096;

/// A per-shard decoder that keeps its scratch buffers between requests.
pub struct Decoder {
    buffers: Buffers,
    /// The tape's allocation, empty between requests ([`Tape::reset`] hands it over
    /// from one body's lifetime to the next).
    tape: Tape<'static>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    /// A decoder with buffers sized for a typical body.
    pub fn new() -> Self {
        Decoder {
            buffers: Buffers::with_max_depth(INITIAL_BODY, MAX_DEPTH),
            tape: Tape(Vec::with_capacity(INITIAL_BODY / 4)),
        }
    }

    /// Decodes `body` in place and validates it. The body's bytes are rewritten where
    /// strings had escapes, so after this call the body is no longer the JSON that was
    /// received; every string of the request borrows from it.
    pub fn decode<'a>(&mut self, body: &'a mut [u8]) -> Result<BidRequest<'a>, DecodeError> {
        let mut nodes = std::mem::replace(&mut self.tape, Tape(Vec::new())).reset();
        let read = match simd_json::fill_tape(body, &mut self.buffers, &mut nodes) {
            Ok(()) => model::request(&mut Cursor::new(&nodes.0)),
            Err(_) => Err(Malformed),
        };
        self.tape = nodes.reset();
        let req = read.map_err(|_| DecodeError::Syntax)?;
        req.validate().map_err(|_| DecodeError::Invalid)?;
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tape_allocation_is_kept_between_requests() {
        let mut d = Decoder::new();
        let mut body = br#"{"id":"1","imp":[{"id":"1"}],"ext":{"a":[1,2,3]}}"#.to_vec();
        assert!(d.decode(&mut body).is_ok());
        let ptr = d.tape.0.as_ptr();
        let cap = d.tape.0.capacity();
        assert!(cap > 0);
        let mut body = br#"{"id":"2","imp":[{"id":"1"}]}"#.to_vec();
        assert!(d.decode(&mut body).is_ok());
        assert_eq!((d.tape.0.as_ptr(), d.tape.0.capacity()), (ptr, cap));
    }

    #[test]
    fn skips_nested_unknown_values_by_count() {
        let mut d = Decoder::new();
        let mut body = br#"{"ext":{"a":{"b":[1,{"id":"x"}]},"imp":[]},"id":"r",
            "source":[[],{}],"imp":[{"ext":{"id":"no"},"id":"i"}],"tmax":"90"}"#
            .to_vec();
        let req = d.decode(&mut body).expect("decodes");
        assert_eq!(req.id, "r");
        assert_eq!(req.imp.len(), 1);
        assert_eq!(req.imp[0].id, "i");
        assert_eq!(req.tmax, Some(90));
    }

    #[test]
    fn duplicate_modelled_keys_are_rejected() {
        let mut d = Decoder::new();
        let mut body = br#"{"id":"r","imp":[{"id":"i","bidfloor":1,"bidfloor":2}]}"#.to_vec();
        assert_eq!(d.decode(&mut body).err(), Some(DecodeError::Syntax));
        let mut body = br#"{"id":"r","imp":[{"id":"i","ext":1,"ext":2}]}"#.to_vec();
        assert!(d.decode(&mut body).is_ok());
    }
}
