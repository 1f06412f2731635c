//! The JSON writing the pure core shares: strings escaped as JSON requires, and
//! unsigned integers, written into a byte buffer without allocating.

#![forbid(unsafe_code)]

/// Writes `s` as a JSON string, quotes included.
pub fn write_json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    write_escaped(out, s);
    out.push(b'"');
}

/// Writes the JSON escape of `s` (no quotes): `"`, `\\` and control characters.
pub fn write_escaped(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = clean_words(bytes);
    while let Some(&b) = bytes.get(i) {
        i += 1;
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.extend_from_slice(bytes.get(start..i - 1).unwrap_or_default());
        write_escape(out, b);
        start = i;
        i += clean_words(bytes.get(i..).unwrap_or_default());
    }
    out.extend_from_slice(bytes.get(start..).unwrap_or_default());
}

/// How many leading bytes of `bytes`, in whole 8-byte words, need no escaping: each word
/// is tested at once for a byte below 0x20, a `"` or a `\\` (ids are mostly long hex).
fn clean_words(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Whether some byte of `x` is below `n` (n <= 0x80), the classic bit trick.
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGH != 0;
    let mut clean = 0;
    for word in bytes.chunks_exact(8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        let x = u64::from_le_bytes(w);
        if below(x, 0x20) || below(x ^ (ONES * 0x22), 1) || below(x ^ (ONES * 0x5c), 1) {
            break;
        }
        clean += 8;
    }
    clean
}

/// The escape of one byte that JSON requires escaped.
#[cold]
fn write_escape(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match b {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        _ => out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[(b >> 4) as usize],
            HEX[(b & 15) as usize],
        ]),
    }
}

/// Formats an unsigned integer into the tail of `buf` and returns that tail.
pub fn fmt_u64(buf: &mut [u8; 20], mut v: u64) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_json_requires() {
        let mut out = Vec::new();
        write_json_string(&mut out, "a\"b\\c\u{0}\u{1f}\t\r\n\u{8}\u{c}é/");
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#""a\"b\\c\u0000\u001f\t\r\n\b\fé/""#
        );
        let back: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, "a\"b\\c\u{0}\u{1f}\t\r\n\u{8}\u{c}é/");
    }

    #[test]
    fn escapes_like_serde_json_at_every_position_of_long_ids() {
        // Long ids go through the 8-bytes-at-a-time scan: a byte that needs escaping
        // must be found at any offset, also next to multi-byte UTF-8.
        for special in ['"', '\\', '\u{0}', '\u{1f}', '\n', '\u{7f}', 'é', '€'] {
            for len in [0, 1, 7, 8, 9, 15, 16, 17, 40] {
                for at in 0..=len {
                    let mut id: String = "0123456789abcdef0123456789abcdef01234567"
                        .chars()
                        .take(len)
                        .collect();
                    id.insert(at, special);
                    let mut out = Vec::new();
                    write_json_string(&mut out, &id);
                    assert_eq!(
                        std::str::from_utf8(&out).unwrap(),
                        serde_json::to_string(&id).unwrap(),
                        "{id:?}"
                    );
                }
            }
        }
    }
}
