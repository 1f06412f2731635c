//! The bid pipeline without the network: body bytes in, response bytes out.
//!
//! decode -> auction (with the money side: caps, budget, pacing, reservations)
//!        -> notice URLs -> encode -> deadline check -> bid events
//!
//! The shard's bid handler (`http::bid`) runs exactly this, and `benches/pipeline.rs`
//! measures it as a whole, allocations included. Pure code: no runtime, no I/O; the
//! caller supplies the clock as the `in_time` check, and the shard's money side as
//! [`Money`].

#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Buf;

use crate::auction::{self, Bid, Gate, NoBidReason};
use crate::encoding::Codec;
use crate::events::record::{Event, EventType};
use crate::money::caps::Caps;
use crate::money::ledger::BidKey;
use crate::money::notice::{BidFacts, NoticeKey, UserHasher};
use crate::money::wallet::{BidMeta, Hold, Wallet};
use crate::money::Micros;
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
    /// Each bid's id and notice URLs, written before the response (`spans` points in).
    notes: Vec<u8>,
    spans: Vec<(std::ops::Range<usize>, std::ops::Range<usize>)>,
    /// Buffers handed back by written responses, for `out` to continue with.
    spare: Rc<BufPool>,
    /// gzip and deflate: request bodies in, gzip responses out.
    pub codec: Codec,
}

impl Scratch {
    /// Scratch space around a decoder set up by the caller (its imp limit).
    pub fn with_decoder(decoder: Decoder) -> Scratch {
        Scratch {
            decoder,
            ..Scratch::default()
        }
    }

    /// Replaces the encoded response in `out` with its gzip, in a spare buffer.
    pub fn gzip_out(&mut self) {
        let mut gz = self.spare.take();
        self.codec.gzip(&self.out, &mut gz);
        let plain = std::mem::replace(&mut self.out, gz);
        self.spare.put(plain);
    }

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

/// A shard's money side, for one request.
pub struct Money<'a> {
    pub wallet: &'a Wallet,
    pub caps: &'a Caps,
    pub key: &'a NoticeKey,
    pub users: &'a UserHasher,
    /// Now, in seconds and milliseconds since the Unix epoch.
    pub now_s: u64,
    pub now_ms: i64,
    pub shard: u16,
    /// The exchange's id and name (`None` and "" for `/openrtb2/bid`).
    pub exchange: Option<u32>,
    pub exchange_name: &'a str,
    /// Told of every bid that leaves (the caller samples and logs them).
    pub on_bid: &'a mut dyn FnMut(&Event<'_>),
}

/// The auction's view of the money side.
struct WalletGate<'m, 'a> {
    money: &'m Money<'a>,
    user: u64,
    exchange: u16,
}

impl Gate for WalletGate<'_, '_> {
    #[inline]
    fn admit(&mut self, campaign: u32, price: Micros) -> Result<(), Hold> {
        let (m, user) = (self.money, self.user);
        m.wallet
            .admit(campaign, price.per_impression(), user, |purse, _| {
                m.caps.seen(user, purse, m.now_s)
            })
    }

    fn take(
        &mut self,
        campaign: u32,
        price: Micros,
        meta: BidMeta,
    ) -> Result<Option<BidKey>, Hold> {
        let meta = BidMeta {
            exchange: self.exchange,
            ..meta
        };
        self.money
            .wallet
            .reserve(campaign, price.per_impression(), self.money.now_s, meta)
            .map(Some)
            .ok_or(Hold::Budget)
    }
}

