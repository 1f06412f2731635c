//! Integer micro-units of a currency (1 USD = 1,000,000 micros).
//!
//! Prices are CPM (per thousand impressions) everywhere OpenRTB uses them. Floats only
//! appear at the edge, when a request's `bidfloor` is read; they are rounded to micros
//! once and never accumulated.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::json::fmt_u64;

/// An amount of money in micro-units. Signed so that differences are representable;
/// prices and budgets are validated to be non-negative where they are configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Micros(pub i64);

impl Micros {
    pub const ZERO: Micros = Micros(0);
    pub const PER_UNIT: i64 = 1_000_000;

    /// Rounds a non-negative decimal amount (as sent in `bidfloor`) to micros.
    /// Non-finite or negative input is `None`; amounts above 10^12 units saturate.
    pub fn from_f64(v: f64) -> Option<Micros> {
        if !v.is_finite() || v < 0.0 {
            return None;
        }
        let m = (v * Self::PER_UNIT as f64).round();
        Some(Micros(if m >= i64::MAX as f64 {
            i64::MAX
        } else {
            m as i64
        }))
    }

    /// Parses an exact decimal such as `"2.50"`, `"0.000001"` or `"3"`. At most six
    /// fractional digits; anything finer is an error rather than a silent rounding.
    pub fn parse(s: &str) -> Result<Micros, String> {
        let t = s.trim();
        let (neg, t) = match t.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, t),
        };
        let (int, frac) = t.split_once('.').unwrap_or((t, ""));
        let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        if !digits(int) || !(frac.is_empty() || digits(frac)) {
            return Err(format!("'{s}' is not a decimal amount"));
        }
        if frac.len() > 6 {
            return Err(format!("'{s}' has more than 6 decimal places"));
        }
        let units: i64 = int.parse().map_err(|_| format!("'{s}' is too large"))?;
        let mut f: i64 = if frac.is_empty() {
            0
        } else {
            frac.parse().unwrap_or(0)
        };
        for _ in frac.len()..6 {
            f *= 10;
        }
        let v = units
            .checked_mul(Self::PER_UNIT)
            .and_then(|u| u.checked_add(f))
            .ok_or_else(|| format!("'{s}' is too large"))?;
        Ok(Micros(if neg { -v } else { v }))
    }

    /// Converts an amount in a currency worth `usd_per_unit` USD (in micros of USD per
    /// unit) into USD micros, rounding half away from zero.
    pub fn to_usd(self, usd_per_unit: Micros) -> Micros {
        Micros(mul_div_round(self.0, usd_per_unit.0, Self::PER_UNIT))
    }

    /// Converts USD micros into a currency worth `usd_per_unit` USD, rounding down so
    /// that a converted bid never exceeds what the campaign priced.
    pub fn from_usd(self, usd_per_unit: Micros) -> Micros {
        if usd_per_unit.0 <= 0 {
            return Micros(0);
        }
        let v = (self.0 as i128 * Self::PER_UNIT as i128) / usd_per_unit.0 as i128;
        Micros(v.clamp(i64::MIN as i128, i64::MAX as i128) as i64)
    }

    /// What one impression bought at this CPM price costs: a CPM of `p` micros is `p`
    /// micros per thousand impressions, so exactly `p` nanos per impression.
    pub fn per_impression(self) -> Nanos {
        Nanos(self.0)
    }

    /// This amount in nanos (budgets are compared with spend in nanos).
    pub fn to_nanos(self) -> Nanos {
        Nanos(self.0.saturating_mul(1000))
    }

    /// Writes the amount as a JSON number with up to six decimals and no trailing zeros
    /// (`2.5`, `0.036`, `3`), without allocating.
    pub fn write_decimal(self, out: &mut Vec<u8>) {
        let mut v = self.0;
        if v < 0 {
            out.push(b'-');
            v = -v;
        }
        let mut buf = [0u8; 20];
        out.extend_from_slice(fmt_u64(&mut buf, (v / Self::PER_UNIT) as u64));
        let mut frac = v % Self::PER_UNIT;
        if frac != 0 {
            out.push(b'.');
            let mut width = 6;
            while frac % 10 == 0 {
                frac /= 10;
                width -= 1;
            }
            let digits = fmt_u64(&mut buf, frac as u64);
            for _ in digits.len()..width {
                out.push(b'0');
            }
            out.extend_from_slice(digits);
        }
    }
}

