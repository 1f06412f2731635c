//! An on-demand reader over the scan's token offsets: each read looks at the token
//! under the cursor and consumes one whole value. Only what the model keeps is
//! converted: a string is located (its closing quote is the last byte before the next
//! token that is not whitespace) and borrowed from the body; a number is parsed. A
//! value the model does not hold (`ext`, `ua`, a whole `regs` object) is skipped token
//! by token, checking its grammar, without building anything.
//!
//! Every read checks the token it gets, so a body that does not have the expected
//! shape is a [`Malformed`] error, never a panic.

use super::scan::Tokens;
use super::{Malformed, MAX_DEPTH};
use crate::openrtb::lenient::Num;
use crate::openrtb::request::{List, Str};

pub(crate) type Read<T> = Result<T, Malformed>;

/// Reads values off the body, front to back. Each read consumes exactly one value.
///
/// The body is held as the part not yet handed out: a string read is split off the
/// front and lent to the request for the body's whole lifetime (after unescaping it in
/// place, when it has escapes), so strings borrow from the body without any copy.
pub(crate) struct Cursor<'t, 'a> {
    /// Token offsets, ending with the body's length as an end marker.
    tokens: &'t [u32],
    /// Escape offsets, ending with `u32::MAX`, and the first that may lie ahead.
    escapes: &'t [u32],
    escape: usize,
    /// The next token to read.
    pos: usize,
    /// The body from `offset` on (with its padding).
    rest: &'a mut [u8],
    offset: usize,
    /// Objects and arrays open around the cursor.
    depth: usize,
}

#[inline(always)]
const fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// A byte that may follow a number or literal: anything that is not part of one.
#[inline(always)]
fn ends_scalar(b: u8) -> bool {
    ENDS_SCALAR[b as usize]
}

/// [`ends_scalar`] as a table: whitespace, `, : { } [ ]` and `"`.
static ENDS_SCALAR: [bool; 256] = {
    let mut t = [false; 256];
    let ends = b" \t\n\r,:{}[]\"";
    let mut i = 0;
    while i < ends.len() {
        t[ends[i] as usize] = true;
        i += 1;
    }
    t
};

/// Bytes of a scalar [`Cursor::scalar`] looks at: the longest fast-path integer and the
/// byte after it.
const SCALAR_WINDOW: usize = 24;
const _: () = assert!(SCALAR_WINDOW <= super::PADDING);

impl<'t, 'a> Cursor<'t, 'a> {
    /// A cursor at the first token. `body` is the whole padded body the scan read,
    /// `tokens` what it found.
    ///
    /// # Safety
    /// `tokens` must be what [`scan::tokens`](super::scan::tokens) found in this very
    /// `body`, unchanged since: the strings the cursor lends out are taken as UTF-8
    /// without checking, because the scan checked the whole body.
    pub(crate) unsafe fn new(tokens: &'t Tokens, body: &'a mut [u8]) -> Self {
        Cursor {
            tokens: &tokens.offsets,
            escapes: &tokens.escapes,
            escape: 0,
            pos: 0,
            rest: body,
            offset: 0,
            depth: 0,
        }
    }

    /// Where the cursor stopped: the body offset of the last token it took (for an
    /// error message; a failed read stops at or just after the token it failed on).
    pub(crate) fn stopped_at(&self) -> usize {
        let last = self.pos.saturating_sub(1);
        self.tokens.get(last).map_or(0, |&t| t as usize)
    }

    /// True if a string read so far was unescaped in place (the body is then no longer
    /// the JSON that was received).
    pub(crate) fn rewrote_body(&self) -> bool {
        self.escape > 0
    }

    /// True once every token has been read (only the end marker is left).
    pub(crate) fn at_end(&self) -> bool {
        self.pos + 1 >= self.tokens.len()
    }

    /// The byte at body offset `at`, which must not have been handed out.
    #[inline(always)]
    fn byte(&self, at: usize) -> Read<u8> {
        self.rest
            .get(at.wrapping_sub(self.offset))
            .copied()
            .ok_or(Malformed)
    }

    /// The offset of the next token, not consumed.
    #[inline(always)]
    fn peek_at(&self) -> Read<usize> {
        Ok(*self.tokens.get(self.pos).ok_or(Malformed)? as usize)
    }

    /// The next token's first byte and offset, consumed. The end marker's byte is
    /// padding, a space, which no read accepts.
    #[inline(always)]
    fn next(&mut self) -> Read<(u8, usize)> {
        let at = self.peek_at()?;
        self.pos += 1;
        Ok((self.byte(at)?, at))
    }

