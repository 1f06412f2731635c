//! A shard's record of the bids it made: what each one reserved, and what its notices
//! have done, so that a notice settles its bid once, a duplicate changes nothing, and a
//! reservation nobody claims is released after `money.win_timeout_ms`.
//!
//! Bids are numbered per shard (`seq`) in the order they are made, and a record lives
//! in a ring of fixed capacity at `seq % capacity`: reserving costs no allocation and
//! finding a bid's record is one index. A record leaves the ring when a newer bid needs
//! its place; one that still holds a reservation never does (the shard refuses to bid
//! instead, see [`Ledger::record`]), and one that was charged while its notices may
//! still come is remembered in a small set of charged bids, so a late duplicate still
//! finds it.

use std::collections::{HashMap, VecDeque};

use super::Nanos;

/// A bid's identity across processes: when the process started (ms since the epoch),
/// the shard, and the bid's number on that shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BidKey {
    pub epoch: u64,
    pub shard: u16,
    pub seq: u64,
}

impl BidKey {
    /// The bid's `id` in the response and in its notices: `{epoch}-{shard}-{seq}`, in
    /// hex, e.g. `18dd3a2b7c1-0-2a`.
    pub fn write(&self, out: &mut Vec<u8>) {
        write_hex(out, self.epoch);
        out.push(b'-');
        write_hex(out, self.shard as u64);
        out.push(b'-');
        write_hex(out, self.seq);
    }

    /// Writes the id into `buf` and returns it (no allocation).
    pub fn fmt_into<'b>(&self, buf: &'b mut [u8; 48]) -> &'b str {
        // At most 16 + 1 + 4 + 1 + 16 hex digits: fits.
        let n = {
            let mut w = Writer {
                buf: &mut buf[..],
                len: 0,
            };
            w.hex(self.epoch);
            w.push(b'-');
            w.hex(self.shard as u64);
            w.push(b'-');
            w.hex(self.seq);
            w.len
        };
        std::str::from_utf8(&buf[..n]).unwrap_or("")
    }

    /// Reads an id written by [`BidKey::write`].
    pub fn parse(id: &str) -> Option<BidKey> {
        let mut parts = id.split('-');
        let hex = |s: Option<&str>| -> Option<u64> {
            let s = s?;
            if s.is_empty() || s.len() > 16 {
                return None;
            }
            u64::from_str_radix(s, 16).ok()
        };
        let key = BidKey {
            epoch: hex(parts.next())?,
            shard: u16::try_from(hex(parts.next())?).ok()?,
            seq: hex(parts.next())?,
        };
        parts.next().is_none().then_some(key)
    }
}

/// A cursor over a fixed buffer.
struct Writer<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl Writer<'_> {
    fn push(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    fn hex(&mut self, v: u64) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let digits = (64 - v.leading_zeros()).div_ceil(4).max(1);
        for i in (0..digits).rev() {
            self.push(HEX[((v >> (i * 4)) & 15) as usize]);
        }
    }
}

fn write_hex(out: &mut Vec<u8>, v: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = (64 - v.leading_zeros()).div_ceil(4).max(1);
    for i in (0..digits).rev() {
        out.push(HEX[((v >> (i * 4)) & 15) as usize]);
    }
}

/// What has happened to a bid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags(pub u8);

impl Flags {
    /// Its price is still reserved.
    pub const RESERVED: u8 = 1;
    /// It was charged (by the notice its exchange charges on).
    pub const CHARGED: u8 = 2;
    /// The notice its exchange does not charge on arrived.
    pub const MARKED: u8 = 4;
    pub const LOST: u8 = 8;
    /// Its impression was counted for frequency caps.
    pub const SEEN: u8 = 16;
    pub const EXPIRED: u8 = 32;

    pub fn has(self, f: u8) -> bool {
        self.0 & f != 0
    }

    pub fn set(&mut self, f: u8) {
        self.0 |= f;
    }

    pub fn clear(&mut self, f: u8) {
        self.0 &= !f;
    }
}

/// One bid's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    /// The campaign's purse on this shard.
    pub purse: u32,
    /// What the bid reserved (0 for a campaign without a budget).
    pub cost: Nanos,
    /// When the bid was made, in seconds since the Unix epoch.
    pub at: u64,
    pub flags: Flags,
    /// The creative (index in its campaign), the exchange (id + 1; 0 none) and the bid
    /// price (CPM micros, in the bid's currency), for the events of an expiry.
    pub creative: u32,
    pub exchange: u16,
    pub price: i64,
}

