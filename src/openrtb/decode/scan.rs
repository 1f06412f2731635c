//! The structural scan: one pass over the body, 64 bytes at a time, that finds where
//! every token starts, the way simdjson's stage 1 does. Each byte is classified with
//! SIMD compares (AVX2 where the build targets it, a portable loop otherwise) into six
//! bitmasks; bit arithmetic on those masks then tells which quotes are escaped, which
//! bytes lie inside strings, and which bytes start a token: `{ } [ ] : ,` outside
//! strings, a string's opening quote, and the first byte of a number or literal.
//!
//! The same pass checks what no later step looks at again, because the reader skips
//! whole values it does not model: no string is left open, no string holds a raw
//! control character, every escape is one JSON knows, and the body is UTF-8.

use super::Malformed;

/// Bytes scanned at once.
const BLOCK: usize = 64;

/// What the scan found, in buffers a decoder keeps from body to body.
#[derive(Debug, Default)]
pub(crate) struct Tokens {
    /// Where each token starts, in order, then the body's length as an end marker.
    pub(crate) offsets: Vec<u32>,
    /// Where each escape (its backslash) is, in order, then `u32::MAX` as an end
    /// marker. Most bodies have none, and their strings are used as they lie.
    pub(crate) escapes: Vec<u32>,
}

/// One block's bytes, classified: bit `i` of each mask is byte `i` of the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Classes {
    /// `"`
    quote: u64,
    /// `\`
    backslash: u64,
    /// `{ } [ ] : ,`
    op: u64,
    /// space, tab, line feed, carriage return
    space: u64,
    /// below 0x20
    control: u64,
    /// 0x80 and above (not ASCII)
    high: u64,
}

/// Classifies one block with a byte loop: the reference the SIMD version is tested
/// against, and the one used where the build does not target AVX2.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "avx2"), allow(dead_code))]
fn classify_portable(block: &[u8; BLOCK]) -> Classes {
    let mut c = Classes::default();
    for (i, &b) in block.iter().enumerate() {
        let bit = 1u64 << i;
        match b {
            b'"' => c.quote |= bit,
            b'\\' => c.backslash |= bit,
            b'{' | b'}' | b'[' | b']' | b':' | b',' => c.op |= bit,
            b' ' | b'\t' | b'\n' | b'\r' => c.space |= bit,
            _ => {}
        }
        if b < 0x20 {
            c.control |= bit;
        }
        if b >= 0x80 {
            c.high |= bit;
        }
    }
    c
}

#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
#[inline(always)]
fn classify(block: &[u8; BLOCK]) -> Classes {
    // SAFETY: the build targets AVX2 (checked by the `cfg` above), and both loads read
    // 32 bytes inside the 64-byte block.
    unsafe {
        use std::arch::x86_64::*;
        // Indexed by a byte's low nibble, each table holds the one byte of its class
        // with that nibble, or 0, which no byte of that nibble equals. `vpshufb` gives
        // 0 for bytes of 0x80 and above, which therefore match nothing.
        let spaces = _mm256_setr_epi8(
            0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0x09, 0x0a, 0, 0, 0x0d, 0, 0, //
            0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0x09, 0x0a, 0, 0, 0x0d, 0, 0,
        );
        // Looked up with bit 0x20 set, which folds `[` onto `{` and `]` onto `}`; it also
        // folds form feed onto `,` and 0x1a onto `:`, which the control mask removes.
        let ops = _mm256_setr_epi8(
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x3a, 0x7b, 0x2c, 0x7d, 0, 0, //
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x3a, 0x7b, 0x2c, 0x7d, 0, 0,
        );
        let half = |v: __m256i| -> [u64; 6] {
            let mask = |m: __m256i| _mm256_movemask_epi8(m) as u32 as u64;
            let folded = _mm256_or_si256(v, _mm256_set1_epi8(0x20));
            let control = mask(_mm256_cmpeq_epi8(
                _mm256_min_epu8(v, _mm256_set1_epi8(0x1f)),
                v,
            ));
            [
                mask(_mm256_cmpeq_epi8(v, _mm256_set1_epi8(b'"' as i8))),
                mask(_mm256_cmpeq_epi8(v, _mm256_set1_epi8(b'\\' as i8))),
                mask(_mm256_cmpeq_epi8(_mm256_shuffle_epi8(ops, folded), folded)) & !control,
                mask(_mm256_cmpeq_epi8(_mm256_shuffle_epi8(spaces, v), v)),
                control,
                mask(v),
            ]
        };
        let lo = half(_mm256_loadu_si256(block.as_ptr().cast()));
        let hi = half(_mm256_loadu_si256(block.as_ptr().add(32).cast()));
        let join = |k: usize| lo[k] | hi[k] << 32;
        Classes {
            quote: join(0),
            backslash: join(1),
            op: join(2),
            space: join(3),
            control: join(4),
            high: join(5),
        }
    }
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "avx2")))]
#[inline(always)]
fn classify(block: &[u8; BLOCK]) -> Classes {
    classify_portable(block)
}

