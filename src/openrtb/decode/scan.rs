//! An on-demand JSON reader over the body: it parses only what the model asks for and
//! skips everything else without building anything. It checks the whole body is JSON
//! (RFC 8259: grammar, escapes, UTF-8, no control characters in strings, nothing after
//! the value) but only turns into values the strings and numbers the model keeps.
//!
//! Strings borrow from the body. A string with escapes is unescaped in place, which never
//! needs more room than the escaped text had, so every string borrows.

use std::mem;

use super::model::Source;
use super::tape::{Malformed, Read};
use crate::openrtb::lenient::Num;
use crate::openrtb::request::Str;

/// Deepest nesting of objects and arrays accepted (serde_json's default limit).
const MAX_DEPTH: u32 = 128;

/// Reads the body front to back. Each read consumes one value and the whitespace
/// before it.
pub(crate) struct Scanner<'a> {
    /// The unread part of the body. Read parts are split off, so strings taken from
    /// them can borrow from the body for `'a` while reading goes on.
    rest: &'a mut [u8],
    depth: u32,
}

impl<'a> Scanner<'a> {
    pub(crate) fn new(body: &'a mut [u8]) -> Self {
        Scanner {
            rest: body,
            depth: 0,
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    #[inline]
    fn bump(&mut self, n: usize) {
        let rest = mem::take(&mut self.rest);
        self.rest = rest.get_mut(n..).unwrap_or_default();
    }

    /// Skips whitespace and returns the next byte, not consuming it.
    #[inline]
    fn next_token(&mut self) -> Read<u8> {
        match self.peek() {
            Some(b' ' | b'\n' | b'\r' | b'\t') => {}
            Some(b) => return Ok(b),
            None => return Err(Malformed),
        }
        let n = whitespace_len(self.rest);
        self.bump(n);
        self.peek().ok_or(Malformed)
    }

    /// Consumes `byte` after optional whitespace.
    #[inline]
    fn expect(&mut self, byte: u8) -> Read<()> {
        if self.next_token()? != byte {
            return Err(Malformed);
        }
        self.bump(1);
        Ok(())
    }

    /// After an element of an object or array: `true` if another follows (`,`), `false`
    /// at the end (`close`).
    #[inline]
    fn more(&mut self, close: u8) -> Read<bool> {
        let b = self.next_token()?;
        self.bump(1);
        match b {
            b',' => Ok(true),
            _ if b == close => Ok(false),
            _ => Err(Malformed),
        }
    }

    /// Opens an object or array: `open` at the cursor is consumed; `false` if it closes at once.
    fn open(&mut self, close: u8) -> Read<bool> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Malformed);
        }
        self.bump(1);
        if self.next_token()? == close {
            self.bump(1);
            self.depth -= 1;
            return Ok(false);
        }
        Ok(true)
    }

    /// The string at the cursor (its opening quote is next), unescaped in place; the
    /// flag says whether it may hold non-ASCII bytes.
    fn raw_string(&mut self) -> Read<(&'a [u8], bool)> {
        let (stop, non_ascii) = string_stop(self.rest.get(1..).unwrap_or_default());
        let end = stop.ok_or(Malformed)? + 1;
        match self.rest.get(end) {
            Some(b'"') => {
                let (head, tail) = mem::take(&mut self.rest).split_at_mut(end + 1);
                self.rest = tail;
                let head: &'a [u8] = head;
                Ok((head.get(1..end).unwrap_or_default(), non_ascii))
            }
            Some(b'\\') => self.unescape(end),
            _ => Err(Malformed),
        }
    }

    /// Unescapes the string at the cursor in place, from its first backslash at `from`.
    fn unescape(&mut self, from: usize) -> Read<(&'a [u8], bool)> {
        let buf = mem::take(&mut self.rest);
        let (mut read, mut write) = (from, from);
        loop {
            match buf.get(read) {
                Some(b'"') => break,
                Some(b'\\') => {
                    let (ch, len) = escape(buf.get(read + 1..).unwrap_or_default())?;
                    let mut utf8 = [0; 4];
                    let bytes = ch.encode_utf8(&mut utf8).as_bytes();
                    // An escape is never shorter than the UTF-8 it stands for.
                    buf.get_mut(write..write + bytes.len())
                        .ok_or(Malformed)?
                        .copy_from_slice(bytes);
                    write += bytes.len();
                    read += 1 + len;
                }
                Some(_) => return Err(Malformed),
                None => return Err(Malformed),
            }
            let (stop, _) = string_stop(buf.get(read..).unwrap_or_default());
            let run = stop.ok_or(Malformed)?;
            buf.copy_within(read..read + run, write);
            read += run;
            write += run;
        }
        let (head, tail) = buf.split_at_mut(read + 1);
        self.rest = tail;
        let head: &'a [u8] = head;
        Ok((head.get(1..write).unwrap_or_default(), true))
    }

    /// A string value as text.
    fn string(&mut self) -> Read<&'a str> {
        let (bytes, _) = self.raw_string()?;
        std::str::from_utf8(bytes).map_err(|_| Malformed)
    }

    /// Checks and skips the string at the cursor.
    fn skip_string(&mut self) -> Read<()> {
        let body = self.rest.get(1..).unwrap_or_default();
        let mut at = 0;
        let mut non_ascii = false;
        loop {
            let (stop, more) = string_stop(body.get(at..).unwrap_or_default());
            non_ascii |= more;
            at += stop.ok_or(Malformed)?;
            match body.get(at) {
                Some(b'"') => break,
                Some(b'\\') => at += 1 + escape(body.get(at + 1..).unwrap_or_default())?.1,
                _ => return Err(Malformed),
            }
        }
        if non_ascii {
            std::str::from_utf8(body.get(..at).unwrap_or_default()).map_err(|_| Malformed)?;
        }
        self.bump(at + 2);
        Ok(())
    }

    /// Reads a number in JSON's grammar, as an integer if it is written as one and
    /// fits in 64 bits (as serde_json does), else as the nearest `f64`.
    fn number(&mut self) -> Read<Num> {
        let (len, integer) = number_len(self.rest).ok_or(Malformed)?;
        let text = self.rest.get(..len).unwrap_or_default();
        let num = match integer.then(|| integer_value(text)).flatten() {
            Some(i) => Num::Int(i),
            None => {
                let text = std::str::from_utf8(text).map_err(|_| Malformed)?;
                Num::Float(text.parse().map_err(|_| Malformed)?)
            }
        };
        self.bump(len);
        Ok(num)
    }

    /// Consumes the literal `word` (`true`, `false`, `null`).
    fn literal(&mut self, word: &[u8]) -> Read<()> {
        if !self.rest.starts_with(word) {
            return Err(Malformed);
        }
        self.bump(word.len());
        Ok(())
    }

    /// After the top-level value: nothing but whitespace may follow.
    pub(crate) fn finish(&self) -> Read<()> {
        if self
            .rest
            .iter()
            .all(|b| matches!(b, b' ' | b'\n' | b'\r' | b'\t'))
        {
            Ok(())
        } else {
            Err(Malformed)
        }
    }
}

