//! Admission: whether a shard takes a bid request on at all, decided from its headers
//! before the body is parsed. Two checks, both per shard, in plain `Cell`s, and both
//! pure (instants come in as arguments; no runtime here):
//!
//! - [`Shedder`]: adaptive load shedding. Over its limit a request gets a fast no-bid
//!   (reason `overload`) instead of a late answer. The connection stays open.
//! - [`Quota`]: an exchange's `max_qps`, of which each shard enforces its share.
//!
//! ## How the shedder sees queueing
//!
//! A shard runs its ready connections one after another in each loop of its executor.
//! A request therefore waits twice before its handler runs: in the kernel, while the
//! loop before this one was busy (requests that arrived then are picked up by this
//! loop), and in this loop, behind the requests handled before it. The shedder
//! estimates both without a clock read of its own: the loop's start is the executor's
//! clock reading for the loop, and "now" is the last handler's closing clock reading.
//!
//! `delay = busy time of the previous loop + time already spent in this loop`
//!
//! A request whose delay is over `target` is shed: CoDel's idea (judge a queue by how
//! long its items waited, not by how many there are), applied per request. Shed
//! requests cost a fraction of a bid (no JSON, no auction), so shedding shortens the
//! loops until the delay is back under the target; when the load goes, nothing is shed
//! any more, at once. The limit it implies, reported in metrics, is how many requests
//! a loop can take within the target at the cost per request measured lately.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// The reported limit when nothing has been measured yet, and its ceiling.
const MAX_LIMIT: u32 = 1 << 20;

/// A shard's adaptive load shedder.
#[derive(Debug)]
pub struct Shedder {
    /// Largest queueing delay a request may have had and still be served; zero: off.
    target: Duration,
    /// The current loop's start (the executor's clock reading for it).
    loop_start: Cell<Option<Instant>>,
    /// The latest clock reading of this loop: the last handler's end.
    last_seen: Cell<Option<Instant>>,
    /// The previous loop's busy time.
    carry: Cell<Duration>,
    /// Requests handled in this loop, served or shed.
    handled: Cell<u32>,
    /// Mean busy time per request over recent loops (an exponential average).
    cost: Cell<Duration>,
    shed: Cell<u64>,
}

impl Shedder {
    /// A shedder holding queueing delay to `target` (zero turns it off).
    pub fn new(target: Duration) -> Shedder {
        Shedder {
            target,
            loop_start: Cell::new(None),
            last_seen: Cell::new(None),
            carry: Cell::new(Duration::ZERO),
            handled: Cell::new(0),
            cost: Cell::new(Duration::ZERO),
            shed: Cell::new(0),
        }
    }

    /// Whether to serve a request picked up by the loop that started at `loop_start`.
    /// `false`: answer it with a no-bid, without parsing it.
    pub fn admit(&self, loop_start: Instant) -> bool {
        if self.target.is_zero() {
            return true;
        }
        if self.loop_start.get() != Some(loop_start) {
            self.next_loop(loop_start);
        }
        let in_loop = self
            .last_seen
            .get()
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(loop_start));
        let delay = self.carry.get() + in_loop;
        self.handled.set(self.handled.get() + 1);
        if delay > self.target {
            self.shed.set(self.shed.get() + 1);
            return false;
        }
        true
    }

    /// The handler's closing clock reading (its deadline check's).
    pub fn done(&self, now: Instant) {
        if self.last_seen.get().is_none_or(|t| now > t) {
            self.last_seen.set(Some(now));
        }
    }

    fn next_loop(&self, loop_start: Instant) {
        let busy = match (self.loop_start.get(), self.last_seen.get()) {
            (Some(start), Some(last)) if loop_start > start => {
                last.saturating_duration_since(start)
            }
            _ => Duration::ZERO,
        };
        // Busy time longer than the gap to this loop means the clock readings overlap
        // (a handler that ended after this loop began): the gap bounds it.
        let busy = match self.loop_start.get() {
            Some(start) => busy.min(loop_start.saturating_duration_since(start)),
            None => Duration::ZERO,
        };
        if self.handled.get() > 0 && !busy.is_zero() {
            let per = busy / self.handled.get();
            let cost = self.cost.get();
            self.cost.set(if cost.is_zero() {
                per
            } else {
                (cost * 7 + per) / 8
            });
        }
        self.carry.set(busy);
        self.handled.set(0);
        self.loop_start.set(Some(loop_start));
        self.last_seen.set(Some(loop_start));
    }

    /// Requests a loop can take within the target at the recent cost per request (a
    /// gauge for operators; `2^20` before any measurement, or when the shedder is off).
    pub fn limit(&self) -> u32 {
        let cost = self.cost.get();
        if self.target.is_zero() || cost.is_zero() {
            return MAX_LIMIT;
        }
        (self.target.as_nanos() / cost.as_nanos().max(1)).min(MAX_LIMIT as u128) as u32
    }

    /// Requests shed since start.
    pub fn shed(&self) -> u64 {
        self.shed.get()
    }
}

