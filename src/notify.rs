//! systemd's service notifications (`sd_notify`): readiness, stopping, status, and a
//! watchdog that vouches for the shards.
//!
//! The protocol is one datagram of `KEY=VALUE` lines sent to the Unix socket named by
//! `NOTIFY_SOCKET`: a path, or `@name` for an abstract socket. systemd sets it for a
//! `Type=notify` unit. Without it (run by hand, by docker, by the tests) every function
//! here does nothing. It is a few lines, so it is written here rather than taken from
//! libsystemd or a crate: the socket is opened once and non-blocking (a notification
//! never stalls the thread that sends it), nothing changes the process environment
//! (unsafe once threads run), and the watchdog has to know about our shards anyway.
//!
//! What is sent, and when:
//! - `READY=1` with `STATUS=` and `MAINPID=`: every shard and the admin listener are
//!   bound (`server.rs`, where it logs "Listening").
//! - `STOPPING=1`: the drain starts (`control.rs`); no `READY=1` or watchdog ping follows.
//! - `STATUS=`: a one-line summary for `systemctl status` (campaign changes, an
//!   unhealthy thread).
//! - `WATCHDOG=1`: when systemd set `WATCHDOG_USEC` (and `WATCHDOG_PID`, if set, is this
//!   process), a plain thread pings at half that interval, but only while [`Health`]
//!   says that every shard's housekeeping loop and the control thread have ticked within
//!   that half interval. A stuck shard or control thread stops the pings, and systemd
//!   kills and restarts the process (`WatchdogSec=`, `Restart=`).
//!
//! A failed send is logged once (a warning) and never panics; the server runs on
//! without notifications.

use std::ffi::OsStr;
use std::fmt;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use tracing::{debug, error, info, warn};

/// Where notifications go, from `NOTIFY_SOCKET`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A socket file, e.g. `/run/systemd/notify`.
    Path(std::path::PathBuf),
    /// An abstract socket (`@name` in `NOTIFY_SOCKET`), the name without the `@`.
    Abstract(Vec<u8>),
}

/// Parses `NOTIFY_SOCKET`. systemd sends an absolute path or `@name`; anything else
/// (a relative path, `vsock:` of a virtual machine's manager) is refused with the reason.
pub fn parse_socket(value: &OsStr) -> Result<Target, String> {
    let bytes = value.as_bytes();
    match bytes.first() {
        Some(b'/') => Ok(Target::Path(value.into())),
        Some(b'@') if bytes.len() > 1 => Ok(Target::Abstract(bytes[1..].to_vec())),
        _ => Err(format!(
            "NOTIFY_SOCKET={} is neither an absolute path nor @name",
            value.to_string_lossy()
        )),
    }
}

/// The interval between watchdog pings that systemd asked for: half of `WATCHDOG_USEC`,
/// as `sd_watchdog_enabled(3)` advises. `None` when there is no watchdog for this
/// process: `WATCHDOG_USEC` unset, or `WATCHDOG_PID` names another process (the
/// variables were inherited from a parent). Malformed values are an error.
pub fn watchdog_period(
    usec: Option<&OsStr>,
    pid: Option<&OsStr>,
    own_pid: u32,
) -> Result<Option<Duration>, String> {
    let Some(usec) = usec else {
        return Ok(None);
    };
    let usec: u64 = match usec.to_str().and_then(|s| s.parse().ok()) {
        Some(u) if u > 0 && u != u64::MAX => u,
        _ => {
            return Err(format!(
                "WATCHDOG_USEC={} is not a positive number of microseconds",
                usec.to_string_lossy()
            ))
        }
    };
    if let Some(pid) = pid {
        match pid.to_str().and_then(|s| s.parse::<u32>().ok()) {
            Some(p) if p == own_pid => {}
            Some(_) => return Ok(None),
            None => {
                return Err(format!(
                    "WATCHDOG_PID={} is not a pid",
                    pid.to_string_lossy()
                ))
            }
        }
    }
    Ok(Some(Duration::from_micros(usec) / 2))
}

