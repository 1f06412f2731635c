//! Notice URLs and clearing prices, as exchanges send them back: `NoticeKey::verify`
//! for each notice kind, `read_price` (plain and Google) and `decrypt_google_price`
//! (with the example keys of Google's "Decrypt price confirmations" page).
//!
//! No input may panic, and:
//! - a URL that `write_url` wrote for facts F, with a price filled in, verifies to
//!   exactly F, or is refused for its price or its age as the checks say it must be;
//! - it verifies as its own kind only; with any signed field changed it is `Forged`;
//!   with any bytes changed it verifies to F or not at all;
//! - a verified win or billing notice has a price, and it is no greater than the bid;
//! - a plain price reads as a reference reading does (at most 12 integer digits,
//!   rounded half up to micros); a Google price decrypts to what was encrypted, and
//!   whatever decrypts re-encrypts to the same text.
//!
//! The first byte picks the mode: 0 a query string as received (the seeds are signed
//! URLs issued at `NOW - 100`), 1 a signed URL built from fuzz-chosen facts and then
//! changed, 2 a plain price, 3 a Google price, 4 a Google price round trip.
//!
//! `RUSTFLAGS="-C target-cpu=x86-64-v3" cargo +nightly fuzz run notice fuzz/corpus/notice -- -max_total_time=600`

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use libfuzzer_sys::fuzz_target;
use sha1::Sha1;

use shardbid::money::notice::{
    decode_key, decrypt_google_price, percent_encode, read_price, BidFacts, Notice, NoticeFacts,
    NoticeKey, NoticeKind, PriceFormat, Rejection,
};
use shardbid::money::Micros;

/// The clock of mode 0 (the seeds were issued 100 s before it).
const NOW: u64 = 1_800_000_000;
const BASE: &str = "https://bid.example.com";
/// The least price a plain decimal cannot carry: 13 integer digits.
const PLAIN_LIMIT: i64 = 1_000_000_000_000 * 1_000_000;
/// Seconds a notice may be dated ahead of the clock (`notice.rs`).
const CLOCK_SKEW_S: u64 = 60;

fn key() -> &'static NoticeKey {
    static KEY: std::sync::OnceLock<NoticeKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| NoticeKey::new(b"fuzz notice key", BASE).expect("key"))
}

fn google_keys() -> &'static (Vec<u8>, Vec<u8>) {
    static KEYS: std::sync::OnceLock<(Vec<u8>, Vec<u8>)> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        (
            decode_key("skU7Ax_NL5pPAFyKdkfZjZz2-VhIN8bjj1rVFOaJ_5o=").expect("key"),
            decode_key("arO23ykdNqUQ5LEoQ0FVmPkBd7xB5CO89PDZlSjpFxo=").expect("key"),
        )
    })
}

fn google() -> PriceFormat {
    let (e, i) = google_keys();
    PriceFormat::Google {
        encryption_key: e.clone(),
        integrity_key: i.clone(),
    }
}

/// The kind a byte's two low bits name (3 is a win too).
fn kind_of(b: u8) -> NoticeKind {
    NoticeKind::ALL[(b & 3) as usize % 3]
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 5 {
        0 => received(rest),
        1 => {
            if let Ok(input) = Signed::arbitrary_take_rest(Unstructured::new(rest)) {
                signed(input);
            }
        }
        2 => {
            if let Ok(p) = std::str::from_utf8(rest) {
                plain_price(p);
            }
        }
        3 => {
            if let Ok(p) = std::str::from_utf8(rest) {
                google_price(p);
            }
        }
        _ => {
            if let Ok((micros, iv)) =
                <(u64, [u8; 16])>::arbitrary_take_rest(Unstructured::new(rest))
            {
                let (e, i) = google_keys();
                let got = decrypt_google_price(&encrypt(micros, &iv), e, i);
                let want = i64::try_from(micros)
                    .map(Micros)
                    .map_err(|_| Rejection::BadPrice);
                assert_eq!(got, want, "{micros} through Google's encryption");
            }
        }
    }
});

