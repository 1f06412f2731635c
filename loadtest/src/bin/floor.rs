//! `shardbid-floor`: the floor of the runtime itself.
//!
//! A minimal HTTP/1.1 keep-alive responder on glommio with shardbid's shard layout (one pinned
//! executor per CPU, every shard binding the same address with SO_REUSEPORT) and none of its
//! work: it finds the end of each request header, skips `Content-Length` bytes of body and
//! answers every request with the same fixed, bid-sized JSON response that the nginx reference
//! (`loadtest/nginx-static.conf`) returns. Whatever CPU time it spends per request is what the
//! runtime and the kernel cost before shardbid decodes a single byte.
//!
//! With `--http hyper` the same answer goes through hyper on shardbid's own connection path
//! (`shardbid::net::serve_connection`: its I/O adapter, timeouts, outbox and hyper settings),
//! with the body read the way the bid handler reads it: what hyper costs per request is the
//! difference between the two modes.
//!
//! Prints `listening on ADDR` to stderr once every shard has bound its listener; exits with
//! status 0 on SIGTERM or SIGINT.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{anyhow, bail};
use clap::Parser;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use std::future::poll_fn;
use std::mem::MaybeUninit;

use bytes::Bytes;
use glommio::net::TcpStream;
use glommio::{CpuSet, LocalExecutorBuilder, Placement};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};
use hyper::service::service_fn;
use hyper::{Request, StatusCode};
use shardbid::http;
use shardbid::net::clock::set_coarse_now;
use shardbid::net::conns::SWEEP_EVERY;
use shardbid::net::listen::{self, Sharing};
use shardbid::net::ring::{NetRing, RingConfig, RingConn};
use shardbid::net::{self, ConnLimits, Conns, Transport};
use shardbid::shard::CONTROL_POLL;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// The body nginx's reference configuration returns: a one-bid BidResponse of typical size.
const BODY: &str = r#"{"id":"80ce30c53c16e6ede735f123ef6e32361bfc7b22","seatbid":[{"bid":[{"id":"1","impid":"1","price":0.0360,"adm":"<a/>","crid":"c1"}]}],"cur":"USD"}"#;

/// Per-connection read buffer, allocated once per connection. A request header must fit in it;
/// bodies of any length are skipped as they stream through.
const READ_BUFFER: usize = 32 * 1024;

/// Command line of `shardbid-floor`.
#[derive(Parser, Debug)]
#[command(
    name = "shardbid-floor",
    about = "Minimal glommio HTTP/1.1 responder: the runtime floor shardbid is compared against"
)]
struct Args {
    /// Address every shard binds (SO_REUSEPORT).
    #[arg(long, default_value = "127.0.0.1:18083")]
    listen: SocketAddr,
    /// Number of shards; default one per online CPU. Shard i is pinned to the i-th online CPU.
    #[arg(long)]
    shards: Option<usize>,
    /// io_uring buffer memory per shard in bytes (locked memory: keep it small).
    #[arg(long, default_value_t = 1 << 20)]
    io_memory: usize,
    /// io_uring submission queue depth per shard.
    #[arg(long, default_value_t = 128)]
    ring_depth: usize,
    /// How connections are read and written: `ring` (shardbid's network ring:
    /// multishot receive into provided buffers, sends through the ring) or `poll`
    /// (glommio's streams: readiness through its ring, then `recv`/`send`).
    #[arg(long, value_enum, default_value_t = IoMode::Ring)]
    io: IoMode,
    /// Who reads requests and writes the answer: `scan` (this file's request scanner and
    /// one write of the fixed bytes) or `hyper` (hyper with shardbid's connection path and
    /// settings, answering the same body).
    #[arg(long, value_enum, default_value_t = HttpMode::Scan)]
    http: HttpMode,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum HttpMode {
    Scan,
    Hyper,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum IoMode {
    Ring,
    Poll,
}

/// Why a connection is closed instead of answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BadRequest {
    /// A `Content-Length` value that is not a plain decimal number, or two that disagree.
    ContentLength,
    /// `Transfer-Encoding` is present: this responder only frames bodies by `Content-Length`.
    TransferEncoding,
}

/// What one [`RequestScanner::scan`] call found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Scanned {
    /// Bytes of the input that are done with (complete requests and skipped body bytes). The
    /// rest is the start of a header that is not complete yet and must be offered again.
    consumed: usize,
    /// Requests whose header and body have fully arrived, each owed one response.
    requests: usize,
}

