//! Keys of the targeting index: how campaign and request strings are normalised and
//! hashed. The request side never allocates: strings are lowercased into a stack buffer.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::posting::PostingId;

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
            self.mix(tail_word(rest) ^ ((rest.len() as u64) << 56));
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

/// The 1-7 bytes after a key's last whole word, as one word, read with two (or three)
/// overlapping loads that together cover every byte: no copy to a zeroed buffer, which
/// compiled to a `memcpy` call per lookup. With the length mixed in beside it, different
/// tails give different words.
#[inline(always)]
fn tail_word(rest: &[u8]) -> u64 {
    let n = rest.len();
    let word = |at: usize| -> u64 {
        let mut w = [0u8; 4];
        if let Some(b) = rest.get(at..at + 4) {
            w.copy_from_slice(b);
        }
        u32::from_le_bytes(w) as u64
    };
    if n >= 4 {
        word(0) | word(n - 4) << 32
    } else {
        let byte = |i: usize| rest.get(i).copied().unwrap_or(0) as u64;
        byte(0) | byte(n / 2) << 8 | byte(n.saturating_sub(1)) << 16
    }
}

/// Keys up to this long are stored in the table's slots.
const INLINE_KEY: usize = 18;

/// A read-only map from string keys to posting sets, built once per table. Open
/// addressing with linear probing at most half full; each 32-byte slot holds the full
/// hash, the set and the key itself when it is short (most are), so a lookup usually
/// touches one cache line, hit or miss.
#[derive(Clone, Debug, Default)]
pub(crate) struct KeyTable {
    slots: Box<[Slot]>,
    /// Keys longer than [`INLINE_KEY`], one after another.
    long: Box<[u8]>,
}

/// Aligned so that a slot never straddles two cache lines.
#[derive(Clone, Copy, Debug, Default)]
#[repr(align(32))]
struct Slot {
    /// 0: empty.
    hash: u64,
    id: PostingId,
    len: u16,
    /// The key, or for a long key its offset in `long` (little-endian `u32`).
    key: [u8; INLINE_KEY],
}

fn hash_key(key: &[u8]) -> u64 {
    let mut h = KeyHasher::default();
    h.write(key);
    h.finish().max(1)
}