/// A `STATUS=` value: one line (systemd shows it in `systemctl status`).
fn one_line(status: &str) -> String {
    status.replace(['\n', '\r'], " ")
}

/// The `READY=1` datagram.
pub fn ready_message(status: &str, pid: u32) -> String {
    format!("READY=1\nSTATUS={}\nMAINPID={pid}", one_line(status))
}

/// The `STOPPING=1` datagram.
pub fn stopping_message(status: &str) -> String {
    format!("STOPPING=1\nSTATUS={}", one_line(status))
}

/// A `STATUS=` datagram.
pub fn status_message(status: &str) -> String {
    format!("STATUS={}", one_line(status))
}

/// The watchdog's keep-alive datagram.
pub const WATCHDOG_MESSAGE: &str = "WATCHDOG=1";

/// An open notification socket.
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
    /// Set once a send failed and was logged; later failures are silent.
    warned: AtomicBool,
    /// Set by [`stopping`]. Held while `READY=1`, `STOPPING=1` or a ping is sent, so that
    /// neither of the others ever follows `STOPPING=1`.
    stopping: Mutex<bool>,
}

impl Notifier {
    /// A non-blocking socket that sends to `target`.
    pub fn open(target: &Target) -> std::io::Result<Notifier> {
        let addr = match target {
            Target::Path(p) => SocketAddr::from_pathname(p)?,
            Target::Abstract(name) => SocketAddr::from_abstract_name(name)?,
        };
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        Ok(Notifier {
            socket,
            addr,
            warned: AtomicBool::new(false),
            stopping: Mutex::new(false),
        })
    }

    /// Sends `message` unless [`Notifier::send_stopping`] came first. `None` once
    /// stopping, else whether it went out.
    pub fn send_unless_stopping(&self, message: &str) -> Option<bool> {
        let stopping = self.stopping.lock().unwrap_or_else(PoisonError::into_inner);
        (!*stopping).then(|| self.send(message))
    }

    fn is_stopping(&self) -> bool {
        *self.stopping.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends `message` (a `STOPPING=1`) the first time only; nothing but `STATUS=`
    /// follows it.
    pub fn send_stopping(&self, message: &str) {
        let mut stopping = self.stopping.lock().unwrap_or_else(PoisonError::into_inner);
        if !*stopping {
            *stopping = true;
            self.send(message);
        }
    }

    /// Sends one datagram. Never blocks: a full socket queue is a failed send. The first
    /// failure is logged; returns whether this one went out.
    pub fn send(&self, message: &str) -> bool {
        match self.socket.send_to_addr(message.as_bytes(), &self.addr) {
            Ok(_) => true,
            Err(e) => {
                if !self.warned.swap(true, Ordering::Relaxed) {
                    warn!(error = %e, "Cannot notify systemd (NOTIFY_SOCKET); further failures are not logged");
                }
                false
            }
        }
    }
}

static NOTIFIER: OnceLock<Option<Notifier>> = OnceLock::new();

/// The process's notifier, opened from `NOTIFY_SOCKET` on first use; `None` without one.
fn notifier() -> Option<&'static Notifier> {
    NOTIFIER
        .get_or_init(|| {
            let value = std::env::var_os("NOTIFY_SOCKET")?;
            let opened =
                parse_socket(&value).and_then(|t| Notifier::open(&t).map_err(|e| e.to_string()));
            match opened {
                Ok(n) => Some(n),
                Err(e) => {
                    warn!(error = %e, "Cannot notify systemd; running without notifications");
                    None
                }
            }
        })
        .as_ref()
}

/// Tells systemd the server is ready, with `status` as its status line, and starts the
/// watchdog thread if systemd asked for pings. Does nothing once [`stopping`] was called
/// (a signal during start-up).
pub fn ready(status: &str, health: Arc<Health>) {
    let Some(n) = notifier() else { return };
    if n.send_unless_stopping(&ready_message(status, std::process::id()))
        .is_none()
    {
        return;
    }
    let period = watchdog_period(
        std::env::var_os("WATCHDOG_USEC").as_deref(),
        std::env::var_os("WATCHDOG_PID").as_deref(),
        std::process::id(),
    );
    match period {
        Ok(Some(period)) => start_watchdog(n, health, period),
        Ok(None) => debug!("Notified systemd: ready; no watchdog"),
        Err(e) => warn!(error = %e, "Ignoring the systemd watchdog settings"),
    }
}

