//! Process life: start the shards and the control thread, wait, drain, exit.
//!
//! Start-up is sequential and fails before serving anything: shard 0 binds first (so
//! that port 0 resolves to one real port that every other shard then binds), each shard
//! reports its bind result, then the control thread binds the admin listener.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use glommio::{LocalExecutorBuilder, Placement};
use tracing::{info, warn};

use crate::config::Config;
use crate::control::treasury::{MoneyShared, Registry, Treasury};
use crate::control::{self, Control};
use crate::events::{self, writer::EventLog};
use crate::http::{admin, traffic};
use crate::metrics::ShardMetrics;
use crate::money::day::DayClock;
use crate::net::listen::{self, Listener, Sharing};
use crate::shard::balance::Balancer;
use crate::shard::money::{ControlMsg, ShardMoney};
use crate::shard::{self as shard_mod, Global, Shard, ShardMsg, ShardSettings};
use crate::targeting::Table;

/// Memory glommio locks per shard besides `io_memory` (rings and their bookkeeping).
const RING_MEMORY: usize = 1 << 20;

/// Runs the server until SIGTERM/SIGINT has drained it. Returns an error, before any
/// port is served, when the campaigns, io_uring, locked memory or a bind fails.
pub fn run(cfg: Config, table: Table, takeover: bool) -> Result<()> {
    let shard_count = cfg.shard_count();
    if !takeover && cfg.server.listen.port() != 0 {
        if let Err(e) = listen::check_free(cfg.server.listen) {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                bail!(
                    "server.listen {}: another process already listens there (a running \
                     shardbid? To replace one without dropping a request, start this one \
                     with --takeover)",
                    cfg.server.listen
                );
            }
            bail!("server.listen {}: {e}", cfg.server.listen);
        }
    }
    raise_memlock(shard_count * (cfg.server.io_memory + RING_MEMORY));

    let settings = control::table_settings(&cfg);
    let (campaigns, version) = (table.shared_campaign_set(), table.version());
    info!(
        campaigns = table.campaign_count(),
        shards = shard_count,
        "Campaigns loaded"
    );

    let signal = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, signal.clone())
            .context("cannot install signal handlers")?;
    }

    let global = Arc::new(Global {
        shard_count,
        health: Arc::new(crate::notify::Health::new(shard_count)), // systemd watchdog
        ..Global::default()
    });
    let mut shard_settings = ShardSettings::from_config(&cfg);
    let nofile = raise_nofile();
    let (per_shard, lowered) =
        connections_per_shard(nofile, shard_count, cfg.server.max_connections);
    if lowered {
        warn!(
            configured = cfg.server.max_connections,
            open_files = nofile,
            max_connections = per_shard,
            "server.max_connections lowered to what the open-files limit leaves room for"
        );
    }
    info!(
        open_files = nofile,
        max_connections = per_shard,
        "Connections per shard"
    );
    shard_settings.max_connections = per_shard;
    let cpus = online_cpus();
    let mut senders = Vec::new();
    let mut metrics = Vec::new();
    let mut handles = Vec::new();

    // Money: every shard's channel (shards hand each other notices and impressions),
    // the channel to the bank, the event log, and what the log says was spent.
    let channels: Vec<_> = (0..shard_count)
        .map(|_| crossbeam_channel::unbounded::<ShardMsg>())
        .collect();
    let peers: Vec<_> = channels.iter().map(|(tx, _)| tx.clone()).collect();
    let mut receivers = channels.into_iter().map(|(_, rx)| rx);
    let (to_control, reports) = crossbeam_channel::unbounded::<ControlMsg>();
    let events = EventLog::start(&cfg.events, shard_count)
        .with_context(|| format!("events.dir {}", cfg.events.dir.display()))?;
    let day = DayClock::new(&cfg.money.day_starts).map_err(|e| anyhow!("money.day_starts: {e}"))?;
    let epoch_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let now_s = epoch_ms / 1000;
    let replay = if cfg.events.enabled {
        let today = day.at(now_s as i64).day;
        events::writer::replay(
            &cfg.events.dir,
            today,
            |ts| day.at(ts).day,
            now_s,
            cfg.money.notice_max_age_s,
        )
        .with_context(|| format!("cannot read the event log in {}", cfg.events.dir.display()))?
    } else {
        Default::default()
    };
    if replay.lines > 0 {
        info!(
            lines = replay.lines,
            unreadable = replay.unreadable,
            campaigns = replay.spent.len(),
            "Spend restored from the event log"
        );
    }
    let mut registry = Registry::default();
    let purses = registry.purses(&table);
    let mut treasury = Treasury::new(shard_count, peers.clone(), reports, day.clone());
    let mut leases =
        futures_lite::future::block_on(treasury.open(replay.spent, &mut registry, &purses))
            .into_iter();
    let mut listen = cfg.server.listen;
    let (balancer, inboxes) = Balancer::new(shard_count, cfg.server.balance_connections)
        .context("cannot create the connection hand-off sockets")?;
    let balancer = Arc::new(balancer);
    let mut inboxes = inboxes.into_iter();

    for id in 0..shard_count {
        let (tx, rx) = (peers[id].clone(), receivers.next().expect("one per shard"));
        let m = Arc::new(ShardMetrics::new(shard_settings.exchanges.len()));
        let money = ShardMoney::from_config(
            &cfg,
            id,
            epoch_ms,
            events.for_shard(id),
            peers.clone(),
            to_control.clone(),
        )?;
        for &(k, flags, until) in &replay.settled {
            if k.shard as usize % shard_count == id {
                money.wallet.remember(k, flags, until);
            }
        }
        let first_leases = leases.next().unwrap_or_default();
        let purses = purses.clone();
        let (bound_tx, bound_rx) = mpsc::channel::<std::io::Result<SocketAddr>>();
        let placement = match (cfg.server.pin_shards, cpus.is_empty()) {
            (true, false) => Placement::Fixed(cpus[id % cpus.len()]),
            _ => Placement::Unbound,
        };
        let (table, settings, global, m2) = (
            table.clone(),
            shard_settings.clone(),
            global.clone(),
            m.clone(),
        );
        let drain_timeout = cfg.server.drain_timeout_ms;
        let (balancer, inbox) = (
            balancer.clone(),
            inboxes.next().expect("one inbox per shard"),
        );
        let handle = LocalExecutorBuilder::new(placement)
            .name("sb-shard")
            .io_memory(cfg.server.io_memory)
            .ring_depth(cfg.server.ring_depth)
            .spawn(move || async move {
                name_thread(&format!("sb-shard-{id}"));
                let listener = match listen::bind(listen, Sharing::ReusePort) {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = bound_tx.send(Err(e));
                        return;
                    }
                };
                let _ = bound_tx.send(listener.local_addr());
                let settings = Rc::new(settings);
                money.bind(&table, &purses);
                for (p, amount) in first_leases {
                    money.wallet.granted(p, amount);
                }
                let shard = Shard::new(id, settings, global, m2, table, money, rx);
                let shard = Rc::new(shard);
                if let Some(ring) = &shard.ring {
                    glommio::spawn_local(ring.clone().drive()).detach();
                }
                glommio::spawn_local(shard_mod::housekeeping(shard.clone())).detach();
                traffic::serve(shard, listener, drain_timeout, balancer, inbox).await;
            })
            .map_err(|e| anyhow!("cannot start shard {id}: {e}"))?;
        match bound_rx.recv() {
            Ok(Ok(addr)) => listen = addr,
            Ok(Err(e)) => {
                stop_shards(&senders, handles);
                bail!("shard {id} cannot listen on {listen}: {e}");
            }
            Err(_) => {
                // The executor failed before running the shard: io_uring or memlock.
                let err = handle
                    .join()
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                stop_shards(&senders, handles);
                bail!(runtime_help(id, &err, &cfg));
            }
        }
        senders.push(tx);
        metrics.push(m);
        handles.push(handle);
    }

    drop(to_control);
    let stop = Arc::new(AtomicBool::new(false));
    let admin_addr = cfg.server.admin_listen;
    let (bound_tx, bound_rx) = mpsc::channel::<std::io::Result<SocketAddr>>();
    let control = {
        let (stop, signal, global) = (stop.clone(), signal.clone(), global.clone());
        let (senders, metrics, file) =
            (senders.clone(), metrics.clone(), cfg.campaigns.file.clone());
        let limits = shard_mod::conn_limits(&cfg);
        let drain_delay = cfg.server.drain_delay_ms;
        let trim_after = cfg.server.memory_trim_connections;
        let admin_cfg = cfg.admin.clone();
        let takeover_wait =
            cfg.server.drain_delay_ms + cfg.server.drain_timeout_ms + TAKEOVER_GRACE;
        LocalExecutorBuilder::new(Placement::Unbound)
            .name("sb-control")
            .io_memory(256 << 10)
            .spawn(move || async move {
                name_thread("sb-control");
                let shared = MoneyShared {
                    registry: RefCell::new(registry),
                    ..MoneyShared::default()
                };
                let control = Rc::new(
                    Control::new(
                        settings,
                        file,
                        senders,
                        metrics,
                        global,
                        (version, campaigns),
                        shared,
                    )
                    .trim_memory_after(trim_after),
                );
                // The bank runs before the admin listener is bound: during a takeover
                // that waits for the process being replaced, and the shards serve.
                let money = glommio::spawn_local(control::money_loop(
                    control.clone(),
                    treasury,
                    stop.clone(),
                ));
                let token = admin_cfg.token.expose().to_string();
                let listener = match bind_admin(admin_addr, takeover, &token, takeover_wait).await {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = bound_tx.send(Err(e));
                        stop.store(true, std::sync::atomic::Ordering::Relaxed);
                        money.await;
                        return;
                    }
                };
                let _ = bound_tx.send(listener.local_addr());
                let admin = Rc::new(admin::Admin::new(control.clone(), &admin_cfg));
                glommio::spawn_local(admin::serve(admin, listener, limits)).detach();
                control::watch(control.clone(), signal, stop.clone(), drain_delay).await;
                // Keep the admin API (metrics) and the bank up while shards drain.
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    glommio::timer::sleep(Duration::from_millis(10)).await;
                }
                money.await;
                control.conns.drain();
            })
            .map_err(|e| anyhow!("cannot start the control thread: {e}"))?
    };
    match bound_rx.recv() {
        Ok(Ok(addr)) => {
            // Ready means serving: every shard's accept loop runs (the listeners are
            // bound already, so connections made meanwhile wait in their queues).
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while !global.is_ready() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            info!(traffic = %listen, admin = %addr, shards = shard_count, "Listening");
            let status = format!(
                "Serving {listen} on {shard_count} shards; campaigns v{} ({} campaigns)",
                table.version(),
                table.campaign_count()
            );
            crate::notify::ready(&status, global.health.clone()); // systemd: READY=1, watchdog
        }
        Ok(Err(e)) => {
            stop_shards(&senders, handles);
            if e.kind() == std::io::ErrorKind::AddrInUse {
                bail!(
                    "server.admin_listen {admin_addr}: another process already listens there \
                     (a running shardbid? To replace one, start with --takeover)"
                );
            }
            bail!("cannot listen on server.admin_listen {admin_addr}: {e}");
        }
        Err(_) => {
            stop_shards(&senders, handles);
            bail!("the control thread failed to start");
        }
    }

    spawn_shutdown_watchdog(
        signal.clone(),
        cfg.server.drain_delay_ms + cfg.server.drain_timeout_ms + WATCHDOG_GRACE,
    );
    for (id, h) in handles.into_iter().enumerate() {
        if let Err(e) = h.join() {
            warn!(shard = id, error = %e, "Shard ended with an error");
        }
    }
    // The traffic is done: the control thread closes the admin listener (a process
    // taking over is waiting for its port) and ends.
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = control.join();
    // Every shard has handed its events over: the writer writes and fsyncs them.
    let written = events.finish();
    let mut accepted = [0u64; crate::events::EventType::ALL.len()];
    for m in &metrics {
        for (a, n) in accepted.iter_mut().zip(m.events_accepted()) {
            *a += n;
        }
    }
    if cfg.events.enabled && written != accepted {
        tracing::error!(
            ?accepted,
            ?written,
            "Event log: the events written differ from the events the shards counted"
        );
    }
    info!("Stopped");
    Ok(())
}

