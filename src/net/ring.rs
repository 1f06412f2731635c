//! The shard's network ring: connection bytes through io_uring completions, beside
//! glommio's reactor.
//!
//! glommio reads a socket the readiness way: a `recv` syscall, and when it would block,
//! a one-shot poll through its ring, then the `recv` again; every response is a `send`
//! syscall. This ring does what a completion-based server does instead:
//!
//! - every connection has one *multishot* `recv` armed for its whole life; the kernel
//!   picks a buffer from the shard's **provided-buffer ring** and posts a completion per
//!   arrival, with no poll and no syscall of the shard's;
//! - responses go out as `send` operations queued on the ring, at most one in flight per
//!   connection (what arrives meanwhile waits behind it, in order);
//! - the ring is made with `IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN`, so
//!   the kernel's completion work runs at the shard's next syscall, never by
//!   interrupting it; and with `IORING_SETUP_TASKRUN_FLAG`, which tells the shard, in
//!   shared memory, when there is such work, so that a pass with nothing to submit and
//!   nothing pending makes no syscall at all (ARCHITECTURE.md says why not
//!   `DEFER_TASKRUN`).
//!
//! A driver task ([`NetRing::drive`]) runs once per pass of the executor while there is
//! traffic: one `io_uring_enter` submits the pass's sends and collects what arrived, and
//! wakes the connections that have bytes. When a pass finds nothing, the driver sleeps
//! on the ring's own descriptor (readable while completions wait) through glommio's
//! reactor, one poll, so an idle shard sleeps as before.
//!
//! Buffers: a completion names the ring buffer that holds the bytes; they stay there
//! until the connection's reader copies them out (into hyper's read buffer), and the
//! buffer goes straight back to the ring. When the ring runs dry, the kernel ends that
//! connection's `recv` with `ENOBUFS`: the connection is re-armed as soon as buffers come
//! back, so exhaustion slows arrivals and loses nothing.
//!
//! Closing: a connection's descriptor belongs to the ring. Dropping its [`RingConn`]
//! lets queued bytes leave (a `408`, a last response with `Connection: close`),
//! cancels the `recv`, and closes the descriptor once no operation refers to it. A
//! client that reads nothing cannot hold that forever: after [`CLOSE_LINGER`] the send
//! is cancelled too.
//!
//! Each `unsafe` says why it holds.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use super::clock::coarse_now;

/// Sizes of a shard's network ring.
#[derive(Debug, Clone, Copy)]
pub struct RingConfig {
    /// Submission queue entries (the completion queue is four times as large).
    pub entries: u32,
    /// Receive buffers in the provided-buffer ring: a power of two, at most 32,768.
    pub buffers: u16,
    /// Bytes per receive buffer.
    pub buffer_bytes: u32,
}

impl Default for RingConfig {
    fn default() -> RingConfig {
        RingConfig {
            entries: 1024,
            buffers: 1024,
            buffer_bytes: 4096,
        }
    }
}

/// How long a closed connection's last bytes may take to leave before they are
/// cancelled and the descriptor closed.
pub const CLOSE_LINGER: Duration = Duration::from_secs(5);

/// How often lingering connections are looked at.
const LINGER_CHECK: Duration = Duration::from_millis(500);

/// Queued bytes per connection above which a write waits for the socket.
const SEND_HIGH_WATER: usize = 256 * 1024;

/// The buffer group of the receive buffers.
const BUFFER_GROUP: u16 = 0;

// What a completion is for: the low two bits of its user data.
/// `IORING_ENTER_GETEVENTS` and `IORING_ENTER_REGISTERED_RING`, and the register
/// opcode `IORING_REGISTER_RING_FDS` (include/uapi/linux/io_uring.h).
const IORING_ENTER_GETEVENTS: u32 = 1;
const IORING_ENTER_REGISTERED_RING: u32 = 1 << 4;
const IORING_REGISTER_RING_FDS: u32 = 20;

/// Registers the ring's descriptor with the calling thread (Linux 5.18); its index,
/// or `None` when the kernel does not take it (the descriptor is then used as is).
fn register_ring_fd(fd: RawFd) -> Option<u32> {
    #[repr(C)]
    struct RsrcUpdate {
        offset: u32,
        resv: u32,
        data: u64,
    }
    let mut update = RsrcUpdate {
        offset: u32::MAX, // any free slot; the kernel writes the one it took
        resv: 0,
        data: fd as u64,
    };
    // SAFETY: one `io_uring_rsrc_update` that lives through the call, as the
    // register opcode expects.
    let r = unsafe {
        libc::syscall(
            libc::SYS_io_uring_register,
            fd,
            IORING_REGISTER_RING_FDS,
            &mut update as *mut RsrcUpdate,
            1u32,
        )
    };
    (r == 1).then_some(update.offset)
}

