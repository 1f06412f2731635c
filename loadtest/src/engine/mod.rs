//! Running a load: the plan (which thread owns which connections, each thread's share
//! of the rate, the limit and the queue), the worker threads, and the per-second
//! figures gathered from them.
//!
//! Two modes:
//! - closed loop (no rate): every connection sends its next request as soon as the
//!   previous response is in; latency counts from the send.
//! - open loop (`rate`): requests arrive at a constant rate whatever the responses do;
//!   latency counts from each request's *intended* send time, so time spent waiting for
//!   a busy connection is part of it (no coordinated omission).

mod conn;
mod timer;
mod worker;

use std::collections::BTreeMap;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::control::backoff::Backoff;
use crate::control::limiter::split;
use crate::control::SECOND;
use crate::http::request;
use crate::http::target::Target;
use crate::report::stats::{self, Counters, Stats};
use worker::{Message, SecondReport, WorkerPlan};

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Targets; connection `i` goes to target `i % targets.len()`.
    pub targets: Vec<Target>,
    /// Request bodies, sent in rotation.
    pub bodies: Vec<Vec<u8>>,
    /// Send bodies gzip-compressed.
    pub gzip: bool,
    /// Open loop at this many requests per second; `None` for closed loop.
    pub rate: Option<f64>,
    pub connections: usize,
    pub threads: usize,
    /// Recorded time.
    pub duration: Duration,
    /// Load before recording starts.
    pub warmup: Duration,
    /// Longest wait for a response to one attempt.
    pub timeout: Duration,
    /// Longest life of a request from its intended send time, queueing and retries
    /// included; `None` for no limit.
    pub deadline: Option<Duration>,
    /// At most this many requests per sliding second per target.
    pub limit: Option<u32>,
    /// Lower the limit while the service-time p99 of the last second exceeds this.
    pub latency_target: Option<Duration>,
    /// Pending queue capacity (total over threads and targets).
    pub queue: usize,
    pub backoff: Backoff,
    /// Where bids go for their notices (`run --notices`).
    pub notices: Option<crate::notices::NoticeSink>,
}

impl RunSpec {
    /// Checks the combination of settings.
    pub fn validate(&self) -> Result<()> {
        if self.targets.is_empty() {
            bail!("at least one --url is needed");
        }
        if self.bodies.is_empty() {
            bail!("no request bodies");
        }
        if self.connections == 0 || self.threads == 0 {
            bail!("--connections and --threads must be at least 1");
        }
        if self.connections < self.targets.len() {
            bail!(
                "--connections ({}) must be at least the number of targets ({})",
                self.connections,
                self.targets.len()
            );
        }
        if let Some(r) = self.rate {
            if !(r.is_finite() && r > 0.0 && r <= 10_000_000.0) {
                bail!("--rate must be between 0 and 10,000,000 requests per second");
            }
        }
        if self.duration.is_zero() || self.timeout.is_zero() {
            bail!("--duration and --timeout must be positive");
        }
        if self.latency_target.is_some() && self.limit.is_none() {
            bail!("--latency-target adjusts --limit: give both");
        }
        if self.limit == Some(0) || self.queue == 0 {
            bail!("--limit and --queue must be at least 1");
        }
        if self
            .limit
            .is_some_and(|l| (l as usize) < self.threads.min(self.connections))
        {
            bail!("--limit is shared between threads: it must be at least --threads");
        }
        Ok(())
    }

    /// Whether this is an open-loop run.
    pub fn open_loop(&self) -> bool {
        self.rate.is_some()
    }
}

/// State every worker reads.
pub(crate) struct Shared {
    spec: RunSpec,
    threads: usize,
    /// Complete request bytes, per target, per body.
    requests: Vec<Vec<Vec<u8>>>,
    barrier: Barrier,
    start: OnceLock<Instant>,
}

/// One second of the run, all workers together.
#[derive(Debug, Clone, Serialize)]
pub struct SecondPoint {
    /// Seconds since the start (warm-up included).
    pub second: u64,
    pub warmup: bool,
    /// After the recorded window: only responses to requests already in flight.
    pub drain: bool,
    pub offered: u64,
    pub responses: u64,
    pub bid_responses: u64,
    pub errors: u64,
    pub dead_letter: u64,
    pub expired: u64,
    pub retries: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub queue: usize,
    pub in_flight: usize,
    /// Sum of the effective limits in force, when limiting.
    pub limit: Option<u64>,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub stats: Stats,
    pub seconds: Vec<SecondPoint>,
    pub threads: usize,
    /// Wall time from the start to the last worker's end.
    pub elapsed: Duration,
}

struct SecondAgg {
    reports: usize,
    counters: Counters,
    latency: Histogram<u64>,
    queue: usize,
    in_flight: usize,
    limit: Option<u64>,
}

impl SecondAgg {
    fn point(&self, second: u64, warmup_s: u64, end_s: u64) -> SecondPoint {
        let c = &self.counters;
        let h = &self.latency;
        let q = |x: f64| {
            if h.is_empty() {
                0
            } else {
                h.value_at_quantile(x)
            }
        };
        SecondPoint {
            second,
            warmup: second < warmup_s,
            drain: second >= end_s,
            offered: c.offered,
            responses: c.responses,
            bid_responses: c.bid_responses(),
            errors: c.errors(),
            dead_letter: c.dead_letter,
            expired: c.expired,
            retries: c.retries,
            p50_us: q(0.5),
            p99_us: q(0.99),
            max_us: if h.is_empty() { 0 } else { h.max() },
            queue: self.queue,
            in_flight: self.in_flight,
            limit: self.limit,
        }
    }
}