fn mul_div_round(a: i64, b: i64, d: i64) -> i64 {
    let p = a as i128 * b as i128;
    let d = d as i128;
    let q = if p >= 0 {
        (p + d / 2) / d
    } else {
        (p - d / 2) / d
    };
    q.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// Spend, in nano-units of a currency (1 USD = 10^9 nanos). Budgets and spend are kept
/// in nanos because one impression bought at a CPM of `p` micros costs exactly `p`
/// nanos ([`Micros::per_impression`]): spend adds up without rounding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Nanos(pub i64);

impl Nanos {
    pub const ZERO: Nanos = Nanos(0);

    /// In micros, as a float (for metrics: `2100` is one impression at a CPM of 2.10).
    pub fn as_micros_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// Writes the amount in micros as a JSON number, exact (up to three decimals):
    /// `1750`, `1234.567`.
    pub fn write_micros(self, out: &mut Vec<u8>) {
        let v = self.0;
        if v < 0 {
            out.push(b'-');
        }
        let v = v.unsigned_abs();
        let mut buf = [0u8; 20];
        out.extend_from_slice(fmt_u64(&mut buf, v / 1000));
        let mut frac = v % 1000;
        if frac != 0 {
            out.push(b'.');
            let mut width = 3;
            while frac % 10 == 0 {
                frac /= 10;
                width -= 1;
            }
            let digits = fmt_u64(&mut buf, frac);
            for _ in digits.len()..width {
                out.push(b'0');
            }
            out.extend_from_slice(digits);
        }
    }

    pub fn saturating_add(self, other: Nanos) -> Nanos {
        Nanos(self.0.saturating_add(other.0))
    }

    pub fn saturating_sub(self, other: Nanos) -> Nanos {
        Nanos(self.0.saturating_sub(other.0))
    }

    pub fn max(self, other: Nanos) -> Nanos {
        Nanos(self.0.max(other.0))
    }

    pub fn min(self, other: Nanos) -> Nanos {
        Nanos(self.0.min(other.0))
    }
}

impl std::ops::Add for Nanos {
    type Output = Nanos;
    fn add(self, o: Nanos) -> Nanos {
        Nanos(self.0 + o.0)
    }
}

impl std::ops::Sub for Nanos {
    type Output = Nanos;
    fn sub(self, o: Nanos) -> Nanos {
        Nanos(self.0 - o.0)
    }
}

impl std::ops::AddAssign for Nanos {
    fn add_assign(&mut self, o: Nanos) {
        self.0 += o.0;
    }
}

impl std::ops::SubAssign for Nanos {
    fn sub_assign(&mut self, o: Nanos) {
        self.0 -= o.0;
    }
}

impl std::iter::Sum for Nanos {
    fn sum<I: Iterator<Item = Nanos>>(iter: I) -> Nanos {
        Nanos(iter.map(|n| n.0).sum())
    }
}

impl fmt::Display for Nanos {
    /// Nine decimals, trailing zeros dropped: `0.0021` is one impression at CPM 2.10.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (sign, v) = if self.0 < 0 {
            ("-", self.0.unsigned_abs())
        } else {
            ("", self.0 as u64)
        };
        let (units, mut frac) = (v / 1_000_000_000, v % 1_000_000_000);
        if frac == 0 {
            return write!(f, "{sign}{units}");
        }
        let mut width = 9;
        while frac % 10 == 0 {
            frac /= 10;
            width -= 1;
        }
        write!(f, "{sign}{units}.{frac:0width$}")
    }
}

impl fmt::Display for Micros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::with_capacity(24);
        self.write_decimal(&mut out);
        f.write_str(std::str::from_utf8(&out).unwrap_or("?"))
    }
}