/// Bit `i` set for every bit at or below `i` set an odd number of times in `x`: with
/// `x` the unescaped quotes, the bytes from an opening quote up to (not including) its
/// closing quote.
#[inline(always)]
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// The bytes a backslash escapes, given the block's backslashes and whether the first
/// byte is escaped by a backslash at the end of the block before (`carry`, updated for
/// the next block). Bodies rarely have backslashes, so this walks them one by one.
#[inline(never)]
fn escaped(backslash: u64, carry: &mut bool) -> u64 {
    let mut escaped = *carry as u64;
    *carry = false;
    let mut rest = backslash;
    while rest != 0 {
        let i = rest.trailing_zeros();
        rest &= rest - 1;
        if escaped & (1 << i) == 0 {
            if i == 63 {
                *carry = true;
            } else {
                escaped |= 1 << (i + 1);
            }
        }
    }
    escaped
}

/// Checks every escape that starts in this block: the escaping backslashes (`starts`,
/// inside strings) at block offset `base`, each followed by one of `" \ / b f n r t`,
/// or by `u` and four hex digits.
#[inline(never)]
fn check_escapes(
    body: &[u8],
    base: usize,
    mut starts: u64,
    escapes: &mut Vec<u32>,
) -> Result<(), Malformed> {
    while starts != 0 {
        let at = base + starts.trailing_zeros() as usize;
        starts &= starts - 1;
        escapes.push(at as u32);
        match body.get(at + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {}
            Some(b'u') => {
                let hex = body.get(at + 2..at + 6).ok_or(Malformed)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return Err(Malformed);
                }
            }
            _ => return Err(Malformed),
        }
    }
    Ok(())
}

/// Scans the JSON in `body[..len]` into `out`. The bytes from `len` to the end of the
/// 64-byte block that holds it must be JSON whitespace (the decoder pads the body with
/// spaces).
#[inline(never)]
pub(crate) fn tokens(body: &[u8], len: usize, out: &mut Tokens) -> Result<(), Malformed> {
    let blocks = len.div_ceil(BLOCK);
    let scanned = body.get(..blocks * BLOCK).ok_or(Malformed)?;
    if len >= u32::MAX as usize - BLOCK {
        return Err(Malformed);
    }
    out.escapes.clear();
    out.offsets.clear();
    // Every byte scanned could start a token, and writing them leaves up to
    // `FLATTEN - 1` slots past the last one used.
    out.offsets.reserve(scanned.len() + FLATTEN + 1);
    // Most bodies have no backslash: scan without looking for escapes, and from the
    // first block with a backslash on, go on with the scan that handles them.
    let state = match scan::<false>(body, scanned, 0, State::default(), out) {
        Err(Stop::Escapes(block, state)) => scan::<true>(body, scanned, block, state, out),
        done => done,
    }
    .map_err(|_| Malformed)?;
    if state.in_string != 0 || state.bad != 0 {
        return Err(Malformed);
    }
    if state.high != 0 && simdutf8::basic::from_utf8(scanned).is_err() {
        return Err(Malformed);
    }
    out.offsets.push(len as u32);
    out.escapes.push(u32::MAX);
    Ok(())
}

