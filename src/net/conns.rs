//! A thread's connection registry (a shard's, or the control thread's): the sweeper
//! that fires idle and header timeouts, the drain signal that asks every connection to
//! finish and close, and the outbox the connections' responses leave through.

#![forbid(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::io::ConnState;
use super::outbox::Outbox;

/// How often the sweeper looks for expired waits. Timeouts fire up to this late.
pub const SWEEP_EVERY: Duration = Duration::from_millis(250);

/// While closing, a connection idle this long after a response is closed: long enough
/// that its client is not in the middle of sending the next request.
pub const CLOSING_IDLE: Duration = Duration::from_millis(500);

struct Entry {
    state: Rc<ConnState>,
    /// Waker of the connection task's drain wait.
    drain_waker: Option<Waker>,
    /// Asked to close after its current response (an idle connection while closing).
    shut: bool,
}

/// What ended or kept out connections, counted by the thread that owns them.
#[derive(Debug, Default)]
pub struct ConnStats {
    /// Answered 408: a request (or a new connection's first one) did not arrive in time.
    pub request_timeouts: Cell<u64>,
    /// Idle keep-alive connections closed after `keep_alive`.
    pub idle_timeouts: Cell<u64>,
    /// Clients that took none of a response's bytes for their timeout.
    pub send_timeouts: Cell<u64>,
    /// Connections closed unread because the thread already had `max_connections`.
    pub refused: Cell<u64>,
    /// Failed accepts, by cause.
    pub accept_no_descriptors: Cell<u64>,
    pub accept_other: Cell<u64>,
}

impl ConnStats {
    pub fn count(cell: &Cell<u64>) {
        cell.set(cell.get() + 1);
    }
}

/// Every open connection of one shard, plus the shard's drain flag.
#[derive(Default)]
pub struct Conns {
    slots: RefCell<Vec<Option<Entry>>>,
    free: RefCell<Vec<usize>>,
    open: Cell<usize>,
    /// The drain delay has begun: answers carry `Connection: close` and connections
    /// idle for `CLOSING_IDLE` are closed.
    closing: Cell<bool>,
    draining: Cell<bool>,
    /// Wakers of the shard-level drain waits (the accept loop, the connection inbox).
    accept_wakers: RefCell<Vec<Waker>>,
    outbox: Rc<Outbox>,
    stats: Rc<ConnStats>,
}

/// A connection's place in the registry; removes it when dropped.
pub struct ConnHandle<'a> {
    conns: &'a Conns,
    slot: usize,
}

impl Conns {
    pub fn register(&self, state: Rc<ConnState>) -> ConnHandle<'_> {
        let entry = Entry {
            state,
            drain_waker: None,
            shut: false,
        };
        let mut slots = self.slots.borrow_mut();
        let slot = match self.free.borrow_mut().pop() {
            Some(i) => {
                slots[i] = Some(entry);
                i
            }
            None => {
                slots.push(Some(entry));
                slots.len() - 1
            }
        };
        self.open.set(self.open.get() + 1);
        ConnHandle { conns: self, slot }
    }

    /// The outbox this shard's connections send their responses through.
    pub fn outbox(&self) -> Rc<Outbox> {
        self.outbox.clone()
    }

    /// The counts of timeouts, refusals and failed accepts.
    pub fn stats(&self) -> &Rc<ConnStats> {
        &self.stats
    }

    /// Responses whose bytes the client's socket did not take at once.
    pub fn send_stalls(&self) -> u64 {
        self.outbox.stalls()
    }

    pub fn open(&self) -> usize {
        self.open.get()
    }

    pub fn is_draining(&self) -> bool {
        self.draining.get()
    }

    pub fn is_closing(&self) -> bool {
        self.closing.get()
    }

    /// The drain delay begins: answers from now on close their connection (the
    /// router adds `Connection: close`), and idle connections are closed as they pass
    /// [`CLOSING_IDLE`] without a request ([`Conns::close_idle`]).
    pub fn start_closing(&self) {
        self.closing.set(true);
    }

    /// While closing: asks every connection that has idled `CLOSING_IDLE` since its
    /// last response to close. A connection busy with a request, or idle for less (its
    /// client may be sending the next request right now), gets `Connection: close`
    /// on its next answer instead.
    pub fn close_idle(&self, now: Instant) {
        if !self.closing.get() {
            return;
        }
        for entry in self.slots.borrow_mut().iter_mut().flatten() {
            if !entry.shut && entry.state.idle_since(now) >= CLOSING_IDLE {
                entry.shut = true;
                if let Some(w) = entry.drain_waker.take() {
                    w.wake();
                }
            }
        }
    }

    /// Wakes every connection whose idle or header deadline has passed.
    pub fn sweep(&self, now: Instant) {
        for entry in self.slots.borrow().iter().flatten() {
            entry.state.wake_if_expired(now);
        }
    }

    /// Starts draining: the accept loop stops and every connection is asked to close
    /// after its in-flight request.
    pub fn drain(&self) {
        if self.draining.replace(true) {
            return;
        }
        for w in self.accept_wakers.take() {
            w.wake();
        }
        for entry in self.slots.borrow_mut().iter_mut().flatten() {
            if let Some(w) = entry.drain_waker.take() {
                w.wake();
            }
        }
    }

    /// Resolves when draining starts (for the accept loop and other shard-level tasks;
    /// every waiter is woken).
    pub fn accept_drained(&self) -> impl Future<Output = ()> + '_ {
        DrainWait {
            conns: self,
            slot: None,
        }
    }
}

