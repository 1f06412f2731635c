//! Posting sets: which campaigns carry one targeting value. Campaigns are numbered in
//! price order, and matching walks them one chunk of [`CHUNK_BITS`] campaigns at a time,
//! so every set answers "the members in chunk `c`" as a bitmask.
//!
//! A set is stored either as a bitmap (dense) or as a sorted list of campaign numbers
//! (sparse), whichever is smaller, so memory stays proportional to the number of
//! (campaign, value) pairs even for high-cardinality dimensions such as domains.

/// Campaigns per chunk.
pub const CHUNK_BITS: usize = 2048;
/// 64-bit words per chunk.
pub const CHUNK_WORDS: usize = CHUNK_BITS / 64;

/// The members of one chunk: bit `i` of word `w` is campaign `chunk * CHUNK_BITS + w * 64 + i`.
pub type Mask = [u64; CHUNK_WORDS];

/// Index of a posting set in the table's pool.
pub(crate) type PostingId = u32;

/// The pool's always-empty set.
pub(crate) const EMPTY: PostingId = 0;

#[derive(Clone, Debug)]
enum Repr {
    /// One bit per campaign, padded to whole chunks.
    Dense(Box<[u64]>),
    /// Sorted campaign numbers.
    Sparse(Box<[u32]>),
}

/// An immutable set of campaign numbers.
#[derive(Clone, Debug)]
pub(crate) struct Posting {
    count: u32,
    repr: Repr,
}

impl Posting {
    /// Builds a set from sorted, distinct campaign numbers below `chunks * CHUNK_BITS`.
    pub(crate) fn new(ids: &[u32], chunks: usize) -> Posting {
        let words = chunks * CHUNK_WORDS;
        // Dense when the list would take more bytes than the bitmap.
        let repr = if ids.len() * 4 > words * 8 {
            let mut bits = vec![0u64; words].into_boxed_slice();
            for &id in ids {
                if let Some(w) = bits.get_mut(id as usize / 64) {
                    *w |= 1 << (id % 64);
                }
            }
            Repr::Dense(bits)
        } else {
            Repr::Sparse(ids.into())
        };
        Posting {
            count: ids.len() as u32,
            repr,
        }
    }

    /// Number of campaigns in the set.
    pub(crate) fn count(&self) -> u32 {
        self.count
    }

    /// Whether campaign `id` is in the set.
    #[cfg(test)]
    pub(crate) fn contains(&self, id: u32) -> bool {
        match &self.repr {
            Repr::Dense(bits) => bits
                .get(id as usize / 64)
                .is_some_and(|w| w >> (id % 64) & 1 == 1),
            Repr::Sparse(ids) => ids.binary_search(&id).is_ok(),
        }
    }

    /// `m |= self ∩ chunk`.
    #[inline]
    pub(crate) fn or_into(&self, chunk: usize, m: &mut Mask) {
        match &self.repr {
            Repr::Dense(bits) => {
                if let Some(src) = dense_chunk(bits, chunk) {
                    for (d, s) in m.iter_mut().zip(src) {
                        *d |= s;
                    }
                }
            }
            Repr::Sparse(ids) => {
                let base = (chunk * CHUNK_BITS) as u32;
                for &id in sparse_chunk(ids, chunk) {
                    let bit = (id - base) as usize;
                    m[bit / 64] |= 1 << (bit % 64);
                }
            }
        }
    }

    /// `m &= self ∩ chunk`.
    #[inline]
    pub(crate) fn and_into(&self, chunk: usize, m: &mut Mask) {
        match &self.repr {
            Repr::Dense(bits) => match dense_chunk(bits, chunk) {
                Some(src) => {
                    for (d, s) in m.iter_mut().zip(src) {
                        *d &= s;
                    }
                }
                None => *m = [0; CHUNK_WORDS],
            },
            Repr::Sparse(_) => {
                let mut tmp = [0u64; CHUNK_WORDS];
                self.or_into(chunk, &mut tmp);
                and(m, &tmp);
            }
        }
    }

    /// `m &= !(self ∩ chunk)`.
    #[inline]
    pub(crate) fn and_not_into(&self, chunk: usize, m: &mut Mask) {
        match &self.repr {
            Repr::Dense(bits) => {
                if let Some(src) = dense_chunk(bits, chunk) {
                    for (d, s) in m.iter_mut().zip(src) {
                        *d &= !s;
                    }
                }
            }
            Repr::Sparse(ids) => {
                let base = (chunk * CHUNK_BITS) as u32;
                for &id in sparse_chunk(ids, chunk) {
                    let bit = (id - base) as usize;
                    m[bit / 64] &= !(1 << (bit % 64));
                }
            }
        }
    }
}

/// `m &= other`.
#[inline]
pub(crate) fn and(m: &mut Mask, other: &Mask) {
    for (d, s) in m.iter_mut().zip(other) {
        *d &= s;
    }
}

/// Whether no bit is set.
#[inline]
pub(crate) fn is_empty(m: &Mask) -> bool {
    m.iter().fold(0, |acc, w| acc | w) == 0
}

#[inline]
fn dense_chunk(bits: &[u64], chunk: usize) -> Option<&[u64]> {
    bits.get(chunk * CHUNK_WORDS..(chunk + 1) * CHUNK_WORDS)
}

/// The members of `ids` (sorted) that fall in `chunk`.
#[inline]
fn sparse_chunk(ids: &[u32], chunk: usize) -> &[u32] {
    let start = (chunk * CHUNK_BITS) as u32;
    let end = start + CHUNK_BITS as u32;
    let lo = ids.partition_point(|&x| x < start);
    let rest = &ids[lo..];
    &rest[..rest.partition_point(|&x| x < end)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(p: &Posting, chunks: usize) -> Vec<u32> {
        let mut out = Vec::new();
        for c in 0..chunks {
            let mut m = [0u64; CHUNK_WORDS];
            p.or_into(c, &mut m);
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
            for chunk in 0..2 {
                let mut m = [u64::MAX; CHUNK_WORDS];
                p.and_into(chunk, &mut m);
                let mut expect = [0u64; CHUNK_WORDS];
                p.or_into(chunk, &mut expect);
                assert_eq!(m, expect);
                let mut m = [u64::MAX; CHUNK_WORDS];
                p.and_not_into(chunk, &mut m);
                for (a, b) in m.iter().zip(&expect) {
                    assert_eq!(*a, !b);
                }
            }
        }
        assert!(is_empty(&[0; CHUNK_WORDS]));
    }
}