/// One exchange's share of its `max_qps` on one shard: a token bucket that refills at
/// the share's rate and holds at most one second of it.
#[derive(Debug)]
pub struct Quota {
    /// Requests per second for this shard; zero: no limit.
    share: u64,
    /// The exchange's whole `max_qps`, reported in `X-RateLimit-Limit`.
    total: u64,
    /// Tokens, in billionths of a request.
    tokens: Cell<u64>,
    at: Cell<Option<Instant>>,
    refused: Cell<u64>,
}

const NANOS: u64 = 1_000_000_000;

/// What a refused request is told: `X-RateLimit-*` and `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverQuota {
    /// The exchange's `max_qps`.
    pub limit: u64,
    /// Requests left in the current second, on the whole server (this shard's tokens
    /// times the shard count: each shard keeps its own).
    pub remaining: u64,
    /// Seconds until a request would be taken again (at least 1).
    pub reset_s: u64,
}

impl Quota {
    /// `max_qps` (zero: no limit) shared by `shards` shards: each takes its ceiling
    /// share, so the whole server never takes less than `max_qps`.
    pub fn new(max_qps: u64, shards: usize) -> Quota {
        let shards = shards.max(1) as u64;
        let share = max_qps.div_ceil(shards);
        Quota {
            share,
            total: max_qps,
            tokens: Cell::new(share * NANOS),
            at: Cell::new(None),
            refused: Cell::new(0),
        }
    }

    /// Takes one request at `now`, or says why not.
    pub fn take(&self, now: Instant, shards: usize) -> Result<(), OverQuota> {
        if self.share == 0 {
            return Ok(());
        }
        let full = self.share * NANOS;
        let mut tokens = self.tokens.get();
        if let Some(at) = self.at.get() {
            let elapsed = now
                .saturating_duration_since(at)
                .as_nanos()
                .min(NANOS as u128) as u64;
            tokens = (tokens + elapsed * self.share).min(full);
        }
        self.at.set(Some(now));
        if tokens >= NANOS {
            self.tokens.set(tokens - NANOS);
            return Ok(());
        }
        self.tokens.set(tokens);
        self.refused.set(self.refused.get() + 1);
        // Time to the next whole token, in whole seconds (at least 1).
        let missing = NANOS - tokens;
        let wait_ns = missing.div_ceil(self.share);
        Err(OverQuota {
            limit: self.total,
            remaining: (tokens / NANOS) * shards.max(1) as u64,
            reset_s: wait_ns.div_ceil(NANOS).max(1),
        })
    }

    /// Requests refused since start.
    pub fn refused(&self) -> u64 {
        self.refused.get()
    }

