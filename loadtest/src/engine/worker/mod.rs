//! One worker thread: a non-blocking event loop (epoll through mio) over its share of
//! the connections. It creates requests (open-loop arrivals on a timer, or a new request
//! whenever a closed-loop connection is free), applies the limiter and the queue, writes
//! pre-serialised requests, parses responses and counts everything. Nothing is shared
//! with other threads while it runs; once a second it sends that second's figures to the
//! main thread.

use std::io::ErrorKind;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::{Events, Poll, Token};
use shardbid_testkit::rng::Rng;

mod dispatch;

use super::conn::{Conn, Received, State};
use super::timer::Timer;
use super::Shared;
use crate::control::headroom::Headroom;
use crate::control::limiter::Limiter;
use crate::control::queue::{PendingQueue, Rejected};
use crate::control::{queue::Pending, SECOND};
use crate::http::price::scan_prices;
use crate::report::stats::{self, Counters, Outcome, Stats};

const TIMER: Token = Token(usize::MAX - 1);
const TICK: u64 = 10_000_000;
/// Shortest period of the arrival timer; faster arrivals are sent in small batches.
const MIN_TIMER_PERIOD: u64 = 20_000;

/// What one worker is given.
pub struct WorkerPlan {
    pub index: usize,
    /// The target of each of its connections.
    pub conn_targets: Vec<usize>,
    /// Its share of each target's `--limit`.
    pub limits: Vec<Option<u32>>,
    /// Its share of the queue, per target.
    pub queue_caps: Vec<usize>,
    /// Open loop: time between its arrivals, and the time of its first one (ns).
    pub interval: Option<u64>,
    pub phase: u64,
}

/// One second of one worker, for the live line and the time series.
pub struct SecondReport {
    pub second: u64,
    pub counters: Counters,
    pub latency: Histogram<u64>,
    pub queue: usize,
    pub in_flight: usize,
    pub limit: Option<u64>,
}

/// Worker to main thread.
pub enum Message {
    Second(Box<SecondReport>),
    Done,
}

struct SecondAcc {
    index: u64,
    counters: Counters,
    latency: Histogram<u64>,
}

/// Requests found expired, split by whether they belong to the recorded window.
struct Expired {
    warmup_end: u64,
    measured: u64,
    warmup: u64,
}

impl Expired {
    fn new(warmup_end: u64) -> Expired {
        Expired {
            warmup_end,
            measured: 0,
            warmup: 0,
        }
    }

    fn add(&mut self, p: &Pending) {
        if p.intended >= self.warmup_end {
            self.measured += 1;
        } else {
            self.warmup += 1;
        }
    }
}

struct Worker {
    shared: Arc<Shared>,
    plan: WorkerPlan,
    tx: Sender<Message>,
    poll: Poll,
    conns: Vec<Conn>,
    idle: Vec<Vec<usize>>,
    queues: Vec<PendingQueue>,
    limiters: Vec<Option<Limiter>>,
    headroom: Vec<Option<Headroom>>,
    timer: Option<Timer>,
    next_arrival: u64,
    arrivals: u64,
    created: u64,
    in_flight: usize,
    stats: Stats,
    second: SecondAcc,
    rng: Rng,
    start: Instant,
    warmup_end: u64,
    gen_end: u64,
    hard_end: u64,
    timeout: u64,
    deadline: Option<u64>,
    next_tick: u64,
    draining: bool,
}

/// Runs one worker to the end of the run and returns what it measured.
pub fn run(shared: Arc<Shared>, plan: WorkerPlan, tx: Sender<Message>) -> std::io::Result<Stats> {
    let mut w = Worker::new(shared, plan, tx)?;
    let mut events = Events::with_capacity(1024);
    w.connect_all(&mut events);
    w.shared.barrier.wait();
    w.start = *w.shared.start.get_or_init(Instant::now);
    w.begin()?;
    w.event_loop(&mut events);
    Ok(w.finish())
}

