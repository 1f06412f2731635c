//! A shard's traffic listener: accept until the drain, serve each connection with the
//! traffic routes, then wait for open connections to finish.

use std::convert::Infallible;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use std::os::fd::OwnedFd;
use tracing::{debug, info, warn};

use super::router;
use crate::net::{self, conns::ConnStats, Listener};
use crate::shard::balance::{self, Balancer, Inbox};
use crate::shard::Shard;

/// A failing accept is logged at most this often (the failures are counted).
const ACCEPT_WARN_EVERY: Duration = Duration::from_secs(10);

/// At the drain, how long a listener that refuses new handshakes stays open for those
/// under way (a round trip, with a wide margin) before it closes.
const LISTENER_SETTLE: Duration = Duration::from_millis(50);

/// Accepts connections until the shard drains, then waits (up to `drain_timeout`) for
/// open connections to finish. Every shard binds the same address: glommio sets
/// SO_REUSEPORT and the kernel spreads connections by their 4-tuple.
///
/// A connection that would leave this shard with too many more connections than
/// another goes to that shard instead (see [`balance`]); connections handed to this
/// shard arrive through `inbox`.
pub async fn serve(
    shard: Rc<Shard>,
    listener: Listener,
    drain_timeout: Duration,
    balancer: Arc<Balancer>,
    inbox: Inbox,
) {
    let addr = listener.local_addr().ok();
    shard.global.shards_serving.fetch_add(1, Ordering::Relaxed);
    info!(shard = shard.id, addr = ?addr, "Serving");
    let (inbox_shard, inbox_balancer) = (shard.clone(), balancer.clone());
    glommio::spawn_local(async move {
        let shard = &inbox_shard;
        let serve = |fd| {
            glommio::spawn_local(connection(shard.clone(), fd, inbox_balancer.clone())).detach();
        };
        balance::receive(inbox, shard.id, &shard.conns, serve).await;
    })
    .detach();

    let stats = shard.conns.stats().clone();
    let accepted = |fd: OwnedFd| {
        let to = balancer.place(shard.id);
        if balancer.load(to) > shard.settings.max_connections {
            // Full: closed unread, while the open connections go on being served.
            balancer.closed(to);
            ConnStats::count(&stats.refused);
            drop(fd);
            return;
        }
        let fd = if to == shard.id {
            fd
        } else {
            match balancer.hand_off(to, fd) {
                Ok(()) => {
                    shard.metrics.connections_handed_off.inc();
                    return;
                }
                Err(fd) => {
                    balancer.keep(shard.id, to);
                    fd
                }
            }
        };
        glommio::spawn_local(connection(shard.clone(), fd, balancer.clone())).detach();
    };
    let mut warned: Option<Instant> = None;
    let failed = |e: std::io::Error| {
        // Out of file descriptors or memory: the loop backs off instead of spinning,
        // and says so at most every ACCEPT_WARN_EVERY, not once per failure.
        let cell = match e.raw_os_error() {
            Some(libc::EMFILE | libc::ENFILE) => &stats.accept_no_descriptors,
            _ => &stats.accept_other,
        };
        ConnStats::count(cell);
        if warned.is_none_or(|at| at.elapsed() >= ACCEPT_WARN_EVERY) {
            warned = Some(Instant::now());
            let failed = stats.accept_no_descriptors.get() + stats.accept_other.get();
            warn!(shard = shard.id, error = %e, failed, "Accept failing; backing off");
        }
        true
    };
    net::accept_fds(&listener, &shard.conns, accepted, failed).await;
    // No new handshakes; those under way complete within a round trip. Every
    // connection the kernel completed before the listener closes is served (its answer
    // closes it), not reset with its request unread.
    let settle = match listener.refuse_new() {
        Ok(()) => LISTENER_SETTLE,
        Err(e) => {
            warn!(shard = shard.id, error = %e, "Cannot stop new connections before closing the listener");
            Duration::ZERO
        }
    };
    let until = Instant::now() + settle;
    loop {
        for fd in listener.accept_pending() {
            balancer.hold(shard.id);
            glommio::spawn_local(connection(shard.clone(), fd, balancer.clone())).detach();
        }
        if Instant::now() >= until {
            break;
        }
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    drop(listener);
    shard.global.shards_serving.fetch_sub(1, Ordering::Relaxed);

    // The balancer counts every connection this shard has taken on, including those
    // just spawned and not yet registered in `conns`.
    let deadline = Instant::now() + drain_timeout;
    while (shard.conns.open() > 0 || balancer.load(shard.id) > 0) && Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    crate::shard::finish(&shard);
    info!(shard = shard.id, left_open = shard.conns.open(), "Drained");
}

/// Serves one connection counted on this shard's load in `balancer`.
async fn connection(shard: Rc<Shard>, fd: OwnedFd, balancer: Arc<Balancer>) {
    shard.metrics.connections_total.inc();
    shard.metrics.connections_open.inc();
    let svc_shard = shard.clone();
    let service = service_fn(move |req| {
        let shard = svc_shard.clone();
        async move { Ok::<_, Infallible>(router::route(&shard, req).await) }
    });
    let limits = shard.settings.conn;
    let transport = match &shard.ring {
        Some(ring) => net::Transport::Ring(ring.register(fd)),
        None => net::Transport::Stream(net::listen::stream_of(fd)),
    };
    if let Err(e) = net::serve_connection(&shard.conns, limits, transport, service).await {
        // Client resets and timeouts are routine for a bidder; keep them at debug.
        debug!(shard = shard.id, error = ?e, "Connection ended");
    }
    shard.metrics.connections_open.dec();
    balancer.closed(shard.id);
}