/// Mode 0: `[flags, query...]`, verified at `NOW` as kind `flags % 3`, with Google's
/// prices when `flags & 4`.
fn received(rest: &[u8]) {
    let Some((&flags, query)) = rest.split_first() else {
        return;
    };
    let Ok(query) = std::str::from_utf8(query) else {
        return;
    };
    let kind = kind_of(flags);
    let format = if flags & 4 != 0 {
        google()
    } else {
        PriceFormat::Plain
    };
    let got = key().verify(kind, query, NOW, 3600, |_| format.clone());
    let Ok(n) = got else { return };
    held_to_the_bid(&n);
    // What verified is what was signed: written again with the same facts and price,
    // it verifies to the same notice (a price too large for a plain decimal aside).
    if n.price.is_some_and(|p| p.0 >= PLAIN_LIMIT) {
        return;
    }
    let price = n.price.map(decimal);
    let loss = n.loss_reason.map(|l| l.to_string());
    let mut again = fill(
        &url_query(kind, &n.facts.borrow()),
        price.as_deref(),
        loss.as_deref(),
    );
    // Only a loss URL has `${AUCTION_LOSS}`, but any notice may carry a `loss`.
    if let (Some(l), false) = (&loss, kind == NoticeKind::Loss) {
        again.push_str("&loss=");
        again.push_str(l);
    }
    let back = key().verify(kind, &again, NOW, 3600, |_| PriceFormat::Plain);
    assert_eq!(
        back.as_ref(),
        Ok(&n),
        "{query:?} written again as {again:?}"
    );
}

#[derive(Arbitrary, Debug)]
struct Facts<'a> {
    auction_id: &'a str,
    imp_id: &'a str,
    bid_id: &'a str,
    campaign: &'a str,
    creative: &'a str,
    bid: u64,
    currency: &'a str,
    exchange: &'a str,
    issued: u64,
    user: u64,
}

impl<'a> Facts<'a> {
    /// As the server signs them: its bids are never negative.
    fn bid_facts(&self) -> BidFacts<'a> {
        BidFacts {
            auction_id: self.auction_id,
            imp_id: self.imp_id,
            bid_id: self.bid_id,
            campaign: self.campaign,
            creative: self.creative,
            bid: Micros((self.bid & i64::MAX as u64) as i64),
            currency: self.currency,
            exchange: self.exchange,
            issued: self.issued,
            user: self.user,
        }
    }
}

