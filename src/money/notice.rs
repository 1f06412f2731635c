//! Win, billing and loss notices: the URLs shardbid writes on its bids, and their
//! verification when an exchange calls them.
//!
//! A notice URL carries what settling the bid needs: the auction, imp and bid ids, the
//! campaign and creative, the bid price in micros (and its currency when not USD), the
//! exchange, when the bid was made, and the user for frequency caps (a keyed hash, never
//! the id itself). All of it is signed with HMAC-SHA256 under `money.notice_key`, and
//! each kind of notice carries its own part of the MAC, so a notice cannot be made up,
//! altered, or turned from a win into a billing notice. The exchange fills in the clearing price (`${AUCTION_PRICE}`)
//! and for a loss its reason (`${AUCTION_LOSS}`); those are not signed, and are checked
//! instead: a price that is not a number, negative, or above the bid is refused.
//!
//! ```text
//! {base}/notice/win?a=AUCTION&i=IMP&b=BID&c=CAMPAIGN&r=CREATIVE&p=MICROS&x=EXCHANGE
//!                  &t=ISSUED&u=USER&s=SIGNATURE&price=${AUCTION_PRICE}
//! ```
//!
//! Query values are percent-encoded; `y=CUR` follows `p` for a bid not priced in USD.
//! The signature is the notice kind's 10 bytes of the 32-byte MAC (win: bytes 0-9,
//! billing: 10-19, loss: 20-29), in unpadded web-safe base64. The three parts of one
//! pseudo-random output are independent: a bid's win URL tells nothing of its billing
//! URL's signature, and guessing one takes 2^80 tries on average, each a request. One
//! MAC per bid signs all three URLs.

use std::borrow::Cow;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::Sha256;

use super::Micros;
use crate::json::fmt_u64;

/// The three notices of a bid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoticeKind {
    Win,
    Billing,
    Loss,
}

impl NoticeKind {
    pub const ALL: [NoticeKind; 3] = [NoticeKind::Win, NoticeKind::Billing, NoticeKind::Loss];

    /// The path segment and metrics label: `win`, `billing`, `loss`.
    pub const fn label(self) -> &'static str {
        match self {
            NoticeKind::Win => "win",
            NoticeKind::Billing => "billing",
            NoticeKind::Loss => "loss",
        }
    }

    /// The kind named by a path segment.
    pub fn from_label(s: &str) -> Option<NoticeKind> {
        NoticeKind::ALL.into_iter().find(|k| k.label() == s)
    }

    /// The bid's member that carries this notice's URL.
    const fn member(self) -> &'static str {
        match self {
            NoticeKind::Win => "nurl",
            NoticeKind::Billing => "burl",
            NoticeKind::Loss => "lurl",
        }
    }
}

/// What a notice says about its bid: everything but the price is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BidFacts<'a> {
    pub auction_id: &'a str,
    pub imp_id: &'a str,
    pub bid_id: &'a str,
    pub campaign: &'a str,
    pub creative: &'a str,
    /// The bid's CPM price, in `currency`.
    pub bid: Micros,
    /// The bid's currency; empty means USD.
    pub currency: &'a str,
    /// The exchange's name; empty for `/openrtb2/bid`.
    pub exchange: &'a str,
    /// When the bid was made, in seconds since the Unix epoch.
    pub issued: u64,
    /// The user, as [`UserHasher`] hashes them; 0 when the request named none.
    pub user: u64,
}

/// Why a notice was refused. Every kind is counted; none changes anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rejection {
    /// A field is missing or unreadable.
    Malformed,
    /// The signature does not match: made up, or altered.
    Forged,
    /// Older than `money.notice_max_age_s` (or dated in the future).
    Expired,
    /// The clearing price is missing, not a number, or negative.
    BadPrice,
    /// The clearing price is above the bid.
    AbovePrice,
    /// An encrypted price failed its integrity check, or could not be decoded.
    BadPriceSignature,
}

impl Rejection {
    pub const ALL: [Rejection; 6] = [
        Rejection::Malformed,
        Rejection::Forged,
        Rejection::Expired,
        Rejection::BadPrice,
        Rejection::AbovePrice,
        Rejection::BadPriceSignature,
    ];