    /// Consumes the next token, which must be `want`.
    #[inline(always)]
    fn expect(&mut self, want: u8) -> Read<()> {
        match self.next()? {
            (b, _) if b == want => Ok(()),
            _ => Err(Malformed),
        }
    }

    /// One more level of nesting, within serde_json's limit.
    #[inline(always)]
    fn enter(&mut self, levels: usize) -> Read<()> {
        if self.depth + levels >= MAX_DEPTH {
            return Err(Malformed);
        }
        Ok(())
    }

    /// The closing quote of the string opened at `open`: only whitespace lies between
    /// it and the next token.
    #[inline(always)]
    fn closing_quote(&self, open: usize) -> Read<usize> {
        let mut close = self.peek_at()?;
        loop {
            close = close
                .checked_sub(1)
                .filter(|&c| c > open)
                .ok_or(Malformed)?;
            match self.byte(close)? {
                b'"' => return Ok(close),
                b if is_space(b) => {}
                _ => return Err(Malformed),
            }
        }
    }

    /// The string whose opening quote (already consumed) is at `open`, unescaped and
    /// lent out for the body's lifetime.
    #[inline]
    fn string(&mut self, open: usize) -> Read<&'a str> {
        let close = self.closing_quote(open)?;
        let rest = std::mem::take(&mut self.rest);
        let (_, rest) = rest
            .split_at_mut_checked(open + 1 - self.offset)
            .ok_or(Malformed)?;
        let (text, rest) = rest
            .split_at_mut_checked(close - open - 1)
            .ok_or(Malformed)?;
        self.rest = rest;
        self.offset = close;
        // Strings are read in order: escapes before this one belong to strings skipped.
        let escape = loop {
            let at = *self.escapes.get(self.escape).ok_or(Malformed)? as usize;
            if at > open {
                break at;
            }
            self.escape += 1;
        };
        let text = if escape < close {
            unescape(text)?
        } else {
            text
        };
        // SAFETY: the scan checked the body is UTF-8 (the contract of `Cursor::new`), a
        // string's bytes start and end at ASCII quotes, and unescaping writes only whole
        // UTF-8 sequences of valid characters in place of escapes.
        Ok(unsafe { std::str::from_utf8_unchecked(text) })
    }

    /// Reads the number or literal starting with `b` at `at` (already consumed).
    #[inline]
    fn scalar(&self, b: u8, at: usize) -> Read<Num> {
        if !matches!(b, b'-' | b'0'..=b'9' | b't' | b'f' | b'n') {
            return Err(Malformed);
        }
        // A scalar starts inside the body, which is followed by `PADDING` spaces, so
        // `SCALAR_WINDOW` bytes from its start are there to read.
        let from = at.wrapping_sub(self.offset);
        let w: &[u8; SCALAR_WINDOW] = self
            .rest
            .get(from..from + SCALAR_WINDOW)
            .and_then(|w| w.try_into().ok())
            .ok_or(Malformed)?;
        let word = |i: usize| u32::from_le_bytes([w[i], w[i + 1], w[i + 2], w[i + 3]]);
        match b {
            b't' if word(0) == u32::from_le_bytes(*b"true") && ends_scalar(w[4]) => Ok(Num::Int(1)),
            b'f' if word(1) == u32::from_le_bytes(*b"alse") && ends_scalar(w[5]) => Ok(Num::Int(0)),
            b'n' if word(0) == u32::from_le_bytes(*b"null") && ends_scalar(w[4]) => Ok(Num::Null),
            b'0'..=b'9' => match plain_int(w) {
                Some(v) => Ok(Num::Int(i128::from(v))),
                None => number(&self.rest[from..]),
            },
            b'-' => number(&self.rest[from..]),
            _ => Err(Malformed),
        }
    }

    /// Skips the next value, however large, checking its grammar but converting
    /// nothing.
    pub(crate) fn skip(&mut self) -> Read<()> {
        // Bit `d` of `objects` says whether the container `d` levels down is an
        // object; `open` is how many are open.
        let (mut objects, mut open) = (0u128, 0usize);
        'value: loop {
            let (b, at) = self.next()?;
            match b {
                b'{' | b'[' => {
                    let close = if b == b'{' { b'}' } else { b']' };
                    if self.byte(self.peek_at()?)? == close {
                        self.pos += 1;
                    } else {
                        open += 1;
                        self.enter(open)?;
                        objects = objects << 1 | (b == b'{') as u128;
                        if b == b'{' {
                            self.expect(b'"')?;
                            self.expect(b':')?;
                        }
                        continue 'value;
                    }
                }
                b'"' => {}
                b'-' | b'0'..=b'9' => {
                    // Only its grammar: a skipped number is never converted.
                    let from = at.wrapping_sub(self.offset);
                    let bytes = self.rest.get(from..).ok_or(Malformed)?;
                    let window = bytes.get(..SCALAR_WINDOW).and_then(|w| w.try_into().ok());
                    if window.and_then(plain_int).is_none() {
                        number_end(bytes)?;
                    }
                }
                _ => {
                    self.scalar(b, at)?;
                }
            }
            // A value ended: what follows it in the containers still open.
            loop {
                if open == 0 {
                    return Ok(());
                }
                let object = objects & 1 == 1;
                match self.next()?.0 {
                    b',' => {
                        if object {
                            self.expect(b'"')?;
                            self.expect(b':')?;
                        }
                        continue 'value;
                    }
                    b'}' if object => {}
                    b']' if !object => {}
                    _ => return Err(Malformed),
                }
                objects >>= 1;
                open -= 1;
            }
        }
    }

    /// Opens the object or array at the cursor, which starts with `open` and ends
    /// with `close`: `None` for `null`, else whether it is empty (when it is, its end
    /// is consumed too). The caller closes it: `self.depth -= 1`.
    #[inline(always)]
    fn open(&mut self, open: u8, close: u8) -> Read<Option<bool>> {
        match self.next()? {
            (b, _) if b == open => {}
            (b'n', at) => {
                self.scalar(b'n', at)?;
                return Ok(None);
            }
            _ => return Err(Malformed),
        }
        self.enter(1)?;
        self.depth += 1;
        let empty = self.byte(self.peek_at()?)? == close;
        self.pos += usize::from(empty);
        Ok(Some(empty))
    }

    /// Reads an object, calling `field` with each key; `field` must read or skip the
    /// value. `null` reads as absent (`Ok(false)`).
    #[inline]
    pub(crate) fn object(
        &mut self,
        mut field: impl FnMut(&mut Self, &'a str) -> Read<()>,
    ) -> Read<bool> {
        let Some(empty) = self.open(b'{', b'}')? else {
            return Ok(false);
        };
        if !empty {
            loop {
                let (b'"', at) = self.next()? else {
                    return Err(Malformed);
                };
                let key = self.string(at)?;
                self.expect(b':')?;
                field(self, key)?;
                match self.next()?.0 {
                    b',' => {}
                    b'}' => break,
                    _ => return Err(Malformed),
                }
            }
        }
        self.depth -= 1;
        Ok(true)
    }

    /// Reads an array, calling `elem` once per element; `elem` must read or skip it.
    /// `null` reads as empty.
    #[inline]
    pub(crate) fn array(&mut self, mut elem: impl FnMut(&mut Self) -> Read<()>) -> Read<()> {
        let Some(empty) = self.open(b'[', b']')? else {
            return Ok(());
        };
        if !empty {
            loop {
                elem(self)?;
                match self.next()?.0 {
                    b',' => {}
                    b']' => break,
                    _ => return Err(Malformed),
                }
            }
        }
        self.depth -= 1;
        Ok(())
    }

    /// A string, borrowed from the body; `null` is absent.
    #[inline]
    pub(crate) fn opt_str(&mut self) -> Read<Option<Str<'a>>> {
        match self.next()? {
            (b'"', at) => Ok(Some(Str::borrowed(self.string(at)?))),
            (b'n', at) => self.scalar(b'n', at).map(|_| None),
            _ => Err(Malformed),
        }
    }

    /// A string where `null` means the same as empty.
    #[inline]
    pub(crate) fn str(&mut self) -> Read<Str<'a>> {
        Ok(self.opt_str()?.unwrap_or_default())
    }

    /// An array of strings; `null` reads as empty, a `null` element is an error.
    pub(crate) fn strs<const N: usize>(&mut self) -> Read<List<Str<'a>, N>> {
        let mut out = List::new();
        self.array(|c| match c.next()? {
            (b'"', at) => {
                out.push(Str::borrowed(c.string(at)?));
                Ok(())
            }
            _ => Err(Malformed),
        })?;
        Ok(out)
    }

    /// A number, read leniently (see [`lenient`](crate::openrtb::lenient)).
    #[inline]
    pub(crate) fn num(&mut self) -> Read<Num> {
        match self.next()? {
            (b'"', at) => Ok(Num::parse(self.string(at)?)?),
            (b'{' | b'[', _) => Err(Malformed),
            (b, at) => self.scalar(b, at),
        }
    }

    /// An array of small integers, each read leniently; `null` elements are dropped.
    pub(crate) fn u32s<const N: usize>(&mut self) -> Read<List<u32, N>> {
        let mut out = List::new();
        self.array(|c| {
            if let Some(v) = c.num()?.opt_u32()? {
                out.push(v);
            }
            Ok(())
        })?;
        Ok(out)
    }
}

