//! The event log's runtime side: each shard's bounded buffer, and the writer thread
//! (`sb-events`) that turns batches into JSON lines in rotating files.
//!
//! A shard appends events to its own buffer (no lock, no formatting: the compact form
//! of `record`) and hands the buffer to the writer on its housekeeping tick, getting an
//! emptied one back, so steady state allocates nothing. When the writer falls behind,
//! the shard keeps appending up to `events.buffer_bytes`; beyond that, bid events are
//! dropped and counted (`shardbid_events_dropped_total`), never waited for. Money
//! events (wins, billing, losses, expiries, refusals) get eight times the room before
//! they too would be dropped.
//!
//! The writer appends to `events.dir/events-<UTC start>-<n>.jsonl` (names sort by
//! time), starts a new file past `events.max_file_bytes` or `events.rotate_s`, and
//! writes and fsyncs at least every `events.flush_ms`. On shutdown every shard hands
//! over what it holds, and the writer writes, fsyncs and closes before the process
//! exits: an event accepted before the drain ends is on disk. A crash loses at most
//! what was not yet fsynced: one flush interval, plus what the shards still held
//! (10 ms of events).

use std::cell::{Cell, RefCell};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};
use tracing::{error, info, warn};

use super::record::{write_rfc3339_ms, Event, EventType};
use crate::config::EventsConfig;

/// Batches in flight to the writer, per shard.
const QUEUE: usize = 8;

/// Counts per event type, indexed by `EventType as usize`.
pub type TypeCounts = [u64; EventType::ALL.len()];

/// A shard's side of the event log.
pub struct ShardEvents {
    shard: u16,
    buf: RefCell<Vec<u8>>,
    limit: usize,
    tx: Option<Sender<(u16, Vec<u8>)>>,
    spare: Receiver<Vec<u8>>,
    /// Bid events kept, out of every 2^32 (`events.bid_sample`).
    sample: u64,
    sample_acc: Cell<u64>,
    accepted: Cell<TypeCounts>,
    dropped: Cell<u64>,
    closed: Cell<bool>,
}

impl ShardEvents {
    /// A sink that keeps nothing (the event log is off).
    pub fn off(shard: u16) -> ShardEvents {
        let (_, spare) = bounded(1);
        ShardEvents {
            shard,
            buf: RefCell::new(Vec::new()),
            limit: 0,
            tx: None,
            spare,
            sample: 0,
            sample_acc: Cell::new(0),
            accepted: Cell::new([0; EventType::ALL.len()]),
            dropped: Cell::new(0),
            closed: Cell::new(false),
        }
    }

    pub fn shard(&self) -> u16 {
        self.shard
    }

    /// Whether the next bid event is kept (`events.bid_sample`, spread evenly).
    #[inline]
    pub fn sample_bid(&self) -> bool {
        if self.tx.is_none() {
            return false;
        }
        if self.sample >= 1 << 32 {
            return true;
        }
        let acc = self.sample_acc.get() + self.sample;
        self.sample_acc.set(acc & 0xffff_ffff);
        acc >> 32 != 0
    }

    /// Appends an event; false (and counted) when the buffer has no room for it.
    pub fn push(&self, e: &Event<'_>) -> bool {
        if self.tx.is_none() || self.closed.get() {
            return false;
        }
        let mut buf = self.buf.borrow_mut();
        let room = if e.kind.is_money() {
            self.limit * 8
        } else {
            self.limit
        };
        if buf.len() >= room {
            self.dropped.set(self.dropped.get() + 1);
            return false;
        }
        e.encode(&mut buf);
        let mut counts = self.accepted.get();
        counts[e.kind as usize] += 1;
        self.accepted.set(counts);
        true
    }

    /// Hands what the buffer holds to the writer (the housekeeping tick). When the
    /// writer's queue is full the events stay and go with a later tick.
    pub fn flush(&self) {
        let Some(tx) = &self.tx else { return };
        let mut buf = self.buf.borrow_mut();
        if buf.is_empty() {
            return;
        }
        let next = self.spare.try_recv().unwrap_or_default();
        let batch = std::mem::replace(&mut *buf, next);
        match tx.try_send((self.shard, batch)) {
            Ok(()) => {}
            Err(TrySendError::Full((_, batch)) | TrySendError::Disconnected((_, batch))) => {
                let spare = std::mem::replace(&mut *buf, batch);
                drop(spare);
            }
        }
    }

    /// Hands everything over, waiting for room if it must (the shard is done; events
    /// after this are not kept).
    pub fn close(&self) {
        let Some(tx) = &self.tx else { return };
        self.closed.set(true);
        let batch = std::mem::take(&mut *self.buf.borrow_mut());
        if !batch.is_empty() && tx.send((self.shard, batch)).is_err() {
            error!(shard = self.shard, "Event writer gone; events lost");
        }
    }