impl<'a> Source<'a> for Scanner<'a> {
    fn object(&mut self, mut field: impl FnMut(&mut Self, &'a [u8]) -> Read<()>) -> Read<bool> {
        match self.next_token()? {
            b'{' => {}
            b'n' => return self.literal(b"null").map(|()| false),
            _ => return Err(Malformed),
        }
        if self.open(b'}')? {
            loop {
                if self.next_token()? != b'"' {
                    return Err(Malformed);
                }
                let (key, non_ascii) = self.raw_string()?;
                if non_ascii {
                    std::str::from_utf8(key).map_err(|_| Malformed)?;
                }
                self.expect(b':')?;
                field(self, key)?;
                if !self.more(b'}')? {
                    break;
                }
            }
            self.depth -= 1;
        }
        Ok(true)
    }

    fn array(&mut self, mut elem: impl FnMut(&mut Self) -> Read<()>) -> Read<()> {
        match self.next_token()? {
            b'[' => {}
            b'n' => return self.literal(b"null"),
            _ => return Err(Malformed),
        }
        if self.open(b']')? {
            loop {
                elem(self)?;
                if !self.more(b']')? {
                    break;
                }
            }
            self.depth -= 1;
        }
        Ok(())
    }

    fn skip(&mut self) -> Read<()> {
        match self.next_token()? {
            b'"' => self.skip_string(),
            b'{' => self.object(|s, _| s.skip()).map(drop),
            b'[' => self.array(Self::skip),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => {
                let (len, _) = number_len(self.rest).ok_or(Malformed)?;
                self.bump(len);
                Ok(())
            }
            _ => Err(Malformed),
        }
    }

    fn opt_str(&mut self) -> Read<Option<Str<'a>>> {
        match self.next_token()? {
            b'"' => Ok(Some(Str::borrowed(self.string()?))),
            b'n' => self.literal(b"null").map(|()| None),
            _ => Err(Malformed),
        }
    }

    fn num(&mut self) -> Read<Num> {
        match self.next_token()? {
            b'"' => Ok(Num::parse(self.string()?)?),
            b'-' | b'0'..=b'9' => self.number(),
            b't' => self.literal(b"true").map(|()| Num::Int(1)),
            b'f' => self.literal(b"false").map(|()| Num::Int(0)),
            b'n' => self.literal(b"null").map(|()| Num::Null),
            _ => Err(Malformed),
        }
    }
}

