//! Connection balancing across shards.
//!
//! SO_REUSEPORT picks a shard's listener by a hash of the connection's 4-tuple, so
//! connections spread only statistically evenly: 64 connections over 2 shards landed
//! 22/43 in one of five wrk runs, and a closed-loop client then sends twice as many
//! requests to one core as to the other. The balancer evens that out when a connection
//! is accepted, never per request:
//!
//! - every shard counts the connections it serves in its own cache line (`load`);
//! - a shard that accepts a connection while it serves at least two more than the
//!   least-loaded shard hands it to that shard instead of serving it, so no shard ends
//!   up more than two connections above another;
//! - the hand-off moves only the file descriptor's number through the receiving shard's
//!   inbox, a `SOCK_SEQPACKET` socket pair that the receiving shard reads like any
//!   other socket. The request path never sees any of it: once handed over, a
//!   connection lives and dies on one shard.
//!
//! The counters are read and written only when connections open and close.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_lite::AsyncReadExt;
use glommio::net::UnixStream;
use tracing::{debug, warn};

use crate::net::{accept_until_drained, Conns};

/// One shard's connection count on its own cache line.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Load(AtomicUsize);

/// A connection may be handed off when its shard serves this many more connections than
/// the least-loaded shard.
const SLACK: usize = 2;

/// The process-wide balancer: every shard's load and the sending end of its inbox.
#[derive(Debug)]
pub struct Balancer {
    enabled: bool,
    load: Box<[Load]>,
    inboxes: Box<[OwnedFd]>,
}

/// A shard's receiving end of its inbox, read by [`receive`].
#[derive(Debug)]
pub struct Inbox(OwnedFd);

impl Balancer {
    /// A balancer for `shards` shards and each shard's inbox. With `enabled` false (or a
    /// single shard) every shard serves what it accepts and only the counts are kept.
    pub fn new(shards: usize, enabled: bool) -> std::io::Result<(Balancer, Vec<Inbox>)> {
        let mut senders = Vec::with_capacity(shards);
        let mut inboxes = Vec::with_capacity(shards);
        for _ in 0..shards {
            let (tx, rx) = seqpacket_pair()?;
            senders.push(tx);
            inboxes.push(Inbox(rx));
        }
        let balancer = Balancer {
            enabled: enabled && shards > 1,
            load: (0..shards).map(|_| Load::default()).collect(),
            inboxes: senders.into_boxed_slice(),
        };
        Ok((balancer, inboxes))
    }

    /// Connections shard `shard` serves now (handed-in ones included).
    pub fn load(&self, shard: usize) -> usize {
        self.load[shard].0.load(Ordering::Relaxed)
    }

    /// Where a connection that shard `me` accepted should be served: `me`, unless it
    /// serves `SLACK` or more connections above the least-loaded shard, which is then
    /// returned. The chosen shard's count includes the connection from now on; call
    /// [`Balancer::closed`] when it ends.
    pub fn place(&self, me: usize) -> usize {
        let mine = self.load(me);
        let mut target = me;
        if self.enabled {
            let (least, count) = (0..self.load.len())
                .map(|s| (s, self.load(s)))
                .min_by_key(|&(s, n)| (n, s != me))
                .unwrap_or((me, mine));
            if mine >= count + SLACK {
                target = least;
            }
        }
        self.load[target].0.fetch_add(1, Ordering::Relaxed);
        target
    }

    /// A connection counted on `shard` has ended.
    pub fn closed(&self, shard: usize) {
        self.load[shard].0.fetch_sub(1, Ordering::Relaxed);
    }