/// Finds request boundaries in a stream of HTTP/1.1 bytes without building anything.
///
/// State carries across reads: body bytes still to skip, and how far the current incomplete
/// header has already been searched, so a header that trickles in is never rescanned.
#[derive(Debug, Default)]
struct RequestScanner {
    /// Body bytes of the current request not seen yet.
    body_left: u64,
    /// A header is complete and its request is owed a response once the body is skipped.
    awaiting_body: bool,
    /// Bytes of the pending (incomplete) header already searched for its end.
    searched: usize,
}

impl RequestScanner {
    /// Scans `input`, which starts where the previous call's `consumed` ended.
    fn scan(&mut self, input: &[u8]) -> Result<Scanned, BadRequest> {
        let mut pos = 0;
        let mut requests = 0;
        loop {
            if self.body_left > 0 {
                let available = input.len() - pos;
                let skip = usize::try_from(self.body_left).map_or(available, |b| b.min(available));
                pos += skip;
                self.body_left -= skip as u64;
                if self.body_left > 0 {
                    break;
                }
            }
            if self.awaiting_body {
                self.awaiting_body = false;
                requests += 1;
            }
            let pending = &input[pos..];
            let Some(end) = header_end(pending, self.searched.saturating_sub(3)) else {
                self.searched = pending.len();
                break;
            };
            self.searched = 0;
            self.body_left = content_length(&pending[..end])?;
            self.awaiting_body = true;
            pos += end;
        }
        Ok(Scanned {
            consumed: pos,
            requests,
        })
    }
}

/// Length of the header block (up to and including the blank line), searching from `from`.
fn header_end(input: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(offset) = input.get(i..)?.iter().position(|&b| b == b'\n') {
        let newline = i + offset;
        if newline >= 3 && &input[newline - 3..newline] == b"\r\n\r" {
            return Some(newline + 1);
        }
        i = newline + 1;
    }
    None
}

/// The body length a header block announces: 0 without `Content-Length`.
fn content_length(header: &[u8]) -> Result<u64, BadRequest> {
    let mut length = None;
    for line in header.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Err(BadRequest::TransferEncoding);
        }
        if !name.eq_ignore_ascii_case(b"content-length") {
            continue;
        }
        let value = parse_decimal(value.trim_ascii()).ok_or(BadRequest::ContentLength)?;
        if length.is_some_and(|seen| seen != value) {
            return Err(BadRequest::ContentLength);
        }
        length = Some(value);
    }
    Ok(length.unwrap_or(0))
}

/// A non-empty run of ASCII digits that fits in a `u64`.
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &b| {
        let digit = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        acc.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// The complete fixed response, header and body.
fn fixed_response() -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{BODY}",
        BODY.len()
    )
    .into_bytes()
}

/// A connection, read and written through glommio's stream or the shard's network ring.
enum Conn {
    Stream(TcpStream),
    Ring(RingConn),
}

impl Conn {
    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Stream(stream) => stream.read(buf).await,
            Conn::Ring(conn) => {
                // SAFETY: the ring only writes initialised bytes into the buffer, so it
                // stays initialised when seen as possibly uninitialised memory.
                let uninit = unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
                poll_fn(|cx| conn.poll_read(cx, uninit)).await
            }
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Stream(stream) => stream.write_all(bytes).await,
            Conn::Ring(conn) => poll_fn(|cx| conn.poll_write(cx, bytes)).await.map(drop),
        }
    }
}