/// Time beyond the drain delay and timeout that shutdown may take before the watchdog
/// ends the process.
const WATCHDOG_GRACE: Duration = Duration::from_secs(2);

/// Guarantees that SIGTERM/SIGINT ends the process within `limit`: a plain OS thread,
/// independent of the runtime's timers and of every shard, waits for the signal, then
/// for `limit`, and if the process is still running (a shard or the control thread
/// never finished draining) logs it and exits with status 1.
fn spawn_shutdown_watchdog(signal: Arc<AtomicBool>, limit: Duration) {
    let spawned = std::thread::Builder::new()
        .name("sb-watchdog".into())
        .spawn(move || {
            while !signal.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
            std::thread::sleep(limit);
            tracing::error!(
                limit_ms = limit.as_millis() as u64,
                "Shutdown did not finish within drain_delay_ms + drain_timeout_ms + 2 s; exiting"
            );
            std::process::exit(1);
        });
    if let Err(e) = spawned {
        warn!(error = %e, "cannot start the shutdown watchdog");
    }
}

fn stop_shards(
    senders: &[crossbeam_channel::Sender<ShardMsg>],
    handles: Vec<glommio::ExecutorJoinHandle<()>>,
) {
    for tx in senders {
        let _ = tx.send(ShardMsg::Drain);
    }
    for h in handles {
        let _ = h.join();
    }
}