/// Tells systemd the drain has started; the watchdog stops pinging (systemd stops
/// watching once the unit is stopping; `TimeoutStopSec=` bounds the rest).
pub fn stopping(status: &str) {
    if let Some(n) = notifier() {
        n.send_stopping(&stopping_message(status));
    }
}

/// Updates the status line `systemctl status` shows.
pub fn status(status: &str) {
    if let Some(n) = notifier() {
        n.send(&status_message(status));
    }
}

fn start_watchdog(n: &'static Notifier, health: Arc<Health>, period: Duration) {
    let spawned = std::thread::Builder::new()
        .name("sd-watchdog".into())
        .spawn(move || run_watchdog(n, &health, period));
    match spawned {
        Ok(_) => info!(
            ping_ms = period.as_millis() as u64,
            "systemd watchdog on: pinging while every shard and the control thread tick"
        ),
        Err(e) => {
            error!(error = %e, "Cannot start the systemd watchdog thread; systemd will restart the process")
        }
    }
}

/// The watchdog loop: every `period`, ping if every thread ticked within `period`, until
/// the drain starts. An unhealthy thread is logged (and put in the status line) once per
/// episode; pings resume if it recovers before systemd acts.
pub fn run_watchdog(n: &Notifier, health: &Health, period: Duration) {
    let mut unhealthy = false;
    loop {
        let (who, age) = health.stalest(Instant::now());
        if age <= period {
            if n.send_unless_stopping(WATCHDOG_MESSAGE).is_none() {
                return;
            }
            if unhealthy {
                unhealthy = false;
                info!("Every thread ticks again; systemd watchdog pings resumed");
                n.send(&status_message("Serving (recovered from a stall)"));
            }
        } else if n.is_stopping() {
            return;
        } else if !unhealthy {
            unhealthy = true;
            let age_ms = age.as_millis() as u64;
            error!(thread = %who, age_ms, "Thread stalled; withholding the systemd watchdog ping");
            n.send(&status_message(&format!(
                "Unhealthy: {who} has not ticked for {age_ms} ms"
            )));
        }
        std::thread::sleep(period);
    }
}

/// A thread that [`Health`] tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ticker {
    Shard(usize),
    Control,
}

impl fmt::Display for Ticker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ticker::Shard(id) => write!(f, "shard {id}"),
            Ticker::Control => f.write_str("control thread"),
        }
    }
}

/// One thread's last tick, in milliseconds since [`Health`] was made, on a cache line of
/// its own (each is written by one thread only, every housekeeping tick, never on the
/// request path).
#[derive(Debug, Default)]
#[repr(align(64))]
struct Beat(AtomicU64);

/// Heartbeats of the shards' housekeeping loops and of the control thread, which the
/// watchdog reads. Every beat starts at the time of [`Health::new`].
#[derive(Debug)]
pub struct Health {
    epoch: Instant,
    /// One per shard, then the control thread's.
    beats: Box<[Beat]>,
}

impl Default for Health {
    fn default() -> Health {
        Health::new(0)
    }
}

impl Health {
    pub fn new(shards: usize) -> Health {
        Health {
            epoch: Instant::now(),
            beats: (0..=shards).map(|_| Beat::default()).collect(),
        }
    }

    /// Shard `id`'s housekeeping loop ticked at `now`.
    pub fn shard_tick(&self, id: usize, now: Instant) {
        if id + 1 < self.beats.len() {
            self.beat(id, now);
        }
    }

    /// The control thread's loop ticked at `now`.
    pub fn control_tick(&self, now: Instant) {
        self.beat(self.beats.len() - 1, now);
    }

    fn beat(&self, slot: usize, now: Instant) {
        let ms = now.saturating_duration_since(self.epoch).as_millis() as u64;
        self.beats[slot].0.store(ms, Ordering::Relaxed);
    }

