//! The bid pipeline without the network: body bytes in, response bytes out.
//!
//! decode -> auction -> encode -> deadline check
//!
//! The shard's bid handler (`http::bid`) runs exactly this, and `benches/pipeline.rs`
//! measures it as a whole, allocations included. Pure code: no runtime, no I/O; the
//! caller supplies the clock as the `in_time` check.

#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Buf;

use crate::auction::{self, Bid, NoBidReason};
use crate::openrtb::{BidRequest, DecodeError, Decoder};
use crate::targeting::MatchContext;
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

/// Byte buffers kept for reuse (request and response bodies): taken empty with the
/// capacity of earlier use, given back when done. Steady state allocates nothing.
#[derive(Default)]
pub struct BufPool(RefCell<Vec<Vec<u8>>>);

impl BufPool {
    /// Buffers kept; more than this many in flight at once are freed when they come back.
    const POOL: usize = 64;
    /// A buffer that grew past this is freed rather than kept, so that one huge body
    /// does not pin memory for good.
    const KEEP: usize = 64 * 1024;

    /// An empty buffer, from the pool if it has one.
    pub fn take(&self) -> Vec<u8> {
        self.0.borrow_mut().pop().unwrap_or_default()
    }

    /// Gives a buffer back, emptied.
    pub fn put(&self, mut buf: Vec<u8>) {
        let mut pool = self.0.borrow_mut();
        if buf.capacity() <= Self::KEEP && pool.len() < Self::POOL {
            buf.clear();
            pool.push(buf);
        }
    }
}

/// The per-request scratch space a shard reuses: the decoder's buffers, the bid list,
/// and the encoder's buffer, which leaves as the response body ([`Scratch::take_out`]).
#[derive(Default)]
pub struct Scratch {
    pub decoder: Decoder,
    pub bids: Vec<Bid>,
    pub out: Vec<u8>,
    /// Buffers handed back by written responses, for `out` to continue with.
    spare: Rc<BufPool>,
}

impl Scratch {
    /// Hands the encoded response in `out` over as a body without copying it: `out`
    /// continues with a spare buffer, and the body's buffer becomes a spare again once
    /// the HTTP layer has written and dropped it. Steady state allocates nothing, and
    /// nothing is counted atomically (a shared `Bytes` would be).
    pub fn take_out(&mut self) -> OutBody {
        OutBody {
            buf: std::mem::replace(&mut self.out, self.spare.take()),
            pos: 0,
            home: self.spare.clone(),
        }
    }
}

/// An encoded response on its way out; returns its buffer to the shard when dropped.
pub struct OutBody {
    buf: Vec<u8>,
    /// How much of `buf` the writer has consumed.
    pos: usize,
    home: Rc<BufPool>,
}

impl OutBody {
    pub fn as_slice(&self) -> &[u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }
}

impl Buf for OutBody {
    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn chunk(&self) -> &[u8] {
        self.as_slice()
    }

    fn advance(&mut self, n: usize) {
        debug_assert!(n <= self.remaining(), "advance past the end of the body");
        self.pos = self.pos.saturating_add(n).min(self.buf.len());
    }
}

impl Drop for OutBody {
    fn drop(&mut self) {
        self.home.put(std::mem::take(&mut self.buf));
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
    ctx: &MatchContext,
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
    auction::encode(&req, table, &scratch.bids, cur, &mut scratch.out);
    if !in_time(req.tmax) {
        return Answer::Late;
    }
    Answer::Bid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_buffers_go_round_without_copies_or_allocations() {
        let mut s = Scratch::default();
        s.out.extend_from_slice(b"{\"id\":\"1\"}");
        let first = s.out.as_ptr();
        let mut body = s.take_out();
        assert_eq!(body.as_slice(), b"{\"id\":\"1\"}");
        assert_eq!(
            body.as_slice().as_ptr(),
            first,
            "the encoder's buffer, not a copy"
        );
        assert!(s.out.is_empty());
        body.advance(6);
        assert_eq!((body.remaining(), body.chunk()), (4, &b"\"1\"}"[..]));
        body.advance(4);
        assert_eq!(body.remaining(), 0);
        drop(body);

        // The written body's buffer is what the encoder gets next, emptied.
        s.out.extend_from_slice(b"x");
        let second = s.take_out();
        assert_eq!(second.as_slice(), b"x");
        assert_eq!(s.out.as_ptr(), first);
        assert!(s.out.is_empty());
    }

    #[test]
    fn oversized_response_buffers_are_not_kept() {
        let mut s = Scratch::default();
        s.out.resize(BufPool::KEEP + 1, b' ');
        drop(s.take_out());
        assert!(s.spare.0.borrow().is_empty());
    }
}