/// What one block's scan hands the next.
#[derive(Debug, Clone, Copy, Default)]
struct State {
    /// All ones while the previous block ended inside a string.
    in_string: u64,
    /// The previous block's last byte was part of a number or literal.
    in_scalar: u64,
    /// The previous block's last byte was a backslash that escapes this block's first.
    escape_carry: bool,
    /// Bytes above 0x7f seen.
    high: u64,
    /// Control bytes seen inside strings.
    bad: u64,
}

/// Why [`scan`] stopped early.
enum Stop {
    Malformed,
    /// A backslash in this block, in the scan that assumes there are none; with the
    /// state the block starts from.
    Escapes(usize, State),
}

/// Scans whole blocks of `scanned` (the start of `body`) from block `from` on, and
/// returns the state after the last. With `ESCAPES` false, a block with a backslash
/// stops the scan before any of its tokens is written.
#[inline(always)]
fn scan<const ESCAPES: bool>(
    body: &[u8],
    scanned: &[u8],
    from: usize,
    mut state: State,
    out: &mut Tokens,
) -> Result<State, Stop> {
    let blocks = scanned.chunks_exact(BLOCK).enumerate().skip(from);
    for (n, block) in blocks {
        let base = n * BLOCK;
        let block: &[u8; BLOCK] = block.try_into().map_err(|_| Stop::Malformed)?;
        let c = classify(block);
        let escaped = if !ESCAPES {
            if c.backslash != 0 {
                return Err(Stop::Escapes(n, state));
            }
            0
        } else if c.backslash != 0 || state.escape_carry {
            escaped(c.backslash, &mut state.escape_carry)
        } else {
            0
        };
        state.high |= c.high;
        let quote = c.quote & !escaped;
        let inside = prefix_xor(quote) ^ state.in_string;
        state.in_string = ((inside as i64) >> 63) as u64;
        if ESCAPES && c.backslash != 0 {
            // The escaping backslashes: inside strings, and not escaped themselves.
            let starts = c.backslash & !escaped & inside;
            check_escapes(body, base, starts, &mut out.escapes).map_err(|_| Stop::Malformed)?;
        }
        state.bad |= c.control & inside;
        let scalar = !(c.op | c.space | quote | inside);
        let starts =
            (c.op & !inside) | (quote & inside) | (scalar & !(scalar << 1 | state.in_scalar));
        state.in_scalar = scalar >> 63;
        push_offsets(&mut out.offsets, base as u32, starts);
    }
    Ok(state)
}

/// Offsets written per step of [`push_offsets`].
const FLATTEN: usize = 4;