impl Worker {
    fn new(shared: Arc<Shared>, plan: WorkerPlan, tx: Sender<Message>) -> std::io::Result<Worker> {
        let spec = &shared.spec;
        let n_targets = spec.targets.len();
        let ns = |d: Duration| d.as_nanos().min(u64::MAX as u128) as u64;
        let warmup_end = ns(spec.warmup);
        let gen_end = warmup_end + ns(spec.duration);
        let timeout = ns(spec.timeout).max(1);
        let mut idle = Vec::with_capacity(n_targets);
        idle.resize_with(n_targets, Vec::new);
        let limiters = plan
            .limits
            .iter()
            .map(|l| l.map(|l| Limiter::new(l.max(1), SECOND)))
            .collect();
        let headroom = plan
            .limits
            .iter()
            .map(|l| {
                l.zip(spec.latency_target)
                    .map(|(l, t)| Headroom::new(l.max(1), t.as_micros() as u64))
            })
            .collect();
        let timer = if plan.interval.is_some() {
            Some(Timer::new()?)
        } else {
            None
        };
        Ok(Worker {
            poll: Poll::new()?,
            conns: plan.conn_targets.iter().map(|&t| Conn::new(t)).collect(),
            idle,
            queues: plan
                .queue_caps
                .iter()
                .map(|&c| PendingQueue::new(c))
                .collect(),
            limiters,
            headroom,
            timer,
            next_arrival: plan.phase,
            arrivals: 0,
            created: 0,
            in_flight: 0,
            stats: Stats::default(),
            second: SecondAcc {
                index: 0,
                counters: Counters::default(),
                latency: stats::new_histogram(),
            },
            rng: Rng::for_item(0x5EED, plan.index as u64),
            start: Instant::now(),
            warmup_end,
            gen_end,
            hard_end: gen_end + timeout,
            timeout,
            deadline: spec.deadline.map(ns),
            next_tick: 0,
            draining: false,
            shared,
            plan,
            tx,
        })
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Counts into this second's figures, and into the run's if the request is measured.
    fn count(&mut self, measured: bool, f: impl Fn(&mut Counters)) {
        f(&mut self.second.counters);
        if measured {
            f(&mut self.stats.counters);
        }
    }

    fn count_expired(&mut self, e: Expired) {
        if e.measured + e.warmup > 0 {
            self.second.counters.expired += e.measured + e.warmup;
            self.stats.counters.expired += e.measured;
        }
    }

    fn measured(&self, p: &Pending) -> bool {
        p.intended >= self.warmup_end
    }

    /// Opens every connection and waits (up to a second) for them, before the clock starts.
    fn connect_all(&mut self, events: &mut Events) {
        for i in 0..self.conns.len() {
            self.open(i, 0);
        }
        let until = Instant::now() + Duration::from_secs(1);
        while self.conns.iter().any(|c| c.state == State::Connecting) && Instant::now() < until {
            if self
                .poll
                .poll(events, Some(Duration::from_millis(10)))
                .is_err()
            {
                break;
            }
            for e in events.iter() {
                self.on_connect_event(e.token().0, 0);
            }
        }
    }

    fn begin(&mut self) -> std::io::Result<()> {
        // Times recorded before the start refer to another clock: reset them.
        for c in &mut self.conns {
            if let State::Down { .. } = c.state {
                c.state = State::Down { retry_at: 0 };
            }
        }
        let now = self.now();
        if let (Some(t), Some(interval)) = (self.timer.as_mut(), self.plan.interval) {
            self.poll
                .registry()
                .register(t, TIMER, mio::Interest::READABLE)?;
            // The timer runs on the same clock as the schedule: its first expiry is the
            // next arrival still ahead (a few microseconds late, so that each wake finds
            // its arrival due), whatever time passed since the start.
            let period = interval.max(MIN_TIMER_PERIOD);
            let lag = 5_000;
            let mut first = self.plan.phase + lag;
            if first <= now {
                first += (now - first) / period * period + period;
            }
            t.arm(
                Duration::from_nanos(first - now),
                Duration::from_nanos(period),
            )?;
        }
        Ok(())
    }

    fn open(&mut self, i: usize, now: u64) {
        let addr = self.shared.spec.targets[self.conns[i].target].addr;
        match self.conns[i].connect(addr, self.poll.registry(), Token(i)) {
            Ok(()) => {}
            Err(_) => self.connect_failed(i, now),
        }
    }

    fn connect_failed(&mut self, i: usize, now: u64) {
        self.count(true, |c| c.connect_errors += 1);
        let c = &mut self.conns[i];
        c.failures += 1;
        // 10 ms, doubling, at most one second between attempts.
        let wait = (10_000_000u64 << c.failures.min(7)).min(SECOND);
        c.close(self.poll.registry(), now + wait);
    }

    fn on_connect_event(&mut self, i: usize, now: u64) {
        if i >= self.conns.len() || self.conns[i].state != State::Connecting {
            return;
        }
        match self.conns[i].check_connected() {
            Ok(true) => {
                self.count(true, |c| c.connects += 1);
                let c = &mut self.conns[i];
                c.failures = 0;
                c.state = State::Idle;
                self.idle[c.target].push(i);
            }
            Ok(false) => {}
            Err(_) => self.connect_failed(i, now),
        }
    }

    fn event_loop(&mut self, events: &mut Events) {
        loop {
            let now = self.now();
            if now >= self.next_tick {
                self.tick(now);
            }
            if now >= self.gen_end {
                if !self.draining {
                    self.draining = true;
                    if let Some(t) = &self.timer {
                        let _ = t.disarm();
                    }
                }
                if self.in_flight == 0 || now >= self.hard_end {
                    break;
                }
            } else if self.plan.interval.is_some() {
                self.arrive(now);
            }
            self.promote(now);
            self.dispatch(now);
            let wait = self.poll_timeout(self.now());
            if let Err(e) = self.poll.poll(events, Some(wait)) {
                if e.kind() != ErrorKind::Interrupted {
                    break;
                }
            }
            for e in events.iter() {
                let token = e.token();
                if token == TIMER {
                    if let Some(t) = &self.timer {
                        t.clear();
                    }
                } else {
                    self.on_event(
                        token.0,
                        e.is_readable() || e.is_read_closed() || e.is_error(),
                        e.is_writable(),
                    );
                }
            }
        }
    }

    fn on_event(&mut self, i: usize, readable: bool, writable: bool) {
        let Some(c) = self.conns.get(i) else { return };
        match c.state {
            State::Connecting => {
                let now = self.now();
                self.on_connect_event(i, now);
            }
            State::Busy => {
                if writable {
                    let c = &mut self.conns[i];
                    if let Some(req) = c.req {
                        let bytes = &self.shared.requests[c.target][req.p.body as usize];
                        if req.written < bytes.len() && c.write_request(bytes).is_err() {
                            let now = self.now();
                            self.fail(i, Outcome::ConnError, now);
                            return;
                        }
                    }
                }
                if readable {
                    match self.conns[i].read_response() {
                        Received::More => {}
                        Received::Done(resp) => self.complete(i, resp),
                        Received::Failed => {
                            let now = self.now();
                            self.fail(i, Outcome::ConnError, now);
                        }
                        Received::Bad => {
                            let now = self.now();
                            self.fail(i, Outcome::BadResponse, now);
                        }
                    }
                }
            }
            State::Idle => {
                if readable && self.conns[i].idle_read_closes() {
                    let t = self.conns[i].target;
                    self.idle[t].retain(|&x| x != i);
                    let now = self.now();
                    self.reopen(i, now);
                }
            }
            State::Down { .. } => {}
        }
    }

    /// A complete response arrived on connection `i`.
    fn complete(&mut self, i: usize, resp: crate::http::response::Response) {
        let now = self.now();
        let Some(req) = self.conns[i].req.take() else {
            return;
        };
        self.in_flight -= 1;
        let t = self.conns[i].target;
        let p = req.p;
        let measured = self.measured(&p);
        let service_us = now.saturating_sub(req.sent_at) / 1000;
        if let Some(h) = self.headroom[t].as_mut() {
            h.record(service_us);
        }
        let backoff = self.shared.spec.backoff;
        if matches!(resp.status, 429 | 503) && backoff.may_retry(p.attempts) {
            let delay = backoff.delay(p.attempts, self.rng.next_u64(), resp.retry_after);
            match self.queues[t].push_retry(p, now.saturating_add(delay)) {
                Ok(()) => {}
                Err(Rejected::Full) => self.count(measured, |c| c.dead_letter += 1),
                Err(Rejected::Expired) => self.count(measured, |c| c.expired += 1),
            }
        } else {
            let prices = if resp.status == 200 {
                let body = self.conns[i].body(&resp);
                if let Some(sink) = &self.shared.spec.notices {
                    sink.bids(body);
                }
                scan_prices(body)
            } else {
                Default::default()
            };
            let latency_us = now.saturating_sub(p.intended) / 1000;
            let late = self
                .deadline
                .is_some_and(|d| now.saturating_sub(p.intended) > d);
            self.count(measured, |c| {
                c.count(Outcome::Status(resp.status));
                if late {
                    c.late += 1;
                } else if resp.status == 200 {
                    c.bids_in_time += 1;
                }
                c.bids += prices.count;
                c.price_micros = c.price_micros.saturating_add(prices.sum_micros);
            });
            stats::record(&mut self.second.latency, latency_us);
            if measured {
                stats::record(&mut self.stats.latency, latency_us);
                stats::record(&mut self.stats.service, service_us);
            }
        }
        let c = &mut self.conns[i];
        c.reset_response();
        if resp.close {
            self.reopen(i, now);
        } else {
            c.state = State::Idle;
            self.idle[t].push(i);
        }
    }

    /// The request on connection `i` failed; the connection is replaced.
    fn fail(&mut self, i: usize, outcome: Outcome, now: u64) {
        if let Some(req) = self.conns[i].req.take() {
            self.in_flight -= 1;
            let measured = self.measured(&req.p);
            self.count(measured, |c| c.count(outcome));
        }
        self.reopen(i, now);
    }

    /// Replaces connection `i` with a new one at once (failed connects back off).
    fn reopen(&mut self, i: usize, now: u64) {
        self.conns[i].close(self.poll.registry(), now);
        if now < self.gen_end {
            self.open(i, now);
        }
    }

    fn tick(&mut self, now: u64) {
        self.next_tick = now + TICK;
        for i in 0..self.conns.len() {
            match self.conns[i].state {
                State::Busy if self.conns[i].req.is_some_and(|r| r.timeout_at <= now) => {
                    self.fail(i, Outcome::Timeout, now)
                }
                State::Down { retry_at } if retry_at <= now && now < self.gen_end => {
                    self.open(i, now)
                }
                _ => {}
            }
        }
        for t in 0..self.queues.len() {
            let mut expired = Expired::new(self.warmup_end);
            self.queues[t].sweep(now, &mut |p| expired.add(&p));
            self.count_expired(expired);
        }
        while self.second.index < now / SECOND {
            self.flush_second();
            for t in 0..self.headroom.len() {
                if let (Some(h), Some(l)) = (self.headroom[t].as_mut(), self.limiters[t].as_mut()) {
                    l.set_limit(h.end_second());
                }
            }
        }
    }

    fn flush_second(&mut self) {
        let index = self.second.index;
        let acc = std::mem::replace(
            &mut self.second,
            SecondAcc {
                index: index + 1,
                counters: Counters::default(),
                latency: stats::new_histogram(),
            },
        );
        let limit = if self.limiters.iter().any(Option::is_some) {
            Some(
                self.limiters
                    .iter()
                    .flatten()
                    .map(|l| l.limit() as u64)
                    .sum(),
            )
        } else {
            None
        };
        let report = SecondReport {
            second: acc.index,
            counters: acc.counters,
            latency: acc.latency,
            queue: self.queues.iter().map(PendingQueue::len).sum(),
            in_flight: self.in_flight,
            limit,
        };
        let _ = self.tx.send(Message::Second(Box::new(report)));
    }

    fn finish(mut self) -> Stats {
        for t in 0..self.queues.len() {
            for p in self.queues[t].drain() {
                let measured = self.measured(&p);
                self.count(measured, |c| c.unsent += 1);
            }
        }
        for i in 0..self.conns.len() {
            if let Some(req) = self.conns[i].req.take() {
                let measured = self.measured(&req.p);
                self.count(measured, |c| c.unfinished += 1);
            }
            self.conns[i].close(self.poll.registry(), 0);
        }
        self.in_flight = 0;
        self.flush_second();
        let _ = self.tx.send(Message::Done);
        self.stats
    }
}
