//! Posting sets: which campaigns carry one targeting value. Campaigns are numbered in
//! price order, and matching walks them one chunk of [`CHUNK_BITS`] campaigns at a time,
//! so every set answers "the members in chunk `c`" as a bitmask.
//!
//! A set is stored either as a bitmap (dense) or as a sorted list of campaign numbers
//! (sparse), whichever is smaller, so memory stays proportional to the number of
//! (campaign, value) pairs even for high-cardinality dimensions such as domains. Small
//! lists and the occupancy of the first 64 chunks live in the set itself: most sets a
//! request touches cost one cache line.

#![forbid(unsafe_code)]

use super::keys::prefetch;

/// Campaigns per chunk.
pub const CHUNK_BITS: usize = 2048;
/// 64-bit words per chunk.
pub const CHUNK_WORDS: usize = CHUNK_BITS / 64;

/// The members of one chunk: bit `i` of word `w` is campaign `chunk * CHUNK_BITS + w * 64 + i`.
pub type Mask = [u64; CHUNK_WORDS];

/// 64-bit words per cache line.
const LINE_WORDS: usize = 8;
/// Cache lines per chunk of a bitmap.
const LINES: usize = CHUNK_WORDS / LINE_WORDS;

/// One cache line of a bitmap: a chunk's bits start on a line boundary, so a bitmap
/// read for a few surviving candidates touches only their lines.
#[derive(Clone, Copy, Debug, Default)]
#[repr(align(64))]
struct Line([u64; LINE_WORDS]);

/// Which lines of a mask hold a member, one bit per line: the only lines of a bitmap
/// that can change the answer ([`Posting::or_into`], [`Posting::and_into`], ...).
pub(crate) type Live = u32;

/// The lines of `m` that hold a member.
#[inline]
pub(crate) fn live(m: &Mask) -> Live {
    let mut live = 0;
    for (i, line) in m.chunks_exact(LINE_WORDS).enumerate() {
        let any = line.iter().fold(0, |a, w| a | w);
        live |= ((any != 0) as Live) << i;
    }
    live
}

/// Calls `f(dst_line, src_line)` for each line of `live`.
#[inline]
fn each_line(live: Live, m: &mut Mask, src: &[Line], mut f: impl FnMut(&mut u64, u64)) {
    for ((i, dst), src) in m.chunks_exact_mut(LINE_WORDS).enumerate().zip(src) {
        if live >> i & 1 == 1 {
            for (d, s) in dst.iter_mut().zip(src.0) {
                f(d, s);
            }
        }
    }
}

/// Index of a posting set in the table's pool.
pub(crate) type PostingId = u32;

/// The pool's always-empty set.
pub(crate) const EMPTY: PostingId = 0;

/// Lists this short are kept inline.
const INLINE: usize = 4;
/// Sets of at least this many members may be bitmaps ...
const DENSE_MIN: usize = 16;
/// ... when the bitmap takes at most this many times the bytes of the list.
const DENSE_COST: usize = 4;

#[derive(Clone, Debug)]
enum Repr {
    /// One bit per campaign, padded to whole chunks.
    Dense(Box<[Line]>),
    /// Sorted campaign numbers.
    Sparse(Box<[u32]>),
    /// Up to [`INLINE`] sorted campaign numbers (`count` of them).
    Small([u32; INLINE]),
}

/// An immutable set of campaign numbers. One cache line: a request touches many sets.
#[derive(Clone, Debug)]
#[repr(align(64))]
pub(crate) struct Posting {
    count: u32,
    /// Bit `c` set: chunk `c` (< 64) holds a member.
    occupancy: u64,
    /// The same for chunks 64 and up, 64 per word (tables of more than 131,072).
    more_occupancy: Box<[u64]>,
    repr: Repr,
}