impl KeyTable {
    /// A table of `entries` (keys at most `u16::MAX` bytes, distinct).
    pub(crate) fn new(entries: impl ExactSizeIterator<Item = (Box<str>, PostingId)>) -> KeyTable {
        let cap = (entries.len() * 2).next_power_of_two().max(8);
        let mut slots = vec![Slot::default(); cap].into_boxed_slice();
        let mut long = Vec::new();
        for (key, id) in entries {
            let bytes = key.as_bytes();
            let hash = hash_key(bytes);
            let mut slot = Slot {
                hash,
                id,
                len: bytes.len() as u16,
                key: [0; INLINE_KEY],
            };
            if bytes.len() <= INLINE_KEY {
                slot.key[..bytes.len()].copy_from_slice(bytes);
            } else {
                slot.key[..4].copy_from_slice(&(long.len() as u32).to_le_bytes());
                long.extend_from_slice(bytes);
            }
            let mut i = hash as usize & (cap - 1);
            while slots[i].hash != 0 {
                i = (i + 1) & (cap - 1);
            }
            slots[i] = slot;
        }
        KeyTable {
            slots,
            long: long.into(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.slots.iter().all(|s| s.hash == 0)
    }

    /// The set stored under `key`.
    #[inline]
    pub(crate) fn get(&self, key: &str) -> Option<PostingId> {
        let key = key.as_bytes();
        let mask = self.slots.len().checked_sub(1)?;
        let hash = hash_key(key);
        let mut i = hash as usize & mask;
        loop {
            let slot = self.slots.get(i)?;
            if slot.hash == 0 {
                return None;
            }
            if slot.hash == hash && slot.len as usize == key.len() && self.key(slot) == Some(key) {
                return Some(slot.id);
            }
            i = (i + 1) & mask;
        }
    }

    /// Starts loading the slot where a lookup of `key` begins, without waiting for it,
    /// so that a request's lookups miss the cache together rather than one by one.
    #[inline]
    pub(crate) fn prefetch(&self, key: &str) {
        let mask = self.slots.len().wrapping_sub(1);
        if let Some(slot) = self.slots.get(hash_key(key.as_bytes()) as usize & mask) {
            prefetch(slot);
        }
    }

    fn key<'a>(&'a self, slot: &'a Slot) -> Option<&'a [u8]> {
        let len = slot.len as usize;
        if len <= INLINE_KEY {
            return slot.key.get(..len);
        }
        let at = u32::from_le_bytes([slot.key[0], slot.key[1], slot.key[2], slot.key[3]]) as usize;
        self.long.get(at..at + len)
    }
}

/// Asks the CPU for the cache line holding `value`, without waiting for it. A hint:
/// it never faults and changes no state a program can see.
#[inline(always)]
pub(crate) fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` only hints the cache; the pointer comes from a reference.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((value as *const T).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// Looking a request value up in one of the index's maps.
pub(crate) trait Lookup<Q: ?Sized> {
    fn find(&self, key: &Q) -> Option<PostingId>;
}

impl Lookup<str> for KeyTable {
    #[inline]
    fn find(&self, key: &str) -> Option<PostingId> {
        self.get(key)
    }
}

impl Lookup<u32> for KeyMap<u32, PostingId> {
    #[inline]
    fn find(&self, key: &u32) -> Option<PostingId> {
        self.get(key).copied()
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
        // SAFETY: `out` holds the bytes of a `str` with ASCII letters lowercased. ASCII
        // bytes never occur inside a multi-byte UTF-8 sequence, so changing one ASCII
        // byte for another keeps the bytes valid UTF-8 (checking it cost ~70
        // instructions per lookup).
        Some(unsafe { std::str::from_utf8_unchecked(out) })
    }
}

/// A composite key built on the stack, such as a deal id and a creative format.
pub(crate) struct KeyBuf {
    buf: [u8; 2 * MAX_KEY],
    len: usize,
    overflow: bool,
}

impl KeyBuf {
    pub(crate) fn new() -> KeyBuf {
        KeyBuf {
            buf: [0; 2 * MAX_KEY],
            len: 0,
            overflow: false,
        }
    }

    pub(crate) fn clear(&mut self) -> &mut KeyBuf {
        self.len = 0;
        self.overflow = false;
        self
    }

    pub(crate) fn push(&mut self, s: &str) -> &mut KeyBuf {
        match self.buf.get_mut(self.len..self.len + s.len()) {
            Some(dst) => {
                dst.copy_from_slice(s.as_bytes());
                self.len += s.len();
            }
            None => self.overflow = true,
        }
        self
    }

    pub(crate) fn push_u32(&mut self, v: u32) -> &mut KeyBuf {
        let mut digits = [0u8; 20];
        let d = crate::json::fmt_u64(&mut digits, v as u64);
        // Digits are ASCII.
        self.push(std::str::from_utf8(d).unwrap_or(""))
    }

    /// The key, unless it grew longer than any key can be.
    pub(crate) fn as_str(&self) -> Option<&str> {
        if self.overflow {
            return None;
        }
        std::str::from_utf8(self.buf.get(..self.len)?).ok()
    }
}

/// Separates a deal id from a creative format in a deal-format key.
pub(crate) const DEAL_FORMAT_SEP: &str = "\u{1f}";

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
    fn key_buffers_compose_and_refuse_overflow() {
        let mut k = KeyBuf::new();
        assert_eq!(
            k.push("deal")
                .push(DEAL_FORMAT_SEP)
                .push("b")
                .push_u32(300)
                .as_str(),
            Some("deal\u{1f}b300")
        );
        let long = "x".repeat(MAX_KEY);
        assert_eq!(k.clear().push(&long).push(&long).push("y").as_str(), None);
        assert_eq!(k.clear().push("a").as_str(), Some("a"));
    }

    #[test]
    fn every_byte_of_a_tail_counts() {
        for n in 1..8 {
            let base: Vec<u8> = (0..n as u8).map(|i| b'a' + i).collect();
            for i in 0..n {
                let mut other = base.clone();
                other[i] ^= 0x20;
                assert_ne!(tail_word(&base), tail_word(&other), "len {n}, byte {i}");
                assert_ne!(hash_key(&base), hash_key(&other), "len {n}, byte {i}");
            }
        }
        // Same bytes, different lengths: the length is mixed in beside the tail.
        assert_ne!(hash_key(b"ab"), hash_key(b"ab\0"));
    }

    #[test]
    fn a_slot_is_half_a_cache_line() {
        assert_eq!(std::mem::size_of::<Slot>(), 32);
    }

    #[test]
    fn key_table_finds_exactly_its_keys() {
        let long = "x".repeat(40);
        let keys: Vec<String> = (0..500)
            .map(|i| format!("seg{i}"))
            .chain([long.clone(), format!("{long}y"), String::new()])
            .collect();
        let t = KeyTable::new(
            keys.iter()
                .enumerate()
                .map(|(i, k)| (k.as_str().into(), i as u32)),
        );
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(t.get(k), Some(i as u32), "{k}");
        }
        for k in [
            "seg500",
            "seg",
            "SEG1",
            "x",
            &"x".repeat(41),
            &format!("{long}z"),
        ] {
            assert_eq!(t.get(k), None, "{k}");
        }
        assert!(!t.is_empty());
        let empty = KeyTable::new(std::iter::empty());
        assert!(empty.is_empty() && empty.get("a").is_none());
        assert!(KeyTable::default().get("a").is_none());
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
