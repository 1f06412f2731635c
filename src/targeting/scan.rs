//! Matching one imp: the query's terms intersected one chunk of campaigns at a time.
//!
//! Terms go in stage order (every no-match term before the test term, before deals,
//! before blocks), most selective first within a stage, and a chunk stops at the first
//! term that leaves it empty. The stage of that term is how far the chunk's campaigns
//! got, which makes the no-bid reason exact. Stages no later than the furthest one
//! already seen no longer need their order: their terms go first, most selective first.
//!
//! Before any bitmask work, each posting set's per-chunk occupancy (one bit per chunk)
//! tells for 64 chunks at once the stage by which a chunk must come out empty: a chunk
//! that cannot produce a candidate, nor a later stage than already seen, is skipped.

#![forbid(unsafe_code)]

use super::index::Index;
use super::posting::{self, Mask, CHUNK_BITS, CHUNK_WORDS};
use super::query::{Op, Query, Stage, MAX_IDS, MAX_TERMS, STAGES};

// A term's position rides in the low 6 bits of its sort key (see [`Scan::arrange`]).
const _: () = assert!(MAX_TERMS <= 64);

/// The matching state of one imp.
pub(crate) struct Scan<'q> {
    q: &'q Query,
    /// Term indices in evaluation order (see [`Scan::arrange`]).
    order: [u8; MAX_TERMS],
    n: usize,
    /// The `reached` stage `order` was arranged for.
    arranged_for: Stage,
    /// Read positions in the sparse sets of the query's ids (chunks go in order).
    cursors: [u32; MAX_IDS],
    /// For the chunk group `group`: the chunks still possible after each stage.
    viable: [u64; STAGES],
    group: usize,
    /// Terms the last [`Scan::eval`] read, plus one: how many to prefetch for the next.
    depth: usize,
}

