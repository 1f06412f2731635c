//! Event records: what a shard writes into its event buffer (a compact binary form,
//! copied from the request without formatting anything), and the JSON line the writer
//! turns each into, off the shard's core.
//!
//! ```json
//! {"ts":"2026-12-05T20:48:00.123Z","type":"billing","auction_id":"a1","imp_id":"1",
//!  "bid_id":"193987ab9fb-0-2a","campaign":"c1","creative":"cr1","exchange":"adx",
//!  "bid_micros":2500000,"price_micros":1750000,"charged_micros":1750,"late":false,"shard":0}
//! ```
//!
//! Prices are CPM micros, as in OpenRTB; `charged_micros` is what the notice charged
//! (one impression: the price over 1,000, so `price_micros / 1000`, exact to three
//! decimals). A rejected notice has a `reason` and says which `notice` it was (`win`,
//! `billing` or `loss`).

#![forbid(unsafe_code)]

use crate::json::{fmt_u64, write_json_string};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EventType {
    Bid = 0,
    Win = 1,
    Billing = 2,
    Loss = 3,
    /// A reservation released by the win timeout.
    Expired = 4,
    /// A notice refused (forged, expired, malformed, bad price).
    Rejected = 5,
}

impl EventType {
    pub const ALL: [EventType; 6] = [
        EventType::Bid,
        EventType::Win,
        EventType::Billing,
        EventType::Loss,
        EventType::Expired,
        EventType::Rejected,
    ];

    pub const fn label(self) -> &'static str {
        match self {
            EventType::Bid => "bid",
            EventType::Win => "win",
            EventType::Billing => "billing",
            EventType::Loss => "loss",
            EventType::Expired => "expired",
            EventType::Rejected => "rejected",
        }
    }

    fn from_u8(b: u8) -> Option<EventType> {
        EventType::ALL.get(b as usize).copied()
    }

    /// Money events are never sampled, and kept when bid events would be dropped.
    pub const fn is_money(self) -> bool {
        !matches!(self, EventType::Bid)
    }
}

/// One event, borrowing its strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    pub kind: EventType,
    /// Milliseconds since the Unix epoch.
    pub ts_ms: i64,
    pub shard: u16,
    pub auction_id: &'a str,
    pub imp_id: &'a str,
    pub bid_id: &'a str,
    pub campaign: &'a str,
    pub creative: &'a str,
    pub exchange: &'a str,
    /// The bid's CPM price, micros.
    pub bid_micros: i64,
    /// The clearing CPM price, micros, when known.
    pub price_micros: Option<i64>,
    /// What this event charged, in nanos (a win or billing notice that charged).
    pub charged_nanos: Option<i64>,
    /// The charge came after the bid's reservation was released.
    pub late: bool,
    /// Why a notice was refused.
    pub reason: &'a str,
    /// Which notice a rejected event was (`win`, `billing`, `loss`).
    pub notice: &'a str,
    /// The campaign's own tracker URL for this notice (its `nurl` or `burl` template,
    /// macros filled in), for its own reporting; empty for none.
    pub tracker: &'a str,
}

