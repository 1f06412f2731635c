//! Connections: everything between a socket and an HTTP handler, shared by the
//! shards' traffic listeners and the control thread's admin listener. Runtime code
//! (glommio, hyper); it knows nothing of bids.
//!
//! - [`serve`]: binding, the accept loop (until the drain), hyper's settings, one
//!   connection served with keep-alive.
//! - [`listen`]: listening sockets, shared (traffic) or exclusive (admin), and the
//!   accept queue emptied before one closes.
//! - [`io`]: the glommio/hyper I/O adapter, which keeps each connection's timeouts.
//! - [`conns`]: a thread's registry of open connections: the timeout sweeper, the drain.
//! - [`outbox`]: responses written during one pass of the executor, sent together after it.
//! - [`clock`]: the coarse clock the timeouts read.

pub mod clock;
pub mod conns;
pub mod io;
pub mod listen;
pub mod outbox;
pub mod ring;
pub mod serve;

pub use conns::Conns;
pub use io::Transport;
pub use listen::{Listener, Sharing};
pub use serve::{
    accept_fds, accept_tcp, accept_until_drained, http1_builder, serve_connection, ConnLimits,
};