fn runtime_help(id: usize, err: &str, cfg: &Config) -> String {
    let (soft, _) = memlock();
    let needed_kib = cfg.shard_count() * (cfg.server.io_memory + RING_MEMORY) / 1024;
    if err.contains("MemLock") {
        format!(
            "shard {id} could not start: the locked-memory limit ({} KiB) is too low for io_uring \
             ({err}). {} shard(s) need about {needed_kib} KiB. Raise it: `ulimit -l unlimited` \
             in the shell, LimitMEMLOCK=infinity in a systemd unit, --ulimit memlock=-1 for \
             docker; or lower server.io_memory / server.shards.",
            soft / 1024,
            cfg.shard_count(),
        )
    } else {
        format!(
            "shard {id} could not start its io_uring executor: {err}. shardbid needs Linux 5.8+ \
             with io_uring enabled (sysctl kernel.io_uring_disabled=0); containers need a seccomp \
             profile that allows io_uring_setup, io_uring_enter and io_uring_register."
        )
    }
}

/// (soft, hard) RLIMIT_MEMLOCK in bytes.
fn memlock() -> (u64, u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } != 0 {
        return (0, 0);
    }
    (lim.rlim_cur, lim.rlim_max)
}

/// How long a takeover waits for the replaced process's admin port beyond its own
/// drain delay and timeout (the other process's may be longer).
const TAKEOVER_GRACE: Duration = Duration::from_secs(10);