impl Posting {
    /// Builds a set from sorted, distinct campaign numbers below `chunks * CHUNK_BITS`.
    pub(crate) fn new(ids: &[u32], chunks: usize) -> Posting {
        let words = chunks * CHUNK_WORDS;
        // A bitmap answers a chunk in a few vector operations, a list in a few per
        // member: bitmaps from DENSE_MIN members, as long as they take at most
        // DENSE_COST times the bytes of the list.
        let (list_bytes, bitmap_bytes) = (ids.len() * 4, words * 8);
        let repr = if ids.len() <= INLINE {
            let mut small = [0; INLINE];
            small[..ids.len()].copy_from_slice(ids);
            Repr::Small(small)
        } else if ids.len() >= DENSE_MIN && list_bytes * DENSE_COST >= bitmap_bytes {
            let mut bits = vec![Line::default(); words / LINE_WORDS].into_boxed_slice();
            for &id in ids {
                let w = id as usize / 64;
                if let Some(line) = bits.get_mut(w / LINE_WORDS) {
                    line.0[w % LINE_WORDS] |= 1 << (id % 64);
                }
            }
            Repr::Dense(bits)
        } else {
            Repr::Sparse(ids.into())
        };
        let mut occupancy = vec![0u64; chunks.div_ceil(64).max(1)];
        for &id in ids {
            let chunk = id as usize / CHUNK_BITS;
            if let Some(w) = occupancy.get_mut(chunk / 64) {
                *w |= 1 << (chunk % 64);
            }
        }
        Posting {
            count: ids.len() as u32,
            occupancy: occupancy[0],
            more_occupancy: occupancy[1..].into(),
            repr,
        }
    }

    /// Which of chunks `group * 64 .. group * 64 + 64` hold a member, one bit each.
    #[inline]
    pub(crate) fn occupancy(&self, group: usize) -> u64 {
        match group {
            0 => self.occupancy,
            g => self.more_occupancy.get(g - 1).copied().unwrap_or(0),
        }
    }

    /// Whether chunk `chunk` holds a member: read from the set itself, so sets without
    /// members there cost no look at their data.
    #[inline]
    fn in_chunk(&self, chunk: usize) -> bool {
        self.occupancy(chunk / 64) >> (chunk % 64) & 1 == 1
    }

    /// The members, for a list.
    #[inline]
    fn list(&self) -> Option<&[u32]> {
        match &self.repr {
            Repr::Dense(_) => None,
            Repr::Sparse(ids) => Some(ids),
            Repr::Small(ids) => ids.get(..self.count as usize),
        }
    }

    /// Members among campaigns 0..64, one bit each (bit `i`: campaign `i`).
    pub(crate) fn first_word(&self) -> u64 {
        match (&self.repr, self.list()) {
            (Repr::Dense(bits), _) => bits.first().map_or(0, |line| line.0[0]),
            (_, ids) => ids
                .unwrap_or(&[])
                .iter()
                .take_while(|&&id| id < 64)
                .fold(0, |m, &id| m | 1 << id),
        }
    }

    /// Bytes the set takes, its header included.
    pub(crate) fn bytes(&self) -> usize {
        let data = match &self.repr {
            Repr::Dense(bits) => std::mem::size_of_val(&**bits),
            Repr::Sparse(ids) => std::mem::size_of_val(&**ids),
            Repr::Small(_) => 0,
        };
        std::mem::size_of::<Posting>() + data + std::mem::size_of_val(&*self.more_occupancy)
    }

    /// Number of campaigns in the set.
    pub(crate) fn count(&self) -> u32 {
        self.count
    }

    /// Whether campaign `id` is in the set.
    pub(crate) fn contains(&self, id: u32) -> bool {
        match (&self.repr, self.list()) {
            (Repr::Dense(bits), _) => {
                let w = id as usize / 64;
                bits.get(w / LINE_WORDS)
                    .is_some_and(|line| line.0[w % LINE_WORDS] >> (id % 64) & 1 == 1)
            }
            (_, ids) => ids.unwrap_or(&[]).binary_search(&id).is_ok(),
        }
    }

    /// Starts loading this set's members in `chunk` (see [`Posting::or_into`] for
    /// `cursor`), without waiting for them.
    #[inline]
    pub(crate) fn prefetch(&self, chunk: usize, cursor: u32) {
        if !self.in_chunk(chunk) {
            return;
        }
        match &self.repr {
            Repr::Dense(bits) => {
                for line in dense_chunk(bits, chunk).unwrap_or(&[]) {
                    prefetch(line);
                }
            }
            Repr::Sparse(ids) => {
                if let Some(id) = ids.get(cursor as usize) {
                    prefetch(id);
                }
            }
            Repr::Small(_) => {}
        }
    }

    /// `m |= self ∩ chunk`, at least on the lines of `live` (a bitmap reads only
    /// those). `cursor` is this set's read position, kept by the caller across calls:
    /// chunks must be asked for in increasing order, starting at 0.
    #[inline]
    pub(crate) fn or_into(&self, chunk: usize, cursor: &mut u32, m: &mut Mask, live: Live) {
        if !self.in_chunk(chunk) {
            return;
        }
        match (&self.repr, self.list()) {
            (Repr::Dense(bits), _) => {
                if let Some(src) = dense_chunk(bits, chunk) {
                    each_line(live, m, src, |d, s| *d |= s);
                }
            }
            (_, ids) => {
                let base = (chunk * CHUNK_BITS) as u32;
                for &id in sparse_chunk(ids.unwrap_or(&[]), cursor, chunk) {
                    let bit = (id - base) as usize;
                    m[bit / 64] |= 1 << (bit % 64);
                }
            }
        }
    }

