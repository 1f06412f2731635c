//! A small deterministic random number generator (SplitMix64), the one every test,
//! bench and generator of the workspace draws from.
//!
//! Output depends only on the seed, never on the platform or a crate version, so a
//! corpus generated with `--seed S` is the same everywhere, byte for byte. Every draw
//! below is defined in terms of [`Rng::next_u64`]; the sequence for a seed is pinned by
//! a test, because `shardbid-load`'s files and the benches' inputs depend on it.

/// SplitMix64: fast, statistically good enough for traffic and test data, trivially
/// seedable.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x6A09_E667_F3BC_C908)
    }

    /// An independent generator for item `index` of the stream `seed`: item i of a
    /// corpus is the same whatever the corpus size.
    pub fn for_item(seed: u64, index: u64) -> Rng {
        let mut r = Rng::new(seed);
        let a = r.next_u64();
        let mut r = Rng(a ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        r.next_u64();
        r
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`, with 53 random bits.
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Uniform in `lo..=hi` (`lo` when `hi <= lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        let span = hi - lo + 1;
        if span == 0 {
            return self.next_u64();
        }
        lo + ((self.next_u64() as u128 * span as u128) >> 64) as u64
    }

    /// True with probability `p` (0..=1).
    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// An index below `n` (0 when `n` is 0), low indexes much more likely: the cube of
    /// a uniform draw, so index 0 is as likely as the top 50% of `0..n` together. Models
    /// popularity: a few domains, segments or advertisers are in most of the traffic,
    /// the long tail in little of it.
    pub fn skewed(&mut self, n: usize) -> usize {
        let x = self.f64();
        ((x * x * x * n as f64) as usize).min(n.saturating_sub(1))
    }

    /// A uniformly chosen element; `xs` must not be empty.
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }

    /// An element chosen popular-first ([`Rng::skewed`]): the first elements of `xs`
    /// are the common ones. `xs` must not be empty.
    pub fn pick_skewed<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.skewed(xs.len())]
    }

    /// An element chosen by weight: `xs` holds `(weight, value)` pairs.
    pub fn weighted<'a, T>(&mut self, xs: &'a [(u32, T)]) -> &'a T {
        let total: u64 = xs.iter().map(|(w, _)| *w as u64).sum();
        let mut x = self.range(0, total.saturating_sub(1));
        for (w, v) in xs {
            if x < *w as u64 {
                return v;
            }
            x -= *w as u64;
        }
        &xs[xs.len() - 1].1
    }

    /// Up to `max` distinct elements of `xs`, in the order drawn: `0..=max` uniform
    /// picks, repeats dropped (so small pools give fewer). `xs` must not be empty.
    pub fn pick_some<T: Clone + PartialEq>(&mut self, xs: &[T], max: usize) -> Vec<T> {
        let mut out: Vec<T> = Vec::new();
        for _ in 0..self.below(max + 1) {
            let v = self.pick(xs);
            if !out.contains(v) {
                out.push(v.clone());
            }
        }
        out
    }

    /// `k` distinct indices of `0..n` in increasing order (all of them when `k >= n`).
    pub fn sample_indices(&mut self, n: usize, k: usize) -> Vec<usize> {
        if k >= n {
            return (0..n).collect();
        }
        let mut picked: Vec<usize> = Vec::with_capacity(k);
        while picked.len() < k {
            let i = self.below(n);
            if !picked.contains(&i) {
                picked.push(i);
            }
        }
        picked.sort_unstable();
        picked
    }

    /// Between `lo` and `hi` (inclusive) distinct indices of `0..n`, in increasing order.
    pub fn sample(&mut self, n: usize, lo: u64, hi: u64) -> Vec<usize> {
        let k = self.range(lo, hi) as usize;
        self.sample_indices(n, k)
    }

    /// `s` with each ASCII letter upper-cased with probability `p`, for matching that
    /// must ignore case.
    pub fn mixed_case(&mut self, s: &str, p: f64) -> String {
        s.chars()
            .map(|c| {
                if self.chance(p) {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect()
    }

    /// `len` lowercase hex digits.
    pub fn hex(&mut self, len: usize) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(len);
        let mut bits = 0u64;
        for i in 0..len {
            if i % 16 == 0 {
                bits = self.next_u64();
            }
            s.push(HEX[(bits & 15) as usize] as char);
            bits >>= 4;
        }
        s
    }

    /// A random version-4 style UUID string.
    pub fn uuid(&mut self) -> String {
        let h = self.hex(32);
        format!(
            "{}-{}-4{}-a{}-{}",
            &h[0..8],
            &h[8..12],
            &h[13..16],
            &h[17..20],
            &h[20..32]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sequence_is_pinned() {
        // SplitMix64 from state 0x6A09E667F3BCC908 (seed 0): changing any of these
        // changes every generated corpus, campaign file and bench input.
        let mut r = Rng::new(0);
        let got: Vec<u64> = (0..4).map(|_| r.next_u64()).collect();
        assert_eq!(
            got,
            [
                0x1ac0_46dd_a8e8_6e2a,
                0xbe2c_3b00_b1d3_48c8,
                0x9b1a_66a9_5412_ff75,
                0xc448_c2b1_f05f_7e4c,
            ]
        );
        assert_eq!(Rng::for_item(1, 5).next_u64(), 0xeef5_379e_0aa8_bbf7);
        let mut r = Rng::new(42);
        let draws = (
            r.below(1000),
            r.range(10, 20),
            r.chance(0.5),
            r.skewed(1000),
        );
        assert_eq!(draws, (210, 14, false, 212));
        assert_eq!(r.hex(12), "854926c3f189");
        assert_eq!(r.uuid(), "b706851a-566e-4cf4-ae7c-c6f0b698a5ca");
    }

    #[test]
    fn same_seed_same_stream_and_items_are_independent_of_order() {
        let a: Vec<u64> = (0..8).map(|_| Rng::new(7).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut x = Rng::new(7);
        let mut y = Rng::new(8);
        assert_ne!(x.next_u64(), y.next_u64());
        let i5 = Rng::for_item(1, 5).next_u64();
        let _ = Rng::for_item(1, 4).next_u64();
        assert_eq!(Rng::for_item(1, 5).next_u64(), i5);
        assert_ne!(Rng::for_item(1, 6).next_u64(), i5);
    }

    #[test]
    fn bounded_draws_stay_in_bounds_and_cover_the_range() {
        let mut r = Rng::new(1);
        let mut seen = [false; 10];
        for _ in 0..1000 {
            let v = r.range(3, 12);
            assert!((3..=12).contains(&v));
            seen[(v - 3) as usize] = true;
            assert!(r.below(7) < 7);
            assert!(r.skewed(7) < 7);
            assert!((0.0..1.0).contains(&r.f64()));
        }
        assert!(seen.iter().all(|s| *s));
        assert_eq!((r.below(0), r.skewed(0), r.range(5, 5)), (0, 0, 5));
        let s = r.sample_indices(50, 5);
        assert_eq!(s.len(), 5);
        assert!(s.windows(2).all(|w| w[0] < w[1]));
        for _ in 0..100 {
            let some = r.pick_some(&[1, 2, 3], 2);
            assert!(some.len() <= 2 && (some.len() < 2 || some[0] != some[1]));
        }
    }

    #[test]
    fn chance_matches_its_probability() {
        let mut r = Rng::new(3);
        let hits = (0..100_000).filter(|_| r.chance(0.25)).count();
        assert!((24_000..26_000).contains(&hits), "{hits}");
    }

    #[test]
    fn skewed_picks_favour_the_first_elements() {
        let mut r = Rng::new(4);
        let mut counts = [0usize; 10];
        for _ in 0..100_000 {
            counts[r.skewed(10)] += 1;
        }
        // P(index 0) = P(x^3 < 0.1) = 0.1^(1/3) ~ 46%; P(index 9) = 1 - 0.9^(1/3) ~ 3.5%.
        assert!((45_000..48_000).contains(&counts[0]), "{counts:?}");
        assert!((3_000..4_000).contains(&counts[9]), "{counts:?}");
        assert!(counts.windows(2).all(|w| w[0] > w[1]), "{counts:?}");
        let xs = ["a", "b", "c"];
        let firsts = (0..1000).filter(|_| *r.pick_skewed(&xs) == "a").count();
        assert!(firsts > 600, "{firsts}");
    }
}
