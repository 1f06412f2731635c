//! glommio <-> hyper glue: the I/O adapter and the connection timer. The only
//! `unsafe` in the crate lives here, and each use says why it holds.
//!
//! - [`Io`] implements `hyper::rt::Read`/`Write` over a glommio `TcpStream`. Reads go
//!   straight into hyper's (uninitialised) buffer: no per-read zero-fill.
//! - [`ConnTimer`] is the `hyper::rt::Timer` of one connection. hyper's HTTP/1 server
//!   uses its timer only for the header-read timeout, which it restarts as soon as it
//!   waits for the next request head, idle time included. The timer gives that wait two
//!   deadlines: `keep_alive` while no byte of the next request has arrived, then
//!   `header_read` from the first byte. It arms no runtime timer per request: the shard's
//!   sweeper (see `shard::conns`) wakes expired waits a few times a second. Its clock
//!   is the shard's [`coarse_now`], so the per-request bookkeeping reads no clock.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use hyper::rt::{ReadBufCursor, Sleep, Timer};

thread_local! {
    /// The shard's coarse clock, advanced by its housekeeping tick ([`set_coarse_now`]).
    static COARSE_NOW: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The current instant to within the shard's housekeeping tick (10 ms), without a clock
/// read; exact on a thread whose clock nobody advances. Timeouts of seconds need no more.
pub fn coarse_now() -> Instant {
    COARSE_NOW.with(Cell::get).unwrap_or_else(Instant::now)
}

/// Advances this thread's [`coarse_now`].
pub fn set_coarse_now(now: Instant) {
    COARSE_NOW.with(|c| c.set(Some(now)));
}

/// What the I/O adapter and the timer of one connection share, and what the shard's
/// sweeper and drain logic look at.
#[derive(Debug)]
pub struct ConnState {
    /// When the current wait for a request head started (`None`: not waiting).
    wait_started: Cell<Option<Instant>>,
    /// When the first byte arrived during the current wait.
    first_byte: Cell<Option<Instant>>,
    /// The waker of the pending header-read sleep, if any.
    waker: RefCell<Option<Waker>>,
    keep_alive: Duration,
    header_read: Duration,
}

impl ConnState {
    pub fn new(keep_alive: Duration, header_read: Duration) -> Rc<ConnState> {
        Rc::new(ConnState {
            wait_started: Cell::new(None),
            first_byte: Cell::new(None),
            waker: RefCell::new(None),
            keep_alive,
            header_read,
        })
    }

    /// The instant the current head wait times out, if one is running.
    pub fn deadline(&self) -> Option<Instant> {
        let started = self.wait_started.get()?;
        Some(match self.first_byte.get() {
            None => started + self.keep_alive,
            Some(first) => first + self.header_read,
        })
    }

    /// True while the connection is between requests with nothing received.
    pub fn is_idle(&self) -> bool {
        self.wait_started.get().is_some() && self.first_byte.get().is_none()
    }

    /// Wakes the pending wait if its deadline has passed (called by the sweeper).
    pub fn wake_if_expired(&self, now: Instant) {
        if self.deadline().is_some_and(|d| d <= now) {
            if let Some(w) = self.waker.borrow_mut().take() {
                w.wake();
            }
        }
    }

    fn on_bytes(&self) {
        if self.wait_started.get().is_some() && self.first_byte.get().is_none() {
            self.first_byte.set(Some(coarse_now()));
        }
    }
}

/// `hyper::rt::Read` + `Write` over a glommio stream.
pub struct Io {
    stream: TcpStream,
    state: Rc<ConnState>,
}

impl Io {
    pub fn new(stream: TcpStream, state: Rc<ConnState>) -> Io {
        Io { stream, state }
    }
}

impl hyper::rt::Read for Io {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        // SAFETY: the unfilled part of hyper's buffer is handed to glommio, whose
        // unbuffered `poll_read` passes it to recv(2) and never reads from it; the
        // kernel writes the first `n` bytes, and exactly those are marked filled.
        let n = unsafe {
            let uninit: &mut [MaybeUninit<u8>] = buf.as_mut();
            let bytes = &mut *(uninit as *mut [MaybeUninit<u8>] as *mut [u8]);
            match Pin::new(&mut self.stream).poll_read(cx, bytes) {
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        };
        if n > 0 {
            self.state.on_bytes();
        }
        // SAFETY: `n` bytes were just written by the kernel (see above).
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
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_close(cx)
    }
}

/// The `hyper::rt::Timer` of one connection (see the module docs).
#[derive(Clone)]
pub struct ConnTimer(SameThread<Rc<ConnState>>);

impl ConnTimer {
    pub fn new(state: Rc<ConnState>) -> ConnTimer {
        ConnTimer(SameThread(state))
    }
}

impl Timer for ConnTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        self.sleep_until(coarse_now() + duration)
    }

    fn sleep_until(&self, _deadline: Instant) -> Pin<Box<dyn Sleep>> {
        // hyper asks for `now + header_read_timeout`; the connection's own two-phase
        // deadline replaces it (the configured header timeout is the same value).
        let state = &self.0 .0;
        state.wait_started.set(Some(coarse_now()));
        state.first_byte.set(None);
        Box::pin(HeadWait(SameThread(state.clone())))
    }

    fn now(&self) -> Instant {
        coarse_now()
    }
}

/// The pending header-read wait of one connection.
struct HeadWait(SameThread<Rc<ConnState>>);

impl Future for HeadWait {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let state = &self.0 .0;
        match state.deadline() {
            Some(d) if d <= coarse_now() => Poll::Ready(()),
            _ => {
                let mut slot = state.waker.borrow_mut();
                match slot.as_ref() {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *slot = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for HeadWait {
    fn drop(&mut self) {
        // The head arrived (or the connection is going away): no wait is running.
        let state = &self.0 .0;
        state.wait_started.set(None);
        state.first_byte.set(None);
        state.waker.borrow_mut().take();
    }
}

impl Sleep for HeadWait {}

/// Marks a value that hyper's trait bounds require to be `Send + Sync` but that is only
/// ever used on the thread that created it.
#[derive(Clone)]
struct SameThread<T>(T);

// SAFETY: a connection, its hyper state machine, its timer and every `HeadWait` are
// created on one shard and polled only by that shard's executor (`spawn_local`), which
// never moves tasks between threads. The wrapped value is never sent or shared across
// threads, whatever the bounds claim.
unsafe impl<T> Send for SameThread<T> {}
// SAFETY: as above; no other thread can observe the value.
unsafe impl<T> Sync for SameThread<T> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_wait_uses_keep_alive_then_header_timeout_after_first_byte() {
        let state = ConnState::new(Duration::from_secs(150), Duration::from_secs(10));
        assert_eq!(state.deadline(), None);
        let timer = ConnTimer::new(state.clone());
        let wait = timer.sleep(Duration::from_secs(10));
        let started = state.wait_started.get().unwrap();
        assert!(state.is_idle());
        assert_eq!(state.deadline(), Some(started + Duration::from_secs(150)));
        state.on_bytes();
        let first = state.first_byte.get().unwrap();
        assert!(!state.is_idle());
        assert_eq!(state.deadline(), Some(first + Duration::from_secs(10)));
        drop(wait);
        assert_eq!(state.deadline(), None);
    }

    #[test]
    fn expired_wait_completes() {
        let state = ConnState::new(Duration::ZERO, Duration::ZERO);
        let timer = ConnTimer::new(state.clone());
        let mut wait = timer.sleep(Duration::ZERO);
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(wait.as_mut().poll(&mut cx).is_ready());
    }
}