impl<'a> Event<'a> {
    /// An event of `kind` with every other field empty.
    pub fn new(kind: EventType, ts_ms: i64, shard: u16) -> Event<'a> {
        Event {
            kind,
            ts_ms,
            shard,
            auction_id: "",
            imp_id: "",
            bid_id: "",
            campaign: "",
            creative: "",
            exchange: "",
            bid_micros: 0,
            price_micros: None,
            charged_nanos: None,
            late: false,
            reason: "",
            notice: "",
            tracker: "",
        }
    }

    /// Appends the binary form to `out`; strings longer than 64 KiB are cut.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.kind as u8);
        out.extend_from_slice(&self.ts_ms.to_le_bytes());
        out.extend_from_slice(&self.shard.to_le_bytes());
        out.extend_from_slice(&self.bid_micros.to_le_bytes());
        out.extend_from_slice(&self.price_micros.unwrap_or(i64::MIN).to_le_bytes());
        out.extend_from_slice(&self.charged_nanos.unwrap_or(i64::MIN).to_le_bytes());
        out.push(self.late as u8);
        for s in [
            self.auction_id,
            self.imp_id,
            self.bid_id,
            self.campaign,
            self.creative,
            self.exchange,
            self.reason,
            self.tracker,
            self.notice,
        ] {
            let mut cut = s.len().min(u16::MAX as usize);
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            out.extend_from_slice(&(cut as u16).to_le_bytes());
            out.extend_from_slice(&s.as_bytes()[..cut]);
        }
    }

    /// Reads one event from the front of `buf` (written by [`Event::encode`]) and
    /// returns it with the rest; `None` at the end or on bytes that are not an event.
    pub fn decode(buf: &'a [u8]) -> Option<(Event<'a>, &'a [u8])> {
        let (&kind, rest) = buf.split_first()?;
        let kind = EventType::from_u8(kind)?;
        let (ts, rest) = take_i64(rest)?;
        let (shard, rest) = rest.split_first_chunk::<2>()?;
        let (bid_micros, rest) = take_i64(rest)?;
        let (price, rest) = take_i64(rest)?;
        let (charged, rest) = take_i64(rest)?;
        let (&late, mut rest) = rest.split_first()?;
        let mut strs = [""; 9];
        for s in &mut strs {
            let (len, r) = rest.split_first_chunk::<2>()?;
            let len = u16::from_le_bytes(*len) as usize;
            let (bytes, r) = (r.get(..len)?, r.get(len..)?);
            *s = std::str::from_utf8(bytes).ok()?;
            rest = r;
        }
        let some = |v: i64| (v != i64::MIN).then_some(v);
        Some((
            Event {
                kind,
                ts_ms: ts,
                shard: u16::from_le_bytes(*shard),
                auction_id: strs[0],
                imp_id: strs[1],
                bid_id: strs[2],
                campaign: strs[3],
                creative: strs[4],
                exchange: strs[5],
                reason: strs[6],
                tracker: strs[7],
                notice: strs[8],
                bid_micros,
                price_micros: some(price),
                charged_nanos: some(charged),
                late: late != 0,
            },
            rest,
        ))
    }

    /// Writes the event as one JSON line (newline included).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let mut num = [0u8; 20];
        out.extend_from_slice(b"{\"ts\":\"");
        write_rfc3339_ms(self.ts_ms, out);
        out.extend_from_slice(b"\",\"type\":\"");
        out.extend_from_slice(self.kind.label().as_bytes());
        out.push(b'"');
        for (key, v) in [
            ("auction_id", self.auction_id),
            ("imp_id", self.imp_id),
            ("bid_id", self.bid_id),
            ("campaign", self.campaign),
            ("creative", self.creative),
            ("exchange", self.exchange),
        ] {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":");
            write_json_string(out, v);
        }
        out.extend_from_slice(b",\"bid_micros\":");
        write_i64(self.bid_micros, &mut num, out);
        out.extend_from_slice(b",\"price_micros\":");
        match self.price_micros {
            Some(p) => write_i64(p, &mut num, out),
            None => out.extend_from_slice(b"null"),
        }
        if let Some(c) = self.charged_nanos {
            out.extend_from_slice(b",\"charged_micros\":");
            crate::money::Nanos(c).write_micros(out);
            out.extend_from_slice(b",\"late\":");
            out.extend_from_slice(if self.late { b"true" } else { b"false" });
        }
        out.extend_from_slice(b",\"shard\":");
        out.extend_from_slice(fmt_u64(&mut num, self.shard as u64));
        if !self.reason.is_empty() {
            out.extend_from_slice(b",\"reason\":");
            write_json_string(out, self.reason);
        }
        if !self.notice.is_empty() {
            out.extend_from_slice(b",\"notice\":");
            write_json_string(out, self.notice);
        }
        if !self.tracker.is_empty() {
            out.extend_from_slice(b",\"tracker\":");
            write_json_string(out, self.tracker);
        }
        out.extend_from_slice(b"}\n");
    }
}