const OP_RECV: u64 = 0;
const OP_SEND: u64 = 1;
const OP_CANCEL: u64 = 2;

fn user_data(op: u64, index: u32, gen: u32) -> u64 {
    (u64::from(gen) << 32) | (u64::from(index) << 2) | op
}

fn split_user_data(data: u64) -> (u64, u32, u32) {
    (data & 3, ((data as u32) >> 2), (data >> 32) as u32)
}

/// Counters of one ring, for metrics.
#[derive(Debug, Default)]
pub struct RingStats {
    /// `recv`s the kernel ended because no receive buffer was free.
    pub buffer_exhaustions: Cell<u64>,
    /// `recv`s armed again after they ended (exhaustion, or the kernel's own reasons).
    pub rearms: Cell<u64>,
    /// Closed connections whose last bytes were cancelled after [`CLOSE_LINGER`].
    pub linger_cancels: Cell<u64>,
    /// Sends the socket took only in part (a slow reader); the rest followed.
    pub short_sends: Cell<u64>,
    /// Times a connection's unread buffers moved to its own memory (it was not reading).
    pub spills: Cell<u64>,
}

/// A connection's id: its slot and the slot's generation (a completion for an earlier
/// holder of the slot is recognised and ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ConnId {
    index: u32,
    gen: u32,
}

/// Bytes that arrived in one receive buffer and have not been read yet.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    bid: u16,
    start: u32,
    end: u32,
}

#[derive(Debug, Default, PartialEq, Eq, Clone, Copy)]
enum SlotState {
    #[default]
    Free,
    Open,
    /// The connection was dropped; waiting for its operations to end.
    Closing,
}

#[derive(Default)]
struct Slot {
    gen: u32,
    state: SlotState,
    fd: RawFd,
    /// Arrived bytes, in order.
    input: VecDeque<Chunk>,
    recv_armed: bool,
    /// The `recv` ended for want of buffers: armed again when buffers come back.
    starved: bool,
    /// The `recv` was cancelled because the connection had too many unread buffers:
    /// armed again once it has read what it holds (the kernel's socket buffer, and TCP
    /// flow control, hold the rest meanwhile).
    paused: bool,
    /// Unread bytes moved out of the ring's buffers (see [`NetRing::spill`]); read
    /// before `input`. `spill_read` of them have been read.
    spill: Vec<u8>,
    spill_read: usize,
    eof: bool,
    error: Option<i32>,
    reader: Option<Waker>,
    /// Bytes waiting for the send in flight to finish.
    out: Vec<u8>,
    /// The bytes of the send in flight (their address is in the kernel's hands until
    /// its completion), and how many of them have gone.
    inflight: Vec<u8>,
    sent: usize,
    sending: bool,
    send_error: Option<i32>,
    writer: Option<Waker>,
    closing_since: Option<Instant>,
    send_cancelled: bool,
}

/// The provided-buffer ring: the entries the kernel takes buffers from, and the
/// buffers themselves.
struct Buffers {
    /// `entries` ring entries, page-aligned (mmap), registered with the ring.
    ring: *mut types::BufRingEntry,
    ring_bytes: usize,
    entries: u16,
    mask: u16,
    /// The tail the shard publishes (the kernel consumes from its own head).
    tail: u16,
    memory: Box<[u8]>,
    size: u32,
    /// Buffers in the kernel's hands (published and not yet used).
    available: u32,
    /// Free buffers a starved connection waits for before its `recv` is armed again.
    min_free: u32,
    /// Unread buffers one connection may hold before its `recv` is paused.
    held_limit: usize,
}

