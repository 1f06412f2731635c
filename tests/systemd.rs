//! systemd: the shipped unit passes `systemd-analyze verify` and keeps its hardening, and
//! the real server speaks the notify protocol to a socket the test binds in systemd's
//! place: READY=1 once it serves, watchdog pings at half WATCHDOG_USEC that stop while a
//! shard is stalled, STOPPING=1 on SIGTERM, then exit 0.
//!
//! Needs `systemd-analyze` (Debian's `systemd` package; `.ci/run` installs it) and, for
//! the stalled-shard test, permission to ptrace the server (root, or a Yama
//! `ptrace_scope` of 0 or 1: the server is the test's child).

mod common;

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{fixture, Options, Server, TempDir};

const UNIT: &str = "config/systemd/shardbid.service";
const EXEC_START: &str = "ExecStart=/usr/local/bin/shardbid --config /etc/shardbid/shardbid.toml";

/// `systemd-analyze security` exposure, 0-100 (printed as 0.0-10.0). The unit scores
/// 14 ("1.4 OK") on systemd 252. The score is coarse (dropping ProtectSystem= changes
/// nothing, since DynamicUser= implies it), so `unit_hardening_is_all_there` checks each
/// setting as well.
const MAX_EXPOSURE: u32 = 15;

/// The unit with ExecStart pointing at the binary under test (verify checks that the
/// binary exists), written into `dir`. Nothing else differs from the shipped file.
fn unit_for_test(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(common::root().join(UNIT)).unwrap();
    assert_eq!(
        text.lines().filter(|l| *l == EXEC_START).count(),
        1,
        "{UNIT} must have exactly one line `{EXEC_START}`"
    );
    let bin = env!("CARGO_BIN_EXE_shardbid");
    let copy = text.replace(
        EXEC_START,
        &format!("ExecStart={bin} --config /etc/shardbid/shardbid.toml"),
    );
    let differing: Vec<_> = text
        .lines()
        .zip(copy.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(text.lines().count(), copy.lines().count());
    assert_eq!(differing.len(), 1, "{differing:?}");
    assert_eq!(differing[0].0, EXEC_START);
    common::write_file(dir, "shardbid.service", &copy)
}

fn systemd_analyze(args: &[&str], unit: &Path) -> Output {
    Command::new("systemd-analyze")
        .args(args)
        .arg(unit)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run systemd-analyze ({e}): install Debian's systemd package")
        })
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn unit_passes_systemd_analyze_verify() {
    let dir = TempDir::new("unit");
    let unit = unit_for_test(&dir.0);
    let out = systemd_analyze(&["verify"], &unit);
    let said = text(&out);
    // Unknown keys and bad values are warnings with exit status 0: any word about our
    // unit fails the test, not only the exit status.
    let about_us: Vec<&str> = said.lines().filter(|l| l.contains("shardbid")).collect();
    assert!(
        out.status.success() && about_us.is_empty(),
        "systemd-analyze verify {UNIT} ({}):\n{said}",
        out.status
    );
}

#[test]
fn unit_keeps_its_hardening() {
    let dir = TempDir::new("unit-security");
    let unit = unit_for_test(&dir.0);
    let threshold = format!("--threshold={MAX_EXPOSURE}");
    let out = systemd_analyze(&["security", "--offline=true", &threshold], &unit);
    assert!(
        out.status.success(),
        "exposure above {MAX_EXPOSURE}/100:\n{}",
        text(&out)
    );
}

/// The values of every `KEY=` line of the shipped unit, in order.
fn unit_values(key: &str) -> Vec<String> {
    let text = std::fs::read_to_string(common::root().join(UNIT)).unwrap();
    let prefix = format!("{key}=");
    text.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(str::to_string)
        .collect()
}

/// The value of the one `KEY=` line of the shipped unit.
fn unit_value(key: &str) -> String {
    match unit_values(key).as_slice() {
        [value] => value.clone(),
        values => panic!("{UNIT}: {key}= should be set once: {values:?}"),
    }
}

