//! One keep-alive HTTP/1.1 connection: non-blocking connect, writing a pre-serialised
//! request, and reading one response into a reused buffer.

use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use crate::control::queue::Pending;
use crate::http::response::{ParseError, Response, ResponseParser, MAX_BODY, MAX_HEAD};

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not connected; reconnect at this time (ns since start).
    Down {
        retry_at: u64,
    },
    Connecting,
    /// Connected, no request in flight.
    Idle,
    /// A request is being written or its response read.
    Busy,
}

/// The request a connection is carrying.
#[derive(Debug, Clone, Copy)]
pub struct InFlight {
    pub p: Pending,
    /// When its last attempt was written (ns since start).
    pub sent_at: u64,
    /// Bytes of the request written so far.
    pub written: usize,
    /// When it times out (ns since start).
    pub timeout_at: u64,
}

/// What reading from a busy connection gave.
#[derive(Debug)]
pub enum Received {
    /// The response is not complete yet.
    More,
    /// A complete response.
    Done(Response),
    /// The connection failed or closed before a complete response.
    Failed,
    /// The response is malformed.
    Bad,
}

const INITIAL_BUF: usize = 16 * 1024;

/// One connection to one target.
pub struct Conn {
    pub target: usize,
    pub state: State,
    pub stream: Option<TcpStream>,
    pub req: Option<InFlight>,
    /// Consecutive failed connection attempts.
    pub failures: u32,
    buf: Vec<u8>,
    filled: usize,
    parser: ResponseParser,
}

impl Conn {
    /// A connection to `target`, not yet connected.
    pub fn new(target: usize) -> Conn {
        Conn {
            target,
            state: State::Down { retry_at: 0 },
            stream: None,
            req: None,
            failures: 0,
            buf: vec![0; INITIAL_BUF],
            filled: 0,
            parser: ResponseParser::default(),
        }
    }

    /// Starts a non-blocking connect and registers the socket for reads and writes.
    pub fn connect(
        &mut self,
        addr: SocketAddr,
        registry: &Registry,
        token: Token,
    ) -> io::Result<()> {
        let mut s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        registry.register(&mut s, token, Interest::READABLE | Interest::WRITABLE)?;
        self.stream = Some(s);
        self.state = State::Connecting;
        self.reset_response();
        Ok(())
    }

    /// Whether a pending connect has completed: `Ok(true)` connected, `Ok(false)` not yet.
    pub fn check_connected(&mut self) -> io::Result<bool> {
        let Some(s) = self.stream.as_ref() else {
            return Err(ErrorKind::NotConnected.into());
        };
        if let Some(e) = s.take_error()? {
            return Err(e);
        }
        match s.peer_addr() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Closes the socket (the request in flight, if any, is left in `req`).
    pub fn close(&mut self, registry: &Registry, retry_at: u64) {
        if let Some(mut s) = self.stream.take() {
            let _ = registry.deregister(&mut s);
        }
        self.state = State::Down { retry_at };
        self.reset_response();
    }

    /// Forgets any partial response.
    pub fn reset_response(&mut self) {
        self.filled = 0;
        self.parser.reset();
    }

    /// Writes as much of `bytes` (the in-flight request) as the socket takes.
    /// `Ok(true)` when all of it is written.
    pub fn write_request(&mut self, bytes: &[u8]) -> io::Result<bool> {
        let (Some(s), Some(req)) = (self.stream.as_mut(), self.req.as_mut()) else {
            return Err(ErrorKind::NotConnected.into());
        };
        while req.written < bytes.len() {
            match s.write(&bytes[req.written..]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => req.written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Reads what has arrived and parses it. Stops reading as soon as the response is
    /// complete (one request per connection at a time: nothing else can follow).
    pub fn read_response(&mut self) -> Received {
        let Some(s) = self.stream.as_mut() else {
            return Received::Failed;
        };
        loop {
            if self.filled == self.buf.len() {
                if self.buf.len() >= MAX_HEAD + MAX_BODY + 4096 {
                    return Received::Bad;
                }
                self.buf.resize(self.buf.len() * 2, 0);
            }
            match s.read(&mut self.buf[self.filled..]) {
                Ok(0) => {
                    return match self.parser.finish_eof(&self.buf[..self.filled]) {
                        Ok(mut r) => {
                            r.close = true;
                            Received::Done(r)
                        }
                        Err(ParseError::Truncated) => Received::Failed,
                        Err(_) => Received::Bad,
                    };
                }
                Ok(n) => {
                    self.filled += n;
                    match self.parser.parse(&self.buf[..self.filled]) {
                        Ok(Some(mut r)) if r.len < self.filled => {
                            // Bytes after the response that nobody asked for: do not
                            // reuse this connection.
                            r.close = true;
                            return Received::Done(r);
                        }
                        Ok(Some(r)) => return Received::Done(r),
                        Ok(None) => {}
                        Err(_) => return Received::Bad,
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Received::More,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Received::Failed,
            }
        }
    }

    /// Reads from an idle connection: `true` if the server closed it (or sent
    /// something unsolicited), so that it must be replaced.
    pub fn idle_read_closes(&mut self) -> bool {
        let Some(s) = self.stream.as_mut() else {
            return true;
        };
        let mut scratch = [0u8; 256];
        loop {
            match s.read(&mut scratch) {
                Ok(_) => return true,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return true,
            }
        }
    }

    /// The body of the response just completed.
    pub fn body(&self, resp: &Response) -> &[u8] {
        self.parser.body(&self.buf[..self.filled], resp)
    }
}