impl Buffers {
    fn new(entries: u16, size: u32) -> io::Result<Buffers> {
        if !entries.is_power_of_two() || entries > 32768 || size == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "receive buffers: a power of two up to 32768, each at least one byte",
            ));
        }
        let ring_bytes = usize::from(entries) * std::mem::size_of::<types::BufRingEntry>();
        // SAFETY: an anonymous private mapping, no address hint; checked for failure.
        let ring = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ring_bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if ring == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut b = Buffers {
            ring: ring.cast(),
            ring_bytes,
            entries,
            mask: entries - 1,
            tail: 0,
            memory: vec![0u8; usize::from(entries) * size as usize].into_boxed_slice(),
            size,
            available: 0,
            min_free: u32::from(entries / 2).clamp(1, 8),
            held_limit: usize::from(entries / 4).clamp(1, 16),
        };
        for bid in 0..entries {
            b.push(bid);
        }
        b.publish();
        Ok(b)
    }

    /// Puts buffer `bid` back at the tail (published by [`Self::publish`]).
    fn push(&mut self, bid: u16) {
        let index = usize::from(self.tail & self.mask);
        // SAFETY: `index` < `entries`, inside the mapping; the kernel reads only the
        // entries between its head and the published tail, and this one is past it.
        let entry = unsafe { &mut *self.ring.add(index) };
        let addr = self.memory.as_ptr() as u64 + u64::from(bid) * u64::from(self.size);
        entry.set_addr(addr);
        entry.set_len(self.size);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
        self.available += 1;
    }

    /// Makes the pushed buffers visible to the kernel.
    fn publish(&self) {
        // SAFETY: the tail field lives in the first entry of the mapping; the kernel
        // reads it with acquire semantics, so the entries written before are visible.
        unsafe {
            let tail = types::BufRingEntry::tail(self.ring).cast::<AtomicU16>();
            (*tail).store(self.tail, Ordering::Release);
        }
    }

    fn bytes(&self, bid: u16, start: u32, end: u32) -> &[u8] {
        let base = usize::from(bid) * self.size as usize;
        &self.memory[base + start as usize..base + end as usize]
    }
}

impl Drop for Buffers {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unregistered by now (the ring is dropped
        // first, see `NetRing`'s field order).
        unsafe { libc::munmap(self.ring.cast(), self.ring_bytes) };
    }
}

struct Inner {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Connections whose `recv` waits for buffers.
    starved: Vec<u32>,
    /// Closed connections still waiting for their operations (for the linger check).
    closing: Vec<u32>,
    /// Submissions queued since the last enter.
    unsubmitted: u32,
    /// Wakers to call once the borrow is released.
    wake: Vec<Waker>,
    /// The driver, while it sleeps: a new submission wakes it.
    driver: Option<Waker>,
}

/// One shard's network ring (see the module docs).
pub struct NetRing {
    // Field order matters: the ring is dropped (unregistering the buffers) before them.
    uring: RefCell<IoUring>,
    buffers: RefCell<Buffers>,
    inner: RefCell<Inner>,
    stats: RingStats,
    /// The ring's index among the thread's registered ring descriptors, when the
    /// kernel took it: each enter then skips a descriptor lookup.
    registered: Option<u32>,
}

impl NetRing {
    /// Makes the ring and its receive buffers. Fails on kernels without what it needs
    /// (Linux 6.0: `SINGLE_ISSUER`, multishot `recv`, provided-buffer rings).
    pub fn new(config: RingConfig) -> io::Result<Rc<NetRing>> {
        let uring: IoUring = IoUring::builder()
            .setup_single_issuer()
            .setup_coop_taskrun()
            .setup_taskrun_flag()
            .setup_cqsize(config.entries.saturating_mul(4))
            .setup_submit_all()
            .build(config.entries)?;
        let buffers = Buffers::new(config.buffers, config.buffer_bytes)?;
        // SAFETY: the entries mapping stays alive (and in place) while registered: it is
        // unmapped only after the ring is dropped.
        unsafe {
            uring.submitter().register_buf_ring_with_flags(
                buffers.ring as u64,
                buffers.entries,
                BUFFER_GROUP,
                0,
            )?;
        }
        let registered = register_ring_fd(uring.as_raw_fd());
        Ok(Rc::new(NetRing {
            uring: RefCell::new(uring),
            buffers: RefCell::new(buffers),
            inner: RefCell::new(Inner {
                slots: Vec::new(),
                free: Vec::new(),
                starved: Vec::new(),
                closing: Vec::new(),
                unsubmitted: 0,
                wake: Vec::new(),
                driver: None,
            }),
            stats: RingStats::default(),
            registered,
        }))
    }

    pub fn stats(&self) -> &RingStats {
        &self.stats
    }

    /// Takes over `fd`, a connected non-blocking socket, and starts receiving on it.
    pub fn register(self: &Rc<Self>, fd: OwnedFd) -> RingConn {
        let fd = fd.into_raw_fd();
        let mut inner = self.inner.borrow_mut();
        let index = match inner.free.pop() {
            Some(i) => i,
            None => {
                inner.slots.push(Slot::default());
                (inner.slots.len() - 1) as u32
            }
        };
        let slot = &mut inner.slots[index as usize];
        slot.state = SlotState::Open;
        slot.fd = fd;
        let id = ConnId {
            index,
            gen: slot.gen,
        };
        drop(inner);
        self.arm_recv(id);
        RingConn {
            ring: self.clone(),
            id,
        }
    }

