//! glommio <-> hyper glue: the I/O adapter, which also keeps the connection's
//! timeouts. Each `unsafe` says why it holds.
//!
//! - [`Io`] implements `hyper::rt::Read`/`Write` over a [`Transport`]: the shard's
//!   network ring ([`RingConn`]: bytes arrive by completion into the ring's buffers
//!   and are copied into hyper's buffer; responses are queued on the ring), or a glommio
//!   `TcpStream` (reads straight into hyper's uninitialised buffer, no per-read
//!   zero-fill; writes go to the shard's [`Outbox`], which sends them after the current
//!   pass).
//! - [`ConnState`] is the connection's clock of what it is waiting for, kept by `Io`
//!   from what it reads and writes: a new connection's first request, and any request
//!   from its first byte, must arrive in full (head and body) within `header_read`
//!   (slowloris protection); after a response, the connection may idle for
//!   `keep_alive`. No runtime timer is armed per request and hyper gets no timer: the
//!   shard's sweeper (see `shard::conns`) wakes a read whose deadline passed a few
//!   times a second, and that read fails with `TimedOut`, which ends the connection. A
//!   request that began and did not arrive in time is answered `408` first (nothing
//!   else can have been written for it); a connection that sent nothing, new or idle
//!   after a response, just closes. The clock is the
//!   thread's [`coarse_now`], so the per-request bookkeeping reads no clock.

use std::cell::{Cell, RefCell};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use hyper::rt::ReadBufCursor;

use super::clock::coarse_now;
use super::conns::ConnStats;
use super::outbox::{Outbox, SendState};
use super::ring::RingConn;

/// How a connection's bytes move.
pub enum Transport {
    /// A glommio stream: readiness through glommio's ring, then `recv`/`send` calls.
    Stream(TcpStream),
    /// The shard's network ring: completions (see [`super::ring`]).
    Ring(RingConn),
}

enum Wire {
    Stream {
        stream: TcpStream,
        outbox: Rc<Outbox>,
        send: Rc<SendState>,
        fd: RawFd,
    },
    Ring(RingConn),
}

/// What a connection is waiting for, and since when (see the module docs).
#[derive(Debug)]
pub struct ConnState {
    /// Start of the current wait: the accept or the last response write while idle, the
    /// first byte of the request while reading one.
    since: Cell<Instant>,
    /// A request has started arriving and its response has not been written yet.
    in_request: Cell<bool>,
    /// A response has been written: idling is allowed (before it, the first request
    /// is awaited with the request timeout).
    served: Cell<bool>,
    /// The connection task's waker, left by a read that is waiting for bytes.
    read_waker: RefCell<Option<Waker>>,
    keep_alive: Duration,
    header_read: Duration,
    /// A deadline set from outside that the current wait may not pass (the drain).
    cutoff: Cell<Option<Instant>>,
}

impl ConnState {
    pub fn new(keep_alive: Duration, header_read: Duration) -> Rc<ConnState> {
        Rc::new(ConnState {
            since: Cell::new(coarse_now()),
            in_request: Cell::new(false),
            served: Cell::new(false),
            read_waker: RefCell::new(None),
            keep_alive,
            header_read,
            cutoff: Cell::new(None),
        })
    }

    /// When the current wait times out.
    pub fn deadline(&self) -> Instant {
        let limit = if self.awaits_request() {
            self.header_read
        } else {
            self.keep_alive
        };
        let deadline = self.since.get() + limit;
        match self.cutoff.get() {
            Some(cut) => deadline.min(cut),
            None => deadline,
        }
    }

    /// The current wait ends by `at` at the latest (a request owed when the drain
    /// comes gets a short time to arrive, not the whole request timeout).
    pub fn cut_off(&self, at: Instant) {
        self.cutoff.set(Some(at));
    }

    /// Waiting for a request that is owed: the first one, or one that has started.
    fn awaits_request(&self) -> bool {
        self.in_request.get() || !self.served.get()
    }

    /// A response has been written on this connection.
    pub fn served(&self) -> bool {
        self.served.get()
    }

    /// How long the connection has idled since its last response (zero while a
    /// request is arriving or being answered, and before the first response).
    pub fn idle_since(&self, now: Instant) -> Duration {
        if self.awaits_request() {
            return Duration::ZERO;
        }
        now.saturating_duration_since(self.since.get())
    }

    /// Wakes the connection's waiting read if its deadline has passed (the sweeper).
    pub fn wake_if_expired(&self, now: Instant) {
        if self.deadline() <= now {
            if let Some(w) = self.read_waker.borrow_mut().take() {
                w.wake();
            }
        }
    }