    /// The thread that ticked longest ago, and how long ago, as of `now`.
    pub fn stalest(&self, now: Instant) -> (Ticker, Duration) {
        let now_ms = now.saturating_duration_since(self.epoch).as_millis() as u64;
        let control = self.beats.len() - 1;
        self.beats
            .iter()
            .enumerate()
            .map(|(slot, beat)| {
                let who = if slot == control {
                    Ticker::Control
                } else {
                    Ticker::Shard(slot)
                };
                let age = now_ms.saturating_sub(beat.0.load(Ordering::Relaxed));
                (who, Duration::from_millis(age))
            })
            .max_by_key(|&(_, age)| age)
            .expect("the control thread's beat")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;
    use std::path::PathBuf;

    fn os(s: &str) -> OsString {
        OsString::from(s)
    }

    #[test]
    fn notify_socket_is_a_path_or_an_abstract_name() {
        assert_eq!(
            parse_socket(&os("/run/systemd/notify")),
            Ok(Target::Path(PathBuf::from("/run/systemd/notify")))
        );
        assert_eq!(
            parse_socket(&os("@/org/freedesktop/systemd1/notify/42")),
            Ok(Target::Abstract(
                b"/org/freedesktop/systemd1/notify/42".to_vec()
            ))
        );
        for bad in ["", "@", "run/notify", "vsock:2:1234"] {
            assert!(parse_socket(&os(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn watchdog_pings_at_half_the_interval_for_this_pid_only() {
        let period = |usec: Option<&str>, pid: Option<&str>| {
            let (usec, pid) = (usec.map(os), pid.map(os));
            watchdog_period(usec.as_deref(), pid.as_deref(), 4242)
        };
        assert_eq!(period(None, None), Ok(None));
        assert_eq!(period(None, Some("4242")), Ok(None));
        assert_eq!(
            period(Some("400000"), None),
            Ok(Some(Duration::from_millis(200)))
        );
        assert_eq!(
            period(Some("10000000"), Some("4242")),
            Ok(Some(Duration::from_secs(5)))
        );
        // Inherited from a parent that systemd watches: not ours to ping for.
        assert_eq!(period(Some("10000000"), Some("1")), Ok(None));
        for (usec, pid) in [
            ("0", None),
            ("-5", None),
            ("ten", None),
            ("18446744073709551615", None),
            ("1000000", Some("")),
            ("1000000", Some("pid")),
        ] {
            assert!(period(Some(usec), pid).is_err(), "{usec:?} {pid:?}");
        }
    }

    #[test]
    fn messages_are_key_value_lines_with_a_one_line_status() {
        assert_eq!(
            ready_message("Serving 2 shards", 77),
            "READY=1\nSTATUS=Serving 2 shards\nMAINPID=77"
        );
        assert_eq!(stopping_message("Draining"), "STOPPING=1\nSTATUS=Draining");
        assert_eq!(status_message("a\nb\r\nc"), "STATUS=a b  c");
        assert_eq!(WATCHDOG_MESSAGE, "WATCHDOG=1");
    }

    #[test]
    fn health_reports_the_thread_that_ticked_longest_ago() {
        let h = Health::new(2);
        let t0 = h.epoch;
        let at = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(h.stalest(at(30)).1, Duration::from_millis(30));
        h.shard_tick(0, at(100));
        h.shard_tick(1, at(100));
        h.control_tick(at(90));
        assert_eq!(
            h.stalest(at(120)),
            (Ticker::Control, Duration::from_millis(30))
        );
        h.control_tick(at(200));
        h.shard_tick(0, at(200));
        assert_eq!(
            h.stalest(at(250)),
            (Ticker::Shard(1), Duration::from_millis(150))
        );
        // Out-of-range shards (a default Health) are ignored, not a panic.
        h.shard_tick(7, at(300));
        Health::default().shard_tick(0, at(1));
        assert_eq!(Ticker::Shard(1).to_string(), "shard 1");
    }

    fn temp_socket(tag: &str) -> (PathBuf, UnixDatagram) {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path = std::env::temp_dir().join(format!(
            "shardbid-notify-{tag}-{}-{nanos}",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        (path, sock)
    }

    fn recv(sock: &UnixDatagram) -> Option<String> {
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    #[test]
    fn sends_to_a_path_and_an_abstract_socket() {
        let (path, sock) = temp_socket("send");
        let n = Notifier::open(&Target::Path(path.clone())).unwrap();
        assert!(n.send("STATUS=hello"));
        assert_eq!(recv(&sock).as_deref(), Some("STATUS=hello"));
        std::fs::remove_file(&path).unwrap();

        let name = format!("shardbid-notify-test-{}", std::process::id());
        let abs = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
        abs.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = Notifier::open(&Target::Abstract(name.into_bytes())).unwrap();
        assert!(n.send(WATCHDOG_MESSAGE));
        assert_eq!(recv(&abs).as_deref(), Some("WATCHDOG=1"));
    }

    #[test]
    fn a_failed_send_returns_false_and_does_not_block_or_panic() {
        let n = Notifier::open(&Target::Path("/nonexistent/shardbid/notify".into())).unwrap();
        assert!(!n.send("READY=1"));
        assert!(!n.send("READY=1"));
        assert!(n.warned.load(Ordering::Relaxed));

        // A receiver that never reads: its queue fills and sends fail instead of waiting.
        let (path, _sock) = temp_socket("full");
        let n = Notifier::open(&Target::Path(path.clone())).unwrap();
        let started = Instant::now();
        let sent = (0..100_000)
            .take_while(|_| n.send(WATCHDOG_MESSAGE))
            .count();
        assert!(sent < 100_000, "the queue never filled");
        assert!(started.elapsed() < Duration::from_secs(5));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn watchdog_pings_only_while_every_thread_ticks() {
        let (path, sock) = temp_socket("watchdog");
        let n: &'static Notifier = Box::leak(Box::new(
            Notifier::open(&Target::Path(path.clone())).unwrap(),
        ));
        let health = Arc::new(Health::new(1));
        let period = Duration::from_millis(50);
        let h = health.clone();
        let thread = std::thread::spawn(move || run_watchdog(n, &h, period));

        // Healthy: both threads tick every 5 ms, and pings arrive.
        let tick_for = |d: Duration| {
            let until = Instant::now() + d;
            while Instant::now() < until {
                health.shard_tick(0, Instant::now());
                health.control_tick(Instant::now());
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        tick_for(Duration::from_millis(400));
        sock.set_nonblocking(true).unwrap();
        let drain = || std::iter::from_fn(|| recv(&sock)).collect::<Vec<_>>();
        let healthy = drain();
        assert!(
            healthy.iter().filter(|m| *m == WATCHDOG_MESSAGE).count() >= 3,
            "{healthy:?}"
        );

        // Shard 0 stalls, the control thread goes on: the pings stop, the status says why.
        let until = Instant::now() + Duration::from_millis(400);
        while Instant::now() < until {
            health.control_tick(Instant::now());
            std::thread::sleep(Duration::from_millis(5));
        }
        let stalled = drain();
        let pings = stalled.iter().filter(|m| *m == WATCHDOG_MESSAGE).count();
        // At most the pings of the first period, before the stall was older than it.
        assert!(pings <= 2, "{stalled:?}");
        assert!(
            stalled
                .iter()
                .any(|m| m.starts_with("STATUS=Unhealthy: shard 0 has not ticked")),
            "{stalled:?}"
        );

        // It recovers: pings resume. Then stopping ends the thread.
        tick_for(Duration::from_millis(300));
        let recovered = drain();
        assert!(
            recovered.iter().any(|m| m == WATCHDOG_MESSAGE),
            "{recovered:?}"
        );
        n.send_stopping("STOPPING=1");
        thread.join().unwrap();
        let last = drain();
        assert_eq!(
            last.last().map(String::as_str),
            Some("STOPPING=1"),
            "{last:?}"
        );
        std::fs::remove_file(&path).unwrap();
    }
}
