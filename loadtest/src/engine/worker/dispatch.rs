//! Creating and sending requests: open-loop arrivals, retries coming due, the limiter,
//! the queue, and writing requests on free connections.

use std::time::Duration;

use super::super::conn::{InFlight, State};
use super::{Expired, Worker};
use crate::control::queue::{Pending, NO_DEADLINE};
use crate::report::stats::Outcome;

impl Worker {
    pub(super) fn poll_timeout(&self, now: u64) -> Duration {
        let mut until = self.next_tick.min(if self.draining {
            self.hard_end
        } else {
            self.gen_end
        });
        for (t, q) in self.queues.iter().enumerate() {
            if let Some(due) = q.next_due() {
                until = until.min(due);
            }
            let wants = q.ready_len() > 0 || (self.plan.interval.is_none() && !self.draining);
            if wants && !self.idle[t].is_empty() {
                if let Some(l) = &self.limiters[t] {
                    until = until.min(l.next_free(now));
                }
            }
        }
        Duration::from_nanos(until.saturating_sub(now))
    }

    /// Open loop: creates every arrival that is due.
    pub(super) fn arrive(&mut self, now: u64) {
        let Some(interval) = self.plan.interval else {
            return;
        };
        let n_conns = self.plan.conn_targets.len() as u64;
        let threads = self.shared.threads as u64;
        let n_bodies = self.shared.requests[0].len() as u64;
        while self.next_arrival <= now && self.next_arrival < self.gen_end {
            let intended = self.next_arrival;
            let m = self.arrivals;
            self.arrivals += 1;
            self.next_arrival += interval;
            let t = self.plan.conn_targets[(m % n_conns) as usize];
            let body = ((m * threads + self.plan.index as u64) % n_bodies) as u32;
            let p = Pending::new(
                intended,
                self.deadline
                    .map_or(NO_DEADLINE, |d| intended.saturating_add(d)),
                body,
            );
            let measured = self.measured(&p);
            self.count(measured, |c| c.offered += 1);
            let free_conn = self.queues[t].ready_len() < self.idle[t].len();
            let limited = self.limiters[t]
                .as_ref()
                .is_some_and(|l| l.next_free(now) > now);
            if limited {
                self.count(measured, |c| c.waited_for_limiter += 1);
            } else if !free_conn {
                self.count(measured, |c| c.waited_for_connection += 1);
            }
            if self.queues[t].push(p).is_err() {
                self.count(measured, |c| c.dead_letter += 1);
            }
        }
    }

    pub(super) fn promote(&mut self, now: u64) {
        for t in 0..self.queues.len() {
            if self.queues[t].next_due().is_some_and(|d| d <= now) {
                let mut expired = Expired::new(self.warmup_end);
                self.queues[t].promote(now, &mut |p| expired.add(&p));
                self.count_expired(expired);
            }
        }
    }

    /// Sends queued requests (and, in closed loop, new ones) on free connections.
    pub(super) fn dispatch(&mut self, now: u64) {
        // Nothing is sent after the recorded window: what is still queued then is
        // reported as unsent.
        if now >= self.gen_end {
            return;
        }
        let closed = self.plan.interval.is_none();
        for t in 0..self.queues.len() {
            while !self.idle[t].is_empty() {
                if self.limiters[t]
                    .as_ref()
                    .is_some_and(|l| l.next_free(now) > now)
                {
                    break;
                }
                let mut expired = Expired::new(self.warmup_end);
                let p = match self.queues[t].pop(now, &mut |p| expired.add(&p)) {
                    Some(p) => Some(p),
                    None if closed => {
                        let n_bodies = self.shared.requests[0].len() as u64;
                        let body = ((self.created * self.shared.threads as u64
                            + self.plan.index as u64)
                            % n_bodies) as u32;
                        self.created += 1;
                        let p = Pending::new(
                            now,
                            self.deadline.map_or(NO_DEADLINE, |d| now.saturating_add(d)),
                            body,
                        );
                        let measured = self.measured(&p);
                        self.count(measured, |c| c.offered += 1);
                        Some(p)
                    }
                    None => None,
                };
                self.count_expired(expired);
                let Some(p) = p else { break };
                if let Some(l) = self.limiters[t].as_mut() {
                    l.try_acquire(now);
                }
                if let Some(i) = self.idle[t].pop() {
                    self.send(i, p, now);
                }
            }
        }
    }

    pub(super) fn send(&mut self, i: usize, mut p: Pending, now: u64) {
        p.attempts += 1;
        let measured = self.measured(&p);
        let retry = p.attempts > 1;
        self.count(measured, |c| {
            c.sent += 1;
            if retry {
                c.retries += 1;
            }
        });
        let c = &mut self.conns[i];
        c.req = Some(InFlight {
            p,
            sent_at: now,
            written: 0,
            timeout_at: now + self.timeout,
        });
        c.state = State::Busy;
        c.reset_response();
        self.in_flight += 1;
        let bytes = &self.shared.requests[c.target][p.body as usize];
        if c.write_request(bytes).is_err() {
            self.fail(i, Outcome::ConnError, now);
        }
    }
}