    fn expired(&self) -> bool {
        self.deadline() <= coarse_now()
    }

    fn park(&self, waker: &Waker) {
        let mut slot = self.read_waker.borrow_mut();
        match slot.as_ref() {
            Some(w) if w.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }

    fn on_read(&self) {
        if !self.in_request.replace(true) {
            self.since.set(coarse_now());
        }
    }

    fn on_write(&self) {
        self.served.set(true);
        if self.in_request.replace(false) {
            self.since.set(coarse_now());
        }
    }
}

/// A connection's [`Transport`] as hyper I/O, keeping the connection's [`ConnState`].
pub struct Io {
    wire: Wire,
    state: Rc<ConnState>,
    stats: Rc<ConnStats>,
    /// The 408 went out: the request's handler may still answer (its body read failed),
    /// but nothing more is written on this connection.
    timed_out: bool,
}

/// What a request that did not arrive in time is answered before the connection closes.
const REQUEST_TIMEOUT: &[u8] =
    b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";

impl Io {
    pub fn new(
        transport: Transport,
        state: Rc<ConnState>,
        outbox: Rc<Outbox>,
        stats: Rc<ConnStats>,
    ) -> Io {
        let wire = match transport {
            Transport::Stream(stream) => Wire::Stream {
                fd: stream.as_raw_fd(),
                stream,
                outbox,
                send: Rc::default(),
            },
            Transport::Ring(conn) => Wire::Ring(conn),
        };
        Io {
            wire,
            state,
            stats,
            timed_out: false,
        }
    }

    /// The read's deadline passed: a request that has begun is answered 408 (nothing
    /// else is on its way to the client then); a new connection that sent nothing, and
    /// an idle keep-alive one, just close, as nginx does. An unasked 408 on a silent
    /// connection would race the client's first request on it: a pooling client that
    /// picks the connection just then takes the 408 for that request's answer. Either
    /// way the read fails and the connection ends.
    fn timed_out(&mut self) -> io::Error {
        if self.state.awaits_request() {
            if self.state.in_request.get() {
                match &self.wire {
                    Wire::Stream {
                        outbox, send, fd, ..
                    } if !send.queued() && !send.has_stalled() => {
                        outbox.push(send, *fd, REQUEST_TIMEOUT);
                        outbox.flush();
                        self.timed_out = true;
                    }
                    Wire::Ring(conn) if conn.unsent() == 0 => {
                        conn.queue(REQUEST_TIMEOUT);
                        self.timed_out = true;
                    }
                    _ => {}
                }
            }
            self.stats
                .request_timeouts
                .set(self.stats.request_timeouts.get() + 1);
        } else {
            self.stats
                .idle_timeouts
                .set(self.stats.idle_timeouts.get() + 1);
        }
        io::ErrorKind::TimedOut.into()
    }

