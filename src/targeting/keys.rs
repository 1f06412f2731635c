//! Keys of the targeting index: how campaign and request strings are normalised and
//! hashed. The request side never allocates: strings are lowercased into a stack buffer.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Longest key the index holds, in bytes. Campaign strings are validated against it;
/// a longer request string cannot equal any key and is not looked up.
pub const MAX_KEY: usize = 255;

/// A hash map keyed by index keys.
pub(crate) type KeyMap<K, V> = HashMap<K, V, BuildHasherDefault<KeyHasher>>;

/// A fast multiplicative hasher with a strong finaliser. The keys come from the
/// operator's campaign file and requests only look them up, so an attacker cannot
/// grow collision chains; a keyed (SipHash) hash would only cost time.
#[derive(Default, Clone, Copy)]
pub(crate) struct KeyHasher(u64);

const K: u64 = 0x9e37_79b9_7f4a_7c15;

impl KeyHasher {
    #[inline]
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for KeyHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.mix(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 56));
        }
    }

    #[inline]
    fn write_u8(&mut self, v: u8) {
        self.mix(v as u64);
    }

    #[inline]
    fn write_u32(&mut self, v: u32) {
        self.mix(v as u64);
    }

    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.mix(v);
    }

    #[inline]
    fn write_usize(&mut self, v: usize) {
        self.mix(v as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // murmur3's fmix64: every input bit reaches the high and low bits that
        // hashbrown uses for the control byte and the bucket.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// A stack buffer that lowercases request strings for case-insensitive lookups.
pub(crate) struct Lower {
    buf: [u8; MAX_KEY],
}

impl Lower {
    pub(crate) fn new() -> Lower {
        Lower { buf: [0; MAX_KEY] }
    }

    /// `s` in ASCII lowercase: `s` itself when it has no uppercase letter, else a copy
    /// in the buffer. `None` when `s` is longer than any key.
    #[inline]
    pub(crate) fn of<'b>(&'b mut self, s: &'b str) -> Option<&'b str> {
        let bytes = s.as_bytes();
        if bytes.len() > MAX_KEY {
            return None;
        }
        if !bytes.iter().any(u8::is_ascii_uppercase) {
            return Some(s);
        }
        let out = &mut self.buf[..bytes.len()];
        out.copy_from_slice(bytes);
        out.make_ascii_lowercase();
        // ASCII lowercasing keeps UTF-8 valid, so this never fails.
        std::str::from_utf8(out).ok()
    }
}

/// Campaign-side key: trimmed and ASCII lowercase.
pub(crate) fn lower_key(s: &str) -> Box<str> {
    s.trim().to_ascii_lowercase().into_boxed_str()
}

/// Campaign-side key for values matched exactly (ids).
pub(crate) fn exact_key(s: &str) -> Box<str> {
    s.trim().into()
}

/// A domain and each of its parents: `a.b.com`, `b.com`, `com`. A trailing dot is
/// ignored.
pub(crate) fn domain_suffixes(domain: &str) -> impl Iterator<Item = &str> {
    let d = domain.strip_suffix('.').unwrap_or(domain);
    let first = (!d.is_empty()).then_some(d);
    first.into_iter().chain(
        d.char_indices()
            .filter(|&(_, c)| c == '.')
            .map(move |(i, _)| &d[i + 1..])
            .filter(|s| !s.is_empty()),
    )
}

/// An IAB category and each of its parents: `IAB2-1` then `IAB2`.
pub(crate) fn category_prefixes(cat: &str) -> impl Iterator<Item = &str> {
    let first = (!cat.is_empty()).then_some(cat);
    first.into_iter().chain(
        cat.char_indices()
            .rev()
            .filter(|&(_, c)| c == '-')
            .map(move |(i, _)| &cat[..i])
            .filter(|s| !s.is_empty()),
    )
}

/// Whether category `c` is `parent` or one of its subcategories (`IAB2-1` under
/// `IAB2`), ASCII case-insensitively.
pub(crate) fn category_under(c: &str, parent: &str) -> bool {
    let (v, p) = (c.as_bytes(), parent.as_bytes());
    if p.is_empty() || v.len() < p.len() || !v[..p.len()].eq_ignore_ascii_case(p) {
        return false;
    }
    v.len() == p.len() || v[p.len()] == b'-'
}

/// The host of a page URL (`https://news.example.com:8443/a?b` -> `news.example.com`).
pub(crate) fn page_host(url: &str) -> Option<&str> {
    let url = url.trim();
    let rest = match url.find("://") {
        Some(i) => &url[i + 3..],
        None => url.strip_prefix("//")?,
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host.rfind(':') {
        Some(i) if !host.starts_with('[') => &host[..i],
        _ => host,
    };
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowercases_without_copying_when_already_lower() {
        let mut l = Lower::new();
        assert_eq!(l.of("WWW.Example.COM"), Some("www.example.com"));
        let s = "already.lower";
        assert!(std::ptr::eq(l.of(s).unwrap(), s));
        assert_eq!(l.of(&"x".repeat(MAX_KEY + 1)), None);
        assert_eq!(l.of("ÄB"), Some("Äb"));
    }

    #[test]
    fn domain_parents() {
        let v: Vec<_> = domain_suffixes("news.example.com.").collect();
        assert_eq!(v, ["news.example.com", "example.com", "com"]);
        assert_eq!(domain_suffixes("").count(), 0);
        let v: Vec<_> = domain_suffixes("a..b").collect();
        assert_eq!(v, ["a..b", ".b", "b"]);
    }

    #[test]
    fn category_parents() {
        let v: Vec<_> = category_prefixes("IAB2-1").collect();
        assert_eq!(v, ["IAB2-1", "IAB2"]);
        assert!(category_under("iab2-1", "IAB2"));
        assert!(category_under("IAB2", "iab2"));
        assert!(!category_under("IAB21", "IAB2"));
        assert!(!category_under("IAB2", "IAB2-1"));
    }

    #[test]
    fn hosts_of_pages() {
        assert_eq!(
            page_host("http://www.foobar.com/1234.html "),
            Some("www.foobar.com")
        );
        assert_eq!(page_host("https://u@a.b:8443?x"), Some("a.b"));
        assert_eq!(page_host("//cdn.x.org/p"), Some("cdn.x.org"));
        assert_eq!(page_host("not a url"), None);
    }

    #[test]
    fn equal_strings_hash_equal_and_different_ones_spread() {
        use std::hash::{BuildHasher, BuildHasherDefault};
        let b = BuildHasherDefault::<KeyHasher>::default();
        assert_eq!(b.hash_one("seg-1"), b.hash_one(String::from("seg-1")));
        let mut low_bits = std::collections::HashSet::new();
        for i in 0..1000 {
            low_bits.insert(b.hash_one(format!("seg-{i}")) & 1023);
        }
        assert!(low_bits.len() > 500, "poor spread: {}", low_bits.len());
    }
}