    /// `m &= self ∩ chunk` (see [`Posting::or_into`] for `cursor`).
    #[inline]
    pub(crate) fn and_into(&self, chunk: usize, cursor: &mut u32, m: &mut Mask) {
        if !self.in_chunk(chunk) {
            *m = [0; CHUNK_WORDS];
            return;
        }
        match (&self.repr, self.list()) {
            (Repr::Dense(bits), _) => match dense_chunk(bits, chunk) {
                Some(src) => each_line(live(m), m, src, |d, s| *d &= s),
                None => *m = [0; CHUNK_WORDS],
            },
            (_, ids) => {
                let span = sparse_chunk(ids.unwrap_or(&[]), cursor, chunk);
                if span.is_empty() {
                    *m = [0; CHUNK_WORDS];
                    return;
                }
                let base = (chunk * CHUNK_BITS) as u32;
                let mut keep = [0u64; CHUNK_WORDS];
                for &id in span {
                    let bit = (id - base) as usize;
                    keep[bit / 64] |= 1 << (bit % 64);
                }
                and(m, &keep);
            }
        }
    }

    /// `m &= !(self ∩ chunk)` (see [`Posting::or_into`] for `cursor`).
    #[inline]
    pub(crate) fn and_not_into(&self, chunk: usize, cursor: &mut u32, m: &mut Mask) {
        if !self.in_chunk(chunk) {
            return;
        }
        match (&self.repr, self.list()) {
            (Repr::Dense(bits), _) => {
                if let Some(src) = dense_chunk(bits, chunk) {
                    each_line(live(m), m, src, |d, s| *d &= !s);
                }
            }
            (_, ids) => {
                let base = (chunk * CHUNK_BITS) as u32;
                for &id in sparse_chunk(ids.unwrap_or(&[]), cursor, chunk) {
                    let bit = (id - base) as usize;
                    m[bit / 64] &= !(1 << (bit % 64));
                }
            }
        }
    }
}

/// `m &= other`.
#[inline]
pub(crate) fn and(m: &mut Mask, other: &[u64]) {
    for (d, s) in m.iter_mut().zip(other) {
        *d &= s;
    }
}

/// Whether every bit of `m` is also set in `cover`.
#[inline]
pub(crate) fn covers(cover: &Mask, m: &Mask) -> bool {
    m.iter().zip(cover).fold(0, |acc, (w, c)| acc | (w & !c)) == 0
}

/// Whether no bit is set.
#[inline]
pub(crate) fn is_empty(m: &Mask) -> bool {
    m.iter().fold(0, |acc, w| acc | w) == 0
}

#[inline]
fn dense_chunk(bits: &[Line], chunk: usize) -> Option<&[Line]> {
    bits.get(chunk * LINES..(chunk + 1) * LINES)
}

