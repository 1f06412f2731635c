//! Bid prices from a response body, without parsing the JSON: every `"price": <number>`
//! is found and summed in exact integer micro-units.

use memchr::memmem;

/// Bids found in a bid response body: how many `"price"` fields, and their sum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prices {
    pub count: u64,
    /// Sum of the prices in micro-units (exact for prices with up to six decimals).
    pub sum_micros: i64,
}

/// Finds every `"price": <number>` in `body` without parsing the JSON.
pub fn scan_prices(body: &[u8]) -> Prices {
    let mut out = Prices::default();
    for at in memmem::find_iter(body, b"\"price\"") {
        let mut rest = &body[at + 7..];
        while let [b' ' | b'\t' | b'\r' | b'\n', r @ ..] = rest {
            rest = r;
        }
        let [b':', r @ ..] = rest else { continue };
        rest = r;
        while let [b' ' | b'\t' | b'\r' | b'\n' | b'"', r @ ..] = rest {
            rest = r;
        }
        let len = rest
            .iter()
            .position(|b| !matches!(b, b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-'))
            .unwrap_or(rest.len());
        if let Some(m) = price_micros(&rest[..len]) {
            out.count += 1;
            out.sum_micros = out.sum_micros.saturating_add(m);
        }
    }
    out
}

/// A decimal number as micro-units: exact up to six decimals (further digits are
/// truncated); exponent notation goes through `f64` and is rounded once.
fn price_micros(num: &[u8]) -> Option<i64> {
    if num.is_empty() {
        return None;
    }
    if num.iter().any(|b| matches!(b, b'e' | b'E')) {
        let v: f64 = std::str::from_utf8(num).ok()?.parse().ok()?;
        return shardbid::money::Micros::from_f64(v).map(|m| m.0);
    }
    let (int, frac) = match memchr::memchr(b'.', num) {
        Some(i) => (&num[..i], &num[i + 1..]),
        None => (num, &b""[..]),
    };
    if int.is_empty()
        || int.len() > 12
        || !int.iter().all(u8::is_ascii_digit)
        || !frac.iter().all(u8::is_ascii_digit)
    {
        return None;
    }
    let mut v = int.iter().fold(0i64, |a, &d| a * 10 + (d - b'0') as i64) * 1_000_000;
    let mut scale = 100_000;
    for &d in frac.iter().take(6) {
        v += (d - b'0') as i64 * scale;
        scale /= 10;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_are_summed_exactly() {
        let body = br#"{"seatbid":[{"bid":[{"price":0.0360,"adm":"{\"price\":9}"},{"price" : "2.5"},{"price":1e-2},{"price":3.1234567}]}],"x":"price"}"#;
        assert_eq!(
            scan_prices(body),
            Prices {
                count: 4,
                sum_micros: 36_000 + 2_500_000 + 10_000 + 3_123_456
            }
        );
        assert_eq!(scan_prices(b"{}"), Prices::default());
        assert_eq!(scan_prices(b"{\"price\":}"), Prices::default());
    }
}
