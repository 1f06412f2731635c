//! The shard's listener and its connections: accept, serve HTTP/1.1 with keep-alive,
//! and on drain stop accepting and let every connection finish its request.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::future;
use glommio::net::{TcpListener, TcpStream};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use tracing::{debug, info, warn};

use super::balance::{self, Balancer, Inbox};
use super::conns::Conns;
use super::Shard;
use crate::http::compat::{ConnState, Io};
use crate::http::router;

/// Accepts connections until the shard drains, then waits (up to `drain_timeout`) for
/// open connections to finish. Every shard binds the same address: glommio sets
/// SO_REUSEPORT and the kernel spreads connections by their 4-tuple.
///
/// A connection that would leave this shard with too many more connections than
/// another goes to that shard instead (see [`balance`](super::balance)); connections
/// handed to this shard arrive through `inbox`.
pub async fn serve(
    shard: Rc<Shard>,
    listener: TcpListener,
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
        let serve = |stream| {
            glommio::spawn_local(connection(shard.clone(), stream, inbox_balancer.clone()))
                .detach();
        };
        balance::receive(inbox, shard.id, serve, shard.conns.accept_drained()).await;
    })
    .detach();
    loop {
        let accepted = future::or(async { Some(listener.accept().await) }, async {
            shard.conns.accept_drained().await;
            None
        })
        .await;
        match accepted {
            Some(Ok(stream)) => {
                let to = balancer.place(shard.id);
                let stream = match to == shard.id {
                    true => stream,
                    false => match balancer.hand_off(to, stream) {
                        Ok(()) => {
                            shard.metrics.connections_handed_off.inc();
                            continue;
                        }
                        Err(stream) => {
                            balancer.keep(shard.id, to);
                            stream
                        }
                    },
                };
                glommio::spawn_local(connection(shard.clone(), stream, balancer.clone())).detach();
            }
            Some(Err(e)) => {
                // Out of file descriptors or memory: back off instead of spinning.
                warn!(shard = shard.id, error = %e, "Accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
            None => break,
        }
    }
    drop(listener);
    shard.global.shards_serving.fetch_sub(1, Ordering::Relaxed);

    let deadline = Instant::now() + drain_timeout;
    while shard.conns.open() > 0 && Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    info!(shard = shard.id, left_open = shard.conns.open(), "Drained");
}

/// Binds the traffic listener for one shard.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).map_err(std::io::Error::from)
}

/// Serves one connection counted on this shard's load in `balancer`.
async fn connection(shard: Rc<Shard>, stream: TcpStream, balancer: Arc<Balancer>) {
    shard.metrics.connections_total.inc();
    shard.metrics.connections_open.inc();
    let svc_shard = shard.clone();
    let service = service_fn(move |req| {
        let shard = svc_shard.clone();
        async move { Ok::<_, Infallible>(router::route(&shard, req).await) }
    });
    let s = &shard.settings;
    let limits = ConnLimits {
        keep_alive: s.keep_alive_timeout,
        header_read: s.header_read_timeout,
        nodelay: s.tcp_nodelay,
    };
    if let Err(e) = serve_connection(&shard.conns, limits, stream, service).await {
        // Client resets and timeouts are routine for a bidder; keep them at debug.
        debug!(shard = shard.id, error = %e, "Connection ended");
    }
    let open = shard.metrics.connections_open.get();
    shard.metrics.connections_open.set(open.saturating_sub(1));
    balancer.closed(shard.id);
}

/// Timeouts and socket options of a served connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub keep_alive: Duration,
    pub header_read: Duration,
    pub nodelay: bool,
}

/// hyper's HTTP/1.1 settings for every connection (traffic and admin; `benches/http.rs`
/// measures the request path with them).
pub fn http1_builder() -> http1::Builder {
    let mut b = http1::Builder::new();
    b.keep_alive(true)
        // Do not read ahead while a request is in the handler just to notice a client
        // that hung up: a bid takes microseconds, so there is nothing to cancel, and that
        // early read would land while the request's headers still borrow hyper's read
        // buffer, making it allocate a fresh buffer for every request.
        .half_close(true)
        // Timeouts are kept by `Io` (see `http::compat`), without a timer per request.
        .header_read_timeout(None)
        // One flattened write per response: the head and the small body together.
        .writev(false);
    b
}

/// Serves HTTP/1.1 with keep-alive on one connection until the client leaves, a
/// timeout fires, or `conns` drains (then after the in-flight response).
pub async fn serve_connection<S>(
    conns: &Conns,
    limits: ConnLimits,
    stream: TcpStream,
    service: S,
) -> hyper::Result<()>
where
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if limits.nodelay {
        let _ = stream.set_nodelay(true);
    }
    let state = ConnState::new(limits.keep_alive, limits.header_read);
    let handle = conns.register(state.clone());
    let mut conn =
        pin!(http1_builder().serve_connection(Io::new(stream, state, conns.outbox()), service));

    let finished = future::or(async { Some(conn.as_mut().await) }, async {
        handle.drained().await;
        None
    })
    .await;
    match finished {
        Some(r) => r,
        None => {
            // Drain: an idle connection closes now, a busy one after its response.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    }
}
