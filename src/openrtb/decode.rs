//! Bytes to [`BidRequest`].

use super::request::BidRequest;

/// Why a body is not a bid request. Maps to 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Not JSON, or JSON of the wrong shape.
    Syntax,
    /// JSON, but not a valid bid request (no `id`, no `imp`, an `imp` without `id`).
    Invalid,
}

/// A per-shard decoder that keeps its scratch buffers between requests.
#[derive(Default)]
pub struct Decoder {}

impl Decoder {
    pub fn new() -> Self {
        Decoder {}
    }

    /// Decodes `body` in place (the body may be modified) and validates it.
    pub fn decode<'a>(&mut self, body: &'a mut [u8]) -> Result<BidRequest<'a>, DecodeError> {
        let _ = body;
        todo!("decoder")
    }
}