    /// The metrics label and the event log's `reason`.
    pub const fn label(self) -> &'static str {
        match self {
            Rejection::Malformed => "malformed",
            Rejection::Forged => "forged",
            Rejection::Expired => "expired",
            Rejection::BadPrice => "bad_price",
            Rejection::AbovePrice => "above_bid",
            Rejection::BadPriceSignature => "bad_price_signature",
        }
    }

    /// 403 for what fails a signature or its age, 400 for what is unreadable.
    pub const fn status(self) -> u16 {
        match self {
            Rejection::Forged | Rejection::Expired | Rejection::BadPriceSignature => 403,
            Rejection::Malformed | Rejection::BadPrice | Rejection::AbovePrice => 400,
        }
    }
}

/// How an exchange writes `${AUCTION_PRICE}`.
#[derive(Clone, PartialEq, Eq)]
pub enum PriceFormat {
    /// A plain decimal CPM, e.g. `1.25`.
    Plain,
    /// Google Authorized Buyers' encrypted price (see [`decrypt_google_price`]).
    Google {
        encryption_key: Vec<u8>,
        integrity_key: Vec<u8>,
    },
}

impl std::fmt::Debug for PriceFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys never appear in logs.
        match self {
            PriceFormat::Plain => f.write_str("Plain"),
            PriceFormat::Google { .. } => f.write_str("Google { keys: <redacted> }"),
        }
    }
}

/// What a verified notice says about its bid, owned (a notice travels to the shard
/// that made the bid).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NoticeFacts {
    pub auction_id: String,
    pub imp_id: String,
    pub bid_id: String,
    pub campaign: String,
    pub creative: String,
    pub bid: Micros,
    pub currency: String,
    pub exchange: String,
    pub issued: u64,
    pub user: u64,
}

impl NoticeFacts {
    pub fn borrow(&self) -> BidFacts<'_> {
        BidFacts {
            auction_id: &self.auction_id,
            imp_id: &self.imp_id,
            bid_id: &self.bid_id,
            campaign: &self.campaign,
            creative: &self.creative,
            bid: self.bid,
            currency: &self.currency,
            exchange: &self.exchange,
            issued: self.issued,
            user: self.user,
        }
    }
}

/// A verified notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub kind: NoticeKind,
    pub facts: NoticeFacts,
    /// The clearing price in the bid's currency (a loss notice may have none).
    pub price: Option<Micros>,
    /// The exchange's loss reason (`${AUCTION_LOSS}`), for a loss notice.
    pub loss_reason: Option<u32>,
}

/// Signs and verifies notice URLs with `money.notice_key`.
#[derive(Clone)]
pub struct NoticeKey {
    mac: Hmac<Sha256>,
    /// `{base}/notice/`, as it goes into a JSON string.
    prefix: Vec<u8>,
}

impl std::fmt::Debug for NoticeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NoticeKey(<redacted>)")
    }
}

/// Bytes of the MAC a URL carries: its kind's part of the 32.
const SIG_BYTES: usize = 10;