    /// Sends the connection's stalled bytes (see [`outbox`](super::outbox)) until none
    /// are left, or the socket is full (`Pending`, woken when it is writable). A client
    /// that reads nothing for the connection's current timeout (idle keep-alive, or the
    /// request timeout if it has started another request) is cut off: the sweeper wakes
    /// the task and this fails with `TimedOut`.
    fn poll_stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let (stream, send) = match &mut self.wire {
            Wire::Stream { stream, send, .. } => (stream, send),
            Wire::Ring(conn) => {
                // The ring sends by itself; the connection only waits while a lot is
                // unsent, and gives up on a client that takes none of it in time.
                if conn.unsent() > 0 && self.state.expired() {
                    ConnStats::count(&self.stats.send_timeouts);
                    return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
                }
                let room = conn.poll_room(cx);
                if room.is_pending() {
                    self.state.park(cx.waker());
                }
                return room;
            }
        };
        if let Some(e) = send.error() {
            return Poll::Ready(Err(e));
        }
        let mut stalled = send.stalled().borrow_mut();
        while !stalled.is_empty() {
            if self.state.expired() {
                send.fail(io::ErrorKind::TimedOut);
                self.stats
                    .send_timeouts
                    .set(self.stats.send_timeouts.get() + 1);
                return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
            }
            match Pin::new(&mut *stream).poll_write(cx, &stalled) {
                Poll::Ready(Ok(n)) => drop(stalled.drain(..n)),
                Poll::Ready(Err(e)) => {
                    send.fail(e.kind());
                    return Poll::Ready(Err(e));
                }
                Poll::Pending => {
                    self.state.park(cx.waker());
                    return Poll::Pending;
                }
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for Io {
    fn drop(&mut self) {
        // The descriptor closes with the stream: nothing may stay queued for it. (A
        // ring connection's queued bytes leave by themselves, see `super::ring`.)
        if let Wire::Stream { outbox, send, .. } = &self.wire {
            if send.queued() {
                outbox.flush();
            }
        }
    }
}

impl hyper::rt::Read for Io {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        if self.state.expired() {
            let e = self.timed_out();
            return Poll::Ready(Err(e));
        }
        // A response whose bytes stalled goes on leaving while the next request is
        // read; only a failure to send ends the read.
        if let Poll::Ready(Err(e)) = self.poll_stalled(cx) {
            return Poll::Ready(Err(e));
        }
        let this = &mut *self;
        // SAFETY: `as_mut` exposes the uninitialised tail of hyper's read buffer; the
        // transport only writes into it (it never reads it), and `advance(n)` below
        // marks exactly the `n` bytes the read reported as initialised.
        let uninit: &mut [MaybeUninit<u8>] = unsafe { buf.as_mut() };
        let read = match &mut this.wire {
            Wire::Ring(conn) => conn.poll_read(cx, uninit),
            Wire::Stream { stream, .. } => {
                // SAFETY: as above; the stream writes the bytes it reports.
                let bytes = unsafe { &mut *(uninit as *mut [MaybeUninit<u8>] as *mut [u8]) };
                Pin::new(stream).poll_read(cx, bytes)
            }
        };
        let n = match read {
            Poll::Ready(Ok(n)) => n,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => {
                this.state.park(cx.waker());
                if let Wire::Stream { send, .. } = &this.wire {
                    send.park(cx.waker());
                }
                return Poll::Pending;
            }
        };
        if n > 0 {
            self.state.on_read();
        }
        // SAFETY: the read initialised these `n` bytes (see above).
        unsafe { buf.advance(n) };
        Poll::Ready(Ok(()))
    }
}

impl hyper::rt::Write for Io {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // After a 408, the request's own answer (to a body cut off by the timeout)
        // must not follow it: the client was told the connection closes.
        if self.timed_out {
            return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
        }
        // Nothing is taken while older bytes of this connection wait for the socket.
        std::task::ready!(self.poll_stalled(cx))?;
        let this = &mut *self;
        match &this.wire {
            Wire::Stream {
                outbox, send, fd, ..
            } => outbox.push(send, *fd, buf),
            Wire::Ring(conn) => conn.queue(buf),
        }
        this.state.on_write();
        Poll::Ready(Ok(buf.len()))
    }

    /// Ready once the connection's bytes are with the outbox or the socket: queued sends
    /// go out at the end of the shard's current pass, before it waits for I/O.
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_stalled(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Wire::Stream { outbox, send, .. } = &self.wire {
            if send.queued() {
                outbox.flush();
            }
        }
        std::task::ready!(self.poll_stalled(cx))?;
        match &mut self.wire {
            Wire::Stream { stream, .. } => Pin::new(stream).poll_close(cx),
            // The ring closes the descriptor when the connection is dropped, once its
            // queued bytes have left.
            Wire::Ring(_) => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_request_and_every_started_one_get_the_request_timeout() {
        let state = ConnState::new(Duration::from_secs(150), Duration::from_secs(10));
        assert!(!state.in_request.get());
        let accepted = state.since.get();
        // A new connection owes its first request within the request timeout, not the
        // keep-alive time: a connection that never sends a byte is closed early.
        assert_eq!(state.deadline(), accepted + Duration::from_secs(10));
        assert!(state.awaits_request());
        state.on_read();
        let first = state.since.get();
        assert!(state.in_request.get());
        assert_eq!(state.deadline(), first + Duration::from_secs(10));
        // More bytes of the same request do not move its deadline.
        std::thread::sleep(Duration::from_millis(2));
        state.on_read();
        assert_eq!(state.since.get(), first);
        // The response starts the next idle wait, which keep-alive bounds.
        state.on_write();
        assert!(!state.in_request.get() && !state.awaits_request());
        assert!(state.since.get() >= first);
        assert_eq!(
            state.deadline(),
            state.since.get() + Duration::from_secs(150)
        );
    }

    #[test]
    fn expiry_wakes_the_parked_read_once() {
        struct Count(std::sync::atomic::AtomicUsize);
        impl std::task::Wake for Count {
            fn wake(self: std::sync::Arc<Self>) {
                self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let count = std::sync::Arc::new(Count(Default::default()));
        let waker = Waker::from(count.clone());
        let state = ConnState::new(Duration::ZERO, Duration::ZERO);
        state.park(&waker);
        let later = state.deadline() + Duration::from_millis(1);
        state.wake_if_expired(later);
        state.wake_if_expired(later);
        assert_eq!(count.0.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert!(state.expired());
    }
}