const EMPTY: Record = Record {
    seq: u64::MAX,
    purse: 0,
    cost: Nanos::ZERO,
    at: 0,
    flags: Flags(0),
    creative: 0,
    exchange: 0,
    price: 0,
};

/// The bids of one shard (see the module docs).
#[derive(Debug)]
pub struct Ledger {
    ring: Box<[Record]>,
    mask: u64,
    /// The next bid's number.
    next: u64,
    /// Records below this number hold no reservation (expiry has passed them).
    expired_to: u64,
    /// Bids settled whose record has left the ring (or was never there), until their
    /// notices can no longer come: key -> (when they stop mattering, what happened).
    charged: HashMap<BidKey, (u64, Flags)>,
    /// The same keys in the order they were added, to forget them in time.
    charged_order: VecDeque<(u64, BidKey)>,
    charged_capacity: usize,
    /// Charged keys forgotten early because the set was full.
    pub charged_evicted: u64,
}

impl Ledger {
    /// A ledger of `capacity` bids (rounded up to a power of two) and at most
    /// `charged_capacity` remembered charges.
    pub fn new(capacity: usize, charged_capacity: usize) -> Ledger {
        let cap = capacity.max(2).next_power_of_two();
        Ledger {
            ring: vec![EMPTY; cap].into_boxed_slice(),
            mask: cap as u64 - 1,
            next: 0,
            expired_to: 0,
            charged: HashMap::new(),
            charged_order: VecDeque::new(),
            charged_capacity: charged_capacity.max(1),
            charged_evicted: 0,
        }
    }

    /// Bids made so far.
    pub fn made(&self) -> u64 {
        self.next
    }

    /// Records a new bid and returns its number, or `None` when the record whose place
    /// it needs still holds a reservation (more bids are outstanding than the ledger
    /// holds: the shard must not bid). `remember(record)` is told of a record that
    /// leaves the ring after a notice settled it, to keep what happened while its
    /// notices may still come.
    pub fn record(
        &mut self,
        purse: u32,
        cost: Nanos,
        at: u64,
        mut remember: impl FnMut(&Record),
    ) -> Option<u64> {
        self.record_with(
            Record {
                purse,
                cost,
                at,
                ..EMPTY
            },
            &mut remember,
        )
    }

    /// [`Ledger::record`] of a bid described by `new` (its `seq` and `flags` are set
    /// here).
    pub fn record_with(&mut self, new: Record, remember: &mut dyn FnMut(&Record)) -> Option<u64> {
        let seq = self.next;
        let slot = &mut self.ring[(seq & self.mask) as usize];
        if slot.seq != u64::MAX {
            if slot.flags.has(Flags::RESERVED) {
                return None;
            }
            if slot.flags.has(Flags::CHARGED | Flags::MARKED | Flags::LOST) {
                remember(slot);
            }
        }
        let mut flags = Flags::default();
        if new.cost.0 > 0 {
            flags.set(Flags::RESERVED);
        }
        *slot = Record { seq, flags, ..new };
        self.next += 1;
        Some(seq)
    }

    /// The record of bid `seq`, if it is still in the ring.
    pub fn get_mut(&mut self, seq: u64) -> Option<&mut Record> {
        if seq >= self.next {
            return None;
        }
        let slot = &mut self.ring[(seq & self.mask) as usize];
        (slot.seq == seq).then_some(slot)
    }

    /// Calls `release` with every bid made at or before `cutoff` that still holds its
    /// reservation, in the order they were made, and clears the reservation.
    pub fn expire(&mut self, cutoff: u64, mut release: impl FnMut(&Record)) {
        while self.expired_to < self.next {
            let slot = &mut self.ring[(self.expired_to & self.mask) as usize];
            if slot.seq != self.expired_to {
                // Overwritten: it held no reservation.
                self.expired_to += 1;
                continue;
            }
            if slot.at > cutoff {
                break;
            }
            if slot.flags.has(Flags::RESERVED) {
                slot.flags.clear(Flags::RESERVED);
                slot.flags.set(Flags::EXPIRED);
                release(slot);
            }
            self.expired_to += 1;
        }
    }

    /// What is remembered outside the ring of bid `key` (nothing: empty flags).
    pub fn remembered(&self, key: &BidKey) -> Flags {
        self.charged.get(key).map_or(Flags::default(), |&(_, f)| f)
    }

