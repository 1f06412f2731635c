//! Bytes to [`BidRequest`]: simd-json builds its tape (SIMD structural scan, UTF-8
//! check, in-place unescaping) into buffers the [`Decoder`] keeps between requests;
//! then a reader of our own walks the tape into the typed model, skipping each value
//! the model does not hold in one step. Malformed JSON or a wrong shape is
//! [`DecodeError::Syntax`]; a request [`BidRequest::validate`] rejects is
//! [`DecodeError::Invalid`]. No input panics (fuzzed).
//!
//! # Why this decoder
//! Chosen by `cargo bench --bench decode -- --table`: every contender decodes into the
//! same borrowed model from a reused buffer and validates. µs per request, the fastest
//! round of four runs of 20-30 alternating rounds (noise on this shared 2-core AMD EPYC
//! VM only adds time; medians ran 10-80% higher); x86-64-v3 build, simd-json picks AVX2
//! at run time. `generated` is 200 compact 1-3 KB requests from the bench's generator; the
//! IAB examples are pretty-printed.
//!
//! | corpus               | bytes | serde_json | sonic-rs 0.5 | simd-json 0.19 serde | simd-json tape (this) |
//! |----------------------|------:|-----------:|-------------:|---------------------:|----------------------:|
//! | simple-banner        |   601 |       1.60 |         1.84 |                 1.16 |                  0.98 |
//! | expandable-creative  |  1187 |       2.56 |         2.94 |                 1.88 |                  1.56 |
//! | mobile               |  1383 |       2.85 |         3.07 |                 2.12 |                  1.80 |
//! | native-ad            |   917 |       2.22 |         2.55 |                 1.47 |                  1.24 |
//! | pmp-with-direct-deal |  1177 |       2.61 |         2.98 |                 1.89 |                  1.59 |
//! | video                |  2548 |       4.39 |         4.93 |                 3.39 |                  2.86 |
//! | generated (mean)     |  2439 |       7.35 |         5.75 |                 5.95 |                  5.07 |
//!
//! Instructions per request (callgrind, steady whatever the noise), video / generated:
//! serde_json 48.0k / 69.4k, sonic-rs 46.3k / 50.2k, simd-json serde 33.4k / 54.6k,
//! simd-json tape 29.3k / 47.5k. Heap allocations per request on `generated`: 16.5,
//! 15.5, 12.5, 12.5 (what is left is the model's own `Vec`s; the tape and simd-json's
//! buffers are reused, so nothing else allocates).
//!
//! Why the tape reader wins: simd-json finds the structure with SIMD and unescapes
//! strings in place, so every string borrows, escaped or not; then an unknown value of
//! any size (`ext`, `ua`, a video's `companionad`) is skipped by its node count, where
//! serde (simd-json's included) visits every node of it. A scalar on-demand reader that
//! skips without building a tape was tried too: 41.5k instructions on video, slower on
//! every corpus. What remains is simd-json's own work (video: stage 2 ~45%, stage 1
//! ~27%, string parsing ~12%); reading the model off the tape is ~15%. So video.json
//! takes ~2.9 µs, 1.5x faster than serde_json: short of 2 µs and 2x, which would need
//! a SIMD on-demand parser that never builds nodes for the values it skips.
//!
//! The serde derives in `request.rs` remain the reference: property tests and the fuzz
//! target check that this reader and `serde_json` read every body the same way.

mod cursor;
mod model;
mod scan;

use self::cursor::Cursor;
use self::scan::Tokens;
use super::request::BidRequest;

/// The body is not JSON, or not of the shape the model expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed;

impl From<crate::openrtb::lenient::BadNumber> for Malformed {
    fn from(_: crate::openrtb::lenient::BadNumber) -> Self {
        Malformed
    }
}

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
            DecodeError::Invalid => "invalid bid request: missing id, imp, imp.id or deal id",
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

/// Spare bytes the decoder appends to a body, as spaces, so that the scan can read
/// whole 64-byte blocks (see [`Decoder::decode`]).
pub const PADDING: usize = 64;

/// A per-shard decoder that keeps its token buffer between requests: after the first
/// few requests, decoding allocates nothing but the request's own `Vec`s. Nothing of one
/// request outlives it: each call reads only the body it is given, so a body buffer
/// reused from request to request (or one that failed to decode) cannot leak into the next.
#[derive(Default)]
pub struct Decoder {
    /// Where each token and escape of the body being decoded is; kept between
    /// requests for its allocations.
    tokens: Tokens,
}

impl Decoder {
    /// A decoder; its buffer grows to the largest body seen.
    pub fn new() -> Self {
        Decoder::default()
    }

    /// Decodes `body` in place and validates it. Strings with escapes are unescaped
    /// where they lie, so after this call the body is no longer the JSON that was
    /// received; every string of the request borrows from it.
    ///
    /// The scan reads whole 64-byte blocks, so `body` gets [`PADDING`] spaces appended
    /// (JSON whitespace: the document is unchanged). A buffer reused between requests
    /// keeps its capacity, so this allocates only the first time.
    pub fn decode<'a>(&mut self, body: &'a mut Vec<u8>) -> Result<BidRequest<'a>, DecodeError> {
        let mut req = BidRequest::default();
        self.decode_into(body, &mut req)?;
        Ok(req)
    }

    /// [`decode`](Self::decode) into `req`, which must be `BidRequest::default()`: the
    /// request is built where it will be used, never copied. On an error `req` holds
    /// whatever was read before it and must not be used.
    pub fn decode_into<'a>(
        &mut self,
        body: &'a mut Vec<u8>,
        req: &mut BidRequest<'a>,
    ) -> Result<(), DecodeError> {
        let len = body.len();
        body.resize(len + PADDING, b' ');
        scan::tokens(body, len, &mut self.tokens).map_err(|_| DecodeError::Syntax)?;
        let mut cursor = Cursor::new(&self.tokens, &mut body[..]);
        model::request(&mut cursor, req).map_err(|_| DecodeError::Syntax)?;
        req.validate().map_err(|_| DecodeError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_buffer_is_kept_between_requests() {
        let mut d = Decoder::new();
        let mut body = br#"{"id":"1","imp":[{"id":"1"}],"ext":{"a":[1,2,3]}}"#.to_vec();
        assert!(d.decode(&mut body).is_ok());
        let ptr = d.tokens.offsets.as_ptr();
        let cap = d.tokens.offsets.capacity();
        assert!(cap > 0);
        let mut body = br#"{"id":"2","imp":[{"id":"1"}]}"#.to_vec();
        assert!(d.decode(&mut body).is_ok());
        let now = &d.tokens.offsets;
        assert_eq!((now.as_ptr(), now.capacity()), (ptr, cap));
    }

    #[test]
    fn skips_nested_unknown_values() {
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
