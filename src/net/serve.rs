//! Serving connections: hyper's HTTP/1.1 settings, one connection served with
//! keep-alive until the client leaves, a timeout fires or the drain asks it to finish,
//! and the accept loop that runs until the drain. The shards' traffic listeners and the
//! control thread's admin listener both serve through this.

#![forbid(unsafe_code)]

use std::io;
use std::os::fd::OwnedFd;
use std::pin::pin;
use std::time::Duration;

use futures_lite::future;
use glommio::net::TcpStream;
use hyper::server::conn::http1;

use super::conns::Conns;
use super::io::{ConnState, Io, Transport};
use super::listen::Listener;

/// How long the accept loop pauses after a failed accept, so that a lasting failure
/// does not spin; out of descriptors, longer (closing connections must free some).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_NO_DESCRIPTORS: Duration = Duration::from_millis(50);

/// Accepts from `next` until `conns` drains or `next` ends (`None`), handing each
/// accepted item to `serve`. A failed accept goes to `failed`, which says whether to
/// go on; the loop then pauses briefly. The one accept loop of every listener: the
/// shards' traffic listeners, the connections they hand each other, the admin listener.
pub async fn accept_until_drained<T>(
    conns: &Conns,
    mut next: impl AsyncFnMut() -> Option<io::Result<T>>,
    mut serve: impl FnMut(T),
    mut failed: impl FnMut(io::Error) -> bool,
) {
    loop {
        let accepted = future::or(async { Some(next().await) }, async {
            conns.accept_drained().await;
            None
        })
        .await;
        match accepted {
            Some(Some(Ok(item))) => serve(item),
            Some(Some(Err(e))) => {
                let pause = match e.raw_os_error() {
                    Some(libc::EMFILE | libc::ENFILE) => ACCEPT_BACKOFF_NO_DESCRIPTORS,
                    _ => ACCEPT_BACKOFF,
                };
                if !failed(e) {
                    return;
                }
                glommio::timer::sleep(pause).await;
            }
            Some(None) | None => return,
        }
    }
}

/// Accepts TCP connections from `listener` (see [`accept_until_drained`]).
pub async fn accept_tcp(
    listener: &Listener,
    conns: &Conns,
    mut serve: impl FnMut(TcpStream),
    failed: impl FnMut(io::Error) -> bool,
) {
    accept_fds(
        listener,
        conns,
        |fd| serve(super::listen::stream_of(fd)),
        failed,
    )
    .await
}

/// Accepts connections from `listener` as bare descriptors (see
/// [`accept_until_drained`]), for a server that chooses their transport itself.
pub async fn accept_fds(
    listener: &Listener,
    conns: &Conns,
    serve: impl FnMut(OwnedFd),
    failed: impl FnMut(io::Error) -> bool,
) {
    let next = async || Some(listener.accept_fd().await);
    accept_until_drained(conns, next, serve, failed).await
}

/// Once the drain comes, how long a connection still owes its first request (it may
/// be on its way); then it is answered 408 and closed.
const FIRST_REQUEST_IN_DRAIN: Duration = Duration::from_secs(1);

/// Timeouts, size limits and socket options of a served connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub keep_alive: Duration,
    pub header_read: Duration,
    pub nodelay: bool,
    /// Largest request head, in bytes (431 above it).
    pub max_head_bytes: usize,
    /// Most headers in a request (431 above it).
    pub max_headers: usize,
}

impl Default for ConnLimits {
    fn default() -> ConnLimits {
        ConnLimits {
            keep_alive: Duration::from_secs(150),
            header_read: Duration::from_secs(10),
            nodelay: true,
            max_head_bytes: 16 * 1024,
            max_headers: HYPER_DEFAULT_MAX_HEADERS,
        }
    }
}

/// hyper keeps up to this many headers on the stack; more costs a heap allocation per
/// request.
const HYPER_DEFAULT_MAX_HEADERS: usize = 100;

/// hyper's HTTP/1.1 settings for every connection (traffic and admin; `benches/http.rs`
/// measures the request path with them).
pub fn http1_builder(limits: &ConnLimits) -> http1::Builder {
    let mut b = http1::Builder::new();
    // A head over the limit is answered 431 and the connection closes. The read buffer
    // holds at most twice that: a head, or body bytes on their way to the handler, so
    // a connection's buffer memory stays bounded whatever the client sends.
    let head = limits.max_head_bytes.max(8192);
    b.max_header_size(head).max_buf_size(2 * head);
    if limits.max_headers != HYPER_DEFAULT_MAX_HEADERS {
        b.max_headers(limits.max_headers);
    }
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
    transport: Transport,
    service: S,
) -> hyper::Result<()>
where
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if limits.nodelay {
        let _ = match &transport {
            Transport::Stream(stream) => stream.set_nodelay(true).map_err(io::Error::from),
            Transport::Ring(conn) => socket2::SockRef::from(conn).set_nodelay(true),
        };
    }
    let state = ConnState::new(limits.keep_alive, limits.header_read);
    let handle = conns.register(state.clone());
    let io = Io::new(
        transport,
        state.clone(),
        conns.outbox(),
        conns.stats().clone(),
    );
    let mut conn = pin!(http1_builder(&limits).serve_connection(io, service));

    let finished = future::or(async { Some(conn.as_mut().await) }, async {
        handle.drained().await;
        None
    })
    .await;
    match finished {
        Some(r) => r,
        // A connection that has not had its first answer yet was opened to send a
        // request, which may be on its way: it is served (the answer closes it, see
        // `Conns::start_closing`), or ends with the request timeout.
        None if !state.served() => {
            state.cut_off(super::clock::coarse_now() + FIRST_REQUEST_IN_DRAIN);
            conn.await
        }
        None => {
            // An idle connection closes now, a busy one after its response.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    }
}