/// Binds the admin listener, which only one process may hold. With `takeover`, a
/// process found there is asked to drain (`POST /admin/drain`, with the admin token if
/// one is set), and the port is taken once it has let go of it, within `wait`.
async fn bind_admin(
    addr: SocketAddr,
    takeover: bool,
    token: &str,
    wait: Duration,
) -> std::io::Result<Listener> {
    let first = listen::bind(addr, Sharing::Exclusive);
    match first {
        Err(e) if takeover && e.kind() == std::io::ErrorKind::AddrInUse => {}
        other => return other,
    }
    ask_to_drain(addr, token)?;
    info!(admin = %addr, "Takeover: the process being replaced is draining");
    let deadline = std::time::Instant::now() + wait;
    loop {
        glommio::timer::sleep(Duration::from_millis(100)).await;
        match listen::bind(addr, Sharing::Exclusive) {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                if std::time::Instant::now() >= deadline {
                    return Err(e);
                }
            }
            other => return other,
        }
    }
}

/// `POST /admin/drain` to the process on `addr` (blocking, on the control thread before
/// it serves anything).
fn ask_to_drain(addr: SocketAddr, token: &str) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let mut to = addr;
    if to.ip().is_unspecified() {
        to.set_ip(match to {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let mut conn = std::net::TcpStream::connect_timeout(&to, Duration::from_secs(2))?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let auth = match token {
        "" => String::new(),
        t => format!("authorization: Bearer {t}\r\n"),
    };
    write!(
        conn,
        "POST /admin/drain HTTP/1.1\r\nhost: {to}\r\n{auth}content-length: 0\r\nconnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer);
    let status = String::from_utf8_lossy(&answer);
    let status = status.lines().next().unwrap_or("no answer");
    if status.starts_with("HTTP/1.1 202") {
        return Ok(());
    }
    Err(std::io::Error::other(format!(
        "in use, and the process there did not agree to drain ({status})"
    )))
}

/// Descriptors kept for everything but traffic connections: the admin listener and
/// its connections, the event log, campaign files, io_uring, the inboxes.
const RESERVED_DESCRIPTORS: u64 = 1024;

/// The most traffic connections one shard serves when none is configured.
const AUTO_MAX_CONNECTIONS: usize = 32_768;

/// Traffic connections per shard given `nofile` descriptors: the configured number (0:
/// the automatic one), lowered to what the limit leaves room for (then `true`).
fn connections_per_shard(nofile: u64, shards: usize, configured: usize) -> (usize, bool) {
    let room = nofile.saturating_sub(RESERVED_DESCRIPTORS) / shards.max(1) as u64;
    let room = (room as usize).max(1);
    match configured {
        0 => (room.min(AUTO_MAX_CONNECTIONS), false),
        n if n > room => (room, true),
        n => (n, false),
    }
}

/// Raises the open-files limit to its hard limit; returns the limit now in force.
#[allow(clippy::unnecessary_cast)] // rlim_t is u64 on 64-bit Linux only
fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we own; soft raised to the hard limit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return raised.rlim_cur as u64;
        }
    }
    lim.rlim_cur as u64
}