/// Answers every request on one connection until EOF, an I/O error or a malformed request.
async fn serve(mut conn: Conn, response: &'static [u8]) {
    let mut buf = vec![0u8; READ_BUFFER];
    let mut out = Vec::new();
    let mut scanner = RequestScanner::default();
    let (mut start, mut end) = (0, 0);
    loop {
        if end == buf.len() {
            if start == 0 {
                return; // a header larger than the whole buffer
            }
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
        match conn.read(&mut buf[end..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => end += n,
        }
        let Ok(scanned) = scanner.scan(&buf[start..end]) else {
            return;
        };
        start += scanned.consumed;
        if start == end {
            (start, end) = (0, 0);
        }
        let reply = match scanned.requests {
            0 => continue,
            1 => response,
            n => {
                // Pipelined requests in one read get their responses in one write.
                out.clear();
                for _ in 0..n {
                    out.extend_from_slice(response);
                }
                &out[..]
            }
        };
        if conn.write_all(reply).await.is_err() {
            return;
        }
    }
}

/// Answers every request on one connection through hyper, on shardbid's connection path,
/// until the client leaves or a timeout fires.
async fn serve_hyper(conns: Rc<Conns>, transport: Transport) {
    let service = service_fn(|req: Request<Incoming>| async move {
        // Read the body to its end as the bid handler does (hyper's body channel), then
        // answer the fixed body.
        let mut incoming = req.into_body();
        let mut read = 0usize;
        while !incoming.is_end_stream() {
            match incoming.frame().await {
                Some(Ok(frame)) => read += frame.data_ref().map_or(0, |d| d.len()),
                Some(Err(_)) | None => break,
            }
        }
        std::hint::black_box(read);
        Ok::<_, Infallible>(http::respond(
            StatusCode::OK,
            http::JSON,
            Bytes::from_static(BODY.as_bytes()),
        ))
    });
    let _ = net::serve_connection(&conns, ConnLimits::default(), transport, service).await;
}

/// What shardbid's housekeeping does for connections, on the same tick: advances the
/// coarse clock that the network ring and the connection path read instead of the
/// clock, and sweeps timeouts (of `--http hyper` connections).
async fn housekeeping(conns: Rc<Conns>) {
    let mut last_sweep = Instant::now();
    loop {
        let now = Instant::now();
        set_coarse_now(now);
        if now.duration_since(last_sweep) >= SWEEP_EVERY {
            conns.sweep(now);
            last_sweep = now;
        }
        glommio::timer::sleep(CONTROL_POLL).await;
    }
}

/// One shard: binds the shared address, reports readiness, then accepts forever.
async fn run_shard(
    addr: SocketAddr,
    io: IoMode,
    mode: HttpMode,
    ready: mpsc::Sender<Result<(), String>>,
) {
    let listener = match listen::bind(addr, Sharing::ReusePort) {
        Ok(listener) => listener,
        Err(e) => {
            let _ = ready.send(Err(format!("bind {addr}: {e}")));
            return;
        }
    };
    let ring = match io {
        IoMode::Ring => match NetRing::new(RingConfig::default()) {
            Ok(ring) => {
                glommio::spawn_local(ring.clone().drive()).detach();
                Some(ring)
            }
            Err(e) => {
                let _ = ready.send(Err(format!("network ring: {e}")));
                return;
            }
        },
        IoMode::Poll => None,
    };
    let _ = ready.send(Ok(()));
    drop(ready);
    let response: &'static [u8] = fixed_response().leak();
    let conns = Rc::new(Conns::default());
    // As in shardbid, the network ring and the connection path read the coarse clock.
    glommio::spawn_local(housekeeping(conns.clone())).detach();
    loop {
        match listener.accept_fd().await {
            Ok(fd) if mode == HttpMode::Hyper => {
                // serve_connection sets TCP_NODELAY (ConnLimits::default().nodelay).
                let transport = match &ring {
                    Some(ring) => Transport::Ring(ring.register(fd)),
                    None => Transport::Stream(listen::stream_of(fd)),
                };
                glommio::spawn_local(serve_hyper(conns.clone(), transport)).detach();
            }
            Ok(fd) => {
                let _ = socket2::SockRef::from(&fd).set_nodelay(true);
                let conn = match &ring {
                    Some(ring) => Conn::Ring(ring.register(fd)),
                    None => Conn::Stream(listen::stream_of(fd)),
                };
                glommio::spawn_local(serve(conn, response)).detach();
            }
            Err(e) => eprintln!("accept on {addr}: {e}"),
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cpus: Vec<usize> = CpuSet::online()
        .map_err(|e| anyhow!("listing online CPUs: {e}"))?
        .into_iter()
        .map(|location| location.cpu)
        .collect();
    if cpus.is_empty() {
        bail!("no online CPU found");
    }
    let shards = args.shards.unwrap_or(cpus.len());
    if shards == 0 {
        bail!("--shards must be at least 1");
    }

    let (ready_tx, ready_rx) = mpsc::channel();
    let mut handles = Vec::with_capacity(shards);
    for shard in 0..shards {
        let cpu = cpus[shard % cpus.len()];
        let ready = ready_tx.clone();
        let addr = args.listen;
        let (io, mode) = (args.io, args.http);
        let handle = LocalExecutorBuilder::new(Placement::Fixed(cpu))
            .name(&format!("floor-shard-{shard}"))
            .io_memory(args.io_memory)
            .ring_depth(args.ring_depth)
            .spawn(move || run_shard(addr, io, mode, ready))
            .map_err(|e| anyhow!("starting shard {shard} on CPU {cpu}: {e}"))?;
        handles.push(handle);
    }
    drop(ready_tx);
    for _ in 0..shards {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => bail!(e),
            Err(_) => bail!("a shard exited before binding its listener"),
        }
    }
    eprintln!("listening on {} ({shards} shards)", args.listen);
    // Shards serve until SIGTERM or SIGINT, which end the process with status 0 (so that
    // exit handlers run, e.g. an instrumented build's profile writer).
    let mut signals =
        Signals::new([SIGTERM, SIGINT]).map_err(|e| anyhow!("installing signal handlers: {e}"))?;
    if signals.forever().next().is_some() {
        std::process::exit(0);
    }
    for handle in handles {
        handle.join().map_err(|e| anyhow!("shard failed: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn post(body: &str) -> String {
        format!(
            "POST /openrtb2/bid HTTP/1.1\r\nHost: x\r\ncontent-LENGTH: {}\r\n\r\n{body}",
            body.len()
        )
    }

    #[test]
    fn response_announces_its_exact_body_length() {
        let response = String::from_utf8(fixed_response()).expect("ascii");
        let (head, body) = response.split_once("\r\n\r\n").expect("header end");
        assert_eq!(body, BODY);
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        assert!(head.contains("Content-Type: application/json"));
    }

    #[test]
    fn pipelined_requests_in_one_read_are_all_answered() {
        let input = format!("{}{}GET / HTTP/1.1\r\n\r\n", post("{\"a\":1}"), post("xy"));
        let mut scanner = RequestScanner::default();
        let scanned = scanner.scan(input.as_bytes()).expect("valid");
        assert_eq!(scanned.requests, 3);
        assert_eq!(scanned.consumed, input.len());
    }

    #[test]
    fn request_is_answered_only_once_its_body_has_arrived() {
        let input = post("0123456789");
        let bytes = input.as_bytes();
        let mut scanner = RequestScanner::default();
        let mut offered = 0;
        let mut answered = 0;
        // Feed one byte at a time; unconsumed bytes are offered again, as the connection does.
        for end in 1..=bytes.len() {
            let scanned = scanner.scan(&bytes[offered..end]).expect("valid");
            offered += scanned.consumed;
            answered += scanned.requests;
            if end < bytes.len() {
                assert_eq!(answered, 0, "answered early at byte {end}");
            }
        }
        assert_eq!(answered, 1);
        assert_eq!(offered, bytes.len());
    }

    #[test]
    fn incomplete_header_is_left_unconsumed() {
        let mut scanner = RequestScanner::default();
        let scanned = scanner
            .scan(b"POST / HTTP/1.1\r\nHost: x\r\n\r")
            .expect("valid");
        assert_eq!(
            scanned,
            Scanned {
                consumed: 0,
                requests: 0
            }
        );
    }

    #[test]
    fn malformed_framing_is_rejected() {
        for header in [
            "POST / HTTP/1.1\r\nContent-Length: 12a\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: \r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            let mut scanner = RequestScanner::default();
            assert!(scanner.scan(header.as_bytes()).is_err(), "{header:?}");
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_nor_overconsume() {
        let alphabet = b"\r\n:0123456789 content-length:\x00\xff";
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            let mut input = Vec::new();
            for _ in 0..(seed % 200) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                input.push(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            let mut scanner = RequestScanner::default();
            let mut offered = 0;
            for end in (0..=input.len()).step_by(7) {
                match scanner.scan(&input[offered..end]) {
                    Ok(scanned) => offered += scanned.consumed,
                    Err(_) => break,
                }
                assert!(offered <= end);
            }
        }
    }

    #[test]
    fn serves_keep_alive_pipelined_and_closes_on_garbage() {
        serves_keep_alive_pipelined_and_closes_on_garbage_with(IoMode::Ring);
        serves_keep_alive_pipelined_and_closes_on_garbage_with(IoMode::Poll);
    }

    /// One shard on a free port, bound and ready; it serves until the test process ends.
    fn start_shard(io: IoMode, mode: HttpMode) -> SocketAddr {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        let addr = probe.local_addr().expect("addr");
        drop(probe);
        let (ready_tx, ready_rx) = mpsc::channel();
        // Dropping the join handle detaches the shard's thread.
        LocalExecutorBuilder::new(Placement::Unbound)
            .io_memory(1 << 20)
            .spawn(move || run_shard(addr, io, mode, ready_tx))
            .expect("shard starts");
        ready_rx.recv().expect("ready").expect("bound");
        addr
    }

    fn serves_keep_alive_pipelined_and_closes_on_garbage_with(io: IoMode) {
        let addr = start_shard(io, HttpMode::Scan);

        let response = fixed_response();
        let mut client = std::net::TcpStream::connect(addr).expect("connect");
        let request = post(BODY);
        let (first, second) = request.split_at(request.len() - 5);
        client.write_all(first.as_bytes()).expect("write");
        std::thread::sleep(std::time::Duration::from_millis(20));
        client
            .write_all(format!("{second}{request}").as_bytes())
            .expect("write");
        let mut got = vec![0u8; response.len() * 2];
        client.read_exact(&mut got).expect("two responses");
        assert_eq!(&got[..response.len()], &response[..]);
        assert_eq!(&got[response.len()..], &response[..]);

        client
            .write_all(b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n")
            .expect("write");
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).expect("closed cleanly");
        assert!(rest.is_empty());
    }

    #[test]
    fn hyper_mode_answers_pipelined_requests_in_order() {
        for io in [IoMode::Ring, IoMode::Poll] {
            let addr = start_shard(io, HttpMode::Hyper);

            let mut client = std::net::TcpStream::connect(addr).expect("connect");
            let request = post(BODY);
            let close = request.replacen("Host: x\r\n", "Host: x\r\nConnection: close\r\n", 1);
            client
                .write_all(format!("{request}{close}").as_bytes())
                .expect("write");
            let mut got = String::new();
            client
                .read_to_string(&mut got)
                .expect("answers, then close");
            let answers: Vec<&str> = got.split("HTTP/1.1 ").skip(1).collect();
            assert_eq!(answers.len(), 2, "{io:?}: {got}");
            for answer in answers {
                assert!(answer.starts_with("200 OK\r\n"), "{io:?}: {answer}");
                assert!(
                    answer.contains("content-type: application/json"),
                    "{answer}"
                );
                assert!(answer.ends_with(BODY), "{answer}");
            }
        }
    }
}
