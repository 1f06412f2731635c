//! The shard's outbox: responses written during one pass over the shard's ready tasks
//! are sent together, after the pass.
//!
//! Writing a response on loopback or a fast network runs the kernel's whole transmit
//! path inside the `send` call. Sent one at a time, between the handling of one request
//! and the next, that work evicts the bid path's code and data from the CPU caches, and
//! every request pays to reload them. The outbox keeps the two apart: a connection's
//! [`Io`](super::compat::Io) copies the response here and carries on (hyper goes straight
//! back to reading the connection); a flusher task, which runs after every connection
//! task made ready in the same pass, then makes the `send` calls back to back. The
//! response leaves a few microseconds later; nothing else changes for the client.
//!
//! A send that the socket cannot take in full (the client reads slowly) leaves the rest
//! with the connection as *stalled* bytes. The connection sends those itself, waiting for
//! the socket to become writable, and accepts no new response until they are gone: the
//! same back-pressure as writing directly. A send error is kept for the connection's next
//! read or write, which fails with it and ends the connection.
//!
//! Nothing in a queued send outlives its connection: closing or dropping a connection
//! with queued bytes sends the whole outbox at once (see `Io`).

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::task::{Poll, Waker};

/// A connection's side of the outbox.
#[derive(Debug, Default)]
pub struct SendState {
    /// Sends of this connection waiting in the outbox.
    queued: Cell<u32>,
    /// Bytes the socket did not take, in order; sent by the connection itself.
    stalled: RefCell<Vec<u8>>,
    /// The error a send of this connection failed with.
    error: Cell<Option<io::ErrorKind>>,
    /// The connection task to wake when its bytes stall or a send fails.
    waker: RefCell<Option<Waker>>,
}

impl SendState {
    pub fn queued(&self) -> bool {
        self.queued.get() > 0
    }

    /// The error a queued send failed with, if any.
    pub fn error(&self) -> Option<io::Error> {
        self.error.get().map(io::Error::from)
    }

    pub fn fail(&self, kind: io::ErrorKind) {
        self.error.set(Some(kind));
    }

    /// The bytes the connection must send itself before anything else.
    /// Bytes of an earlier response still wait for the socket.
    pub fn has_stalled(&self) -> bool {
        !self.stalled().borrow().is_empty()
    }

    pub fn stalled(&self) -> &RefCell<Vec<u8>> {
        &self.stalled
    }

    /// Leaves the connection task's waker for a stall or an error.
    pub fn park(&self, waker: &Waker) {
        let mut slot = self.waker.borrow_mut();
        match slot.as_ref() {
            Some(w) if w.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }

    fn wake(&self) {
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }
}

struct Send {
    conn: Rc<SendState>,
    fd: RawFd,
    end: usize,
}

#[derive(Default)]
struct Queue {
    /// The queued responses' bytes, back to back; `Send::end` marks where each ends.
    bytes: Vec<u8>,
    sends: Vec<Send>,
    /// The flusher task, when it waits for sends.
    flusher: Option<Waker>,
    flusher_started: bool,
}

/// What a queued send asks of the flusher task.
enum Flusher {
    /// It waits for sends: wake it.
    Waiting(Waker),
    /// It does not exist yet: start it.
    NotStarted,
    /// It is already due to run in this pass.
    Due,
}

/// One shard's outbox (see the module docs).
#[derive(Default)]
pub struct Outbox {
    queue: RefCell<Queue>,
    /// Responses the socket did not take in full when they were flushed.
    stalls: Cell<u64>,
}

impl Outbox {
    /// Queues `bytes` for the connection on `fd`, whose state is `conn`. Starts the
    /// flusher on this thread's executor the first time.
    pub fn push(self: &Rc<Self>, conn: &Rc<SendState>, fd: RawFd, bytes: &[u8]) {
        // glommio may run a task it spawns at once, so the queue is released first.
        match self.enqueue(conn, fd, bytes) {
            Flusher::Waiting(w) => w.wake(),
            Flusher::NotStarted => {
                glommio::spawn_local(flusher(self.clone())).detach();
            }
            Flusher::Due => {}
        }
    }

    fn enqueue(&self, conn: &Rc<SendState>, fd: RawFd, bytes: &[u8]) -> Flusher {
        let mut q = self.queue.borrow_mut();
        q.bytes.extend_from_slice(bytes);
        let end = q.bytes.len();
        q.sends.push(Send {
            conn: conn.clone(),
            fd,
            end,
        });
        conn.queued.set(conn.queued.get() + 1);
        match q.flusher.take() {
            Some(w) => Flusher::Waiting(w),
            None if !std::mem::replace(&mut q.flusher_started, true) => Flusher::NotStarted,
            None => Flusher::Due,
        }
    }

    /// How many queued responses stalled (the socket did not take all of one at once).
    pub fn stalls(&self) -> u64 {
        self.stalls.get()
    }