impl ConnHandle<'_> {
    /// Resolves when draining starts (for this connection's task).
    pub fn drained(&self) -> impl Future<Output = ()> + '_ {
        DrainWait {
            conns: self.conns,
            slot: Some(self.slot),
        }
    }
}

impl Drop for ConnHandle<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.conns.slots.borrow_mut().get_mut(self.slot) {
            *s = None;
        }
        self.conns.free.borrow_mut().push(self.slot);
        self.conns.open.set(self.conns.open.get() - 1);
    }
}

struct DrainWait<'a> {
    conns: &'a Conns,
    /// The connection's slot, or `None` for the accept loop.
    slot: Option<usize>,
}

impl Future for DrainWait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.conns.draining.get() {
            return Poll::Ready(());
        }
        if let Some(i) = self.slot {
            if let Some(Some(entry)) = self.conns.slots.borrow().get(i) {
                if entry.shut {
                    return Poll::Ready(());
                }
            }
        }
        let store = |slot: &mut Option<Waker>| match slot {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => *slot = Some(cx.waker().clone()),
        };
        match self.slot {
            None => {
                let mut wakers = self.conns.accept_wakers.borrow_mut();
                if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                    wakers.push(cx.waker().clone());
                }
            }
            Some(i) => {
                if let Some(Some(entry)) = self.conns.slots.borrow_mut().get_mut(i) {
                    store(&mut entry.drain_waker);
                }
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_reused_and_counted() {
        let conns = Conns::default();
        let s = || ConnState::new(Duration::from_secs(1), Duration::from_secs(1));
        let a = conns.register(s());
        let b = conns.register(s());
        assert_eq!(conns.open(), 2);
        let slot_a = a.slot;
        drop(a);
        assert_eq!(conns.open(), 1);
        let c = conns.register(s());
        assert_eq!(c.slot, slot_a);
        drop((b, c));
        assert_eq!(conns.open(), 0);
    }

    #[test]
    fn drain_wakes_waiters() {
        let conns = Conns::default();
        let h = conns.register(ConnState::new(
            Duration::from_secs(1),
            Duration::from_secs(1),
        ));
        let mut wait = Box::pin(h.drained());
        let mut cx = Context::from_waker(Waker::noop());
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        conns.drain();
        assert!(wait.as_mut().poll(&mut cx).is_ready());
        assert!(conns.is_draining());
    }

    /// Two tasks waiting for the shard to drain (the accept loop and the connection
    /// inbox) are both woken: one used to replace the other's waker and sleep forever.
    #[test]
    fn drain_wakes_every_shard_level_waiter() {
        struct Flag(std::sync::atomic::AtomicBool);
        impl std::task::Wake for Flag {
            fn wake(self: std::sync::Arc<Self>) {
                self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let conns = Conns::default();
        let flags: Vec<_> = (0..2)
            .map(|_| std::sync::Arc::new(Flag(false.into())))
            .collect();
        let mut waits: Vec<_> = (0..2).map(|_| Box::pin(conns.accept_drained())).collect();
        for (wait, flag) in waits.iter_mut().zip(&flags) {
            let waker = Waker::from(flag.clone());
            let mut cx = Context::from_waker(&waker);
            assert!(wait.as_mut().poll(&mut cx).is_pending());
            assert!(wait.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(conns.accept_wakers.borrow().len(), 2, "one waker per task");
        conns.drain();
        for flag in &flags {
            assert!(flag.0.load(std::sync::atomic::Ordering::SeqCst));
        }
    }
}
