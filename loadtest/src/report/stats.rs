//! What a run counts: outcomes by status, client-side events, bid prices, and latency
//! histograms. Each worker keeps its own and they are merged at the end, so nothing is
//! shared between threads while requests are in flight.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Longest latency a histogram holds, in microseconds (one hour).
pub const MAX_LATENCY_US: u64 = 3_600_000_000;

/// A latency histogram in microseconds, three significant digits.
pub fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
        .unwrap_or_else(|_| unreachable!("valid histogram bounds"))
}

/// Records `us` (clamped to the histogram's range).
pub fn record(h: &mut Histogram<u64>, us: u64) {
    h.saturating_record(us.clamp(1, MAX_LATENCY_US));
}

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An HTTP response with this status.
    Status(u16),
    /// No complete response within `--timeout`.
    Timeout,
    /// The connection failed or closed while the request was in flight.
    ConnError,
    /// The response could not be parsed.
    BadResponse,
}

/// Counters of a run (or of one second of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Requests created: arrivals (open loop) or new requests (closed loop).
    pub offered: u64,
    /// Attempts written to a connection, retries included.
    pub sent: u64,
    /// Requests that ended with an HTTP response (after any retries).
    pub responses: u64,
    /// Responses by status code (index = code, 100..=599).
    #[serde(skip)]
    pub status: Vec<u64>,
    pub timeout: u64,
    pub conn_error: u64,
    pub bad_response: u64,
    /// Bids found in 200 responses (`"price"` fields) and their sum in micros.
    pub bids: u64,
    pub price_micros: i64,
    /// With a deadline: responses that arrived after it (from the intended send time),
    /// and 200s that arrived within it (goodput).
    pub late: u64,
    pub bids_in_time: u64,
    /// Retries sent for 429/503 answers.
    pub retries: u64,
    /// Requests that could not be sent at their intended time for want of a free connection.
    pub waited_for_connection: u64,
    /// Requests held back by the client-side limiter.
    pub waited_for_limiter: u64,
    /// Requests dropped because the pending queue was full.
    pub dead_letter: u64,
    /// Requests whose deadline passed while queued or waiting to retry.
    pub expired: u64,
    /// Requests still queued when the run ended.
    pub unsent: u64,
    /// Requests still in flight when the run ended.
    pub unfinished: u64,
    /// Connections opened, and attempts that failed.
    pub connects: u64,
    pub connect_errors: u64,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            offered: 0,
            sent: 0,
            responses: 0,
            status: vec![0; 600],
            timeout: 0,
            conn_error: 0,
            bad_response: 0,
            bids: 0,
            price_micros: 0,
            late: 0,
            bids_in_time: 0,
            retries: 0,
            waited_for_connection: 0,
            waited_for_limiter: 0,
            dead_letter: 0,
            expired: 0,
            unsent: 0,
            unfinished: 0,
            connects: 0,
            connect_errors: 0,
        }
    }
}

impl Counters {
    /// Counts a final outcome.
    pub fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Status(s) => {
                self.responses += 1;
                let i = if (100..600).contains(&s) {
                    s as usize
                } else {
                    599
                };
                self.status[i] += 1;
            }
            Outcome::Timeout => self.timeout += 1,
            Outcome::ConnError => self.conn_error += 1,
            Outcome::BadResponse => self.bad_response += 1,
        }
    }

    /// Responses with status `code`.
    pub fn status(&self, code: u16) -> u64 {
        self.status.get(code as usize).copied().unwrap_or(0)
    }

    /// Responses with a status in `lo..=hi`.
    pub fn status_range(&self, lo: u16, hi: u16) -> u64 {
        self.status[lo as usize..=hi as usize].iter().sum()
    }

    /// 200 responses.
    pub fn bid_responses(&self) -> u64 {
        self.status(200)
    }

    /// 204 responses.
    pub fn no_bid_responses(&self) -> u64 {
        self.status(204)
    }

    /// Requests that ended in something other than a 2xx: 4xx, 5xx, timeouts,
    /// connection errors and unparseable responses.
    pub fn errors(&self) -> u64 {
        self.status_range(400, 599) + self.timeout + self.conn_error + self.bad_response
    }

    /// Requests that reached an end (response or failure).
    pub fn finished(&self) -> u64 {
        self.responses + self.timeout + self.conn_error + self.bad_response
    }

    /// Adds `o` into `self`.
    pub fn merge(&mut self, o: &Counters) {
        self.offered += o.offered;
        self.sent += o.sent;
        self.responses += o.responses;
        for (a, b) in self.status.iter_mut().zip(&o.status) {
            *a += b;
        }
        self.timeout += o.timeout;
        self.conn_error += o.conn_error;
        self.bad_response += o.bad_response;
        self.bids += o.bids;
        self.price_micros = self.price_micros.saturating_add(o.price_micros);
        self.late += o.late;
        self.bids_in_time += o.bids_in_time;
        self.retries += o.retries;
        self.waited_for_connection += o.waited_for_connection;
        self.waited_for_limiter += o.waited_for_limiter;
        self.dead_letter += o.dead_letter;
        self.expired += o.expired;
        self.unsent += o.unsent;
        self.unfinished += o.unfinished;
        self.connects += o.connects;
        self.connect_errors += o.connect_errors;
    }

    /// Statuses that occurred, with their counts.
    pub fn statuses(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        self.status
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(s, &n)| (s as u16, n))
    }
}