impl NoticeKey {
    /// A key for notices under `base_url` (`https://bid.example.com`, no trailing
    /// slash needed). The base must be an http(s) URL of printable ASCII without
    /// quotes or backslashes; `None` otherwise, or for an empty key.
    pub fn new(key: &[u8], base_url: &str) -> Option<NoticeKey> {
        if key.is_empty() || !valid_base(base_url) {
            return None;
        }
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).ok()?;
        let mut prefix = base_url.trim_end_matches('/').as_bytes().to_vec();
        prefix.extend_from_slice(b"/notice/");
        Some(NoticeKey { mac, prefix })
    }

    /// Writes `,"nurl":"..","burl":"..","lurl":".."` for a bid into `out`. The three
    /// URLs share their query and their MAC: both are computed once.
    pub fn write_urls(&self, facts: &BidFacts<'_>, out: &mut Vec<u8>) {
        let mac = self.mac_of(facts);
        let mut query: Option<std::ops::Range<usize>> = None;
        for kind in NoticeKind::ALL {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(kind.member().as_bytes());
            out.extend_from_slice(b"\":\"");
            out.extend_from_slice(&self.prefix);
            out.extend_from_slice(kind.label().as_bytes());
            match &query {
                Some(q) => out.extend_from_within(q.clone()),
                None => {
                    let from = out.len();
                    write_query(facts, out);
                    query = Some(from..out.len());
                }
            }
            write_tail(kind, part(&mac, kind), out);
            out.push(b'"');
        }
    }

    /// Writes one notice URL (no quotes; it needs no JSON escaping).
    pub fn write_url(&self, kind: NoticeKind, facts: &BidFacts<'_>, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(kind.label().as_bytes());
        write_query(facts, out);
        write_tail(kind, part(&self.mac_of(facts), kind), out);
    }

    /// The MAC of a bid's signed fields (each length-prefixed, so that no two
    /// different bids sign the same bytes).
    fn mac_of(&self, f: &BidFacts<'_>) -> [u8; 32] {
        self.fields_mac(f).finalize().into_bytes().into()
    }

    /// The MAC with a bid's signed fields fed in. The fields go in through a stack
    /// buffer: one `update` for a typical bid instead of twenty small ones.
    fn fields_mac(&self, f: &BidFacts<'_>) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        let mut buf = [0u8; 256];
        let mut len = 0;
        let mut put = |bytes: &[u8]| {
            if len + bytes.len() > buf.len() {
                mac.update(&buf[..len]);
                len = 0;
                if bytes.len() > buf.len() {
                    mac.update(bytes);
                    return;
                }
            }
            buf[len..len + bytes.len()].copy_from_slice(bytes);
            len += bytes.len();
        };
        let mut field = |bytes: &[u8]| {
            put(&(bytes.len() as u32).to_le_bytes());
            put(bytes);
        };
        field(f.auction_id.as_bytes());
        field(f.imp_id.as_bytes());
        field(f.bid_id.as_bytes());
        field(f.campaign.as_bytes());
        field(f.creative.as_bytes());
        field(&f.bid.0.to_le_bytes());
        field(f.currency.as_bytes());
        field(f.exchange.as_bytes());
        field(&f.issued.to_le_bytes());
        field(&f.user.to_le_bytes());
        mac.update(&buf[..len]);
        mac
    }

    /// Verifies a notice's query string, as received for `kind` at `now` (Unix
    /// seconds). `price_format` is how the notice's exchange writes prices (looked up by
    /// the caller from the notice's `x`, which is only trusted once the signature holds).
    pub fn verify(
        &self,
        kind: NoticeKind,
        query: &str,
        now: u64,
        max_age_s: u64,
        price_format: impl FnOnce(&str) -> PriceFormat,
    ) -> Result<Notice, Rejection> {
        let q = Query::parse(query).ok_or(Rejection::Malformed)?;
        let text = |v: &Option<Cow<'_, str>>| v.as_deref().map(str::to_owned);
        let need = |v: &Option<Cow<'_, str>>| text(v).ok_or(Rejection::Malformed);
        let number = |v: &Option<Cow<'_, str>>| -> Result<u64, Rejection> {
            let v = v.as_deref().ok_or(Rejection::Malformed)?;
            if v.is_empty() || v.len() > 20 || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Rejection::Malformed);
            }
            v.parse().map_err(|_| Rejection::Malformed)
        };
        let facts = NoticeFacts {
            auction_id: need(&q.a)?,
            imp_id: need(&q.i)?,
            bid_id: need(&q.b)?,
            campaign: need(&q.c)?,
            creative: need(&q.r)?,
            // Above i64's range it was never signed.
            bid: Micros(i64::try_from(number(&q.p)?).map_err(|_| Rejection::Forged)?),
            currency: text(&q.y).unwrap_or_default(),
            exchange: text(&q.x).unwrap_or_default(),
            issued: number(&q.t)?,
            user: number(&q.u)?,
        };
        let sig = q.s.as_deref().ok_or(Rejection::Malformed)?;
        let mut given = [0u8; SIG_BYTES + 2];
        match URL_SAFE_NO_PAD.decode_slice(sig.as_bytes(), &mut given) {
            Ok(SIG_BYTES) => {}
            _ => return Err(Rejection::Forged),
        }
        let expected = part(&self.mac_of(&facts.borrow()), kind);
        if !constant_time_eq(&expected, &given[..SIG_BYTES]) {
            return Err(Rejection::Forged);
        }
        let (issued, now) = (facts.issued, now);
        if issued > now.saturating_add(CLOCK_SKEW_S) || now.saturating_sub(issued) > max_age_s {
            return Err(Rejection::Expired);
        }
        let price = match q.price.as_deref().filter(|p| !is_unfilled_macro(p)) {
            None | Some("") if kind == NoticeKind::Loss => None,
            None | Some("") => return Err(Rejection::BadPrice),
            Some(p) => Some(read_price(p, &price_format(&facts.exchange))?),
        };
        // A loss's price is the winner's (or the clearing price), above our bid as a
        // rule: only what we are charged is held to the bid.
        if kind != NoticeKind::Loss && price.is_some_and(|p| p > facts.bid) {
            return Err(Rejection::AbovePrice);
        }
        let loss_reason = q
            .loss
            .as_deref()
            .filter(|l| !is_unfilled_macro(l))
            .and_then(|l| l.trim().parse().ok());
        Ok(Notice {
            kind,
            facts,
            price,
            loss_reason,
        })
    }
}