/// Runs one request through the pipeline. `in_time(tmax)` is asked once, when the bid
/// is encoded, whether the request's deadline still holds; a late bid becomes
/// `Answer::Late` (and its reservations are released). Decoding and matching take
/// microseconds, so an earlier check would cost clock reads on every request and save
/// nothing.
pub fn process(
    scratch: &mut Scratch,
    table: &Table,
    body: &mut Vec<u8>,
    ctx: &MatchContext,
    money: Option<&mut Money<'_>>,
    mut in_time: impl FnMut(Option<u32>) -> bool,
) -> Answer {
    let mut req = BidRequest::default();
    if let Err(e) = scratch.decoder.decode_into(body, &mut req) {
        return Answer::Bad(e);
    }
    // The user's keyed hash, for caps and the notices (0: no user key).
    let user = match (money.as_deref(), req.user_key()) {
        (Some(m), Some(k)) => m.users.hash(k),
        _ => 0,
    };
    let ran = match money.as_deref() {
        None => auction::run(table, &req, ctx, &mut (), &mut scratch.bids),
        Some(m) => {
            let exchange = m.exchange.map_or(0, |e| e as u16 + 1);
            let mut gate = WalletGate {
                money: m,
                user,
                exchange,
            };
            auction::run(table, &req, ctx, &mut gate, &mut scratch.bids)
        }
    };
    let cur = match ran {
        Ok(cur) => cur,
        Err(reason) => return Answer::NoBid(reason),
    };
    let Scratch {
        bids,
        out,
        notes,
        spans,
        ..
    } = scratch;
    match money.as_deref() {
        None => auction::encode(&req, table, bids, cur, out),
        Some(m) => {
            write_notes(&req, table, bids, cur, m, user, notes, spans);
            auction::encode_with(&req, table, bids, cur, notes, spans, out);
        }
    }
    if !in_time(req.tmax) {
        if let Some(m) = money.as_deref() {
            for b in bids.iter() {
                if let Some(key) = b.key {
                    m.wallet.cancel(key);
                }
            }
        }
        return Answer::Late;
    }
    if let Some(m) = money {
        for (b, (id, _)) in bids.iter().zip(spans.iter()) {
            let ids = bid_strings(&req, table, b);
            let event = Event {
                auction_id: &req.id,
                imp_id: ids.imp,
                bid_id: std::str::from_utf8(&notes[id.clone()]).unwrap_or(""),
                campaign: ids.campaign,
                creative: ids.creative,
                exchange: m.exchange_name,
                bid_micros: b.price.0,
                ..Event::new(EventType::Bid, m.now_ms, m.shard)
            };
            (m.on_bid)(&event);
        }
    }
    Answer::Bid
}

/// The strings of a bid the response and the notices carry.
struct BidStrings<'r> {
    imp: &'r str,
    campaign: &'r str,
    creative: &'r str,
}

fn bid_strings<'r>(req: &'r BidRequest<'_>, table: &'r Table, b: &Bid) -> BidStrings<'r> {
    BidStrings {
        imp: req.imp.get(b.imp as usize).map_or("", |i| i.id.as_str()),
        campaign: table.campaign_id(b.campaign).unwrap_or(""),
        creative: table
            .creative(b.campaign, b.creative)
            .map_or("", |c| c.id.as_str()),
    }
}

/// Writes each bid's id and its signed nurl, burl and lurl into `notes`.
#[allow(clippy::too_many_arguments)]
fn write_notes(
    req: &BidRequest<'_>,
    table: &Table,
    bids: &[Bid],
    cur: &str,
    m: &Money<'_>,
    user: u64,
    notes: &mut Vec<u8>,
    spans: &mut Vec<(std::ops::Range<usize>, std::ops::Range<usize>)>,
) {
    notes.clear();
    spans.clear();
    for b in bids {
        let mut idbuf = [0u8; 48];
        let bid_id = b.key.map_or("", |k| k.fmt_into(&mut idbuf));
        let start = notes.len();
        notes.extend_from_slice(bid_id.as_bytes());
        let id = start..notes.len();
        let ids = bid_strings(req, table, b);
        let facts = BidFacts {
            auction_id: &req.id,
            imp_id: ids.imp,
            bid_id,
            campaign: ids.campaign,
            creative: ids.creative,
            bid: b.price,
            currency: if cur == "USD" { "" } else { cur },
            exchange: m.exchange_name,
            issued: m.now_s,
            user,
        };
        let urls = notes.len();
        m.key.write_urls(&facts, notes);
        spans.push((id, urls..notes.len()));
    }
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
