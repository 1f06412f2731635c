//! Lenient readers: exchanges send `"300"` where the spec says `300`, `300.0` where it
//! says an integer, and `null` where they mean "absent". Each number reader accepts a
//! JSON number, a boolean (as 0/1) or a string holding a number; `null` and `""` read as
//! absent. Anything else is a decode error (400).
//!
//! The rules live in `Num` and its narrowing methods, shared by the serde readers below
//! (used by the derives in `request.rs`) and by the reader behind
//! [`Decoder`](super::Decoder), so both decode every body the same way.

#![forbid(unsafe_code)]

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};

/// A number as read from JSON, before it is narrowed to the field's type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Num {
    Int(i128),
    Float(f64),
    Null,
}

/// A value that is not an acceptable number for its field: not a number, not finite,
/// fractional where an integer is expected, negative, or too large.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadNumber;

impl Num {
    /// Reads a number written as a string: `" 300 "`, `"1.5"`, `"1e3"`; `""` is absent.
    pub(crate) fn parse(s: &str) -> Result<Num, BadNumber> {
        let t = s.trim();
        if t.is_empty() {
            return Ok(Num::Null);
        }
        if let Ok(i) = t.parse::<i64>() {
            return Ok(Num::Int(i as i128));
        }
        match t.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Num::Float(f)),
            _ => Err(BadNumber),
        }
    }

    /// Narrows to an integer in `min..=max`; floats must be whole (`250.0`).
    fn int(self, min: i128, max: i128) -> Result<Option<i128>, BadNumber> {
        match self {
            Num::Null => Ok(None),
            Num::Int(i) if (min..=max).contains(&i) => Ok(Some(i)),
            Num::Float(f) if f.fract() == 0.0 && f >= min as f64 && f <= max as f64 => {
                Ok(Some(f as i128))
            }
            _ => Err(BadNumber),
        }
    }

    pub(crate) fn opt_u32(self) -> Result<Option<u32>, BadNumber> {
        Ok(self.int(0, u32::MAX as i128)?.map(|i| i as u32))
    }

    pub(crate) fn opt_u8(self) -> Result<Option<u8>, BadNumber> {
        Ok(self.int(0, u8::MAX as i128)?.map(|i| i as u8))
    }

    /// A non-negative, finite decimal (prices, floors); absent reads as 0.
    pub(crate) fn price(self) -> Result<f64, BadNumber> {
        match self {
            Num::Null => Ok(0.0),
            Num::Int(i) if i >= 0 => Ok(i as f64),
            Num::Float(f) if f.is_finite() && f >= 0.0 => Ok(f),
            _ => Err(BadNumber),
        }
    }
}

struct NumVisitor;

impl<'de> Visitor<'de> for NumVisitor {
    type Value = Num;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number or a string holding a number")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Num, E> {
        Ok(Num::Int(v as i128))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Num, E> {
        Ok(Num::Int(v as i128))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Num, E> {
        Ok(Num::Float(v))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Num, E> {
        // Seen in the wild for flags such as `test` and `secure`.
        Ok(Num::Int(v as i128))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Num, E> {
        Num::parse(v).map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Num, E> {
        Ok(Num::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Num, E> {
        Ok(Num::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Num, D::Error> {
        d.deserialize_any(NumVisitor)
    }
}

fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Num, D::Error> {
    d.deserialize_any(NumVisitor)
}

fn out_of_range<E: de::Error>(_: BadNumber) -> E {
    E::custom("number out of range")
}

/// An optional `u32`; `null` and `""` read as `None`.
pub fn opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    read(d)?.opt_u32().map_err(out_of_range)
}

/// A `u32`; `null` and `""` read as 0.
pub fn u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    opt_u32(d).map(Option::unwrap_or_default)
}

/// An optional `u8`; `null` and `""` read as `None`.
pub fn opt_u8<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    read(d)?.opt_u8().map_err(out_of_range)
}

/// A `u8`; `null` and `""` read as 0.
pub fn u8<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    opt_u8(d).map(Option::unwrap_or_default)
}

/// A non-negative, finite decimal (prices, floors). `null` reads as 0.
pub fn f64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    read(d)?
        .price()
        .map_err(|_| de::Error::custom("expected a non-negative number"))
}

/// Any value whose `null` means the same as its absence: `"bcat": null` reads as no
/// blocked categories, `"id": null` as an empty id (which validation then rejects).
pub fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

/// An array of small integers (attribute and protocol lists), each read leniently;
/// `null` elements are dropped and a `null` array reads as empty.
pub fn vec_u32<'de, D, L>(d: D) -> Result<L, D::Error>
where
    D: Deserializer<'de>,
    L: Default + Extend<u32>,
{
    struct V<L>(std::marker::PhantomData<L>);
    impl<'de, L: Default + Extend<u32>> Visitor<'de> for V<L> {
        type Value = L;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an array of integers")
        }
        fn visit_unit<E: de::Error>(self) -> Result<L, E> {
            Ok(L::default())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<L, A::Error> {
            let mut out = L::default();
            while let Some(LenientU32(v)) = seq.next_element()? {
                out.extend(v);
            }
            Ok(out)
        }
    }
    d.deserialize_any(V(std::marker::PhantomData))
}

struct LenientU32(Option<u32>);

impl<'de> Deserialize<'de> for LenientU32 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        opt_u32(d).map(LenientU32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_hold_numbers() {
        assert_eq!(Num::parse(" 300 "), Ok(Num::Int(300)));
        assert_eq!(Num::parse("1.5"), Ok(Num::Float(1.5)));
        assert_eq!(Num::parse(""), Ok(Num::Null));
        assert_eq!(Num::parse("abc"), Err(BadNumber));
        assert_eq!(Num::parse("NaN"), Err(BadNumber));
        assert_eq!(Num::parse("inf"), Err(BadNumber));
    }

    #[test]
    fn integers_narrow_exactly() {
        assert_eq!(Num::Float(250.0).opt_u32(), Ok(Some(250)));
        assert_eq!(Num::Float(250.5).opt_u32(), Err(BadNumber));
        assert_eq!(Num::Int(-1).opt_u32(), Err(BadNumber));
        assert_eq!(Num::Int(u32::MAX as i128 + 1).opt_u32(), Err(BadNumber));
        assert_eq!(Num::Int(256).opt_u8(), Err(BadNumber));
        assert_eq!(Num::Null.opt_u8(), Ok(None));
    }

    #[test]
    fn prices_are_non_negative() {
        assert_eq!(Num::Int(2).price(), Ok(2.0));
        assert_eq!(Num::Null.price(), Ok(0.0));
        assert_eq!(Num::Float(-0.01).price(), Err(BadNumber));
        assert_eq!(Num::Int(-1).price(), Err(BadNumber));
    }
}