/// Decodes the escape after a backslash (`s` starts after it): the character and how
/// many bytes of `s` it took. A `\u` surrogate pair is one character; a lone surrogate
/// is an error, as in serde_json.
fn escape(s: &[u8]) -> Read<(char, usize)> {
    let simple = match s.first() {
        Some(b'"') => '"',
        Some(b'\\') => '\\',
        Some(b'/') => '/',
        Some(b'b') => '\u{8}',
        Some(b'f') => '\u{c}',
        Some(b'n') => '\n',
        Some(b'r') => '\r',
        Some(b't') => '\t',
        Some(b'u') => {
            let hi = hex4(s.get(1..5))?;
            if !(0xD800..0xE000).contains(&hi) {
                return Ok((char::from_u32(hi).ok_or(Malformed)?, 5));
            }
            if hi >= 0xDC00 || s.get(5..7) != Some(b"\\u") {
                return Err(Malformed);
            }
            let lo = hex4(s.get(7..11))?;
            if !(0xDC00..0xE000).contains(&lo) {
                return Err(Malformed);
            }
            let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
            return Ok((char::from_u32(c).ok_or(Malformed)?, 11));
        }
        _ => return Err(Malformed),
    };
    Ok((simple, 1))
}

/// The value of an integer already checked against JSON's grammar, if it fits in an
/// `i64` or a `u64`.
fn integer_value(text: &[u8]) -> Option<i128> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', digits)) => (true, digits),
        _ => (false, text),
    };
    if digits.len() > 20 {
        return None;
    }
    let magnitude = digits.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })?;
    let value = if negative {
        -(magnitude as i128)
    } else {
        magnitude as i128
    };
    (value >= i64::MIN as i128).then_some(value)
}

fn hex4(s: Option<&[u8]>) -> Read<u32> {
    let s = s.ok_or(Malformed)?;
    s.iter().try_fold(0u32, |acc, &b| {
        let d = (b as char).to_digit(16).ok_or(Malformed)?;
        Ok(acc * 16 + d)
    })
}