/// Appends `base` plus the position of each set bit of `bits`, lowest first. Writes
/// [`FLATTEN`] offsets per step whether or not that many bits are left, which beats a
/// branch per bit; the surplus lands in spare capacity [`scan`] reserved and is not
/// counted in the length.
#[inline(always)]
fn push_offsets(tokens: &mut Vec<u32>, base: u32, mut bits: u64) {
    let count = bits.count_ones() as usize;
    let len = tokens.len();
    let spare = tokens.spare_capacity_mut();
    assert!(spare.len() >= count + FLATTEN);
    let out = spare.as_mut_ptr().cast::<u32>();
    let mut i = 0;
    while bits != 0 {
        for k in 0..FLATTEN {
            // SAFETY: at most `count + FLATTEN - 1` slots are written, all inside the
            // spare capacity checked above.
            unsafe { out.add(i + k).write(base + bits.trailing_zeros()) };
            bits &= bits.wrapping_sub(1);
        }
        i += FLATTEN;
    }
    // SAFETY: the first `count` spare slots were written above.
    unsafe { tokens.set_len(len + count) };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(json: &str) -> Result<Vec<usize>, Malformed> {
        let mut body = json.as_bytes().to_vec();
        body.resize(json.len() + BLOCK, b' ');
        let mut out = Tokens::default();
        tokens(&body, json.len(), &mut out)?;
        assert_eq!(out.offsets.pop(), Some(json.len() as u32));
        assert_eq!(out.escapes.pop(), Some(u32::MAX));
        Ok(out.offsets.into_iter().map(|t| t as usize).collect())
    }

    #[test]
    fn tokens_start_at_operators_opening_quotes_and_scalars() {
        let json = r#"{"a":[1, -2.5e3,true],"b\"}":"x\\" , "c" :null}"#;
        let want = [
            0, 1, 4, 5, 6, 7, 9, 15, 16, 20, 21, 22, 28, 29, 35, 37, 41, 42, 46,
        ];
        assert_eq!(scan(json), Ok(want.to_vec()));
    }

    #[test]
    fn a_scalar_after_a_string_or_space_starts_a_token() {
        assert_eq!(scan(r#""a"b 1 2"#), Ok(vec![0, 3, 5, 7]));
        assert_eq!(scan("1x\\ ]"), Ok(vec![0, 4]));
    }

    #[test]
    fn what_json_forbids_inside_strings_is_caught_here() {
        assert!(scan(r#"{"a":"open}"#).is_err());
        assert!(scan("{\"a\":\"tab\there\"}").is_err());
        assert!(scan(r#"{"a":"\q"}"#).is_err());
        assert!(scan(r#"{"a":"\u12G4"}"#).is_err());
        assert!(scan(r#"{"a":"\u1234\/\b\f\n\r\t\"\\"}"#).is_ok());
        assert!(scan("{\"a\":\"caf\u{e9}\"}").is_ok());
        let mut body = b"{\"a\":\"\xff\"}".to_vec();
        let len = body.len();
        body.resize(len + BLOCK, b' ');
        assert!(tokens(&body, len, &mut Tokens::default()).is_err());
    }

    #[test]
    fn escapes_and_strings_carry_across_blocks() {
        // A backslash as the last byte of the first block escapes the quote that opens
        // the second, so the string goes on; a string open at a block's end stays open.
        let mut json = String::from("[\"");
        json.push_str(&"x".repeat(BLOCK - 3));
        json.push_str("\\\"\" , \"");
        json.push_str(&"{".repeat(BLOCK));
        json.push_str("\"]");
        // [0] `[`, [1] `"`, x..., [63] `\`, [64] escaped `"`, [65] `"`, [67] `,`,
        // [69] `"`, 64 braces inside the string, [134] `"`, [135] `]`.
        assert_eq!(scan(&json), Ok(vec![0, 1, 67, 69, 135]));
    }

    #[test]
    fn a_first_backslash_in_a_later_block_resumes_inside_the_open_string() {
        let json = format!("[\"{}\\\"\",1]", "x".repeat(70));
        let mut body = json.as_bytes().to_vec();
        body.resize(json.len() + BLOCK, b' ');
        let mut out = Tokens::default();
        assert_eq!(tokens(&body, json.len(), &mut out), Ok(()));
        assert_eq!(out.offsets, [0, 1, 75, 76, 77, json.len() as u32]);
        assert_eq!(out.escapes, [72, u32::MAX]);
    }

    #[test]
    fn simd_and_portable_classification_agree_on_every_byte() {
        let mut block = [0u8; BLOCK];
        for start in (0..256).step_by(BLOCK) {
            for (i, b) in block.iter_mut().enumerate() {
                *b = (start + i) as u8;
            }
            assert_eq!(
                classify(&block),
                classify_portable(&block),
                "bytes from {start}"
            );
        }
    }
}