/// Raises the soft locked-memory limit towards the hard limit when the estimate needs
/// it, and warns when even the hard limit is below it (io_uring may still work: recent
/// kernels account its rings to the memory cgroup instead).
fn raise_memlock(needed: usize) {
    let (soft, hard) = memlock();
    let needed = needed as u64;
    if soft >= needed {
        return;
    }
    let target = needed.min(hard);
    let lim = libc::rlimit {
        rlim_cur: target as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: setrlimit reads the struct we own; lowering nothing, raising soft <= hard.
    let ok = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) } == 0;
    if !ok || target < needed {
        warn!(
            limit_kib = (if ok { target } else { soft }) / 1024,
            needed_kib = needed / 1024,
            "Locked-memory limit is below the estimate; raise it (ulimit -l) if shards fail to start"
        );
    }
}

/// Names the calling thread. Threads are named `sb-<role>[-<n>]` (`sb-shard-0`,
/// `sb-control`, `sb-watchdog`): what `top -H`, `ps -L` and `perf` show. Linux keeps 15
/// bytes. glommio names an executor's thread after the executor's own id, which is not
/// the shard's, so each executor renames its thread when it starts.
fn name_thread(name: &str) {
    let mut buf = [0u8; 16];
    let n = name.len().min(15);
    buf[..n].copy_from_slice(&name.as_bytes()[..n]);
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes from `buf`,
    // which is 16 bytes long and ends with a NUL.
    unsafe { libc::prctl(libc::PR_SET_NAME, buf.as_ptr() as libc::c_ulong, 0, 0, 0) };
}

fn online_cpus() -> Vec<usize> {
    match glommio::CpuSet::online() {
        Ok(set) => {
            let mut cpus: Vec<usize> = set.into_iter().map(|l| l.cpu).collect();
            cpus.sort_unstable();
            cpus.dedup();
            cpus
        }
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_fit_the_open_files_limit() {
        // Automatic: what the limit leaves after the reserve, at most 32,768.
        assert_eq!(connections_per_shard(20_000, 2, 0), (9_488, false));
        assert_eq!(connections_per_shard(1 << 20, 4, 0), (32_768, false));
        // Configured within the room: as configured; above it: lowered, and said.
        assert_eq!(connections_per_shard(20_000, 2, 5_000), (5_000, false));
        assert_eq!(connections_per_shard(20_000, 2, 50_000), (9_488, true));
        // A limit below the reserve still leaves each shard one connection.
        assert_eq!(connections_per_shard(512, 2, 0), (1, false));
    }
}