/// Unescapes `text` in place (an escape is never shorter than what it stands for) and
/// returns the unescaped part. The scan has checked each escape's form; what is left
/// to check is that `\u` escapes pair their surrogates.
#[inline(never)]
fn unescape(text: &mut [u8]) -> Read<&mut [u8]> {
    let (mut read, mut write) = (0, 0);
    while read < text.len() {
        let b = text[read];
        if b != b'\\' {
            text[write] = b;
            read += 1;
            write += 1;
            continue;
        }
        let kind = *text.get(read + 1).ok_or(Malformed)?;
        read += 2;
        let c = match kind {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = hex4(text, read)?;
                read += 4;
                let code = match hi {
                    0xd800..=0xdbff => {
                        if text.get(read..read + 2) != Some(b"\\u") {
                            return Err(Malformed);
                        }
                        let lo = hex4(text, read + 2)?;
                        if !(0xdc00..=0xdfff).contains(&lo) {
                            return Err(Malformed);
                        }
                        read += 6;
                        0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00)
                    }
                    0xdc00..=0xdfff => return Err(Malformed),
                    _ => hi,
                };
                char::from_u32(code).ok_or(Malformed)?
            }
            _ => return Err(Malformed),
        };
        let mut utf8 = [0u8; 4];
        let utf8 = c.encode_utf8(&mut utf8).as_bytes();
        text[write..write + utf8.len()].copy_from_slice(utf8);
        write += utf8.len();
    }
    Ok(&mut text[..write])
}

