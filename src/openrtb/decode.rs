//! Bytes to [`BidRequest`], in two steps with buffers the [`Decoder`] keeps between
//! requests. The scan (`scan.rs`) finds, with SIMD, where every token of the body
//! starts and where its escapes are, and checks what no later step looks at again
//! (strings closed, no raw control bytes in them, escapes known, UTF-8). The reader
//! (`cursor.rs`, driven by `model.rs`) then walks that token list on demand into the
//! typed model: strings are borrowed from the body (unescaped in place when the escape
//! list says they need it), numbers are parsed only where the model holds them, and
//! every other value is skipped token by token with its grammar checked. Malformed JSON
//! or a wrong shape is [`DecodeError::Syntax`]; a request [`BidRequest::validate`]
//! rejects is [`DecodeError::Invalid`]. No input panics (fuzzed).
//!
//! # Why this decoder
//! Measured by `cargo bench --bench decode -- --table 30`: every contender decodes into
//! the same borrowed model from a reused buffer and validates. µs per request, the
//! fastest of 30 alternating rounds (noise on this shared 2-core AMD EPYC VM only adds
//! time; medians ran within 2%); x86-64-v3 build. `generated` is 200 compact 1-3 KB
//! requests from the bench's generator, with escaped `/` in page URLs as some exchanges
//! send them; the IAB examples are pretty-printed.
//!
//! | corpus               | bytes | serde_json | sonic-rs 0.5 | simd-json 0.19 serde | shardbid |
//! |----------------------|------:|-----------:|-------------:|---------------------:|---------:|
//! | simple-banner        |   601 |       1.68 |         1.88 |                 1.38 |     0.73 |
//! | expandable-creative  |  1187 |       2.65 |         2.93 |                 2.08 |     1.18 |
//! | mobile               |  1383 |       2.84 |         3.03 |                 2.31 |     1.28 |
//! | native-ad            |   917 |       2.36 |         2.52 |                 1.69 |     0.99 |
//! | pmp-with-direct-deal |  1177 |       2.69 |         2.92 |                 2.15 |     1.22 |
//! | video                |  2548 |       4.43 |         4.90 |                 3.56 |     1.94 |
//! | generated (mean)     |  2439 |       7.54 |         5.74 |                 6.32 |     3.83 |
//!
//! Instructions per request (callgrind, steady whatever the noise: `valgrind
//! --tool=callgrind --toggle-collect='*pass*' target/release/deps/decode-* --passes
//! shardbid fixture/video 200`), video / generated: serde_json 48.6k / 69.7k, sonic-rs
//! 47.3k / 51.1k, simd-json serde 33.5k / 54.0k, shardbid 23.7k / 41.1k (22.7k / 40.3k
//! since skipped numbers are only checked, not converted). Heap
//! allocations per request on `generated`: 7.5, 6.5, 3.2, 3.8; what is left is the
//! model's own lists, which shardbid grows as it reads them instead of counting them
//! first (counting cost more time than the allocations it saved: video 1.94 against
//! 2.08 µs).
//!
//! The decoder before this one read simd-json's tape (29.3k / 47.5k instructions,
//! video 2.86 µs): simd-json's stage 2 builds a node for every value and parses every
//! number and string, about 45% of its time on video, where the model holds a fraction
//! of them. Here the scan is about a quarter of the time and the reader the rest, most
//! of it per token (skipping `companionad` and the like).
//!
//! The serde derives in `request.rs` remain the reference: property tests and the fuzz
//! target check that this reader and `serde_json` read every body the same way. The
//! reader may reject what serde_json accepts, and does in three corners: invalid UTF-8
//! in a skipped string, skipped values nested 127 levels or deeper, and an object
//! written as an array of its fields by position (which serde's derives accept).

mod cursor;
mod model;
mod scan;

use serde_json::error::Category;

use self::cursor::Cursor;
use self::scan::Tokens;
use super::request::{BidRequest, Invalid};

/// The body is not JSON, or not of the shape the model expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed;

impl From<crate::openrtb::lenient::BadNumber> for Malformed {
    fn from(_: crate::openrtb::lenient::BadNumber) -> Self {
        Malformed
    }
}

/// Why a body is not a bid request. Maps to 400; [`Decoder::explain`] says where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Not JSON, or JSON of the wrong shape, found at this body offset.
    Syntax { at: usize },
    /// JSON, but not a valid bid request (no `id`, no `imp`, an `imp` or a deal
    /// without `id`, too many imps, an imp id twice).
    Invalid(Invalid),
}

impl DecodeError {
    /// Not JSON, or not of the request's shape.
    pub fn is_syntax(&self) -> bool {
        matches!(self, DecodeError::Syntax { .. })
    }