impl<'q> Scan<'q> {
    /// A scan of `q` that has not started; [`Scan::start`] arranges its terms. The two
    /// are separate so that the ~1 KB scan is built where the caller keeps it.
    #[inline(always)]
    pub(crate) fn new(q: &'q Query) -> Scan<'q> {
        Scan {
            q,
            order: [0; MAX_TERMS],
            n: 0,
            arranged_for: Stage::NoMatch,
            cursors: [0; MAX_IDS],
            viable: [0; STAGES],
            group: usize::MAX,
            depth: MAX_TERMS,
        }
    }

    /// Arranges the terms for a scan that has seen nothing yet (a one-word table needs
    /// no arrangement, see [`Scan::eval_word`]).
    pub(crate) fn start(&mut self, ix: &Index) {
        if ix.words.is_none() {
            self.arrange(Stage::NoMatch);
        }
    }

    /// Orders the terms for a scan that has already seen a campaign get as far as
    /// `reached`. A campaign's no-bid stage is that of the first term it fails in
    /// stage order; failing any term of a stage at or below `reached` can no longer
    /// raise `reached`, so those terms go first in any order, most selective first,
    /// and only the later stages keep their order. A private auction's few deal
    /// holders thus filter a chunk before the broad terms are read.
    fn arrange(&mut self, reached: Stage) {
        let mut keys = [0u64; MAX_TERMS];
        let mut n = 0;
        // Sort keys (stage, op, weight, position), the position in the low 6 bits. A
        // degraded query keeps only its no-match terms; candidates are checked exactly
        // instead.
        for (i, t) in self.q.terms().iter().enumerate() {
            if self.q.degraded && t.stage != Stage::NoMatch {
                continue;
            }
            let stage = if t.stage <= reached {
                0
            } else {
                t.stage as u64
            };
            let Some(slot) = keys.get_mut(n) else {
                break;
            };
            *slot = stage << 40 | (t.op as u64) << 39 | (t.weight as u64) << 6 | i as u64;
            n += 1;
        }
        keys[..n].sort_unstable();
        for (o, k) in self.order.iter_mut().zip(&keys[..n]) {
            *o = (k & 63) as u8;
        }
        self.n = n;
        self.arranged_for = reached;
    }

    /// Whether `chunk` can be skipped: it cannot hold a candidate, and the stage by
    /// which it must come out empty is no later than `reached`.
    #[inline]
    pub(crate) fn skip(&mut self, ix: &Index, chunk: usize, reached: Stage) -> bool {
        if ix.words.is_some() {
            return false;
        }
        let group = chunk / 64;
        if group != self.group {
            self.plan(ix, group);
        }
        let bit = 1u64 << (chunk % 64);
        match Stage::ALL
            .iter()
            .zip(&self.viable)
            .find(|(_, v)| *v & bit == 0)
        {
            Some((&stage, _)) => stage <= reached,
            None => false,
        }
    }

    /// Works out, for 64 chunks, which are still possible after each stage's unions.
    fn plan(&mut self, ix: &Index, group: usize) {
        self.group = group;
        let mut per_stage = [u64::MAX; STAGES];
        for &i in &self.order[..self.n] {
            let Some(t) = self.q.terms().get(i as usize) else {
                continue;
            };
            if t.op == Op::Union {
                let any = self
                    .q
                    .ids(t)
                    .iter()
                    .fold(0, |a, &id| a | ix.posting(id).occupancy(group));
                for v in per_stage.iter_mut().skip(t.stage as usize) {
                    *v &= any;
                }
            }
        }
        self.viable = per_stage;
    }

    /// Writes into `acc` the campaigns of `chunk` that pass every term; `false` when
    /// none do. Chunks must be asked for in increasing order.
    ///
    /// Terms go in stage order, so a campaign that a stage-S term removes got as far as
    /// S: `reached` is raised to the stage of every term that removes anything.
    #[inline]
    pub(crate) fn eval(
        &mut self,
        ix: &Index,
        chunk: usize,
        acc: &mut Mask,
        reached: &mut Stage,
    ) -> bool {
        if let Some(words) = ix.words.as_deref() {
            return self.eval_word(words, acc, reached);
        }
        *acc = [u64::MAX; CHUNK_WORDS];
        let rem = self.q.campaigns.saturating_sub(chunk * CHUNK_BITS);
        if rem < CHUNK_BITS {
            for (w, word) in acc.iter_mut().enumerate() {
                let bits = rem.saturating_sub(w * 64).min(64);
                *word = if bits == 64 {
                    u64::MAX
                } else {
                    (1u64 << bits) - 1
                };
            }
        }
        if posting::is_empty(acc) {
            return false;
        }
        if *reached != self.arranged_for {
            self.arrange(*reached);
        }
        let terms = self.q.terms();
        // The terms below read one line after another, each likely a cache miss: ask for
        // the chunk's data of as many terms as the last chunk read, and one more, at once.
        let depth = if ix.cold { self.depth.min(self.n) } else { 0 };
        for &i in &self.order[..depth] {
            if let Some(t) = terms.get(i as usize) {
                let ids = self.q.ids(t);
                let cursors = self.cursors.get(t.start as usize..).unwrap_or(&[]);
                for (&id, &cursor) in ids.iter().zip(cursors) {
                    ix.posting(id).prefetch(chunk, cursor);
                }
            }
        }
        for (k, &i) in self.order[..self.n].iter().enumerate() {
            // Terms read so far (k + 1), plus one.
            self.depth = k + 2;
            let Some(t) = terms.get(i as usize) else {
                continue;
            };
            let before = (t.stage > *reached).then_some(*acc);
            let ids = self.q.ids(t);
            let range = t.start as usize..t.start as usize + ids.len();
            let Some(cursors) = self.cursors.get_mut(range) else {
                continue;
            };
            match (t.op, ids, cursors) {
                (Op::Union, [one], [cursor]) => ix.posting(*one).and_into(chunk, cursor, acc),
                (Op::Union, [first, rest @ ..], [c0, cs @ ..]) => {
                    // Only the lines that still hold candidates matter.
                    let live = posting::live(acc);
                    let mut any = [0u64; CHUNK_WORDS];
                    ix.posting(*first).or_into(chunk, c0, &mut any, live);
                    for (&id, cursor) in rest.iter().zip(cs) {
                        // The sets that follow cannot admit anyone new: stop reading.
                        if posting::covers(&any, acc) {
                            break;
                        }
                        ix.posting(id).or_into(chunk, cursor, &mut any, live);
                    }
                    posting::and(acc, &any);
                }
                (Op::Union, _, _) => *acc = [0; CHUNK_WORDS],
                (Op::Subtract, _, cursors) => {
                    for (&id, cursor) in ids.iter().zip(cursors) {
                        ix.posting(id).and_not_into(chunk, cursor, acc);
                    }
                }
            }
            let empty = posting::is_empty(acc);
            if empty || before.is_some_and(|b| b != *acc) {
                *reached = (*reached).max(t.stage);
            }
            if empty {
                return false;
            }
        }
        true
    }

    /// [`Scan::eval`] for a table of at most 64 campaigns, one chunk whose every set is
    /// one word (`words`, by posting id). Terms go in stage order; within a stage their
    /// order changes neither the candidates nor the stage of what they remove, so
    /// nothing is sorted.
    fn eval_word(&self, words: &[u64], acc: &mut Mask, reached: &mut Stage) -> bool {
        *acc = [0; CHUNK_WORDS];
        let mut m = match self.q.campaigns {
            0 => 0,
            n @ 1..64 => (1u64 << n) - 1,
            _ => u64::MAX,
        };
        let terms = self.q.terms();
        // Which terms each stage has, one bit per term.
        let mut by_stage = [0u64; STAGES];
        for (i, t) in terms.iter().enumerate() {
            by_stage[t.stage as usize] |= 1 << i;
        }
        // A degraded query keeps only its no-match terms (see `arrange`).
        let stages = if self.q.degraded { 1 } else { STAGES };
        for (&stage, &members) in Stage::ALL.iter().zip(&by_stage).take(stages) {
            let mut bits = members;
            while bits != 0 {
                let i = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let Some(t) = terms.get(i) else { break };
                let ids = self.q.ids(t).iter();
                let any = ids.fold(0, |a, &id| a | words.get(id as usize).copied().unwrap_or(0));
                let next = match t.op {
                    Op::Union => m & any,
                    Op::Subtract => m & !any,
                };
                if next != m {
                    *reached = (*reached).max(stage);
                }
                m = next;
                if m == 0 {
                    return false;
                }
            }
        }
        acc[0] = m;
        m != 0
    }
}
