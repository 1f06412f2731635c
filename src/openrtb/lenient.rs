//! Lenient number readers: exchanges send `"300"` where the spec says `300`, and
//! `300.0` where it says an integer. Each reader accepts a JSON number or a string
//! holding one; `null` reads as absent. Anything else is a decode error (400).

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};

/// A number as read from JSON, before it is narrowed to the field's type.
enum Num {
    Int(i128),
    Float(f64),
    Null,
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
        let t = v.trim();
        if t.is_empty() {
            return Ok(Num::Null);
        }
        if let Ok(i) = t.parse::<i64>() {
            return Ok(Num::Int(i as i128));
        }
        match t.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Num::Float(f)),
            _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
        }
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

fn to_int<E: de::Error>(n: Num, min: i128, max: i128) -> Result<Option<i128>, E> {
    match n {
        Num::Null => Ok(None),
        Num::Int(i) if (min..=max).contains(&i) => Ok(Some(i)),
        Num::Float(f) if f.fract() == 0.0 && f >= min as f64 && f <= max as f64 => {
            Ok(Some(f as i128))
        }
        _ => Err(E::custom("number out of range")),
    }
}

pub fn opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    Ok(to_int(read(d)?, 0, u32::MAX as i128)?.map(|i| i as u32))
}

pub fn u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    opt_u32(d).map(Option::unwrap_or_default)
}

pub fn opt_u8<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    Ok(to_int(read(d)?, 0, u8::MAX as i128)?.map(|i| i as u8))
}

pub fn u8<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    opt_u8(d).map(Option::unwrap_or_default)
}

/// A non-negative, finite decimal (prices, floors). `null` reads as 0.
pub fn f64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    match read(d)? {
        Num::Null => Ok(0.0),
        Num::Int(i) if i >= 0 => Ok(i as f64),
        Num::Float(f) if f.is_finite() && f >= 0.0 => Ok(f),
        _ => Err(de::Error::custom("expected a non-negative number")),
    }
}

/// An array of small integers (attribute and protocol lists), each read leniently.
pub fn vec_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u32>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<u32>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an array of integers")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Vec<u32>, E> {
            Ok(Vec::new())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u32>, A::Error> {
            let mut out = Vec::new();
            while let Some(LenientU32(v)) = seq.next_element()? {
                if let Some(v) = v {
                    out.push(v);
                }
            }
            Ok(out)
        }
    }
    d.deserialize_any(V)
}

struct LenientU32(Option<u32>);

impl<'de> serde::Deserialize<'de> for LenientU32 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        opt_u32(d).map(LenientU32)
    }
}