/// Everything one worker measured over the recorded window.
#[derive(Debug, Clone)]
pub struct Stats {
    pub counters: Counters,
    /// Latency from the intended send time (open loop) or the send (closed loop) to the
    /// complete response, microseconds.
    pub latency: Histogram<u64>,
    /// From the request's last write to the complete response (what the server and the
    /// network took, without client-side waiting), microseconds.
    pub service: Histogram<u64>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            counters: Counters::default(),
            latency: new_histogram(),
            service: new_histogram(),
        }
    }
}

impl Stats {
    /// Adds `o` into `self`.
    pub fn merge(&mut self, o: &Stats) {
        self.counters.merge(&o.counters);
        // Both use the same bounds, so adding cannot fail.
        let _ = self.latency.add(&o.latency);
        let _ = self.service.add(&o.service);
    }
}

/// The percentiles a report shows, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Percentiles {
    /// Reads the percentiles of `h` (all zero when it is empty).
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            min: h.min(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut h = new_histogram();
        // 1..=10000 microseconds, once each.
        for us in 1..=10_000 {
            record(&mut h, us);
        }
        let p = Percentiles::of(&h);
        let near =
            |got: u64, want: u64| assert!(got.abs_diff(want) * 1000 <= want, "{got} vs {want}");
        assert_eq!(p.count, 10_000);
        near(p.p50, 5_000);
        near(p.p90, 9_000);
        near(p.p99, 9_900);
        near(p.p999, 9_990);
        near(p.max, 10_000);
        assert_eq!(p.min, 1);
        assert!((p.mean - 5000.5).abs() < 5.0);
        assert_eq!(Percentiles::of(&new_histogram()), Percentiles::default());
    }

    #[test]
    fn tail_is_not_hidden_by_the_bulk() {
        let mut h = new_histogram();
        for _ in 0..9_980 {
            record(&mut h, 200);
        }
        for _ in 0..20 {
            record(&mut h, 80_000);
        }
        let p = Percentiles::of(&h);
        assert!(p.p99 < 250);
        assert!(p.p999 >= 79_000, "{}", p.p999);
        record(&mut h, u64::MAX);
        assert!(
            Percentiles::of(&h).max >= MAX_LATENCY_US / 2,
            "clamped, not dropped"
        );
    }

    #[test]
    fn counters_classify_and_merge() {
        let mut a = Counters::default();
        for o in [
            Outcome::Status(200),
            Outcome::Status(204),
            Outcome::Status(204),
            Outcome::Status(429),
            Outcome::Status(503),
            Outcome::Timeout,
            Outcome::ConnError,
            Outcome::BadResponse,
            Outcome::Status(999),
        ] {
            a.count(o);
        }
        assert_eq!(
            (a.bid_responses(), a.no_bid_responses(), a.status(429)),
            (1, 2, 1)
        );
        assert_eq!(a.responses, 6);
        assert_eq!(
            a.errors(),
            2 + 1 + 1 + 1 + 1,
            "429, 503, 599 (out of range), timeout, conn, bad"
        );
        assert_eq!(a.finished(), 9);
        let mut b = Counters {
            bids: 3,
            price_micros: 1_500_000,
            ..Counters::default()
        };
        b.count(Outcome::Status(204));
        b.merge(&a);
        assert_eq!(b.no_bid_responses(), 3);
        assert_eq!(b.responses, 7);
        assert_eq!(
            b.statuses().collect::<Vec<_>>(),
            vec![(200, 1), (204, 3), (429, 1), (503, 1), (599, 1)]
        );
        let mut s = Stats::default();
        let mut t = Stats::default();
        record(&mut t.latency, 1000);
        t.counters.count(Outcome::Status(200));
        s.merge(&t);
        s.merge(&t);
        assert_eq!((s.latency.len(), s.counters.responses), (2, 2));
    }
}