fn take_i64(b: &[u8]) -> Option<(i64, &[u8])> {
    let (v, rest) = b.split_first_chunk::<8>()?;
    Some((i64::from_le_bytes(*v), rest))
}

fn write_i64(v: i64, num: &mut [u8; 20], out: &mut Vec<u8>) {
    if v < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(fmt_u64(num, v.unsigned_abs()));
}

/// Writes a UTC timestamp (ms since the epoch) as RFC 3339 with milliseconds:
/// `2026-12-05T20:48:00.123Z`.
pub fn write_rfc3339_ms(ts_ms: i64, out: &mut Vec<u8>) {
    let secs = ts_ms.div_euclid(1000);
    let ms = ts_ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let two = |v: i64, out: &mut Vec<u8>| {
        out.extend_from_slice(&[b'0' + (v / 10) as u8, b'0' + (v % 10) as u8])
    };
    let y = y.clamp(0, 9999);
    out.extend_from_slice(&[
        b'0' + (y / 1000) as u8,
        b'0' + (y / 100 % 10) as u8,
        b'0' + (y / 10 % 10) as u8,
        b'0' + (y % 10) as u8,
        b'-',
    ]);
    two(m, out);
    out.push(b'-');
    two(d, out);
    out.push(b'T');
    two(sod / 3600, out);
    out.push(b':');
    two(sod / 60 % 60, out);
    out.push(b':');
    two(sod % 60, out);
    out.extend_from_slice(&[
        b'.',
        b'0' + (ms / 100) as u8,
        b'0' + (ms / 10 % 10) as u8,
        b'0' + (ms % 10) as u8,
        b'Z',
    ]);
}

/// The proleptic Gregorian date of a day number (days since 1970-01-01).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_with_milliseconds() {
        let mut out = Vec::new();
        write_rfc3339_ms(1_733_431_680_123, &mut out);
        assert_eq!(out, b"2024-12-05T20:48:00.123Z");
        out.clear();
        write_rfc3339_ms(0, &mut out);
        assert_eq!(out, b"1970-01-01T00:00:00.000Z");
        out.clear();
        write_rfc3339_ms(951_782_400_007, &mut out);
        assert_eq!(out, b"2000-02-29T00:00:00.007Z");
    }

    #[test]
    fn events_round_trip_to_json_lines() {
        let e = Event {
            auction_id: "a\"1",
            imp_id: "1",
            bid_id: "b-0-1",
            campaign: "c",
            creative: "cr",
            exchange: "adx",
            bid_micros: 2_500_000,
            price_micros: Some(1_750_000),
            charged_nanos: Some(1_750_000),
            ..Event::new(EventType::Billing, 1_733_431_680_123, 1)
        };
        let mut buf = Vec::new();
        e.encode(&mut buf);
        let refused = Event {
            reason: "above_bid",
            notice: "win",
            ..Event::new(EventType::Rejected, 5, 0)
        };
        refused.encode(&mut buf);
        let (back, rest) = Event::decode(&buf).unwrap();
        assert_eq!(back, e);
        let (second, rest) = Event::decode(rest).unwrap();
        assert!(rest.is_empty() && second == refused);
        let mut line = Vec::new();
        second.write_json(&mut line);
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(
            (&v["reason"], &v["notice"]),
            (&"above_bid".into(), &"win".into())
        );
        let mut line = Vec::new();
        back.write_json(&mut line);
        assert_eq!(line.last(), Some(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["ts"], "2024-12-05T20:48:00.123Z");
        assert_eq!(v["type"], "billing");
        assert_eq!(v["auction_id"], "a\"1");
        assert_eq!(v["price_micros"], 1_750_000);
        assert_eq!(v["charged_micros"].to_string(), "1750");
        assert_eq!(
            (v["late"].as_bool(), v["shard"].as_u64()),
            (Some(false), Some(1))
        );
        assert!(v.get("reason").is_none());
        assert_eq!(Event::decode(&buf[..10]), None);
    }
}