    /// Events accepted, by type.
    pub fn accepted(&self) -> TypeCounts {
        self.accepted.get()
    }

    /// Events dropped because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.get()
    }
}

impl Drop for ShardEvents {
    fn drop(&mut self) {
        self.close();
    }
}

/// The writer thread and what the shards need to reach it.
pub struct EventLog {
    tx: Option<Sender<(u16, Vec<u8>)>>,
    spares: Vec<Receiver<Vec<u8>>>,
    handle: Option<std::thread::JoinHandle<TypeCounts>>,
    cfg: EventsConfig,
}

impl EventLog {
    /// Starts the writer for `shards` shards, or nothing when the log is off.
    pub fn start(cfg: &EventsConfig, shards: usize) -> io::Result<EventLog> {
        if !cfg.enabled {
            return Ok(EventLog {
                tx: None,
                spares: Vec::new(),
                handle: None,
                cfg: cfg.clone(),
            });
        }
        std::fs::create_dir_all(&cfg.dir)?;
        let (tx, rx) = bounded::<(u16, Vec<u8>)>(QUEUE * shards.max(1));
        let (spares, spare_txs): (Vec<_>, Vec<_>) = (0..shards)
            .map(|_| {
                let (stx, srx) = bounded::<Vec<u8>>(QUEUE);
                (srx, stx)
            })
            .unzip();
        let mut files = Files::new(cfg)?;
        let flush = cfg.flush_ms;
        let handle = std::thread::Builder::new()
            .name("sb-events".into())
            .spawn(move || {
                let written = write_loop(&rx, &spare_txs, &mut files, flush);
                if let Err(e) = files.finish() {
                    error!(error = %e, "Event log: final write failed");
                }
                written
            })?;
        Ok(EventLog {
            tx: Some(tx),
            spares,
            handle: Some(handle),
            cfg: cfg.clone(),
        })
    }

    /// Shard `shard`'s side of the log.
    pub fn for_shard(&self, shard: usize) -> ShardEvents {
        let (Some(tx), Some(spare)) = (&self.tx, self.spares.get(shard)) else {
            return ShardEvents::off(shard as u16);
        };
        ShardEvents {
            shard: shard as u16,
            buf: RefCell::new(Vec::with_capacity(64 << 10)),
            limit: self.cfg.buffer_bytes,
            tx: Some(tx.clone()),
            spare: spare.clone(),
            sample: (self.cfg.bid_sample.clamp(0.0, 1.0) * (1u64 << 32) as f64) as u64,
            sample_acc: Cell::new(0),
            accepted: Cell::new([0; EventType::ALL.len()]),
            dropped: Cell::new(0),
            closed: Cell::new(false),
        }
    }

    /// Waits for the writer to write, fsync and close everything the shards handed
    /// over (every shard's side must be closed, or dropped, first). Returns the events
    /// written, by type.
    pub fn finish(mut self) -> TypeCounts {
        self.tx = None;
        match self.handle.take() {
            Some(h) => h.join().unwrap_or_else(|_| {
                error!("Event writer panicked");
                [0; EventType::ALL.len()]
            }),
            None => [0; EventType::ALL.len()],
        }
    }
}