    /// Whether `key` was charged and is remembered outside the ring.
    pub fn was_charged(&self, key: &BidKey) -> bool {
        self.remembered(key).has(Flags::CHARGED)
    }

    /// Remembers a charged bid until `until` (seconds since the epoch).
    pub fn remember_charged(&mut self, key: BidKey, until: u64) {
        self.remember(key, Flags(Flags::CHARGED), until);
    }

    /// Remembers what happened to a bid outside the ring, until `until` (seconds
    /// since the epoch); flags add up.
    pub fn remember(&mut self, key: BidKey, flags: Flags, until: u64) {
        match self.charged.get_mut(&key) {
            Some((_, f)) => f.0 |= flags.0,
            None => {
                self.charged.insert(key, (until, flags));
                self.charged_order.push_back((until, key));
            }
        }
        while self.charged.len() > self.charged_capacity {
            match self.charged_order.pop_front() {
                Some((_, old)) => {
                    self.charged.remove(&old);
                    self.charged_evicted += 1;
                }
                None => break,
            }
        }
    }

    /// Forgets charged bids whose notices can no longer come.
    pub fn forget_charged(&mut self, now: u64) {
        while let Some(&(until, key)) = self.charged_order.front() {
            if until > now {
                break;
            }
            self.charged_order.pop_front();
            if self.charged.get(&key).is_some_and(|&(u, _)| u == until) {
                self.charged.remove(&key);
            }
        }
    }

    /// Settled bids remembered outside the ring.
    pub fn charged_remembered(&self) -> usize {
        self.charged.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bid_ids_round_trip() {
        let key = BidKey {
            epoch: 1_733_430_000_123,
            shard: 3,
            seq: 42,
        };
        let mut out = Vec::new();
        key.write(&mut out);
        let id = String::from_utf8(out).unwrap();
        assert_eq!(id, "193987ab9fb-3-2a");
        assert_eq!(BidKey::parse(&id), Some(key));
        for bad in [
            "",
            "1-2",
            "1-2-3-4",
            "x-1-1",
            "1--1",
            "1-10000-1",
            "11111111111111111-0-0",
        ] {
            assert_eq!(BidKey::parse(bad), None, "{bad}");
        }
        let mut zero = Vec::new();
        BidKey {
            epoch: 0,
            shard: 0,
            seq: 0,
        }
        .write(&mut zero);
        assert_eq!(zero, b"0-0-0");
    }

    #[test]
    fn a_reservation_keeps_its_place_and_expiry_releases_it_in_order() {
        let mut l = Ledger::new(4, 8);
        let none = |_: &Record| panic!("nothing charged left the ring");
        for at in 0..4 {
            assert_eq!(l.record(0, Nanos(10), at, none), Some(at));
        }
        // The ring is full of reservations: no fifth bid.
        assert_eq!(l.record(0, Nanos(10), 9, none), None);
        let mut released = Vec::new();
        l.expire(1, |r| released.push(r.seq));
        assert_eq!(released, [0, 1]);
        assert!(l.get_mut(0).unwrap().flags.has(Flags::EXPIRED));
        assert_eq!(l.record(0, Nanos(10), 9, none), Some(4));
        assert!(l.get_mut(0).is_none(), "overwritten by bid 4");
        assert_eq!(l.get_mut(4).unwrap().cost, Nanos(10));
    }

    #[test]
    fn a_charged_record_that_leaves_the_ring_is_remembered() {
        let mut l = Ledger::new(2, 8);
        l.record(7, Nanos(0), 0, |_| {});
        l.get_mut(0).unwrap().flags.set(Flags::CHARGED);
        l.record(7, Nanos(0), 0, |_| {});
        let mut left = Vec::new();
        l.record(7, Nanos(0), 0, |r| left.push(r.seq));
        assert_eq!(left, [0]);
    }

    #[test]
    fn remembered_charges_are_bounded_and_forgotten_in_time() {
        let mut l = Ledger::new(2, 2);
        let k = |seq| BidKey {
            epoch: 1,
            shard: 0,
            seq,
        };
        l.remember_charged(k(1), 100);
        l.remember_charged(k(2), 200);
        l.remember_charged(k(3), 300);
        assert!(!l.was_charged(&k(1)) && l.was_charged(&k(2)) && l.was_charged(&k(3)));
        assert_eq!(l.charged_evicted, 1);
        l.forget_charged(250);
        assert!(!l.was_charged(&k(2)) && l.was_charged(&k(3)));
        assert_eq!(l.charged_remembered(), 1);
    }
}
