//! Listening sockets: the traffic listener every shard binds with SO_REUSEPORT (the
//! kernel spreads connections over the shards, and over a second process during a
//! rolling restart), the admin listener that only one process may hold, the check that
//! no other process already serves the traffic address, and the accept queue emptied
//! before a listener closes, so that no connection the kernel accepted is reset.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd, RawFd};

use glommio::net::{TcpListener, TcpStream};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// Whether other sockets may listen on the same address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// SO_REUSEPORT: the shards of this process, and during a takeover those of the
    /// process being replaced (the kernel lets only the same user join).
    ReusePort,
    /// Nobody else: a second process gets "address in use".
    Exclusive,
}

/// Connections the kernel queues before `accept` (capped by `net.core.somaxconn`).
const BACKLOG: i32 = 4096;

/// A bound, listening socket served by the calling executor.
pub struct Listener {
    inner: TcpListener,
    fd: RawFd,
}

fn socket_for(addr: SocketAddr, sharing: Sharing) -> io::Result<Socket> {
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let sk = Socket::new(domain, Type::STREAM.cloexec(), Some(Protocol::TCP))?;
    // Rebinding while old connections sit in TIME_WAIT is fine; on Linux this never
    // lets two sockets listen on one address.
    sk.set_reuse_address(true)?;
    sk.set_reuse_port(sharing == Sharing::ReusePort)?;
    sk.bind(&SockAddr::from(addr))?;
    Ok(sk)
}

/// Binds and listens on `addr`. Must run on a glommio executor, which serves it.
pub fn bind(addr: SocketAddr, sharing: Sharing) -> io::Result<Listener> {
    let sk = socket_for(addr, sharing)?;
    sk.listen(BACKLOG)?;
    // Non-blocking: the accept loop waits for readiness through the ring and then
    // accepts with accept4, which must return at once when another shard (or the
    // other process of a takeover) took the connection first.
    sk.set_nonblocking(true)?;
    let fd = sk.into_raw_fd();
    // SAFETY: `fd` is a bound, listening TCP socket that nothing else owns; the
    // glommio listener owns and closes it from now on.
    let inner = unsafe { TcpListener::from_raw_fd(fd) };
    Ok(Listener { inner, fd })
}

/// Fails with `AddrInUse` when some socket already listens on `addr` (whoever it
/// belongs to): binding without SO_REUSEPORT is refused then.
pub fn check_free(addr: SocketAddr) -> io::Result<()> {
    socket_for(addr, Sharing::Exclusive).map(drop)
}

impl Listener {
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr().map_err(io::Error::from)
    }

    /// The next connection, as a bare descriptor (the server picks its transport). It
    /// waits for one through a poll of the ring and then accepts without blocking: a
    /// drain drops this future, and dropping a poll loses nothing (an io_uring accept in
    /// flight could complete as it is cancelled, and its connection would be lost), so
    /// what arrived stays queued for [`Self::accept_pending`].
    pub async fn accept_fd(&self) -> io::Result<OwnedFd> {
        loop {
            if let Some(got) = self.try_accept_fd() {
                return got;
            }
            self.inner.readable().await.map_err(io::Error::from)?;
        }
    }

    /// A connection from the accept queue, or `None` when it is empty.
    fn try_accept_fd(&self) -> Option<io::Result<OwnedFd>> {
        // SAFETY: `self.fd` is this listener's open socket; accept4 writes no address
        // (null pointers) and returns a fresh descriptor or -1 (EAGAIN: the listener
        // is non-blocking). The connection is non-blocking too, as glommio's are.
        let fd = unsafe {
            libc::accept4(
                self.fd,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        };
        if fd >= 0 {
            // SAFETY: a connected TCP socket just returned by accept4, owned by nobody
            // else.
            return Some(Ok(unsafe { OwnedFd::from_raw_fd(fd) }));
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::WouldBlock => None,
            // A connection reset while queued, or a signal: take the next one.
            _ if matches!(e.raw_os_error(), Some(libc::ECONNABORTED | libc::EINTR)) => {
                self.try_accept_fd()
            }
            _ => Some(Err(e)),
        }
    }

    /// Stops new connections without resetting those on their way: from now on the
    /// socket drops every SYN it receives (a socket filter), while handshakes already
    /// under way complete into the accept queue, for [`Self::accept_pending`]. A client
    /// whose SYN was dropped sends it again after a second, and then reaches a listener
    /// still open (the other process's, in a takeover) or is refused: either way it has
    /// sent no request that goes unanswered. Closing at once instead resets whatever
    /// completes between the last accept and the close, request included.
    pub fn refuse_new(&self) -> io::Result<()> {
        // Socket filters on TCP see the packet from its TCP header: byte 13 holds the
        // flags. `ret 0` drops, `ret 0xffff_ffff` keeps the whole packet.
        let mut program = [
            bpf(libc::BPF_LD | libc::BPF_B | libc::BPF_ABS, 0, 0, 13),
            bpf(libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K, 0, 1, TCP_SYN),
            bpf(libc::BPF_RET | libc::BPF_K, 0, 0, 0),
            bpf(libc::BPF_RET | libc::BPF_K, 0, 0, u32::MAX),
        ];
        let fprog = libc::sock_fprog {
            len: program.len() as u16,
            filter: program.as_mut_ptr(),
        };
        // SAFETY: a valid socket, and a filter program that outlives the call (the
        // kernel copies it).
        let rc = unsafe {
            libc::setsockopt(
                self.fd,
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                (&fprog as *const libc::sock_fprog).cast(),
                std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Takes every connection waiting in the accept queue now, without waiting for
    /// more: called as the listener is about to close, so that the connections the
    /// kernel has already completed are served instead of reset.
    pub fn accept_pending(&self) -> Vec<OwnedFd> {
        let mut out = Vec::new();
        while let Some(Ok(fd)) = self.try_accept_fd() {
            out.push(fd);
        }
        out
    }
}

/// A glommio stream that owns `fd`, a connected non-blocking TCP socket.
pub fn stream_of(fd: OwnedFd) -> TcpStream {
    // SAFETY: the descriptor is a connected TCP socket whose ownership moves to the
    // stream, which closes it.
    unsafe { TcpStream::from_raw_fd(fd.into_raw_fd()) }
}

/// The SYN bit of the TCP flags byte.
const TCP_SYN: u32 = 0x02;

fn bpf(code: u32, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}
