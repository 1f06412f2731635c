//! The bid pipeline without the network: body bytes in, response bytes out.
//!
//! decode -> auction -> encode -> deadline check
//!
//! The shard's bid handler (`http::bid`) runs exactly this, and `benches/pipeline.rs`
//! measures it as a whole, allocations included. Pure code: no runtime, no I/O; the
//! caller supplies the clock as the `in_time` check.

use bytes::{Bytes, BytesMut};

use crate::auction::{self, AuctionContext, Bid, NoBidReason};
use crate::metrics::Outcome;
use crate::openrtb::response::write_response;
use crate::openrtb::{BidRequest, DecodeError, Decoder};
use crate::targeting::Table;

/// What the pipeline decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The BidResponse is in `Scratch::out`.
    Bid,
    NoBid(NoBidReason),
    /// The deadline passed: a late bid is worth nothing, answer 204.
    Late,
    Bad(DecodeError),
}

impl Answer {
    pub fn outcome(self) -> Outcome {
        match self {
            Answer::Bid => Outcome::Bid,
            Answer::NoBid(r) => Outcome::NoBid(r),
            Answer::Late => Outcome::Timeout,
            Answer::Bad(_) => Outcome::BadRequest,
        }
    }
}

/// Capacity of the response-body buffer: many in-flight responses fit before it has
/// to reclaim or grow.
const RESPONSE_BUFFER: usize = 256 * 1024;

/// The per-request scratch space a shard reuses: the decoder's buffers, the bid list,
/// the encoder's buffer and the response bodies handed to the HTTP layer.
pub struct Scratch {
    pub decoder: Decoder,
    pub bids: Vec<Bid>,
    pub out: Vec<u8>,
    /// Response bodies are split off this buffer; once the HTTP layer has written and
    /// dropped them, `reserve` reclaims the same allocation: steady state allocates
    /// nothing.
    bodies: BytesMut,
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch {
            decoder: Decoder::new(),
            bids: Vec::new(),
            out: Vec::new(),
            bodies: BytesMut::with_capacity(RESPONSE_BUFFER),
        }
    }
}

impl Scratch {
    /// Hands the encoded response in `out` over as `Bytes` without allocating.
    pub fn freeze_out(&mut self) -> Bytes {
        self.bodies.reserve(self.out.len());
        self.bodies.extend_from_slice(&self.out);
        self.bodies.split().freeze()
    }
}

/// Runs one request through the pipeline. `in_time(tmax)` is asked once, when the bid
/// is encoded, whether the request's deadline still holds; a late bid becomes
/// `Answer::Late`. Decoding and matching take microseconds, so an earlier check would
/// cost clock reads on every request and save nothing.
pub fn process(
    scratch: &mut Scratch,
    table: &Table,
    body: &mut Vec<u8>,
    ctx: &AuctionContext,
    mut in_time: impl FnMut(Option<u32>) -> bool,
) -> Answer {
    let mut req = BidRequest::default();
    if let Err(e) = scratch.decoder.decode_into(body, &mut req) {
        return Answer::Bad(e);
    }
    let cur = match auction::run(table, &req, ctx, &mut scratch.bids) {
        Ok(cur) => cur,
        Err(reason) => return Answer::NoBid(reason),
    };
    write_response(&req, table, &scratch.bids, cur, &mut scratch.out);
    if !in_time(req.tmax) {
        return Answer::Late;
    }
    Answer::Bid
}