/// Seconds a notice may be dated ahead of the local clock.
const CLOCK_SKEW_S: u64 = 60;

/// A notice kind's part of its bid's MAC.
fn part(mac: &[u8; 32], kind: NoticeKind) -> [u8; SIG_BYTES] {
    let at = kind as usize * SIG_BYTES;
    let mut out = [0u8; SIG_BYTES];
    out.copy_from_slice(&mac[at..at + SIG_BYTES]);
    out
}

/// A notice URL's signed query fields, `?a=` to `&u=` (the same for every kind).
fn write_query(facts: &BidFacts<'_>, out: &mut Vec<u8>) {
    let mut num = [0u8; 20];
    let fields: [(&[u8], &[u8]); 5] = [
        (b"?a=", facts.auction_id.as_bytes()),
        (b"&i=", facts.imp_id.as_bytes()),
        (b"&b=", facts.bid_id.as_bytes()),
        (b"&c=", facts.campaign.as_bytes()),
        (b"&r=", facts.creative.as_bytes()),
    ];
    for (key, value) in fields {
        out.extend_from_slice(key);
        percent_encode(value, out);
    }
    out.extend_from_slice(b"&p=");
    out.extend_from_slice(fmt_u64(&mut num, facts.bid.0.max(0) as u64));
    if !facts.currency.is_empty() {
        out.extend_from_slice(b"&y=");
        percent_encode(facts.currency.as_bytes(), out);
    }
    out.extend_from_slice(b"&x=");
    percent_encode(facts.exchange.as_bytes(), out);
    out.extend_from_slice(b"&t=");
    out.extend_from_slice(fmt_u64(&mut num, facts.issued));
    out.extend_from_slice(b"&u=");
    out.extend_from_slice(fmt_u64(&mut num, facts.user));
}

/// A notice URL's signature and the exchange's macros.
fn write_tail(kind: NoticeKind, sig: [u8; SIG_BYTES], out: &mut Vec<u8>) {
    out.extend_from_slice(b"&s=");
    let mut b64 = [0u8; 24];
    let n = URL_SAFE_NO_PAD
        .encode_slice(sig, &mut b64)
        .unwrap_or_default();
    out.extend_from_slice(&b64[..n]);
    out.extend_from_slice(b"&price=${AUCTION_PRICE}");
    if kind == NoticeKind::Loss {
        out.extend_from_slice(b"&loss=${AUCTION_LOSS}");
    }
}