/// The length of the JSON number at the start of `s`, and whether it is written as an
/// integer (no fraction, no exponent); `None` if `s` does not start with a number.
fn number_len(s: &[u8]) -> Option<(usize, bool)> {
    let digits = |from: usize| {
        s.iter()
            .skip(from)
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let mut i = usize::from(s.first() == Some(&b'-'));
    match s.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i += digits(i),
        _ => return None,
    }
    let mut integer = true;
    if s.get(i) == Some(&b'.') {
        let n = digits(i + 1);
        if n == 0 {
            return None;
        }
        i += 1 + n;
        integer = false;
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(s.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let n = digits(i);
        if n == 0 {
            return None;
        }
        i += n;
        integer = false;
    }
    Some((i, integer))
}

/// The number of whitespace bytes at the start of `s`; eight at a time, as pretty-printed
/// bodies hold long runs of indentation.
#[inline]
fn whitespace_len(s: &[u8]) -> usize {
    let mut chunks = s.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let v = u64::from_le_bytes(word);
        let ws = equal(v, b' ') | equal(v, b'\n') | equal(v, b'\r') | equal(v, b'\t');
        let other = !ws & HIGH;
        if other != 0 {
            return at + (other.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    at + chunks
        .remainder()
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\n' | b'\r' | b'\t'))
        .count()
}

/// Flags (high bit) exactly the bytes of `v` equal to `b`, with no carry between bytes.
#[inline]
fn equal(v: u64, b: u8) -> u64 {
    let x = v ^ (ONES * b as u64);
    !((((x & !HIGH) + !HIGH) | x) & HIGH) & HIGH
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Flags (high bit) the bytes of `v` below `n` (`n` <= 128). The lowest flag is exact:
/// a borrow only travels up from a flagged byte.
#[inline]
fn below(v: u64, n: u8) -> u64 {
    v.wrapping_sub(ONES * n as u64) & !v & HIGH
}

/// Within a string's text: the index of the first byte that ends a plain run (`"`, `\`
/// or a control character), and whether a non-ASCII byte comes before it. Reads eight
/// bytes at a time.
#[inline]
fn string_stop(s: &[u8]) -> (Option<usize>, bool) {
    let mut non_ascii = false;
    let mut chunks = s.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let v = u64::from_le_bytes(word);
        let stop = below(v ^ (ONES * b'"' as u64), 1)
            | below(v ^ (ONES * b'\\' as u64), 1)
            | below(v, 0x20);
        if stop != 0 {
            let k = stop.trailing_zeros() / 8;
            let before = (1u64 << (k * 8)) - 1;
            return (Some(at + k as usize), non_ascii | (v & HIGH & before != 0));
        }
        non_ascii |= v & HIGH != 0;
        at += 8;
    }
    for &b in chunks.remainder() {
        if b == b'"' || b == b'\\' || b < 0x20 {
            return (Some(at), non_ascii);
        }
        non_ascii |= b >= 0x80;
        at += 1;
    }
    (None, non_ascii)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_stop_finds_the_first_special_byte() {
        assert_eq!(string_stop(b"abc\"def"), (Some(3), false));
        assert_eq!(string_stop(b"abcdefghij\\k"), (Some(10), false));
        assert_eq!(string_stop(b"abcdefgh\x01"), (Some(8), false));
        assert_eq!(string_stop("é\"".as_bytes()), (Some(2), true));
        assert_eq!(string_stop("abcdefgé\"".as_bytes()), (Some(9), true));
        assert_eq!(string_stop(b"abcdefg\"\xff"), (Some(7), false));
        assert_eq!(string_stop(b"plain"), (None, false));
        // A byte just above a stop byte must not hide it or be taken for one.
        assert_eq!(string_stop(b"#]!\x1f"), (Some(3), false));
    }

    #[test]
    fn whitespace_runs_are_measured() {
        assert_eq!(whitespace_len(b"  \n\t\r  x"), 7);
        assert_eq!(whitespace_len(b"\n                \"id\""), 17);
        assert_eq!(whitespace_len(b"x        "), 0);
        assert_eq!(whitespace_len(b"         "), 9);
        assert_eq!(whitespace_len(b"        \x0b"), 8);
        assert_eq!(whitespace_len(b"   \xa0 "), 3);
    }

    #[test]
    fn integers_fit_64_bits() {
        assert_eq!(integer_value(b"-0"), Some(0));
        assert_eq!(
            integer_value(b"18446744073709551615"),
            Some(u64::MAX as i128)
        );
        assert_eq!(integer_value(b"18446744073709551616"), None);
        assert_eq!(
            integer_value(b"-9223372036854775808"),
            Some(i64::MIN as i128)
        );
        assert_eq!(integer_value(b"-9223372036854775809"), None);
    }

    #[test]
    fn numbers_follow_json_grammar() {
        assert_eq!(number_len(b"0,"), Some((1, true)));
        assert_eq!(number_len(b"-12.5e+3}"), Some((8, false)));
        assert_eq!(number_len(b"012"), Some((1, true)));
        assert_eq!(number_len(b"1."), None);
        assert_eq!(number_len(b"-"), None);
        assert_eq!(number_len(b".5"), None);
        assert_eq!(number_len(b"1e"), None);
    }

    #[test]
    fn escapes_decode_to_characters() {
        assert_eq!(escape(b"/x"), Ok(('/', 1)));
        assert_eq!(escape(b"u00e9"), Ok(('é', 5)));
        assert_eq!(escape(b"ud83d\\ude00"), Ok(('😀', 11)));
        assert_eq!(escape(b"ud83d"), Err(Malformed));
        assert_eq!(escape(b"ude00"), Err(Malformed));
        assert_eq!(escape(b"u12g4"), Err(Malformed));
        assert_eq!(escape(b"x"), Err(Malformed));
    }

    #[test]
    fn unescapes_in_place() {
        let mut body = br#""a\"b\/c\u00e9\n" ,"#.to_vec();
        let mut s = Scanner::new(&mut body);
        assert_eq!(s.string(), Ok("a\"b/c\u{e9}\n"));
        assert_eq!(s.more(b'}'), Ok(true));
    }
}