/// Splits `per_target` of each target between workers in proportion to their connections.
fn per_worker(per_target: u64, target: usize, conns: &[Vec<usize>]) -> Vec<u64> {
    let weights: Vec<u64> = conns
        .iter()
        .map(|c| c.iter().filter(|&&t| t == target).count() as u64)
        .collect();
    split(per_target, &weights)
}

/// Runs the load described by `spec`, calling `on_second` with each second's figures
/// as soon as every worker has reported it. Stops by itself after warm-up + duration
/// (+ at most one timeout to let requests in flight finish).
pub fn run(spec: RunSpec, on_second: &mut dyn FnMut(&SecondPoint)) -> Result<RunResult> {
    spec.validate()?;
    let threads = spec.threads.min(spec.connections);
    let n_targets = spec.targets.len();
    let requests: Vec<Vec<Vec<u8>>> = spec
        .targets
        .iter()
        .map(|t| {
            spec.bodies
                .iter()
                .map(|b| request::build(t, b, spec.gzip))
                .collect()
        })
        .collect();
    // Connection i: worker i % threads, target i % targets.
    let mut conn_targets: Vec<Vec<usize>> = vec![Vec::new(); threads];
    for i in 0..spec.connections {
        conn_targets[i % threads].push(i % n_targets);
    }
    let mut limits: Vec<Vec<Option<u32>>> = vec![vec![None; n_targets]; threads];
    let mut queue_caps: Vec<Vec<usize>> = vec![vec![1; n_targets]; threads];
    let queue_per_target = split(spec.queue as u64, &vec![1; n_targets]);
    for t in 0..n_targets {
        if let Some(l) = spec.limit {
            for (w, share) in per_worker(l as u64, t, &conn_targets)
                .into_iter()
                .enumerate()
            {
                limits[w][t] = Some(share.min(u32::MAX as u64) as u32);
            }
        }
        for (w, share) in per_worker(queue_per_target[t], t, &conn_targets)
            .into_iter()
            .enumerate()
        {
            queue_caps[w][t] = (share as usize).max(1);
        }
    }
    let shared = Arc::new(Shared {
        threads,
        requests,
        barrier: Barrier::new(threads + 1),
        start: OnceLock::new(),
        spec: spec.clone(),
    });
    let (tx, rx) = mpsc::channel();
    let mut handles = Vec::with_capacity(threads);
    for (w, targets) in conn_targets.into_iter().enumerate() {
        let (interval, phase) = match spec.rate {
            Some(rate) => {
                let share = rate * targets.len() as f64 / spec.connections as f64;
                let interval = ((1e9 / share).round() as u64).max(1);
                (Some(interval), interval * w as u64 / threads as u64)
            }
            None => (None, 0),
        };
        let plan = WorkerPlan {
            index: w,
            conn_targets: targets,
            limits: limits[w].clone(),
            queue_caps: queue_caps[w].clone(),
            interval,
            phase,
        };
        let (shared, tx) = (Arc::clone(&shared), tx.clone());
        let h = std::thread::Builder::new()
            .name(format!("shardbid-load-{w}"))
            .spawn(move || {
                let tx2 = tx.clone();
                let r = worker::run(shared, plan, tx);
                if r.is_err() {
                    let _ = tx2.send(Message::Done);
                }
                r
            })
            .context("cannot start a worker thread")?;
        handles.push(h);
    }
    drop(tx);
    shared.barrier.wait();
    let start = *shared.start.get_or_init(Instant::now);
    let warmup_s = spec.warmup.as_nanos().div_ceil(SECOND as u128) as u64;
    let end_s = (spec.warmup + spec.duration)
        .as_nanos()
        .div_ceil(SECOND as u128) as u64;
    let hard_stop = spec.warmup + spec.duration + spec.timeout + Duration::from_secs(5);
    let mut pending: BTreeMap<u64, SecondAgg> = BTreeMap::new();
    let mut seconds = Vec::new();
    let mut done = 0;
    while done < threads {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(Message::Second(r)) => {
                let SecondReport {
                    second,
                    counters,
                    latency,
                    queue,
                    in_flight,
                    limit,
                    ..
                } = *r;
                let agg = pending.entry(second).or_insert_with(|| SecondAgg {
                    reports: 0,
                    counters: Counters::default(),
                    latency: stats::new_histogram(),
                    queue: 0,
                    in_flight: 0,
                    limit: None,
                });
                agg.reports += 1;
                agg.counters.merge(&counters);
                let _ = agg.latency.add(&latency);
                agg.queue += queue;
                agg.in_flight += in_flight;
                agg.limit = match (agg.limit, limit) {
                    (Some(a), Some(b)) => Some(a + b),
                    (a, b) => a.or(b),
                };
                if agg.reports == threads {
                    if let Some(agg) = pending.remove(&second) {
                        let p = agg.point(second, warmup_s, end_s);
                        on_second(&p);
                        seconds.push(p);
                    }
                }
            }
            Ok(Message::Done) => done += 1,
            Err(RecvTimeoutError::Timeout) => {
                if start.elapsed() > hard_stop {
                    break;
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    for (second, agg) in pending {
        seconds.push(agg.point(second, warmup_s, end_s));
    }
    seconds.sort_by_key(|p| p.second);
    let mut total = Stats::default();
    for h in handles {
        match h.join() {
            Ok(Ok(s)) => total.merge(&s),
            Ok(Err(e)) => return Err(e).context("a worker failed"),
            Err(_) => bail!("a worker thread panicked"),
        }
    }
    Ok(RunResult {
        stats: total,
        seconds,
        threads,
        elapsed: start.elapsed(),
    })
}