fn is_unfilled_macro(v: &str) -> bool {
    v.starts_with("${") || v.starts_with("%24%7B") || v.starts_with("%24{")
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Reads a clearing price as the exchange writes it, in micros.
pub fn read_price(p: &str, format: &PriceFormat) -> Result<Micros, Rejection> {
    match format {
        PriceFormat::Plain => {
            let p = p.trim();
            if p.starts_with('-') {
                return Err(Rejection::BadPrice);
            }
            read_decimal(p).ok_or(Rejection::BadPrice)
        }
        PriceFormat::Google {
            encryption_key,
            integrity_key,
        } => decrypt_google_price(p, encryption_key, integrity_key),
    }
}

/// A non-negative decimal amount such as `1.25` or `0.000001`, rounded to micros
/// (exchanges send up to 6 decimals; more is rounded half up, as a float's text is).
fn read_decimal(p: &str) -> Option<Micros> {
    let (int, frac) = p.split_once('.').unwrap_or((p, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) || int.len() > 12 {
        return None;
    }
    let units: i64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut micros: i64 = 0;
    for (i, b) in frac.bytes().enumerate() {
        let d = (b - b'0') as i64;
        match i {
            0..6 => micros = micros * 10 + d,
            6 if d >= 5 => micros += 1,
            _ => {}
        }
    }
    for _ in frac.len().min(6)..6 {
        micros *= 10;
    }
    units
        .checked_mul(Micros::PER_UNIT)?
        .checked_add(micros)
        .map(Micros)
}

/// Decrypts a price confirmation from Google Authorized Buyers: unpadded web-safe
/// base64 of a 16-byte initialisation vector, the 8-byte price (micros, big-endian)
/// XORed with the first 8 bytes of HMAC-SHA1(encryption key, iv), and a 4-byte
/// integrity signature, the first 4 bytes of HMAC-SHA1(integrity key, price || iv).
pub fn decrypt_google_price(
    encoded: &str,
    encryption_key: &[u8],
    integrity_key: &[u8],
) -> Result<Micros, Rejection> {
    let mut raw = [0u8; 30];
    let n = URL_SAFE_NO_PAD
        .decode_slice(encoded.trim().trim_end_matches('='), &mut raw)
        .map_err(|_| Rejection::BadPrice)?;
    if n != 28 {
        return Err(Rejection::BadPrice);
    }
    let (iv, rest) = raw[..28].split_at(16);
    let (cipher, sig) = rest.split_at(8);
    let hmac_sha1 = |key: &[u8], parts: &[&[u8]]| -> Result<[u8; 20], Rejection> {
        let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(key)
            .map_err(|_| Rejection::BadPriceSignature)?;
        for p in parts {
            mac.update(p);
        }
        let mut out = [0u8; 20];
        out.copy_from_slice(&mac.finalize().into_bytes());
        Ok(out)
    };
    let pad = hmac_sha1(encryption_key, &[iv])?;
    let mut price = [0u8; 8];
    for (i, b) in price.iter_mut().enumerate() {
        *b = cipher[i] ^ pad[i];
    }
    let check = hmac_sha1(integrity_key, &[&price, iv])?;
    if !constant_time_eq(&check[..4], sig) {
        return Err(Rejection::BadPriceSignature);
    }
    i64::try_from(u64::from_be_bytes(price))
        .map(Micros)
        .map_err(|_| Rejection::BadPrice)
}

/// Decodes a web-safe base64 key (Google's keys come that way, padded or not).
pub fn decode_key(b64: &str) -> Option<Vec<u8>> {
    let t = b64.trim().trim_end_matches('=');
    URL_SAFE_NO_PAD.decode(t).ok().filter(|k| !k.is_empty())
}

/// Hashes the user a request names, for frequency caps and for the notice URL: keyed,
/// so the URL never carries anything from which the id can be recovered.
#[derive(Clone)]
pub struct UserHasher(siphasher::sip::SipHasher13);

impl std::fmt::Debug for UserHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserHasher(<keyed>)")
    }
}

impl UserHasher {
    /// A hasher whose key derives from the notice key (so hashes stay the same across
    /// restarts with the same key).
    pub fn new(notice_key: &[u8]) -> UserHasher {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(notice_key)
            .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new_from_slice(b"-").expect("key"));
        mac.update(b"shardbid user hash");
        let k = mac.finalize().into_bytes();
        let mut key = [0u8; 16];
        key.copy_from_slice(&k[..16]);
        UserHasher(siphasher::sip::SipHasher13::new_with_key(&key))
    }

    /// The hash of a user key, never 0 (0 means "no user").
    pub fn hash(&self, user: &str) -> u64 {
        use std::hash::Hasher;
        let mut h = self.0;
        h.write(user.as_bytes());
        h.finish().max(1)
    }
}