    /// Queues a submission, making room by submitting when the queue is full.
    fn push(&self, entry: squeue::Entry) {
        let mut uring = self.uring.borrow_mut();
        loop {
            // SAFETY: every entry's buffers (receive buffers, a slot's `inflight`) stay
            // in place until its completion is seen (see `Slot`).
            if unsafe { uring.submission().push(&entry) }.is_ok() {
                break;
            }
            // Full: hand what is queued to the kernel now.
            if let Err(e) = uring.submit() {
                if e.raw_os_error() != Some(libc::EBUSY) {
                    // Nothing else to do with it: the entry is retried after the next
                    // completions free room.
                    tracing::warn!("network ring submit failed: {e}");
                }
            }
            self.inner.borrow_mut().unsubmitted = 0;
        }
        let mut inner = self.inner.borrow_mut();
        inner.unsubmitted += 1;
        if let Some(driver) = inner.driver.take() {
            drop(inner);
            driver.wake();
        }
    }

    fn arm_recv(&self, id: ConnId) {
        let fd = {
            let mut inner = self.inner.borrow_mut();
            let slot = &mut inner.slots[id.index as usize];
            slot.recv_armed = true;
            slot.starved = false;
            slot.paused = false;
            slot.fd
        };
        let entry = opcode::RecvMulti::new(types::Fd(fd), BUFFER_GROUP)
            .build()
            .user_data(user_data(OP_RECV, id.index, id.gen));
        self.push(entry);
    }

    fn start_send(&self, id: ConnId) {
        let entry = {
            let mut inner = self.inner.borrow_mut();
            let slot = &mut inner.slots[id.index as usize];
            if slot.sending || slot.out.is_empty() {
                return;
            }
            debug_assert!(slot.inflight.is_empty());
            std::mem::swap(&mut slot.out, &mut slot.inflight);
            slot.sent = 0;
            slot.sending = true;
            send_entry(slot, id)
        };
        self.push(entry);
    }

