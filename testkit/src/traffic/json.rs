//! A tiny JSON writer that keeps fields in the order they are written (as exchanges
//! send them: `id` first), escapes strings correctly, and can write `/` as `\/` the
//! way some exchanges do.

use std::fmt::{Display, Write};

/// Writes one JSON object into `out`, filled by `f`.
pub fn object(out: &mut String, f: impl FnOnce(&mut Obj<'_>)) {
    out.push('{');
    let mut o = Obj {
        out,
        first: true,
        escape_slash: false,
    };
    f(&mut o);
    o.out.push('}');
}

/// An object being written.
pub struct Obj<'a> {
    out: &'a mut String,
    first: bool,
    escape_slash: bool,
}

/// An array being written.
pub struct Arr<'a> {
    out: &'a mut String,
    first: bool,
    escape_slash: bool,
}

/// Appends `s` as a JSON string literal.
pub fn write_str(out: &mut String, s: &str, escape_slash: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' if escape_slash => out.push_str("\\/"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

impl<'a> Obj<'a> {
    fn key(&mut self, k: &str) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        write_str(self.out, k, false);
        self.out.push(':');
    }

    /// Writes `/` as `\/` in the string values that follow (in this object and below).
    pub fn escape_slashes(&mut self, on: bool) -> &mut Self {
        self.escape_slash = on;
        self
    }

    /// A string field.
    pub fn str(&mut self, k: &str, v: &str) -> &mut Self {
        self.key(k);
        write_str(self.out, v, self.escape_slash);
        self
    }

    /// A number (or any value whose `Display` is valid JSON) field.
    pub fn num(&mut self, k: &str, v: impl Display) -> &mut Self {
        self.key(k);
        let _ = write!(self.out, "{v}");
        self
    }

    /// A number written as a string, as some exchanges send `"300"` or `"0.50"`.
    pub fn num_str(&mut self, k: &str, v: impl Display) -> &mut Self {
        self.key(k);
        let _ = write!(self.out, "\"{v}\"");
        self
    }

    /// A nested object field.
    pub fn obj(&mut self, k: &str, f: impl FnOnce(&mut Obj<'_>)) -> &mut Self {
        self.key(k);
        self.out.push('{');
        let mut o = Obj {
            out: self.out,
            first: true,
            escape_slash: self.escape_slash,
        };
        f(&mut o);
        self.out.push('}');
        self
    }

    /// A nested array field.
    pub fn arr(&mut self, k: &str, f: impl FnOnce(&mut Arr<'_>)) -> &mut Self {
        self.key(k);
        self.out.push('[');
        let mut a = Arr {
            out: self.out,
            first: true,
            escape_slash: self.escape_slash,
        };
        f(&mut a);
        self.out.push(']');
        self
    }

    /// An array of strings.
    pub fn strs<S: AsRef<str>>(&mut self, k: &str, vs: impl IntoIterator<Item = S>) -> &mut Self {
        self.arr(k, |a| {
            for v in vs {
                a.str(v.as_ref());
            }
        })
    }

    /// An array of numbers.
    pub fn nums<N: Display>(&mut self, k: &str, vs: impl IntoIterator<Item = N>) -> &mut Self {
        self.arr(k, |a| {
            for v in vs {
                a.num(v);
            }
        })
    }
}

impl<'a> Arr<'a> {
    fn sep(&mut self) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
    }

    /// A string element.
    pub fn str(&mut self, v: &str) -> &mut Self {
        self.sep();
        write_str(self.out, v, self.escape_slash);
        self
    }

    /// A number element.
    pub fn num(&mut self, v: impl Display) -> &mut Self {
        self.sep();
        let _ = write!(self.out, "{v}");
        self
    }

    /// An object element.
    pub fn obj(&mut self, f: impl FnOnce(&mut Obj<'_>)) -> &mut Self {
        self.sep();
        self.out.push('{');
        let mut o = Obj {
            out: self.out,
            first: true,
            escape_slash: self.escape_slash,
        };
        f(&mut o);
        self.out.push('}');
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_valid_ordered_json_with_escapes() {
        let mut s = String::new();
        object(&mut s, |o| {
            o.str("id", "a\"b\\c\u{1}é")
                .num("n", 3)
                .num_str("f", "0.50");
            o.obj("site", |o| {
                o.escape_slashes(true).str("page", "https://x/y");
            });
            o.strs("cur", ["USD"]).nums("battr", [1, 2]);
            o.arr("imp", |a| {
                a.obj(|o| {
                    o.str("id", "1");
                });
            });
        });
        assert!(s.starts_with("{\"id\":"));
        assert!(s.contains(r#""page":"https:\/\/x\/y""#));
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["id"], "a\"b\\c\u{1}é");
        assert_eq!(v["site"]["page"], "https://x/y");
        assert_eq!(v["f"], "0.50");
        assert_eq!(v["battr"][1], 2);
        assert_eq!(v["imp"][0]["id"], "1");
    }
}