/// A notice query's values: percent-decoded only when they hold an escape.
#[derive(Default)]
struct Query<'q> {
    a: Option<Cow<'q, str>>,
    i: Option<Cow<'q, str>>,
    b: Option<Cow<'q, str>>,
    c: Option<Cow<'q, str>>,
    r: Option<Cow<'q, str>>,
    p: Option<Cow<'q, str>>,
    y: Option<Cow<'q, str>>,
    x: Option<Cow<'q, str>>,
    t: Option<Cow<'q, str>>,
    u: Option<Cow<'q, str>>,
    s: Option<Cow<'q, str>>,
    price: Option<Cow<'q, str>>,
    loss: Option<Cow<'q, str>>,
}

impl<'q> Query<'q> {
    /// `None` when a value is not valid percent-encoded UTF-8, or a key repeats.
    fn parse(query: &'q str) -> Option<Query<'q>> {
        let mut q = Query::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match k {
                "a" => &mut q.a,
                "i" => &mut q.i,
                "b" => &mut q.b,
                "c" => &mut q.c,
                "r" => &mut q.r,
                "p" => &mut q.p,
                "y" => &mut q.y,
                "x" => &mut q.x,
                "t" => &mut q.t,
                "u" => &mut q.u,
                "s" => &mut q.s,
                "price" => &mut q.price,
                "loss" => &mut q.loss,
                _ => continue,
            };
            if slot.is_some() {
                return None;
            }
            *slot = Some(percent_decode(v)?);
        }
        Some(q)
    }
}

