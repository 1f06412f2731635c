//! `run --notices`: shardbid-load as the exchange after the auction. For a share of the
//! bids it receives it calls the bid's win and billing notices at a clearing price
//! below the bid, the way an exchange does; for the others, the loss notice. It also
//! sends a share of duplicates (a billing notice retried), forgeries (one byte of the
//! signature changed) and over-price notices (a clearing price above the bid), and
//! reports what it sent, what the server answered, and what the accepted notices
//! should have charged each campaign.
//!
//! Notices go out from one thread of their own, over a few keep-alive connections, so
//! the bid load is not slowed by them.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;
use shardbid_testkit::rng::Rng;

/// What the run does with the bids it gets.
#[derive(Debug, Clone, Copy)]
pub struct NoticePlan {
    /// Share of bids that win: their win and billing notices are sent; the others
    /// get their loss notice.
    pub win_share: f64,
    /// Share of won bids whose billing notice is sent once more.
    pub duplicates: f64,
    /// Share of won bids for which a forged billing notice is sent too.
    pub forgeries: f64,
    /// Share of won bids for which a billing notice above the bid is sent too.
    pub over_price: f64,
    /// Connections the notices use.
    pub connections: usize,
    pub seed: u64,
}

/// One bid's notices, as the bid response gave them.
#[derive(Debug, Clone)]
pub struct BidNotices {
    pub campaign: String,
    /// CPM micros.
    pub price_micros: i64,
    pub nurl: String,
    pub burl: String,
    pub lurl: String,
}

/// What the notices did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NoticeReport {
    /// Sent, by what was sent (`win`, `billing`, `billing duplicate`, `billing forged`,
    /// `billing over price`, `loss`), then by the status answered (0: no answer).
    pub sent: BTreeMap<String, BTreeMap<u16, u64>>,
    /// Bids whose notices were not sent because the notice thread fell behind.
    pub skipped: u64,
    /// What the accepted original billing notices charge, by campaign, in micros (one
    /// impression each: the clearing CPM over 1,000).
    pub expected_spend_micros: BTreeMap<String, f64>,
}

impl NoticeReport {
    /// A table for the terminal.
    pub fn to_table(&self) -> String {
        let mut out = String::from("notices            sent     200     400     403  other\n");
        for (what, by) in &self.sent {
            let n = |s: u16| by.get(&s).copied().unwrap_or(0);
            let all: u64 = by.values().sum();
            let other = all - n(200) - n(400) - n(403);
            out.push_str(&format!(
                "{what:<18} {all:>5} {:>7} {:>7} {:>7} {other:>6}\n",
                n(200),
                n(400),
                n(403)
            ));
        }
        if self.skipped > 0 {
            out.push_str(&format!(
                "bids without notices (notice thread behind): {}\n",
                self.skipped
            ));
        }
        let spend: f64 = self.expected_spend_micros.values().sum();
        out.push_str(&format!(
            "expected spend: {spend:.3} micros over {} campaigns\n",
            self.expected_spend_micros.len()
        ));
        out
    }
}

/// The notice thread; `finish` waits for it and returns its report.
pub struct Notifier {
    tx: Option<SyncSender<BidNotices>>,
    handle: JoinHandle<NoticeReport>,
    skipped: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Notifier {
    pub fn start(addr: SocketAddr, plan: NoticePlan) -> Notifier {
        let (tx, rx) = std::sync::mpsc::sync_channel(65_536);
        let handle = std::thread::Builder::new()
            .name("notices".into())
            .spawn(move || run(addr, plan, rx))
            .expect("notice thread");
        Notifier {
            tx: Some(tx),
            handle,
            skipped: Default::default(),
        }
    }

    /// A handle for the workers to pass bids through.
    pub fn sink(&self) -> NoticeSink {
        NoticeSink {
            tx: self.tx.clone(),
            skipped: self.skipped.clone(),
        }
    }

    pub fn finish(mut self) -> NoticeReport {
        self.tx = None;
        let mut report = self.handle.join().unwrap_or_default();
        report.skipped = self.skipped.load(std::sync::atomic::Ordering::Relaxed);
        report
    }
}

/// Where workers hand the bids they receive.
#[derive(Clone)]
pub struct NoticeSink {
    tx: Option<SyncSender<BidNotices>>,
    skipped: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for NoticeSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NoticeSink")
    }
}