    /// JSON of the right shape that is not a valid bid request.
    pub fn is_invalid(&self) -> bool {
        matches!(self, DecodeError::Invalid(_))
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Syntax { at } => write!(f, "malformed JSON near byte {at}"),
            DecodeError::Invalid(why) => why.fmt(f),
        }
    }
}

impl std::error::Error for DecodeError {}

/// serde_json's default recursion limit: nesting is accepted up to `MAX_DEPTH - 1`
/// levels, skipped values included (see `Cursor::enter`).
const MAX_DEPTH: usize = 128;

/// Spare bytes the decoder appends to a body, as spaces, so that the scan can read
/// whole 64-byte blocks (see [`Decoder::decode`]).
pub const PADDING: usize = 64;

/// A per-shard decoder that keeps its token buffer between requests: after the first
/// few requests, decoding allocates nothing but the request's own `Vec`s. Nothing of one
/// request outlives it: each call reads only the body it is given, so a body buffer
/// reused from request to request (or one that failed to decode) cannot leak into the next.
pub struct Decoder {
    /// Where each token and escape of the body being decoded is; kept between
    /// requests for its allocations.
    tokens: Tokens,
    /// The most imps a request may have.
    max_imps: usize,
    /// The last failed decode rewrote its body (see [`Decoder::explain`]).
    rewrote: bool,
}

/// Imps a request may have unless set otherwise (`http.max_imps`).
pub const DEFAULT_MAX_IMPS: usize = 50;

impl Default for Decoder {
    fn default() -> Decoder {
        Decoder {
            tokens: Tokens::default(),
            max_imps: DEFAULT_MAX_IMPS,
            rewrote: false,
        }
    }
}

impl Decoder {
    /// A decoder; its buffer grows to the largest body seen.
    pub fn new() -> Self {
        Decoder::default()
    }

    /// A decoder that refuses requests of more than `max_imps` imps, without reading
    /// past the limit.
    pub fn with_max_imps(max_imps: usize) -> Self {
        Decoder {
            max_imps: max_imps.max(1),
            ..Decoder::default()
        }
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
        self.rewrote = false;
        if scan::tokens(body, len, &mut self.tokens).is_err() {
            // Offsets of a failed scan are not kept; explain() finds the place again.
            return Err(DecodeError::Syntax { at: 0 });
        }
        // SAFETY: the tokens were just scanned from this body.
        let mut cursor = unsafe { Cursor::new(&self.tokens, &mut body[..]) };
        let mut too_many = false;
        if model::request(&mut cursor, req, self.max_imps, &mut too_many).is_err() {
            self.rewrote = cursor.rewrote_body();
            return Err(match too_many {
                true => DecodeError::Invalid(Invalid::TooManyImps(self.max_imps)),
                false => DecodeError::Syntax {
                    at: cursor.stopped_at(),
                },
            });
        }
        req.validate().map_err(DecodeError::Invalid)
    }

    /// What is wrong with the body whose decode just failed with `err`, for the 400's
    /// body: the field path and what was expected (`imp[0].banner.w: invalid type:
    /// string "300", expected u32`), or the byte offset of a JSON error. Only failed
    /// requests pay for it: the body is read again by serde_json into the reference
    /// model, which tracks the path; when the decoder had already unescaped strings in
    /// place, only the path and offset the decoder stopped at are given.
    pub fn explain(&self, err: DecodeError, body: &[u8]) -> String {
        let DecodeError::Syntax { at } = err else {
            return err.to_string();
        };
        let json = body.strip_suffix(&[b' '; PADDING]).unwrap_or(body);
        if !self.rewrote {
            let mut de = serde_json::Deserializer::from_slice(json);
            let read: Result<BidRequest<'_>, _> = serde_path_to_error::deserialize(&mut de);
            match read {
                Err(e) => {
                    let path = e.path().to_string();
                    let inner = e.into_inner();
                    return match (inner.classify(), path.as_str()) {
                        (Category::Syntax | Category::Eof, _) => format!("malformed JSON: {inner}"),
                        (_, "." | "" | "?") => inner.to_string(),
                        _ => format!("{path}: {inner}"),
                    };
                }
                Ok(_) => {
                    if let Err(e) = de.end() {
                        return format!("malformed JSON: {e}");
                    }
                }
            }
        }
        format!("malformed JSON near byte {at}")
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
        assert!(d.decode(&mut body).is_err_and(|e| e.is_syntax()));
        let mut body = br#"{"id":"r","imp":[{"id":"i","ext":1,"ext":2}]}"#.to_vec();
        assert!(d.decode(&mut body).is_ok());
    }
}