/// The four hex digits at `at`, as a number.
fn hex4(text: &[u8], at: usize) -> Read<u32> {
    let digits = text.get(at..at + 4).ok_or(Malformed)?;
    digits.iter().try_fold(0u32, |v, &d| {
        let d = (d as char).to_digit(16).ok_or(Malformed)?;
        Ok(v << 4 | d)
    })
}

/// The small non-negative integer at the start of `w`, if that is what it holds (at
/// most 17 digits, no leading zero, followed by what may follow a number): most numbers
/// are, and this reads them in one loop.
#[inline(always)]
fn plain_int(w: &[u8; SCALAR_WINDOW]) -> Option<u64> {
    let (mut v, mut digits) = (0u64, 0usize);
    while digits < 18 {
        let d = w[digits].wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        v = v * 10 + u64::from(d);
        digits += 1;
    }
    let plain = digits > 0 && digits < 18 && (digits == 1 || w[0] != b'0');
    (plain && ends_scalar(w[digits])).then_some(v)
}

/// Checks the grammar of the JSON number at the start of `bytes` and that what follows
/// it may follow a number. Returns its length, and whether it is written as an
/// integer (no fraction, no exponent).
fn number_end(bytes: &[u8]) -> Read<(usize, bool)> {
    let digit = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_digit);
    let mut i = usize::from(bytes.first() == Some(&b'-'));
    match bytes.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            while digit(i) {
                i += 1;
            }
        }
        _ => return Err(Malformed),
    }
    let int_end = i;
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        if !digit(i) {
            return Err(Malformed);
        }
        while digit(i) {
            i += 1;
        }
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digit(i) {
            return Err(Malformed);
        }
        while digit(i) {
            i += 1;
        }
    }
    if !bytes.get(i).copied().is_some_and(ends_scalar) {
        return Err(Malformed);
    }
    Ok((i, i == int_end))
}

/// Reads the JSON number at the start of `bytes`: an integer that fits 64 bits as
/// `Num::Int`, any other as `Num::Float` (correctly rounded). [`Cursor::scalar`] reads
/// the common small integers itself.
#[inline(never)]
fn number(bytes: &[u8]) -> Read<Num> {
    let (end, integer) = number_end(bytes)?;
    let negative = bytes.first() == Some(&b'-');
    let digits = &bytes[usize::from(negative)..end];
    if integer && digits.len() <= 19 {
        // At most 19 digits: below 10^19, inside u64.
        let v = digits
            .iter()
            .fold(0u64, |v, d| v * 10 + u64::from(d - b'0'));
        return Ok(match (negative, i128::from(v)) {
            // As serde_json reads it: a float, keeping its sign.
            (true, 0) => Num::Float(-0.0),
            (true, v) => Num::Int(-v),
            (false, v) => Num::Int(v),
        });
    }
    // SAFETY: bytes[..end] are ASCII: a sign, digits, `.`, `e`/`E`, `+`/`-`.
    let text = unsafe { std::str::from_utf8_unchecked(&bytes[..end]) };
    // Beyond `f64`'s range reads as infinite, which every field rejects.
    text.parse::<f64>().map(Num::Float).map_err(|_| Malformed)
}