impl NoticeSink {
    /// Passes on the bids of a bid response body.
    pub fn bids(&self, body: &[u8]) {
        let Some(tx) = &self.tx else { return };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
            return;
        };
        let seatbids = v["seatbid"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        for bid in seatbids
            .iter()
            .flat_map(|s| s["bid"].as_array().into_iter().flatten())
        {
            let url = |k: &str| bid[k].as_str().unwrap_or("").to_string();
            let price = bid["price"].as_f64().unwrap_or(0.0);
            let n = BidNotices {
                campaign: bid["cid"].as_str().unwrap_or("").to_string(),
                price_micros: (price * 1e6).round() as i64,
                nurl: url("nurl"),
                burl: url("burl"),
                lurl: url("lurl"),
            };
            if n.burl.is_empty() {
                continue;
            }
            if let Err(TrySendError::Full(_)) = tx.try_send(n) {
                self.skipped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}

fn run(addr: SocketAddr, plan: NoticePlan, rx: Receiver<BidNotices>) -> NoticeReport {
    let mut rng = Rng::new(plan.seed);
    let mut conns: Vec<Option<Client>> = (0..plan.connections.max(1)).map(|_| None).collect();
    let mut next = 0;
    let mut report = NoticeReport::default();
    let mut send = |what: &str, url: &str, report: &mut NoticeReport| -> u16 {
        let i = next % conns.len();
        next += 1;
        let status = request(&mut conns[i], addr, url);
        *report
            .sent
            .entry(what.to_string())
            .or_default()
            .entry(status)
            .or_default() += 1;
        status
    };
    for bid in rx {
        if !rng.chance(plan.win_share) {
            send("loss", &fill(&bid.lurl, None), &mut report);
            continue;
        }
        // A clearing price between half the bid and the bid, in whole micros.
        let clear = bid.price_micros / 2 + rng.below(bid.price_micros as usize / 2 + 1) as i64;
        send("win", &fill(&bid.nurl, Some(clear)), &mut report);
        let billing = fill(&bid.burl, Some(clear));
        if send("billing", &billing, &mut report) == 200 {
            *report
                .expected_spend_micros
                .entry(bid.campaign.clone())
                .or_default() += clear as f64 / 1000.0;
        }
        if rng.chance(plan.duplicates) {
            send("billing duplicate", &billing, &mut report);
        }
        if rng.chance(plan.forgeries) {
            send("billing forged", &forge(&billing), &mut report);
        }
        if rng.chance(plan.over_price) {
            send(
                "billing over price",
                &fill(&bid.burl, Some(bid.price_micros + 10_000)),
                &mut report,
            );
        }
    }
    report
}

/// A notice URL's path and query with the exchange's macros filled in.
fn fill(url: &str, price_micros: Option<i64>) -> String {
    let path = url.find("/notice/").map_or(url, |i| &url[i..]);
    let price = price_micros
        .map(|p| format!("{}.{:06}", p / 1_000_000, p % 1_000_000))
        .unwrap_or_default();
    path.replace("${AUCTION_PRICE}", &price)
        .replace("${AUCTION_LOSS}", "102")
}

/// The same notice with one byte of its signature changed.
fn forge(url: &str) -> String {
    let mut b = url.as_bytes().to_vec();
    if let Some(i) = url.find("&s=") {
        let j = i + 3;
        if j < b.len() {
            b[j] = if b[j] == b'A' { b'B' } else { b'A' };
        }
    }
    String::from_utf8(b).unwrap_or_default()
}

/// A keep-alive connection for notices.
struct Client {
    stream: BufReader<TcpStream>,
}

/// Sends `GET path` and returns the status (0 when the server could not be reached or
/// answered nothing). The connection is reopened after a failure.
fn request(slot: &mut Option<Client>, addr: SocketAddr, path: &str) -> u16 {
    for _ in 0..2 {
        if slot.is_none() {
            let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
                return 0;
            };
            let _ = s.set_nodelay(true);
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            *slot = Some(Client {
                stream: BufReader::new(s),
            });
        }
        let Some(c) = slot.as_mut() else { return 0 };
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        match c
            .stream
            .get_mut()
            .write_all(req.as_bytes())
            .and_then(|_| read(c))
        {
            Ok((status, close)) => {
                if close {
                    *slot = None;
                }
                return status;
            }
            Err(_) => *slot = None,
        }
    }
    0
}

/// Reads one response: its status, and whether the server closes the connection.
fn read(c: &mut Client) -> std::io::Result<(u16, bool)> {
    let mut line = String::new();
    c.stream.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status line"))?;
    let (mut len, mut close) = (0usize, false);
    loop {
        line.clear();
        if c.stream.read_line(&mut line)? == 0 {
            return Err(std::io::Error::other("closed in the head"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            let v = v.trim();
            if k.eq_ignore_ascii_case("content-length") {
                len = v.parse().unwrap_or(0);
            } else if k.eq_ignore_ascii_case("connection") && v.eq_ignore_ascii_case("close") {
                close = true;
            }
        }
    }
    let mut body = vec![0u8; len];
    c.stream.read_exact(&mut body)?;
    Ok((status, close))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macros_and_forgeries() {
        let url = "http://127.0.0.1:8080/notice/billing?a=1&s=AbC&price=${AUCTION_PRICE}";
        assert_eq!(
            fill(url, Some(1_250_000)),
            "/notice/billing?a=1&s=AbC&price=1.250000"
        );
        assert_eq!(
            fill(
                "/notice/loss?l=${AUCTION_LOSS}&price=${AUCTION_PRICE}",
                None
            ),
            "/notice/loss?l=102&price="
        );
        assert_eq!(forge("/notice/win?a=1&s=AbC"), "/notice/win?a=1&s=BbC");
    }
}