/// Whether a byte goes into a URL query value as it is.
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Percent-encodes everything but the unreserved bytes (runs of those are copied
/// whole: ids rarely need an escape).
pub fn percent_encode(value: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut from = 0;
    for (i, &b) in value.iter().enumerate() {
        if !unreserved(b) {
            out.extend_from_slice(&value[from..i]);
            out.extend_from_slice(&[b'%', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
            from = i + 1;
        }
    }
    out.extend_from_slice(&value[from..]);
}

/// Decodes `%XX` escapes (and `+` as a space); `None` for a broken escape or bytes that
/// are not UTF-8.
fn percent_decode(v: &str) -> Option<Cow<'_, str>> {
    if !v.bytes().any(|b| b == b'%' || b == b'+') {
        return Some(Cow::Borrowed(v));
    }
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let s = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(s, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

/// Whether a notice base URL can go into a JSON string and a URL as it is.
fn valid_base(base: &str) -> bool {
    (base.starts_with("http://") || base.starts_with("https://"))
        && base.len() > "https://".len()
        && base
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\\' | b'?' | b'#'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> NoticeKey {
        NoticeKey::new(b"test key", "https://bid.example.com").unwrap()
    }

    fn facts() -> BidFacts<'static> {
        BidFacts {
            auction_id: "auc 1&x=y/é",
            imp_id: "1",
            bid_id: "6752f1a3-0-1f",
            campaign: "camp-1",
            creative: "cr.1",
            bid: Micros(2_500_000),
            currency: "",
            exchange: "adx",
            issued: 1_000_000,
            user: 13_309_980_704_482_210_519,
        }
    }

    /// The query string of a notice URL with the exchange's macros filled in.
    fn query(kind: NoticeKind, f: &BidFacts<'_>, price: &str) -> String {
        let mut url = Vec::new();
        key().write_url(kind, f, &mut url);
        let url = String::from_utf8(url).unwrap();
        let prefix = format!("https://bid.example.com/notice/{}?", kind.label());
        assert!(url.starts_with(&prefix), "{url}");
        url[prefix.len()..]
            .replace("${AUCTION_PRICE}", price)
            .replace("${AUCTION_LOSS}", "102")
    }

    fn verify(kind: NoticeKind, q: &str, now: u64) -> Result<Notice, Rejection> {
        key().verify(kind, q, now, 3600, |_| PriceFormat::Plain)
    }

    #[test]
    fn a_signed_url_verifies_with_its_price() {
        let q = query(NoticeKind::Win, &facts(), "1.75");
        let n = verify(NoticeKind::Win, &q, 1_000_010).unwrap();
        assert_eq!(n.facts.borrow(), facts());
        assert_eq!(n.price, Some(Micros(1_750_000)));
        let q = query(NoticeKind::Loss, &facts(), "${AUCTION_PRICE}");
        let n = verify(NoticeKind::Loss, &q, 1_000_010).unwrap();
        assert_eq!((n.price, n.loss_reason), (None, Some(102)));
    }

    #[test]
    fn every_signed_field_and_the_kind_are_covered() {
        let q = query(NoticeKind::Win, &facts(), "1");
        assert_eq!(
            verify(NoticeKind::Billing, &q, 1_000_010),
            Err(Rejection::Forged)
        );
        for (k, v) in [
            ("a", "other"),
            ("i", "2"),
            ("b", "x"),
            ("c", "camp-2"),
            ("r", "cr.2"),
            ("p", "9000000"),
            ("x", "example"),
            ("t", "1000001"),
            ("u", "43"),
        ] {
            let tampered: Vec<String> = q
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((key, _)) if key == k => format!("{k}={v}"),
                    _ => kv.to_string(),
                })
                .collect();
            assert_eq!(
                verify(NoticeKind::Win, &tampered.join("&"), 1_000_010),
                Err(Rejection::Forged),
                "{k}"
            );
        }
        // One byte of the signature changed.
        let i = q.find("&s=").unwrap() + 3;
        let mut bytes = q.into_bytes();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(bytes).unwrap();
        assert_eq!(
            verify(NoticeKind::Win, &forged, 1_000_010),
            Err(Rejection::Forged)
        );
        let other = NoticeKey::new(b"other key", "https://bid.example.com").unwrap();
        let q = query(NoticeKind::Win, &facts(), "1");
        assert_eq!(
            other.verify(NoticeKind::Win, &q, 1_000_010, 3600, |_| PriceFormat::Plain),
            Err(Rejection::Forged)
        );
    }

    #[test]
    fn prices_and_ages_are_checked() {
        let at = |price: &str, now: u64| {
            verify(
                NoticeKind::Billing,
                &query(NoticeKind::Billing, &facts(), price),
                now,
            )
        };
        assert_eq!(at("2.5", 1_000_000).unwrap().price, Some(Micros(2_500_000)));
        assert_eq!(at("2.500001", 1_000_000), Err(Rejection::AbovePrice));
        assert_eq!(at("-1", 1_000_000), Err(Rejection::BadPrice));
        assert_eq!(at("abc", 1_000_000), Err(Rejection::BadPrice));
        assert_eq!(at("", 1_000_000), Err(Rejection::BadPrice));
        assert_eq!(at("${AUCTION_PRICE}", 1_000_000), Err(Rejection::BadPrice));
        assert_eq!(at("1e3", 1_000_000), Err(Rejection::BadPrice));
        assert_eq!(at("0.0000014", 1_000_000).unwrap().price, Some(Micros(1)));
        assert_eq!(at(".5", 1_000_000).unwrap().price, Some(Micros(500_000)));
        assert_eq!(at("1", 1_003_601), Err(Rejection::Expired));
        assert_eq!(
            at("1", 999_000),
            Err(Rejection::Expired),
            "dated in the future"
        );
        assert!(at("1", 1_003_600).is_ok());
        // A loss carries the winner's price, above ours as a rule: it is not refused.
        let loss = verify(
            NoticeKind::Loss,
            &query(NoticeKind::Loss, &facts(), "3.1"),
            1_000_000,
        );
        assert_eq!(loss.unwrap().price, Some(Micros(3_100_000)));
    }

    #[test]
    fn malformed_queries_are_refused() {
        let q = query(NoticeKind::Win, &facts(), "1");
        for bad in [
            "",
            "a=1",
            &q.replace("&t=", "&t=x"),
            &format!("{q}&a=again"),
            &q.replace("a=auc", "a=%ZZauc"),
        ] {
            assert_eq!(
                verify(NoticeKind::Win, bad, 1_000_010),
                Err(Rejection::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn google_example_prices_decrypt() {
        // The example keys and prices of Google's "Decrypt price confirmations" page.
        let e = decode_key("skU7Ax_NL5pPAFyKdkfZjZz2-VhIN8bjj1rVFOaJ_5o=").unwrap();
        let i = decode_key("arO23ykdNqUQ5LEoQ0FVmPkBd7xB5CO89PDZlSjpFxo=").unwrap();
        for (enc, micros) in [
            ("YWJjMTIzZGVmNDU2Z2hpN7fhCuPemCce_6msaw", 100),
            ("YWJjMTIzZGVmNDU2Z2hpN7fhCuPemCAWJRxOgA", 1900),
            ("YWJjMTIzZGVmNDU2Z2hpN7fhCuPemC32prpWWw", 2700),
        ] {
            assert_eq!(
                decrypt_google_price(enc, &e, &i),
                Ok(Micros(micros)),
                "{enc}"
            );
        }
        // One character changed: the integrity check fails.
        assert_eq!(
            decrypt_google_price("YWJjMTIzZGVmNDU2Z2hpN7fhCuPemCde_6msaw", &e, &i),
            Err(Rejection::BadPriceSignature)
        );
        assert_eq!(
            decrypt_google_price("short", &e, &i),
            Err(Rejection::BadPrice)
        );
        // Through a notice of an exchange configured for it.
        let mut f = facts();
        f.bid = Micros(3000);
        let q = query(
            NoticeKind::Win,
            &f,
            "YWJjMTIzZGVmNDU2Z2hpN7fhCuPemCAWJRxOgA",
        );
        let google = PriceFormat::Google {
            encryption_key: e,
            integrity_key: i,
        };
        let n = key().verify(NoticeKind::Win, &q, 1_000_000, 60, |x| {
            assert_eq!(x, "adx");
            google.clone()
        });
        assert_eq!(n.unwrap().price, Some(Micros(1900)));
    }

    #[test]
    fn urls_go_into_json_as_they_are() {
        let mut out = Vec::new();
        key().write_urls(&facts(), &mut out);
        let json: serde_json::Value =
            serde_json::from_slice(&[b"{\"x\":0", &out[..], b"}"].concat()).unwrap();
        for m in ["nurl", "burl", "lurl"] {
            let url = json[m].as_str().unwrap();
            assert!(url.contains("price=${AUCTION_PRICE}"), "{url}");
            assert!(!url.contains(' ') && !url.contains('"'), "{url}");
        }
        assert!(json["lurl"]
            .as_str()
            .unwrap()
            .ends_with("&loss=${AUCTION_LOSS}"));
        // The three URLs share their query and the MAC of its fields, and each is the
        // URL of its kind on its own, which verifies as that kind only.
        for kind in NoticeKind::ALL {
            let mut alone = Vec::new();
            key().write_url(kind, &facts(), &mut alone);
            let url = json[kind.member()].as_str().unwrap();
            assert_eq!(url.as_bytes(), &alone[..]);
            let q = url
                .split_once('?')
                .unwrap()
                .1
                .replace("${AUCTION_PRICE}", "1.5");
            for other in NoticeKind::ALL {
                let got = key().verify(other, &q, 1_000_010, 3600, |_| PriceFormat::Plain);
                assert_eq!(
                    got.is_ok(),
                    other == kind,
                    "{kind:?} URL as {other:?}: {got:?}"
                );
            }
        }
        assert!(NoticeKey::new(b"", "https://x.example").is_none());
        assert!(NoticeKey::new(b"k", "ftp://x.example").is_none());
        assert!(NoticeKey::new(b"k", "https://x.example/\"").is_none());
    }

    #[test]
    fn user_hashes_are_keyed_and_never_zero() {
        let (a, b) = (UserHasher::new(b"one"), UserHasher::new(b"two"));
        assert_eq!(a.hash("user-1"), a.hash("user-1"));
        assert_ne!(a.hash("user-1"), b.hash("user-1"));
        assert_ne!(a.hash(""), 0);
    }
}
