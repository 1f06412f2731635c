//! Retry delays for 429 and 503 answers: exponential backoff with equal jitter, capped,
//! and never shorter than the server's `Retry-After`.

/// Retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Retries after the first attempt (0 = never retry).
    pub retries: u32,
    /// Delay before the first retry, in nanoseconds (before jitter).
    pub base: u64,
    /// Largest delay, in nanoseconds.
    pub max: u64,
}

impl Backoff {
    /// Whether a request that has made `attempts` attempts may make another.
    pub fn may_retry(&self, attempts: u32) -> bool {
        attempts <= self.retries
    }

    /// Delay before retry number `retry` (1 = first retry): `min(max, base * 2^(retry-1))`,
    /// of which the upper half is random (`random` is any uniformly random value), and at
    /// least `retry_after_s` seconds when the server asked for that.
    pub fn delay(&self, retry: u32, random: u64, retry_after_s: Option<u32>) -> u64 {
        let exp = retry.saturating_sub(1).min(40);
        let d = self.base.saturating_mul(1u64 << exp).min(self.max);
        let half = d / 2;
        let jittered = d - half + if half == 0 { 0 } else { random % (half + 1) };
        let floor = retry_after_s.map_or(0, |s| s as u64 * 1_000_000_000);
        jittered.max(floor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn delays_grow_exponentially_within_jitter_bounds_and_cap() {
        let b = Backoff {
            retries: 5,
            base: 10 * MS,
            max: 100 * MS,
        };
        for (retry, lo, hi) in [
            (1, 5, 10),
            (2, 10, 20),
            (3, 20, 40),
            (4, 40, 80),
            (5, 50, 100),
            (30, 50, 100),
        ] {
            for random in [0, 1, 12345, u64::MAX / 3, u64::MAX] {
                let d = b.delay(retry, random, None);
                assert!((lo * MS..=hi * MS).contains(&d), "retry {retry}: {d}");
            }
            assert_eq!(b.delay(retry, 0, None), lo * MS);
            assert_eq!(b.delay(retry, hi * MS / 2, None), hi * MS);
        }
    }

    #[test]
    fn jitter_spreads_retries() {
        let b = Backoff {
            retries: 3,
            base: 100 * MS,
            max: 1000 * MS,
        };
        let mut seen: Vec<u64> = (0..100u64)
            .map(|i| b.delay(2, i.wrapping_mul(0x9E37_79B9_7F4A_7C15), None))
            .collect();
        seen.sort_unstable();
        seen.dedup();
        assert!(seen.len() > 90);
    }

    #[test]
    fn retry_after_is_honoured_and_attempts_are_capped() {
        let b = Backoff {
            retries: 2,
            base: MS,
            max: 10 * MS,
        };
        assert_eq!(b.delay(1, 0, Some(2)), 2_000_000_000);
        assert!(b.may_retry(1) && b.may_retry(2));
        assert!(!b.may_retry(3));
        assert!(!Backoff { retries: 0, ..b }.may_retry(1));
    }
}