    /// Whether a limit is set.
    pub fn is_limited(&self) -> bool {
        self.share > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Simulates a shard for `loops` loops under an open-loop arrival `rate` (requests
    /// per second): each loop picks up what arrived while the loop before ran. Returns
    /// (served, shed, the longest delay a served request had).
    fn run(
        s: &Shedder,
        t0: Instant,
        loops: u32,
        rate: f64,
        cost: Duration,
        shed_cost: Duration,
    ) -> (u64, u64, Duration) {
        let (mut ok, mut shed, mut worst) = (0, 0, Duration::ZERO);
        let mut start = t0;
        let mut prev = Duration::from_micros(100);
        for _ in 0..loops {
            let n = ((rate * prev.as_secs_f64()).round() as u64).max(1);
            let mut now = start;
            for _ in 0..n {
                if s.admit(start) {
                    ok += 1;
                    // It waited the previous loop (in the kernel) and this one so far.
                    worst = worst.max(prev + now.duration_since(start));
                    now += cost;
                } else {
                    shed += 1;
                    now += shed_cost;
                }
                s.done(now);
            }
            prev = now.duration_since(start) + Duration::from_micros(1);
            start = now + Duration::from_micros(1);
        }
        (ok, shed, worst)
    }

    const COST: Duration = Duration::from_micros(20);
    const SHED_COST: Duration = Duration::from_micros(5);

    #[test]
    fn off_admits_everything() {
        let s = Shedder::new(Duration::ZERO);
        // Twice the capacity: unshed, each loop is twice as long as the one before.
        let (_, shed, worst) = run(&s, Instant::now(), 12, 100_000.0, COST, SHED_COST);
        assert!(worst > Duration::from_millis(100), "{worst:?}");
        assert_eq!(shed, 0);
        assert_eq!(s.limit(), MAX_LIMIT);
    }

    #[test]
    fn light_load_is_never_shed() {
        // 25,000/s at 20 µs each: half the shard.
        let s = Shedder::new(10 * MS);
        let (ok, shed, worst) = run(&s, Instant::now(), 10_000, 25_000.0, COST, SHED_COST);
        assert_eq!(shed, 0);
        assert!(ok > 10_000);
        assert!(worst < MS, "{worst:?}");
    }

    #[test]
    fn twice_the_capacity_keeps_served_requests_within_the_target() {
        // 100,000/s against a capacity of 50,000/s.
        let target = 10 * MS;
        let s = Shedder::new(target);
        let t0 = Instant::now();
        let (ok, shed, worst) = run(&s, t0, 20_000, 100_000.0, COST, SHED_COST);
        assert!(shed > 0, "sheds under overload");
        // Served work plus shed work fills the time: served ≈ (1 - 5/20 × ...) of capacity.
        let served_share = ok as f64 / (ok + shed) as f64;
        assert!(
            served_share > 0.3,
            "serves {served_share:.2} of the requests"
        );
        // A served request waited at most the target plus one request's cost.
        assert!(worst <= target + COST, "{worst:?}");
        assert!(s.limit() > 100 && s.limit() < 2000, "limit {}", s.limit());
    }

    #[test]
    fn the_shedding_stops_when_the_load_goes() {
        let s = Shedder::new(10 * MS);
        let t0 = Instant::now();
        let (_, shed, _) = run(&s, t0, 5_000, 100_000.0, COST, SHED_COST);
        assert!(shed > 0);
        let (_, shed, _) = run(
            &s,
            t0 + Duration::from_secs(100),
            5_000,
            20_000.0,
            COST,
            SHED_COST,
        );
        // At most the loop that carried the overload's delay.
        assert!(shed < 2_000, "{shed} shed after the load went");
        let (_, shed, _) = run(
            &s,
            t0 + Duration::from_secs(200),
            5_000,
            20_000.0,
            COST,
            SHED_COST,
        );
        assert_eq!(shed, 0);
    }

    #[test]
    fn a_long_previous_loop_sheds_the_start_of_the_next() {
        let s = Shedder::new(10 * MS);
        let t0 = Instant::now();
        assert!(s.admit(t0));
        s.done(t0 + 30 * MS);
        // The next loop begins after a 30 ms busy loop: its requests waited that long.
        let t1 = t0 + 30 * MS;
        assert!(!s.admit(t1));
        assert_eq!(s.shed(), 1);
    }

    #[test]
    fn an_idle_gap_is_not_a_delay() {
        let s = Shedder::new(10 * MS);
        let t0 = Instant::now();
        assert!(s.admit(t0));
        s.done(t0 + Duration::from_micros(20));
        // Asleep for a second, then a new request: the gap was idle, not busy.
        assert!(s.admit(t0 + Duration::from_secs(1)));
    }

    #[test]
    fn a_quota_takes_its_share_per_second() {
        let q = Quota::new(1000, 2);
        let t0 = Instant::now();
        // A full bucket: the shard's share (500) at once, then refusals.
        let ok = (0..600).filter(|_| q.take(t0, 2).is_ok()).count();
        assert_eq!(ok, 500);
        let refused = q.take(t0, 2).unwrap_err();
        assert_eq!(refused.limit, 1000);
        assert_eq!(refused.remaining, 0);
        assert_eq!(refused.reset_s, 1);
        // Then 500 per second: 2,000 requests evenly over 2 s, 1,000 taken (±1).
        let mut ok = 0;
        for i in 1..=2000u64 {
            if q.take(t0 + Duration::from_millis(i), 2).is_ok() {
                ok += 1;
            }
        }
        assert!((999..=1001).contains(&ok), "{ok}");
    }

    #[test]
    fn no_quota_takes_everything() {
        let q = Quota::new(0, 2);
        let t0 = Instant::now();
        assert!((0..100_000).all(|_| q.take(t0, 2).is_ok()));
        assert!(!q.is_limited());
    }

    #[test]
    fn shares_round_up() {
        let q = Quota::new(3, 2);
        let t0 = Instant::now();
        assert_eq!((0..10).filter(|_| q.take(t0, 2).is_ok()).count(), 2);
    }
}