    /// Copies arrived bytes into `dst`.
    fn read(
        &self,
        id: ConnId,
        cx: &mut Context<'_>,
        dst: &mut [MaybeUninit<u8>],
    ) -> Poll<io::Result<usize>> {
        let mut inner = self.inner.borrow_mut();
        let slot = &mut inner.slots[id.index as usize];
        if slot.spill_read < slot.spill.len() {
            let rest = &slot.spill[slot.spill_read..];
            let take = rest.len().min(dst.len());
            // SAFETY: `MaybeUninit<u8>` has the layout of `u8`; this only writes.
            unsafe {
                std::ptr::copy_nonoverlapping(rest.as_ptr(), dst.as_mut_ptr().cast(), take);
            }
            slot.spill_read += take;
            if slot.spill_read == slot.spill.len() {
                slot.spill.clear();
                slot.spill_read = 0;
                if slot.spill.capacity() > 64 * 1024 {
                    slot.spill = Vec::new();
                }
            }
            let resume = slot.spill.is_empty() && slot.input.is_empty();
            drop(inner);
            if resume {
                self.resume_recv(id);
            }
            return Poll::Ready(Ok(take));
        }
        if slot.input.is_empty() {
            if let Some(e) = slot.error {
                return Poll::Ready(Err(io::Error::from_raw_os_error(e)));
            }
            if let Some(e) = slot.send_error {
                return Poll::Ready(Err(io::Error::from_raw_os_error(e)));
            }
            if slot.eof {
                return Poll::Ready(Ok(0));
            }
            match &slot.reader {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => slot.reader = Some(cx.waker().clone()),
            }
            drop(inner);
            self.resume_recv(id);
            return Poll::Pending;
        }
        let mut buffers = self.buffers.borrow_mut();
        let mut n = 0;
        let mut returned = false;
        while n < dst.len() {
            let Some(chunk) = slot.input.front_mut() else {
                break;
            };
            let bytes = buffers.bytes(chunk.bid, chunk.start, chunk.end);
            let take = bytes.len().min(dst.len() - n);
            // SAFETY: `MaybeUninit<u8>` has the layout of `u8`; this only writes.
            unsafe {
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst[n..].as_mut_ptr().cast(), take);
            }
            n += take;
            chunk.start += take as u32;
            if chunk.start == chunk.end {
                let bid = chunk.bid;
                slot.input.pop_front();
                buffers.push(bid);
                returned = true;
            }
        }
        let resume = !slot.recv_armed && slot.input.len() <= buffers.held_limit / 2;
        debug_assert!(slot.spill.is_empty());
        if returned {
            buffers.publish();
        }
        let starved = returned && !inner.starved.is_empty();
        drop(buffers);
        drop(inner);
        if resume {
            self.resume_recv(id);
        }
        if starved {
            self.feed_starved();
        }
        Poll::Ready(Ok(n))
    }

    /// Copies the connection's unread buffers into its own memory and gives them back
    /// to the ring. Returns true (buffers came back).
    fn spill(&self, slot: &mut Slot) -> bool {
        let mut buffers = self.buffers.borrow_mut();
        if slot.spill_read == slot.spill.len() {
            slot.spill.clear();
            slot.spill_read = 0;
        }
        for chunk in slot.input.drain(..) {
            slot.spill
                .extend_from_slice(buffers.bytes(chunk.bid, chunk.start, chunk.end));
            buffers.push(chunk.bid);
        }
        buffers.publish();
        self.stats.spills.set(self.stats.spills.get() + 1);
        true
    }

    /// Arms the connection's `recv` again if it ended (exhaustion, a pause, the
    /// kernel's own reasons) and the connection still wants bytes; while buffers are
    /// short, it waits in the starved list instead.
    fn resume_recv(&self, id: ConnId) {
        {
            let available = self.buffers.borrow().available;
            let min_free = self.buffers.borrow().min_free;
            let mut inner = self.inner.borrow_mut();
            let slot = &mut inner.slots[id.index as usize];
            if slot.recv_armed
                || slot.state != SlotState::Open
                || slot.eof
                || slot.error.is_some()
                || slot.send_error.is_some()
            {
                return;
            }
            if available < min_free {
                if !slot.starved {
                    slot.starved = true;
                    inner.starved.push(id.index);
                }
                return;
            }
        }
        self.stats.rearms.set(self.stats.rearms.get() + 1);
        self.arm_recv(id);
    }

    /// Arms again the `recv`s that ended for want of buffers, as far as buffers allow.
    fn feed_starved(&self) {
        loop {
            let id = {
                let (available, min_free) = {
                    let b = self.buffers.borrow();
                    (b.available, b.min_free)
                };
                let mut inner = self.inner.borrow_mut();
                // Keep some buffers back so that a re-armed connection does not starve
                // again at once.
                if available < min_free {
                    return;
                }
                let Some(index) = inner.starved.pop() else {
                    return;
                };
                let slot = &inner.slots[index as usize];
                if slot.state != SlotState::Open || !slot.starved {
                    continue;
                }
                ConnId {
                    index,
                    gen: slot.gen,
                }
            };
            self.stats.rearms.set(self.stats.rearms.get() + 1);
            self.arm_recv(id);
        }
    }

    /// Queues `bytes` to send after what is already queued, once there is room.
    fn write(&self, id: ConnId, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_room(id, cx))?;
        self.queue(id, bytes);
        Poll::Ready(Ok(bytes.len()))
    }

    fn queue(&self, id: ConnId, bytes: &[u8]) {
        let start = {
            let mut inner = self.inner.borrow_mut();
            let slot = &mut inner.slots[id.index as usize];
            if slot.send_error.is_some() {
                return;
            }
            slot.out.extend_from_slice(bytes);
            !slot.sending
        };
        if start {
            self.start_send(id);
        }
    }

    /// Ready when the connection's queued bytes are under the high-water mark (or a
    /// send failed, with its error).
    fn poll_room(&self, id: ConnId, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut inner = self.inner.borrow_mut();
        let slot = &mut inner.slots[id.index as usize];
        if let Some(e) = slot.send_error {
            return Poll::Ready(Err(io::Error::from_raw_os_error(e)));
        }
        if slot.out.len() + slot.inflight.len() - slot.sent < SEND_HIGH_WATER {
            return Poll::Ready(Ok(()));
        }
        slot.writer = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Bytes queued on the connection that have not left yet.
    fn unsent(&self, id: ConnId) -> usize {
        let inner = self.inner.borrow();
        let slot = &inner.slots[id.index as usize];
        slot.out.len() + slot.inflight.len() - slot.sent
    }

    fn close(&self, id: ConnId) {
        let (cancel_recv, send, driver) = {
            let mut inner = self.inner.borrow_mut();
            let slot = &mut inner.slots[id.index as usize];
            slot.state = SlotState::Closing;
            slot.closing_since = Some(coarse_now());
            slot.reader = None;
            slot.writer = None;
            let cancel = slot.recv_armed;
            let send = !slot.sending && !slot.out.is_empty() && slot.send_error.is_none();
            inner.closing.push(id.index);
            // A sleeping driver looks at lingering connections only on its tick, which
            // it arms only while some connection is closing: wake it to arm it.
            (cancel, send, inner.driver.take())
        };
        if let Some(driver) = driver {
            driver.wake();
        }
        if cancel_recv {
            self.push(
                opcode::AsyncCancel::new(user_data(OP_RECV, id.index, id.gen))
                    .build()
                    .user_data(user_data(OP_CANCEL, id.index, id.gen)),
            );
        }
        if send {
            self.start_send(id);
        }
        self.try_release(id.index);
    }

    /// Frees a closing slot once nothing in the kernel refers to it.
    fn try_release(&self, index: u32) {
        let mut inner = self.inner.borrow_mut();
        let slot = &mut inner.slots[index as usize];
        if slot.state != SlotState::Closing || slot.recv_armed || slot.sending {
            return;
        }
        // SAFETY: the slot owns the descriptor (taken in `register`) and no operation
        // in the kernel refers to it any more.
        unsafe { libc::close(slot.fd) };
        let chunks: Vec<Chunk> = slot.input.drain(..).collect();
        slot.state = SlotState::Free;
        slot.gen = slot.gen.wrapping_add(1);
        slot.eof = false;
        slot.error = None;
        slot.send_error = None;
        slot.starved = false;
        slot.paused = false;
        slot.spill = Vec::new();
        slot.spill_read = 0;
        slot.closing_since = None;
        slot.send_cancelled = false;
        slot.out.clear();
        slot.inflight.clear();
        // A slot that held a large response gives that memory back.
        if slot.out.capacity() > 64 * 1024 {
            slot.out = Vec::new();
        }
        if slot.inflight.capacity() > 64 * 1024 {
            slot.inflight = Vec::new();
        }
        slot.sent = 0;
        inner.free.push(index);
        drop(inner);
        if !chunks.is_empty() {
            let mut buffers = self.buffers.borrow_mut();
            for c in chunks {
                buffers.push(c.bid);
            }
            buffers.publish();
        }
    }

    /// One turn: submits what is queued, runs the kernel's pending completion work if
    /// there is any, and handles every completion. Returns how many it handled.
    pub fn turn(&self) -> io::Result<usize> {
        {
            let mut uring = self.uring.borrow_mut();
            let unsubmitted = std::mem::take(&mut self.inner.borrow_mut().unsubmitted);
            let pending_work = uring.submission().taskrun() || uring.submission().cq_overflow();
            if unsubmitted > 0 || pending_work {
                drop(uring);
                self.enter()?;
            }
        }
        let mut handled = 0;
        loop {
            let batch: smallvec::SmallVec<[cqueue::Entry; 64]> = {
                let mut uring = self.uring.borrow_mut();
                uring.completion().take(64).collect()
            };
            if batch.is_empty() {
                break;
            }
            handled += batch.len();
            for cqe in batch {
                self.complete(cqe);
            }
        }
        let wake = std::mem::take(&mut self.inner.borrow_mut().wake);
        for w in wake {
            w.wake();
        }
        Ok(handled)
    }

    /// Submits what is queued and runs the kernel's pending completion work, without
    /// waiting.
    fn enter(&self) -> io::Result<()> {
        let mut uring = self.uring.borrow_mut();
        self.inner.borrow_mut().unsubmitted = 0;
        let to_submit = uring.submission().len() as u32;
        let r = match self.registered {
            // SAFETY: io_uring_enter on this thread's registered ring index, with no
            // argument pointer; GETEVENTS with no minimum runs the pending completion
            // work and returns without waiting.
            Some(index) => match unsafe {
                libc::syscall(
                    libc::SYS_io_uring_enter,
                    index,
                    to_submit,
                    0u32,
                    IORING_ENTER_GETEVENTS | IORING_ENTER_REGISTERED_RING,
                    std::ptr::null::<libc::c_void>(),
                    0usize,
                )
            } {
                n if n >= 0 => Ok(n as usize),
                _ => Err(io::Error::last_os_error()),
            },
            // SAFETY: as above, through the ring's descriptor.
            None => unsafe {
                uring.submitter().enter::<libc::sigset_t>(
                    to_submit,
                    0,
                    IORING_ENTER_GETEVENTS,
                    None,
                )
            },
        };
        match r {
            Ok(_) => Ok(()),
            // Completions must be reaped first; the caller does.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EBUSY | libc::EAGAIN | libc::EINTR)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn complete(&self, cqe: cqueue::Entry) {
        let (op, index, gen) = split_user_data(cqe.user_data());
        let res = cqe.result();
        let flags = cqe.flags();
        match op {
            OP_RECV => self.complete_recv(index, gen, res, flags),
            OP_SEND => self.complete_send(index, gen, res),
            _ => {}
        }
    }

    fn complete_recv(&self, index: u32, gen: u32, res: i32, flags: u32) {
        let bid = cqueue::buffer_select(flags);
        let more = cqueue::more(flags);
        let mut pause = false;
        let mut spilled = false;
        let mut inner = self.inner.borrow_mut();
        let Some(slot) = inner.slots.get_mut(index as usize) else {
            return;
        };
        if let Some(bid) = bid {
            self.buffers.borrow_mut().available -= 1;
            if slot.gen != gen || slot.state != SlotState::Open || res <= 0 {
                // Nobody will read it: straight back to the ring.
                let mut buffers = self.buffers.borrow_mut();
                buffers.push(bid);
                buffers.publish();
            } else {
                slot.input.push_back(Chunk {
                    bid,
                    start: 0,
                    end: res as u32,
                });
                if slot.paused || slot.input.len() >= self.buffers.borrow().held_limit {
                    // A connection that does not read its bytes must not hold the
                    // shard's buffers: they move to its own memory, and its `recv`
                    // stops until it has read them.
                    spilled = self.spill(slot);
                    if more && !slot.paused {
                        slot.paused = true;
                        pause = true;
                    }
                }
            }
        }
        if slot.gen != gen {
            return;
        }
        if !more {
            slot.recv_armed = false;
        }
        match res {
            0 => slot.eof = true,
            r if r == -libc::ENOBUFS => {
                self.stats
                    .buffer_exhaustions
                    .set(self.stats.buffer_exhaustions.get() + 1);
                if slot.state == SlotState::Open && !slot.recv_armed && !slot.starved {
                    slot.starved = true;
                    inner.starved.push(index);
                }
            }
            r if r < 0 && r != -libc::ECANCELED => slot.error = Some(-r),
            _ => {}
        }
        let slot = &mut inner.slots[index as usize];
        if let Some(w) = slot.reader.take() {
            inner.wake.push(w);
        }
        let closing = inner.slots[index as usize].state == SlotState::Closing;
        let starved = spilled && !inner.starved.is_empty();
        drop(inner);
        if starved {
            self.feed_starved();
        }
        if pause {
            self.push(
                opcode::AsyncCancel::new(user_data(OP_RECV, index, gen))
                    .build()
                    .user_data(user_data(OP_CANCEL, index, gen)),
            );
        }
        if closing {
            self.try_release(index);
        }
    }

    fn complete_send(&self, index: u32, gen: u32, res: i32) {
        let mut inner = self.inner.borrow_mut();
        let Some(slot) = inner.slots.get_mut(index as usize) else {
            return;
        };
        if slot.gen != gen {
            return;
        }
        let mut again = None;
        if res < 0 {
            slot.send_error = Some(-res);
            slot.sending = false;
            slot.inflight.clear();
            slot.out.clear();
        } else {
            slot.sent += res as usize;
            if slot.sent < slot.inflight.len() && res > 0 && !slot.send_cancelled {
                // A short send: the rest goes next, before anything queued behind it.
                self.stats.short_sends.set(self.stats.short_sends.get() + 1);
                again = Some(send_entry(slot, ConnId { index, gen }));
            } else {
                if res == 0 && slot.sent < slot.inflight.len() {
                    slot.send_error = Some(libc::EPIPE);
                    slot.out.clear();
                }
                slot.sending = false;
                slot.inflight.clear();
                slot.sent = 0;
            }
        }
        let next =
            again.is_none() && !slot.sending && !slot.out.is_empty() && slot.send_error.is_none();
        if let Some(w) = slot.writer.take() {
            inner.wake.push(w);
        }
        let slot = &mut inner.slots[index as usize];
        if slot.send_error.is_some() {
            if let Some(w) = slot.reader.take() {
                inner.wake.push(w);
            }
        }
        let closing = inner.slots[index as usize].state == SlotState::Closing;
        drop(inner);
        if let Some(entry) = again {
            self.push(entry);
        } else if next {
            self.start_send(ConnId { index, gen });
        }
        if closing {
            self.try_release(index);
        }
    }

    /// Cancels the sends of connections closed more than [`CLOSE_LINGER`] ago.
    fn reap_lingering(&self, now: Instant) {
        let mut cancel = Vec::new();
        {
            let mut inner = self.inner.borrow_mut();
            let Inner { slots, closing, .. } = &mut *inner;
            closing.retain(|&index| {
                let slot = &mut slots[index as usize];
                if slot.state != SlotState::Closing {
                    return false;
                }
                if slot.sending
                    && !slot.send_cancelled
                    && slot
                        .closing_since
                        .is_some_and(|t| now.saturating_duration_since(t) >= CLOSE_LINGER)
                {
                    slot.send_cancelled = true;
                    slot.out.clear();
                    cancel.push(ConnId {
                        index,
                        gen: slot.gen,
                    });
                }
                true
            });
        }
        for id in cancel {
            self.stats
                .linger_cancels
                .set(self.stats.linger_cancels.get() + 1);
            self.push(
                opcode::AsyncCancel::new(user_data(OP_SEND, id.index, id.gen))
                    .build()
                    .user_data(user_data(OP_CANCEL, id.index, id.gen)),
            );
        }
    }

    /// Drives the ring until `stop` resolves: one turn per pass of the executor while
    /// there is traffic, a sleep on the ring's descriptor when there is none.
    pub async fn drive(self: Rc<Self>) {
        let mut last_linger_check = coarse_now();
        loop {
            let handled = match self.turn() {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!("network ring: {e}");
                    glommio::timer::sleep(Duration::from_millis(1)).await;
                    0
                }
            };
            let now = coarse_now();
            if now.saturating_duration_since(last_linger_check) >= LINGER_CHECK {
                last_linger_check = now;
                self.reap_lingering(now);
            }
            if handled > 0 || self.inner.borrow().unsubmitted > 0 {
                // Let the woken connections run, then come back after them.
                futures_lite::future::yield_now().await;
                continue;
            }
            // Nothing this pass: sleep until the kernel has something for us. The
            // ring's own descriptor is readable while completions wait in its queue;
            // completion work the kernel has queued and not run yet (the task-run
            // flag) runs at the shard's next syscall, or is run by a turn here.
            let pending = {
                let mut uring = self.uring.borrow_mut();
                uring.submission().taskrun() || !uring.completion().is_empty()
            };
            if pending || self.inner.borrow().unsubmitted > 0 {
                continue;
            }
            let fd = self.uring.borrow().as_raw_fd();
            let wait_for_events = async {
                let _ = glommio::io::readable(fd).await;
            };
            // The linger check's tick, only while a closed connection still sends: a
            // timer armed and removed around every sleep costs two clock reads and the
            // reactor's timer-map work, each time a busy shard runs out of work.
            let lingering = !self.inner.borrow().closing.is_empty();
            let tick = async {
                if lingering {
                    glommio::timer::sleep(LINGER_CHECK).await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            let submitted = std::future::poll_fn(|cx| {
                let mut inner = self.inner.borrow_mut();
                if inner.unsubmitted > 0 || (!lingering && !inner.closing.is_empty()) {
                    inner.driver = None;
                    return Poll::Ready(());
                }
                inner.driver = Some(cx.waker().clone());
                Poll::Pending
            });
            futures_lite::future::or(futures_lite::future::or(wait_for_events, submitted), tick)
                .await;
            self.inner.borrow_mut().driver = None;
        }
    }
}

fn send_entry(slot: &Slot, id: ConnId) -> squeue::Entry {
    let rest = &slot.inflight[slot.sent..];
    opcode::Send::new(types::Fd(slot.fd), rest.as_ptr(), rest.len() as u32)
        .flags(libc::MSG_NOSIGNAL)
        .build()
        .user_data(user_data(OP_SEND, id.index, id.gen))
}

/// A connection served through the shard's [`NetRing`]. Dropping it closes the
/// connection (after its queued bytes leave, see the module docs).
pub struct RingConn {
    ring: Rc<NetRing>,
    id: ConnId,
}

impl RingConn {
    /// Arrived bytes into `dst`; `Ok(0)` at the end of the stream.
    pub fn poll_read(
        &self,
        cx: &mut Context<'_>,
        dst: &mut [MaybeUninit<u8>],
    ) -> Poll<io::Result<usize>> {
        self.ring.read(self.id, cx, dst)
    }

    /// Queues `bytes`; waits only while the connection has a lot unsent.
    pub fn poll_write(&self, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        self.ring.write(self.id, cx, bytes)
    }

    /// Queues `bytes` behind what is queued, whatever is unsent (the caller waits for
    /// room with [`Self::poll_room`] first).
    pub fn queue(&self, bytes: &[u8]) {
        self.ring.queue(self.id, bytes);
    }

    /// Ready while the connection's unsent bytes are under the high-water mark.
    pub fn poll_room(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.ring.poll_room(self.id, cx)
    }

    /// Bytes queued that have not left yet.
    pub fn unsent(&self) -> usize {
        self.ring.unsent(self.id)
    }

    pub fn fd(&self) -> RawFd {
        self.ring.inner.borrow().slots[self.id.index as usize].fd
    }
}

impl AsRawFd for RingConn {
    fn as_raw_fd(&self) -> RawFd {
        self.fd()
    }
}

impl Drop for RingConn {
    fn drop(&mut self) {
        self.ring.close(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_round_trips() {
        for (op, index, gen) in [
            (OP_RECV, 0, 0),
            (OP_SEND, 12345, 7),
            (OP_CANCEL, (1 << 30) - 1, u32::MAX),
        ] {
            assert_eq!(split_user_data(user_data(op, index, gen)), (op, index, gen));
        }
    }
}