/// The members of sorted `ids` that fall in `chunk`. The search starts at `*cursor`,
/// which is at or before the chunk's first member, and leaves it after the chunk's last:
/// walking chunks in order reads each list front to back, touching only what it uses.
#[inline]
fn sparse_chunk<'a>(ids: &'a [u32], cursor: &mut u32, chunk: usize) -> &'a [u32] {
    let start = (chunk * CHUNK_BITS) as u32;
    let end = start + CHUNK_BITS as u32;
    let mut lo = (*cursor as usize).min(ids.len());
    if ids.get(lo).is_some_and(|&x| x < start) {
        // Gallop over chunks this list was not asked about.
        let mut step = 1;
        while ids.get(lo + step).is_some_and(|&x| x < start) {
            lo += step;
            step *= 2;
        }
        let probe = &ids[lo..(lo + step + 1).min(ids.len())];
        lo += probe.partition_point(|&x| x < start);
    }
    let mut hi = lo;
    while ids.get(hi).is_some_and(|&x| x < end) {
        hi += 1;
    }
    *cursor = hi as u32;
    &ids[lo..hi]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every line live.
    const ALL_LIVE: Live = (1 << LINES) - 1;

    fn members(p: &Posting, chunks: usize) -> Vec<u32> {
        let mut out = Vec::new();
        let mut cursor = 0;
        for c in 0..chunks {
            let mut m = [0u64; CHUNK_WORDS];
            p.or_into(c, &mut cursor, &mut m, ALL_LIVE);
            for (w, &word) in m.iter().enumerate() {
                for b in 0..64 {
                    if word >> b & 1 == 1 {
                        out.push((c * CHUNK_BITS + w * 64 + b) as u32);
                    }
                }
            }
        }
        out
    }

    #[test]
    fn dense_and_sparse_hold_the_same_members() {
        let chunks = 3;
        let sparse_ids: Vec<u32> = vec![0, 63, 64, 2047, 2048, 5000, 6143];
        let dense_ids: Vec<u32> = (0..6144).filter(|i| i % 3 == 0).collect();
        for ids in [&sparse_ids, &dense_ids] {
            let p = Posting::new(ids, chunks);
            assert_eq!(&members(&p, chunks), ids);
            assert_eq!(p.count() as usize, ids.len());
            for id in 0..6144 {
                assert_eq!(p.contains(id), ids.contains(&id), "{id}");
            }
        }
        assert!(matches!(
            Posting::new(&sparse_ids, chunks).repr,
            Repr::Sparse(_)
        ));
        assert!(matches!(
            Posting::new(&dense_ids, chunks).repr,
            Repr::Dense(_)
        ));
    }

    #[test]
    fn and_and_and_not_restrict_a_chunk() {
        for ids in [vec![1u32, 2, 2050], (0..4096).step_by(2).collect()] {
            let p = Posting::new(&ids, 2);
            let mut cursors = [0u32; 3];
            for chunk in 0..2 {
                let mut m = [u64::MAX; CHUNK_WORDS];
                p.and_into(chunk, &mut cursors[0], &mut m);
                let mut expect = [0u64; CHUNK_WORDS];
                p.or_into(chunk, &mut cursors[1], &mut expect, ALL_LIVE);
                assert_eq!(m, expect);
                let mut m = [u64::MAX; CHUNK_WORDS];
                p.and_not_into(chunk, &mut cursors[2], &mut m);
                for (a, b) in m.iter().zip(&expect) {
                    assert_eq!(*a, !b);
                }
            }
        }
        assert!(is_empty(&[0; CHUNK_WORDS]));
        let (mut a, mut b) = ([0u64; CHUNK_WORDS], [0u64; CHUNK_WORDS]);
        a[3] = 0b110;
        b[3] = 0b111;
        assert!(covers(&b, &a) && !covers(&a, &b));
    }

    #[test]
    fn a_set_fills_one_cache_line() {
        assert_eq!(std::mem::size_of::<Posting>(), 64);
    }

    #[test]
    fn short_lists_are_inline() {
        let p = Posting::new(&[3, 2049, 4097], 3);
        assert!(matches!(p.repr, Repr::Small(_)));
        assert!(p.contains(2049) && !p.contains(2048));
        assert_eq!(members(&p, 3), [3, 2049, 4097]);
        assert_eq!(p.occupancy(0), 0b111);
    }

    #[test]
    fn occupancy_marks_chunks_with_members() {
        let p = Posting::new(&[5, 2048 * 3 + 1, 2048 * 70], 71);
        assert_eq!(p.occupancy(0), 0b1001);
        assert_eq!(p.occupancy(1), 1 << 6);
        assert_eq!(p.occupancy(2), 0);
        let mut cursor = 0;
        let mut m = [0u64; CHUNK_WORDS];
        p.or_into(3, &mut cursor, &mut m, ALL_LIVE);
        assert_eq!(m[0], 0b10);
    }

    #[test]
    fn skipped_chunks_are_galloped_over() {
        let ids: Vec<u32> = (0..20_000).step_by(97).collect();
        let p = Posting::new(&ids, 40);
        assert!(matches!(p.repr, Repr::Sparse(_)));
        // Asking for chunks 0, 3, 4 and 9 only: each answer holds exactly its members.
        let mut cursor = 0;
        for chunk in [0, 3, 4, 9] {
            let mut m = [0u64; CHUNK_WORDS];
            p.or_into(chunk, &mut cursor, &mut m, ALL_LIVE);
            for bit in 0..CHUNK_BITS {
                let id = (chunk * CHUNK_BITS + bit) as u32;
                let set = m[bit / 64] >> (bit % 64) & 1 == 1;
                assert_eq!(set, id < 20_000 && id % 97 == 0, "chunk {chunk} id {id}");
            }
        }
    }
}