    /// Sends everything queued, in order.
    pub fn flush(&self) {
        let mut q = self.queue.borrow_mut();
        let Queue { bytes, sends, .. } = &mut *q;
        let mut start = 0;
        for send in sends.drain(..) {
            let data = &bytes[start..send.end];
            start = send.end;
            let conn = &send.conn;
            conn.queued.set(conn.queued.get() - 1);
            if conn.error.get().is_some() {
                continue;
            }
            let mut stalled = conn.stalled.borrow_mut();
            if !stalled.is_empty() {
                // An earlier response of this connection stalled in this flush: keep
                // the order.
                stalled.extend_from_slice(data);
                continue;
            }
            match send_now(send.fd, data) {
                Ok(n) if n == data.len() => continue,
                Ok(n) => stalled.extend_from_slice(&data[n..]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => stalled.extend_from_slice(data),
                Err(e) => {
                    conn.error.set(Some(e.kind()));
                    drop(stalled);
                    conn.wake();
                    continue;
                }
            }
            self.stalls.set(self.stalls.get() + 1);
            drop(stalled);
            conn.wake();
        }
        bytes.clear();
    }
}

/// The shard's flusher task: after each pass in which responses were queued, sends them.
async fn flusher(outbox: Rc<Outbox>) {
    loop {
        poll_fn(|cx| {
            let mut q = outbox.queue.borrow_mut();
            if q.sends.is_empty() {
                q.flusher = Some(cx.waker().clone());
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
        outbox.flush();
    }
}

/// One non-blocking `send`, retried only when a signal interrupts it.
fn send_now(fd: RawFd, data: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `data` is a live, initialised slice for the duration of the call, and
        // `fd` is an open socket: a connection with queued sends flushes the outbox
        // before its descriptor is closed (see `compat::Io`).
        let n = unsafe {
            libc::send(
                fd,
                data.as_ptr().cast(),
                data.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    struct Count(AtomicUsize);
    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Queues without the flusher task (that needs an executor); tests call `flush`.
    fn queue(outbox: &Outbox, conn: &Rc<SendState>, fd: RawFd, bytes: &[u8]) {
        let _ = outbox.enqueue(conn, fd, bytes);
    }

    fn small_pair() -> (UnixStream, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        (a, b)
    }

    #[test]
    fn sends_every_connection_its_own_bytes_in_order() {
        let outbox = Outbox::default();
        let (a1, mut b1) = small_pair();
        let (a2, mut b2) = small_pair();
        let (c1, c2) = (Rc::new(SendState::default()), Rc::new(SendState::default()));
        queue(&outbox, &c1, a1.as_raw_fd(), b"one ");
        queue(&outbox, &c2, a2.as_raw_fd(), b"two");
        queue(&outbox, &c1, a1.as_raw_fd(), b"three");
        assert!(c1.queued() && c2.queued());
        outbox.flush();
        assert!(!c1.queued() && !c2.queued());
        drop((a1, a2));
        let mut got = String::new();
        b1.read_to_string(&mut got).unwrap();
        assert_eq!(got, "one three");
        got.clear();
        b2.read_to_string(&mut got).unwrap();
        assert_eq!(got, "two");
        assert!(outbox.queue.borrow().bytes.is_empty());
    }

    /// A socket that takes only part of a response leaves the rest, and every later
    /// response of the same flush, stalled in order; the connection is woken to send it.
    #[test]
    fn what_the_socket_does_not_take_stalls_in_order() {
        let outbox = Outbox::default();
        let (a, mut b) = small_pair();
        let conn = Rc::new(SendState::default());
        let count = Arc::new(Count(AtomicUsize::new(0)));
        conn.park(&Waker::from(count.clone()));
        let big = vec![b'x'; 4 << 20];
        queue(&outbox, &conn, a.as_raw_fd(), &big);
        queue(&outbox, &conn, a.as_raw_fd(), b"after");
        outbox.flush();
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "woken once");
        assert_eq!(outbox.stalls(), 1);
        let stalled = conn.stalled().borrow().clone();
        assert!(stalled.len() > 5 && stalled.len() < big.len() + 5);
        assert!(stalled.ends_with(b"xafter"));
        // What went out plus what stalled is everything, in order.
        drop(a);
        let mut sent = Vec::new();
        b.read_to_end(&mut sent).unwrap();
        assert_eq!(sent.len() + stalled.len(), big.len() + 5);
        assert!(sent.iter().all(|&c| c == b'x'));
        assert!(conn.error().is_none());
    }

    #[test]
    fn a_failed_send_is_kept_for_the_connection() {
        let outbox = Outbox::default();
        let (a, b) = small_pair();
        drop(b);
        let conn = Rc::new(SendState::default());
        let count = Arc::new(Count(AtomicUsize::new(0)));
        conn.park(&Waker::from(count.clone()));
        queue(&outbox, &conn, a.as_raw_fd(), b"lost");
        queue(&outbox, &conn, a.as_raw_fd(), b"also lost");
        outbox.flush();
        assert_eq!(conn.error().unwrap().kind(), io::ErrorKind::BrokenPipe);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(conn.stalled().borrow().is_empty());
        assert_eq!(outbox.stalls(), 0);
    }
}