/// What the exchange puts in `${AUCTION_PRICE}`.
#[derive(Arbitrary, Debug)]
enum Price<'a> {
    /// The macro left as it is.
    Unfilled,
    Text(&'a str),
    Micros(u64),
    /// This much above the bid.
    Above(u32),
    /// Encrypted the Google way (the notice's exchange is set up for it).
    Google {
        micros: u64,
        iv: [u8; 16],
    },
    GoogleText(&'a str),
}

/// A signed field changed.
#[derive(Arbitrary, Debug)]
enum Tamper<'a> {
    AuctionId(&'a str),
    ImpId(&'a str),
    BidId(&'a str),
    Campaign(&'a str),
    Creative(&'a str),
    Bid(u64),
    Currency(&'a str),
    Exchange(&'a str),
    Issued(u64),
    User(u64),
}

#[derive(Arbitrary, Debug)]
struct Signed<'a> {
    kind: u8,
    facts: Facts<'a>,
    price: Price<'a>,
    loss: Option<&'a str>,
    /// Seconds from the bid to the notice.
    age: i64,
    max_age: u32,
    tamper: Option<Tamper<'a>>,
    /// Bytes of the query overwritten: (position, byte).
    edits: Vec<(u16, u8)>,
}

/// Mode 1.
fn signed(input: Signed<'_>) {
    let kind = kind_of(input.kind);
    let f = input.facts.bid_facts();
    let bid = f.bid;
    let is_google = matches!(input.price, Price::Google { .. } | Price::GoogleText(_));
    let format = if is_google {
        google()
    } else {
        PriceFormat::Plain
    };
    // The price as the exchange writes it, and as the server reads it back.
    let price_text: Option<String> = match input.price {
        Price::Unfilled => None,
        Price::Text(t) | Price::GoogleText(t) => Some(t.to_string()),
        Price::Micros(m) => Some(decimal(Micros((m & i64::MAX as u64) as i64))),
        Price::Above(n) => Some(decimal(Micros(bid.0.saturating_add(1 + n as i64)))),
        Price::Google { micros, iv } => Some(encrypt(micros, &iv)),
    };
    let query = fill(&url_query(kind, &f), price_text.as_deref(), input.loss);
    let now = (f.issued as i128 + input.age as i128).clamp(0, u64::MAX as i128) as u64;
    let max_age = input.max_age as u64;
    let verify = |k: NoticeKind, q: &str| key().verify(k, q, now, max_age, |_| format.clone());

    // As written, with its price: exactly F, or refused as the checks say.
    let want = expected(
        kind,
        &f,
        price_text.as_deref(),
        input.loss,
        now,
        max_age,
        &format,
    );
    let got = verify(kind, &query);
    assert_eq!(got, want, "{query:?} at {now}");
    if let Ok(n) = &got {
        held_to_the_bid(n);
    }
    // As another kind: forged.
    for other in NoticeKind::ALL.into_iter().filter(|&k| k != kind) {
        assert_eq!(
            verify(other, &query),
            Err(Rejection::Forged),
            "{query:?} as {other:?}"
        );
    }
    // A signed field changed under F's signature: forged.
    if let Some(t) = input.tamper {
        let mut g = f;
        match t {
            Tamper::AuctionId(v) => g.auction_id = v,
            Tamper::ImpId(v) => g.imp_id = v,
            Tamper::BidId(v) => g.bid_id = v,
            Tamper::Campaign(v) => g.campaign = v,
            Tamper::Creative(v) => g.creative = v,
            Tamper::Bid(v) => g.bid = Micros((v & i64::MAX as u64) as i64),
            Tamper::Currency(v) => g.currency = v,
            Tamper::Exchange(v) => g.exchange = v,
            Tamper::Issued(v) => g.issued = v,
            Tamper::User(v) => g.user = v,
        }
        if g != f {
            let theirs = fill(&url_query(kind, &g), price_text.as_deref(), input.loss);
            let forged = with_signature(&theirs, signature(&query));
            assert_eq!(verify(kind, &forged), Err(Rejection::Forged), "{forged:?}");
        }
    }
    // Any bytes changed: F, or nothing.
    if !input.edits.is_empty() {
        let mut bytes = query.clone().into_bytes();
        for &(at, b) in &input.edits {
            let at = at as usize % bytes.len();
            bytes[at] = b;
        }
        if let Ok(changed) = String::from_utf8(bytes) {
            for k in NoticeKind::ALL {
                if let Ok(n) = verify(k, &changed) {
                    assert_eq!((n.kind, n.facts.borrow()), (kind, f), "{changed:?}");
                    held_to_the_bid(&n);
                }
            }
        }
    }
}

/// What verifying a URL written for `f` must give.
fn expected(
    kind: NoticeKind,
    f: &BidFacts<'_>,
    price: Option<&str>,
    loss: Option<&str>,
    now: u64,
    max_age: u64,
    format: &PriceFormat,
) -> Result<Notice, Rejection> {
    if f.issued > now.saturating_add(CLOCK_SKEW_S) || now.saturating_sub(f.issued) > max_age {
        return Err(Rejection::Expired);
    }
    let price = match price.filter(|p| !unfilled(p)) {
        None | Some("") if kind == NoticeKind::Loss => None,
        None | Some("") => return Err(Rejection::BadPrice),
        Some(p) => Some(read_price(p, format)?),
    };
    if kind != NoticeKind::Loss && price.is_some_and(|p| p > f.bid) {
        return Err(Rejection::AbovePrice);
    }
    // Only a loss URL carries `${AUCTION_LOSS}` for the exchange to fill in.
    let loss_reason = loss
        .filter(|l| kind == NoticeKind::Loss && !unfilled(l))
        .and_then(|l| l.trim().parse().ok());
    Ok(Notice {
        kind,
        facts: owned(f),
        price,
        loss_reason,
    })
}

fn unfilled(v: &str) -> bool {
    v.starts_with("${") || v.starts_with("%24%7B") || v.starts_with("%24{")
}

/// A win or billing notice is held to its bid; a loss carries the winner's price.
fn held_to_the_bid(n: &Notice) {
    if let Some(p) = n.price {
        assert!(p >= Micros::ZERO, "{n:?}");
    }
    if n.kind != NoticeKind::Loss {
        assert!(n.price.is_some_and(|p| p <= n.facts.bid), "{n:?}");
    }
}

fn owned(f: &BidFacts<'_>) -> NoticeFacts {
    NoticeFacts {
        auction_id: f.auction_id.into(),
        imp_id: f.imp_id.into(),
        bid_id: f.bid_id.into(),
        campaign: f.campaign.into(),
        creative: f.creative.into(),
        bid: f.bid,
        currency: f.currency.into(),
        exchange: f.exchange.into(),
        issued: f.issued,
        user: f.user,
    }
}

/// The query of the URL `write_url` writes, macros unfilled.
fn url_query(kind: NoticeKind, f: &BidFacts<'_>) -> String {
    let mut url = Vec::new();
    key().write_url(kind, f, &mut url);
    let url = String::from_utf8(url).expect("a URL is ASCII");
    let prefix = format!("{BASE}/notice/{}?", kind.label());
    assert!(url.starts_with(&prefix), "{url}");
    url[prefix.len()..].to_string()
}

/// The exchange's macros filled in, percent-encoded as a URL's query wants them;
/// `None` leaves a macro as it is.
fn fill(query: &str, price: Option<&str>, loss: Option<&str>) -> String {
    let enc = |v: &str| {
        let mut out = Vec::new();
        percent_encode(v.as_bytes(), &mut out);
        String::from_utf8(out).expect("ASCII")
    };
    let mut q = query.to_string();
    if let Some(p) = price {
        q = q.replace("${AUCTION_PRICE}", &enc(p));
    }
    if let Some(l) = loss {
        q = q.replace("${AUCTION_LOSS}", &enc(l));
    }
    q
}

fn signature(query: &str) -> &str {
    let from = query.find("&s=").expect("signed") + 3;
    let len = query[from..].find('&').unwrap_or(query.len() - from);
    &query[from..from + len]
}

fn with_signature(query: &str, sig: &str) -> String {
    let old = signature(query);
    query.replacen(&format!("&s={old}"), &format!("&s={sig}"), 1)
}

fn decimal(m: Micros) -> String {
    let mut out = Vec::new();
    m.write_decimal(&mut out);
    String::from_utf8(out).expect("decimal")
}

/// Mode 2: a plain price against a reference reading, and back from its decimal.
fn plain_price(p: &str) {
    let got = read_price(p, &PriceFormat::Plain);
    assert_eq!(got.ok(), reference_price(p), "{p:?}");
    if let Err(e) = got {
        assert_eq!(e, Rejection::BadPrice, "{p:?}");
    } else if let Ok(m) = got {
        // Back from its decimal (unless rounding carried it to a 13th integer digit).
        if m.0 < PLAIN_LIMIT {
            assert_eq!(read_price(&decimal(m), &PriceFormat::Plain), Ok(m), "{p:?}");
        }
    }
}

/// A non-negative decimal with at most 12 integer digits, in tenths of micros first,
/// then rounded half up.
fn reference_price(p: &str) -> Option<Micros> {
    let p = p.trim();
    let (int, frac) = match p.find('.') {
        Some(i) => (&p[..i], &p[i + 1..]),
        None => (p, ""),
    };
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if !digits(int) || !digits(frac) || (int.is_empty() && frac.is_empty()) || int.len() > 12 {
        return None;
    }
    let mut tenths: u128 = 0;
    for c in int.chars() {
        tenths = tenths * 10 + (c as u128 - '0' as u128);
    }
    for i in 0..7 {
        let d = frac.as_bytes().get(i).map_or(0, |b| (b - b'0') as u128);
        tenths = tenths * 10 + d;
    }
    Some(Micros(((tenths + 5) / 10) as i64))
}

/// Mode 3: any text as Google's encrypted price.
fn google_price(p: &str) {
    let (e, i) = google_keys();
    let got = decrypt_google_price(p, e, i);
    assert_eq!(read_price(p, &google()), got, "{p:?}");
    if let Ok(m) = got {
        assert!(m >= Micros::ZERO);
        // Only the text that encrypted it decrypts to it (with its IV).
        let raw = URL_SAFE_NO_PAD
            .decode(p.trim().trim_end_matches('='))
            .expect("it decrypted");
        let iv: [u8; 16] = raw[..16].try_into().expect("16 bytes");
        assert_eq!(
            encrypt(m.0 as u64, &iv),
            p.trim().trim_end_matches('='),
            "{p:?}"
        );
    }
}

/// Google's price encryption with the example keys.
fn encrypt(micros: u64, iv: &[u8; 16]) -> String {
    let (e, i) = google_keys();
    let hmac = |key: &[u8], parts: &[&[u8]]| {
        let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(key).expect("any key");
        for p in parts {
            mac.update(p);
        }
        mac.finalize().into_bytes()
    };
    let price = micros.to_be_bytes();
    let pad = hmac(e, &[iv]);
    let mut raw = iv.to_vec();
    raw.extend(price.iter().zip(pad.iter()).map(|(p, k)| p ^ k));
    raw.extend_from_slice(&hmac(i, &[&price, iv])[..4]);
    URL_SAFE_NO_PAD.encode(raw)
}