    /// A connection counted on `me` without placing it (one taken from the accept queue
    /// as the listener closes).
    pub fn hold(&self, me: usize) {
        self.load[me].0.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection placed on `to` stays on `me` after all (its hand-off failed).
    pub fn keep(&self, me: usize, to: usize) {
        self.closed(to);
        self.load[me].0.fetch_add(1, Ordering::Relaxed);
    }

    /// Hands the connection `fd` to shard `to`'s inbox. On failure (the inbox is full
    /// or closed) it comes back to be served where it was accepted.
    pub fn hand_off(&self, to: usize, fd: OwnedFd) -> Result<(), OwnedFd> {
        let msg = fd.as_raw_fd().to_ne_bytes();
        // SAFETY: a valid socket and a 4-byte buffer that outlives the call.
        let sent = unsafe {
            libc::send(
                self.inboxes[to].as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if sent != msg.len() as isize {
            return Err(fd);
        }
        // The receiving shard owns the descriptor now (one process, one descriptor table).
        let _ = fd.into_raw_fd();
        Ok(())
    }
}

/// Reads connections handed to this shard and passes each to `serve` until the inbox
/// closes or `conns` drains. Descriptors still queued when it ends are closed.
pub async fn receive(inbox: Inbox, shard: usize, conns: &Conns, serve: impl FnMut(OwnedFd)) {
    let raw = inbox.0.into_raw_fd();
    // SAFETY: the inbox's descriptor moves into the glommio socket, which closes it.
    let mut socket = unsafe { UnixStream::from_raw_fd(raw) };
    let next = async || -> Option<io::Result<OwnedFd>> {
        let mut buf = [0u8; 4];
        loop {
            match socket.read(&mut buf).await {
                Ok(4) => {
                    let raw = RawFd::from_ne_bytes(buf);
                    // SAFETY: the sender handed this descriptor over and forgot it.
                    return Some(Ok(unsafe { OwnedFd::from_raw_fd(raw) }));
                }
                Ok(0) => return None,
                Ok(n) => warn!(shard, bytes = n, "Short message in the connection inbox"),
                Err(e) => return Some(Err(e)),
            }
        }
    };
    let failed = |e: io::Error| {
        warn!(shard, error = %e, "Connection inbox failed");
        false
    };
    let mut serve = serve;
    accept_until_drained(conns, next, &mut serve, failed).await;
    // Connections handed over just before the drain were accepted by the kernel and
    // may carry a request: they are served (their answers close them), not reset.
    for stream in take_queued(raw) {
        serve(stream);
    }
    drop(socket);
    debug!(shard, "Connection inbox closed");
}

/// The descriptors still waiting in an inbox, taken without waiting for more.
fn take_queued(fd: RawFd) -> Vec<OwnedFd> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4];
    loop {
        // SAFETY: a valid socket and a 4-byte buffer.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        if n != 4 {
            return out;
        }
        // SAFETY: the sender handed this descriptor over and forgot it.
        out.push(unsafe { OwnedFd::from_raw_fd(RawFd::from_ne_bytes(buf)) });
    }
}

fn seqpacket_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors socketpair writes.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: socketpair succeeded, so both are fresh descriptors owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_that_gets_every_connection_keeps_about_half() {
        let (b, _inboxes) = Balancer::new(2, true).unwrap();
        let placed: Vec<usize> = (0..64).map(|_| b.place(0)).collect();
        assert_eq!(b.load(0) + b.load(1), 64);
        assert!(
            b.load(0).abs_diff(b.load(1)) <= SLACK,
            "{} {}",
            b.load(0),
            b.load(1)
        );
        // A shard serves its own connections until it is SLACK ahead.
        assert_eq!(&placed[..3], &[0, 0, 1]);
    }

    #[test]
    fn disabled_or_single_shard_never_moves_a_connection() {
        let (b, _inboxes) = Balancer::new(2, false).unwrap();
        assert!((0..10).all(|_| b.place(1) == 1));
        assert_eq!((b.load(0), b.load(1)), (0, 10));
        let (b, _inboxes) = Balancer::new(1, true).unwrap();
        assert!((0..10).all(|_| b.place(0) == 0));
    }

    #[test]
    fn the_least_loaded_shard_gets_the_connection_and_closing_uncounts_it() {
        let (b, _inboxes) = Balancer::new(3, true).unwrap();
        for _ in 0..4 {
            b.place(0);
        }
        assert_eq!((b.load(0), b.load(1), b.load(2)), (2, 1, 1));
        b.closed(1);
        assert_eq!(b.place(0), 1, "shard 1 is now the least loaded");
        b.keep(0, 1);
        assert_eq!((b.load(0), b.load(1), b.load(2)), (3, 0, 1));
    }
}