#[test]
fn unit_hardening_is_all_there() {
    for (key, value) in [
        ("DynamicUser", "yes"),
        ("StateDirectory", "shardbid"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictNamespaces", "yes"),
        ("RestrictRealtime", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("SystemCallArchitectures", "native"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("LimitNOFILE", "1048576"),
    ] {
        assert_eq!(unit_value(key), value, "{key}=");
    }
    // io_uring stays allowed, explicitly, whatever group a systemd version puts it in.
    assert_eq!(
        unit_values("SystemCallFilter"),
        [
            "@system-service",
            "io_uring_setup io_uring_enter io_uring_register",
            "~@privileged"
        ]
    );
}

/// A systemd time span written as seconds (`20s`).
fn seconds(span: &str) -> Duration {
    let n = span.strip_suffix('s').and_then(|n| n.parse().ok());
    Duration::from_secs(n.unwrap_or_else(|| panic!("write {span:?} as seconds, e.g. 20s")))
}

#[test]
fn unit_limits_fit_the_shipped_config() {
    let cfg =
        shardbid::config::Config::from_file(&common::root().join("config/shardbid.toml")).unwrap();
    // The server exits by itself 2 s after drain_delay + drain_timeout; systemd must not
    // SIGKILL it before that.
    let drain = cfg.server.drain_delay_ms + cfg.server.drain_timeout_ms + Duration::from_secs(2);
    assert!(seconds(&unit_value("TimeoutStopSec")) > drain);
    assert!(seconds(&unit_value("WatchdogSec")) >= Duration::from_secs(2));
    assert_eq!(unit_value("Type"), "notify");
    assert_eq!(unit_value("NotifyAccess"), "main");
    assert_eq!(unit_value("LimitMEMLOCK"), "infinity");
    assert_eq!(unit_value("KillSignal"), "SIGTERM");
    // Exit status 78 is a bad config: restarting cannot fix it.
    assert_eq!(unit_value("RestartPreventExitStatus"), "78");
    assert!(
        !std::fs::read_to_string(common::root().join(UNIT))
            .unwrap()
            .lines()
            .any(|l| l.starts_with("ExecReload=")),
        "shardbid has no reload signal: campaigns reload through POST /admin/reload"
    );
}

/// The socket systemd would listen on, bound by the test.
struct NotifySocket {
    sock: UnixDatagram,
    /// The `NOTIFY_SOCKET` value for the server.
    env: String,
    _dir: Option<TempDir>,
}

impl NotifySocket {
    fn at_path() -> NotifySocket {
        let dir = TempDir::new("notify");
        let path = dir.0.join("notify");
        let sock = UnixDatagram::bind(&path).unwrap();
        NotifySocket {
            sock,
            env: path.to_str().unwrap().to_string(),
            _dir: Some(dir),
        }
    }

    fn abstract_name() -> NotifySocket {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!("shardbid-test-notify-{}-{nanos}", std::process::id());
        let sock =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
        NotifySocket {
            sock,
            env: format!("@{name}"),
            _dir: None,
        }
    }

    /// The next datagram within `timeout`.
    fn recv(&self, timeout: Duration) -> Option<String> {
        self.sock.set_read_timeout(Some(timeout)).unwrap();
        let mut buf = [0u8; 4096];
        let n = self.sock.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// Every datagram that arrives within `window`.
    fn collect(&self, window: Duration) -> Vec<String> {
        let until = Instant::now() + window;
        let mut got = Vec::new();
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            if left.is_zero() {
                break;
            }
            if let Some(m) = self.recv(left) {
                got.push(m);
            }
        }
        got
    }

    /// Datagrams until one matches `pred` (returned last), within `timeout`.
    fn until(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Vec<String> {
        let until = Instant::now() + timeout;
        let mut got = Vec::new();
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match self.recv(left.max(Duration::from_millis(1))) {
                Some(m) => {
                    let done = pred(&m);
                    got.push(m);
                    if done {
                        return got;
                    }
                }
                None => break,
            }
        }
        panic!("no matching notification within {timeout:?}; got {got:?}");
    }
}

fn start(sock: &NotifySocket, watchdog: &[(&str, &str)]) -> Server {
    let mut env = vec![("NOTIFY_SOCKET".to_string(), sock.env.clone())];
    env.extend(watchdog.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Server::start_with(Options {
        env,
        ..Options::default()
    })
}

const PING: &str = "WATCHDOG=1";

fn pings(msgs: &[String]) -> usize {
    msgs.iter().filter(|m| *m == PING).count()
}

/// Receives READY=1 and checks it: first message, this pid, a status line.
fn expect_ready(sock: &NotifySocket, server: &Server) {
    let ready = sock
        .recv(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no READY=1\n{}", server.log.lock().unwrap()));
    let lines: Vec<&str> = ready.lines().collect();
    assert_eq!(lines.first(), Some(&"READY=1"), "{ready:?}");
    assert!(
        lines.contains(&format!("MAINPID={}", server.pid()).as_str()),
        "{ready:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("STATUS=Serving ")),
        "{ready:?}"
    );
}

/// SIGTERM: STOPPING=1 (after pings only), a clean exit, and nothing but a status after.
fn expect_clean_stop(sock: &NotifySocket, mut server: Server) {
    server.signal("TERM");
    let before = sock.until(Duration::from_secs(10), |m| m.starts_with("STOPPING=1"));
    assert!(
        before[..before.len() - 1]
            .iter()
            .all(|m| m == PING || m.starts_with("STATUS=")),
        "{before:?}"
    );
    let status = server
        .wait(Duration::from_secs(20))
        .expect("exit after SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", server.log.lock().unwrap());
    let after = sock.collect(Duration::from_millis(100));
    assert!(
        after
            .iter()
            .all(|m| m.lines().all(|l| l.starts_with("STATUS="))),
        "after STOPPING=1: {after:?}"
    );
}

#[test]
fn ready_watchdog_and_stopping_reach_the_notify_socket() {
    let sock = NotifySocket::at_path();
    // 2 s: a thread counts as stalled after a period without a tick (1 s), so a
    // loaded test machine does not make the server look unhealthy.
    let server = start(&sock, &[("WATCHDOG_USEC", "2000000")]);
    expect_ready(&sock, &server);
    // Ready means serving: the traffic port answers at once.
    assert_eq!(server.conn().get("/healthz").status, 200);
    assert_eq!(server.bid(&fixture("simple-banner.json")).status, 200);

    // A ping every second (half of 2 s): about 4 in 3.5 s; at least 2 on a slow machine.
    let msgs = sock.collect(Duration::from_millis(3500));
    assert!((2..=6).contains(&pings(&msgs)), "{msgs:?}");
    assert_eq!(pings(&msgs), msgs.len(), "{msgs:?}");
    assert!(server.log.lock().unwrap().contains("systemd watchdog on"));

    expect_clean_stop(&sock, server);
}

#[test]
fn no_watchdog_pings_for_another_pid_and_abstract_sockets_work() {
    let sock = NotifySocket::abstract_name();
    // WATCHDOG_PID names another process (the server is never pid 1): not ours to ping for.
    let server = start(&sock, &[("WATCHDOG_USEC", "400000"), ("WATCHDOG_PID", "1")]);
    expect_ready(&sock, &server);
    let msgs = sock.collect(Duration::from_secs(1));
    assert_eq!(pings(&msgs), 0, "{msgs:?}");
    assert!(!server.log.lock().unwrap().contains("systemd watchdog on"));
    expect_clean_stop(&sock, server);
}

/// Threads stopped with ptrace: PTRACE_SEIZE + PTRACE_INTERRUPT stops only the given
/// thread, not its whole process as SIGSTOP would. Resumed (detached) on drop.
struct Stalled(Vec<libc::pid_t>);

impl Stalled {
    /// Stops every thread of `pid` whose name starts with `prefix`.
    fn threads(pid: u32, prefix: &str) -> Stalled {
        let mut stalled = Stalled(Vec::new());
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
            let task = task.unwrap().path();
            let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
            if !comm.starts_with(prefix) {
                continue;
            }
            let tid: libc::pid_t = task.file_name().unwrap().to_str().unwrap().parse().unwrap();
            let none = std::ptr::null_mut::<libc::c_void>();
            // SAFETY: ptrace requests on a thread id; the address and data are null.
            if unsafe { libc::ptrace(libc::PTRACE_SEIZE, tid, none, none) } != 0 {
                panic!(
                    "ptrace(PTRACE_SEIZE, {tid}): {} (the test needs root or ptrace_scope <= 1)",
                    std::io::Error::last_os_error()
                );
            }
            stalled.0.push(tid);
            // SAFETY: as above; the thread is now our tracee.
            let interrupted = unsafe { libc::ptrace(libc::PTRACE_INTERRUPT, tid, none, none) };
            assert_eq!(interrupted, 0, "{}", std::io::Error::last_os_error());
            let mut status = 0;
            // SAFETY: waits for our tracee's stop; `status` is ours to write.
            let waited = unsafe { libc::waitpid(tid, &mut status, libc::__WALL) };
            assert_eq!(waited, tid, "{}", std::io::Error::last_os_error());
        }
        assert!(!stalled.0.is_empty(), "no thread named {prefix}*");
        stalled
    }
}

impl Drop for Stalled {
    fn drop(&mut self) {
        let none = std::ptr::null_mut::<libc::c_void>();
        for &tid in &self.0 {
            // SAFETY: detaching a stopped tracee of this thread resumes it.
            unsafe { libc::ptrace(libc::PTRACE_DETACH, tid, none, none) };
        }
    }
}

#[test]
fn a_stalled_shard_stops_the_watchdog_pings_until_it_recovers() {
    let sock = NotifySocket::at_path();
    let server = start(&sock, &[("WATCHDOG_USEC", "400000")]);
    expect_ready(&sock, &server);
    sock.until(Duration::from_secs(2), |m| m == PING);

    // glommio names a shard's threads `shard{id}-{n}`.
    let stalled = Stalled::threads(server.pid(), "sb-shard-1");
    let msgs = sock.collect(Duration::from_millis(1500));
    let unhealthy = msgs
        .iter()
        .position(|m| m.starts_with("STATUS=Unhealthy: shard 1 has not ticked"))
        .unwrap_or_else(|| panic!("no unhealthy status: {msgs:?}"));
    // Pings go on only while shard 1's last tick is within a ping interval: one, or two
    // if a check fell just before the stall.
    assert!(pings(&msgs[..unhealthy]) <= 2, "{msgs:?}");
    assert_eq!(pings(&msgs[unhealthy..]), 0, "{msgs:?}");
    assert!(server
        .log
        .lock()
        .unwrap()
        .contains("Thread stalled; withholding the systemd watchdog ping"));

    // The shard runs again: so do the pings.
    drop(stalled);
    let back = sock.until(Duration::from_secs(2), |m| m == PING);
    assert!(back.iter().all(|m| m == PING || m.starts_with("STATUS=")));

    expect_clean_stop(&sock, server);
}