fn write_loop(
    rx: &Receiver<(u16, Vec<u8>)>,
    spares: &[Sender<Vec<u8>>],
    files: &mut Files,
    flush: Duration,
) -> TypeCounts {
    let mut written = [0u64; EventType::ALL.len()];
    let mut line = Vec::with_capacity(512);
    let mut last_sync = Instant::now();
    loop {
        let wait = flush.saturating_sub(last_sync.elapsed());
        match rx.recv_timeout(wait) {
            Ok((shard, mut batch)) => {
                files.check_age();
                let mut rest = &batch[..];
                while let Some((e, r)) = Event::decode(rest) {
                    line.clear();
                    e.write_json(&mut line);
                    files.write(&line, e.ts_ms);
                    written[e.kind as usize] += 1;
                    rest = r;
                }
                batch.clear();
                if let Some(spare) = spares.get(shard as usize) {
                    let _ = spare.try_send(batch);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if last_sync.elapsed() >= flush {
            if let Err(e) = files.sync() {
                warn!(error = %e, "Event log: fsync failed");
            }
            last_sync = Instant::now();
        }
    }
    info!(
        bid = written[EventType::Bid as usize],
        win = written[EventType::Win as usize],
        billing = written[EventType::Billing as usize],
        loss = written[EventType::Loss as usize],
        expired = written[EventType::Expired as usize],
        rejected = written[EventType::Rejected as usize],
        "Event log closed"
    );
    written
}

/// The current file and when to start the next.
struct Files {
    dir: PathBuf,
    max_bytes: u64,
    rotate: Duration,
    file: Option<(BufWriter<File>, PathBuf, u64, Instant)>,
    /// The current file is `rotate` old: the next line starts a new one. Looked at once
    /// per batch ([`Files::check_age`]), not per line, which would be a clock read per
    /// event.
    aged: bool,
    seq: u32,
    failed: bool,
}

impl Files {
    fn new(cfg: &EventsConfig) -> io::Result<Files> {
        Ok(Files {
            dir: cfg.dir.clone(),
            max_bytes: cfg.max_file_bytes,
            rotate: cfg.rotate_s,
            file: None,
            aged: false,
            seq: 0,
            failed: false,
        })
    }

    fn check_age(&mut self) {
        if let Some((_, _, _, opened)) = &self.file {
            self.aged = opened.elapsed() >= self.rotate;
        }
    }

    fn write(&mut self, line: &[u8], ts_ms: i64) {
        let due = match &self.file {
            None => true,
            Some((_, _, bytes, _)) => *bytes >= self.max_bytes || self.aged,
        };
        if due {
            if let Err(e) = self.open(ts_ms) {
                if !self.failed {
                    error!(dir = %self.dir.display(), error = %e, "Event log: cannot open a file");
                }
                self.failed = true;
                return;
            }
        }
        if let Some((w, path, bytes, _)) = &mut self.file {
            match w.write_all(line) {
                Ok(()) => *bytes += line.len() as u64,
                Err(e) => {
                    if !self.failed {
                        error!(file = %path.display(), error = %e, "Event log: write failed");
                    }
                    self.failed = true;
                }
            }
        }
    }

    fn open(&mut self, ts_ms: i64) -> io::Result<()> {
        self.close()?;
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(ts_ms, |d| d.as_millis() as i64);
        // A new file, never one that exists: two processes share the folder during a
        // takeover, and each writes only its own files.
        let (f, path) = loop {
            self.seq += 1;
            let path = self.dir.join(file_name(now_ms, self.seq));
            match OpenOptions::new().create_new(true).append(true).open(&path) {
                Ok(f) => break (f, path),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        };
        self.file = Some((
            BufWriter::with_capacity(256 << 10, f),
            path,
            0,
            Instant::now(),
        ));
        self.aged = false;
        self.failed = false;
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        if let Some((w, _, _, _)) = &mut self.file {
            w.flush()?;
            w.get_ref().sync_data()?;
        }
        Ok(())
    }

    fn close(&mut self) -> io::Result<()> {
        if let Some((mut w, _, _, _)) = self.file.take() {
            w.flush()?;
            w.get_ref().sync_all()?;
        }
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        self.close()?;
        // The directory entry of the last file is durable too.
        File::open(&self.dir)?.sync_all()
    }
}

/// `events-20261205T204800.123Z-0001.jsonl`: names sort by the time their file began.
fn file_name(now_ms: i64, seq: u32) -> String {
    let mut ts = Vec::with_capacity(24);
    write_rfc3339_ms(now_ms, &mut ts);
    let ts: String = String::from_utf8_lossy(&ts)
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    format!("events-{ts}-{seq:04}.jsonl")
}

/// Every event file in `dir`, oldest first.
pub fn files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("events-") && n.ends_with(".jsonl"))
        })
        .collect();
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_amounts_read_back() {
        let mut ts = Vec::new();
        write_rfc3339_ms(1_733_431_680_123, &mut ts);
        assert_eq!(
            parse_ts_s(std::str::from_utf8(&ts).unwrap()),
            Some(1_733_431_680)
        );
        assert_eq!(parse_ts_s("2000-02-29T00:00:00.000Z"), Some(951_782_400));
        assert_eq!(micros_to_nanos("1750"), Some(1_750_000));
        assert_eq!(micros_to_nanos("1234.567"), Some(1_234_567));
        assert_eq!(micros_to_nanos("0.05"), Some(50));
        assert_eq!(micros_to_nanos("1.2345"), None);
    }

    #[test]
    fn a_file_is_rotated_by_age_at_the_next_batch() {
        let dir = std::env::temp_dir().join(format!("shardbid-age-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = EventsConfig {
            dir: dir.clone(),
            rotate_s: Duration::from_millis(50),
            ..EventsConfig::default()
        };
        let mut log = Files::new(&cfg).unwrap();
        let count = || files(&dir).unwrap().len();
        log.check_age();
        log.write(b"{}\n", 0);
        log.write(b"{}\n", 0);
        std::thread::sleep(Duration::from_millis(60));
        // Within a batch the file stays; the next batch sees its age.
        log.write(b"{}\n", 0);
        assert_eq!(count(), 1);
        log.check_age();
        log.write(b"{}\n", 0);
        log.check_age();
        log.write(b"{}\n", 0);
        log.finish().unwrap();
        assert_eq!(count(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn file_names_sort_by_time() {
        let a = file_name(1_733_431_680_123, 1);
        assert_eq!(a, "events-20241205T204800.123Z-0001.jsonl");
        assert!(file_name(1_733_431_680_124, 1) > a);
        assert!(file_name(1_733_431_680_123, 2) > a);
    }
}

/// What the event log says was charged before this process started.
#[derive(Debug, Default)]
pub struct Replay {
    /// Spend by campaign: in all, and on the day `today` (as `day_of` numbers days).
    pub spent: Vec<(String, crate::money::Nanos, crate::money::Nanos)>,
    /// Bids whose win or billing notice was taken within `max_age_s`, with what it did
    /// (so a retried notice is still recognised) and until when that matters.
    pub settled: Vec<(
        crate::money::ledger::BidKey,
        crate::money::ledger::Flags,
        u64,
    )>,
    pub lines: u64,
    pub unreadable: u64,
}

/// Reads every event file in `dir` for spend and recent settlements. `day_of(ts_s)`
/// gives a moment's day number; `now_s` and `max_age_s` bound what counts as recent.
pub fn replay(
    dir: &Path,
    today: i64,
    day_of: impl Fn(i64) -> i64,
    now_s: u64,
    max_age_s: u64,
) -> io::Result<Replay> {
    use crate::money::ledger::{BidKey, Flags};
    use crate::money::Nanos;
    use std::collections::HashMap;
    use std::io::BufRead;

    #[derive(serde::Deserialize)]
    struct Line<'a> {
        ts: &'a str,
        #[serde(rename = "type")]
        kind: &'a str,
        bid_id: &'a str,
        campaign: &'a str,
        #[serde(default)]
        charged_micros: Option<serde_json::Number>,
    }

    let mut out = Replay::default();
    let mut spent: HashMap<String, (Nanos, Nanos)> = HashMap::new();
    let mut settled: HashMap<BidKey, (Flags, u64)> = HashMap::new();
    if !dir.exists() {
        return Ok(out);
    }
    for path in files(dir)? {
        let f = File::open(&path)?;
        for line in io::BufReader::new(f).lines() {
            let line = line?;
            out.lines += 1;
            let Ok(l) = serde_json::from_str::<Line<'_>>(&line) else {
                out.unreadable += 1;
                continue;
            };
            let Some(ts) = parse_ts_s(l.ts) else {
                out.unreadable += 1;
                continue;
            };
            let flag = match l.kind {
                "win" | "billing" if l.charged_micros.is_some() => Flags::CHARGED,
                "win" | "billing" => Flags::MARKED,
                "loss" => Flags::LOST,
                _ => continue,
            };
            if let Some(c) = &l.charged_micros {
                let Some(nanos) = micros_to_nanos(&c.to_string()) else {
                    out.unreadable += 1;
                    continue;
                };
                let e = spent.entry(l.campaign.to_string()).or_default();
                e.0 += Nanos(nanos);
                if day_of(ts) == today {
                    e.1 += Nanos(nanos);
                }
            }
            if (ts as u64) + max_age_s > now_s {
                if let Some(key) = BidKey::parse(l.bid_id) {
                    let e = settled
                        .entry(key)
                        .or_insert((Flags::default(), ts as u64 + max_age_s));
                    e.0.set(flag);
                    if flag != Flags::LOST {
                        e.0.set(Flags::SEEN);
                    }
                }
            }
        }
    }
    out.spent = spent.into_iter().map(|(c, (t, d))| (c, t, d)).collect();
    out.settled = settled.into_iter().map(|(k, (f, u))| (k, f, u)).collect();
    Ok(out)
}

/// `2026-12-05T20:48:00.123Z` to seconds since the epoch.
fn parse_ts_s(ts: &str) -> Option<i64> {
    let b = ts.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[10] != b'T' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| ts.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // Days from civil (proleptic Gregorian).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// A micros amount with up to three decimals (`1750`, `1234.567`) in nanos.
fn micros_to_nanos(s: &str) -> Option<i64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut f: i64 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    for _ in frac.len()..3 {
        f *= 10;
    }
    let i: i64 = int.parse().ok()?;
    i.checked_mul(1000)?.checked_add(if i < 0 { -f } else { f })
}