/// Configured amounts are written as decimal strings (`"2.50"`) or JSON numbers with at
/// most six decimals; both are read exactly.
impl<'de> Deserialize<'de> for Micros {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Micros;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a decimal amount such as \"2.50\" or 2.5")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Micros, E> {
                Micros::parse(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Micros, E> {
                i64::try_from(v)
                    .ok()
                    .and_then(|v| v.checked_mul(Micros::PER_UNIT))
                    .map(Micros)
                    .ok_or_else(|| E::custom("amount too large"))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Micros, E> {
                v.checked_mul(Micros::PER_UNIT)
                    .map(Micros)
                    .ok_or_else(|| E::custom("amount too large"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Micros, E> {
                // Go through the shortest decimal text of the float, which is exactly
                // what was written in the file for any amount with <= 6 decimals.
                Micros::parse(&format!("{v}")).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Micros {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exact_decimals() {
        assert_eq!(Micros::parse("2.50"), Ok(Micros(2_500_000)));
        assert_eq!(Micros::parse("0.000001"), Ok(Micros(1)));
        assert_eq!(Micros::parse("3"), Ok(Micros(3_000_000)));
        assert_eq!(Micros::parse("-1.5"), Ok(Micros(-1_500_000)));
        assert!(Micros::parse("0.0000001").is_err());
        assert!(Micros::parse("1e3").is_err());
        assert!(Micros::parse("").is_err());
        assert!(Micros::parse("99999999999999999").is_err());
    }

    #[test]
    fn writes_shortest_decimal() {
        let s = |m: i64| Micros(m).to_string();
        assert_eq!(s(2_500_000), "2.5");
        assert_eq!(s(36_000), "0.036");
        assert_eq!(s(3_000_000), "3");
        assert_eq!(s(1), "0.000001");
        assert_eq!(s(0), "0");
        assert_eq!(s(-1_250_000), "-1.25");
    }

    #[test]
    fn floats_round_to_micros() {
        assert_eq!(Micros::from_f64(0.03), Some(Micros(30_000)));
        assert_eq!(Micros::from_f64(2.5), Some(Micros(2_500_000)));
        assert_eq!(Micros::from_f64(-1.0), None);
        assert_eq!(Micros::from_f64(f64::NAN), None);
    }

    #[test]
    fn currency_conversion_never_overbids() {
        // 1 EUR = 1.08 USD: a 2.00 USD bid is 1.851851 EUR, rounded down.
        let rate = Micros(1_080_000);
        assert_eq!(Micros(2_000_000).from_usd(rate), Micros(1_851_851));
        assert_eq!(Micros(1_851_851).to_usd(rate), Micros(1_999_999));
        assert_eq!(Micros(1_000_000).to_usd(rate), Micros(1_080_000));
    }

    #[test]
    fn an_impression_costs_its_cpm_in_nanos() {
        // 1,000 impressions at a CPM of 2.10 cost exactly 2.10.
        let one = Micros(2_100_000).per_impression();
        let thousand: Nanos = (0..1000).map(|_| one).sum();
        assert_eq!(thousand, Micros(2_100_000).to_nanos());
        assert_eq!(one.to_string(), "0.0021");
        assert_eq!(
            Micros(1_234_567).per_impression().to_string(),
            "0.001234567"
        );
        assert_eq!(Nanos(-5_000_000_000).to_string(), "-5");
        assert_eq!(one.as_micros_f64(), 2100.0);
        let micros = |n: i64| {
            let mut out = Vec::new();
            Nanos(n).write_micros(&mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(micros(1_750_000), "1750");
        assert_eq!(micros(1_234_567), "1234.567");
        assert_eq!(micros(1_234_560), "1234.56");
        assert_eq!(micros(5), "0.005");
        assert_eq!(micros(-50), "-0.05");
    }

    #[test]
    fn config_amounts_read_exactly() {
        let m: Micros = serde_json::from_str("2.35").unwrap();
        assert_eq!(m, Micros(2_350_000));
        let m: Micros = serde_json::from_str("\"0.10\"").unwrap();
        assert_eq!(m, Micros(100_000));
        let m: Micros = serde_json::from_str("7").unwrap();
        assert_eq!(m, Micros(7_000_000));
    }
}
