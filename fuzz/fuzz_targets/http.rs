//! The HTTP request path above the socket: any bytes, as a client sends them on one
//! connection, served by hyper with the server's own settings (`net::http1_builder`
//! with the sample config's `[http]` limits),
//! the traffic router and a real shard with the sample campaigns and the money side on
//! (budgets, caps, signed notice URLs, notices verified and settled), as
//! `benches/http.rs` measures it. Left out: glommio's ring, the connection's timeouts
//! and the outbox (`net::io`), and the kernel.
//!
//! No input may panic, and every byte written back must be whole responses, each with
//! a well-formed status line (`HTTP/1.1 NNN reason`, or `HTTP/1.0` to an HTTP/1.0
//! request) and the body its head announces.
//!
//! The first byte is the size of each read hyper gets (0: everything at once); the
//! rest is the client's bytes. The shard is built once and reused; it is rebuilt every
//! `REBUILD_EVERY` inputs, before its bids use up the campaigns' budgets and its ledger.
//!
//! `RUSTFLAGS="-C target-cpu=x86-64-v3" cargo +nightly fuzz run http fuzz/corpus/http -- -max_total_time=600`

#![no_main]

use std::cell::RefCell;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use crossbeam_channel::Receiver;
use http::{Method, Version};
use hyper::rt::ReadBufCursor;
use hyper::service::service_fn;
use libfuzzer_sys::fuzz_target;

use shardbid::config::Config;
use shardbid::control;
use shardbid::events::writer::ShardEvents;
use shardbid::http::router;
use shardbid::metrics::ShardMetrics;
use shardbid::net::http1_builder;
use shardbid::shard::money::{ControlMsg, Registry, ShardMoney};
use shardbid::shard::{Global, Shard, ShardMsg, ShardSettings};

/// Inputs served by one shard before it is built afresh.
const REBUILD_EVERY: u32 = 2000;

struct State {
    shard: Rc<Shard>,
    /// The shard's peers' channel (itself): impressions for frequency caps.
    peer: Receiver<ShardMsg>,
    /// Reports to the bank (only sent on housekeeping ticks, which never run here).
    _control: Receiver<ControlMsg>,
    served: u32,
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// A lone shard as the server builds it from the sample config, its campaigns funded as
/// if the bank had leased each its whole budget. Notices stay fresh for ten years, so
/// that the corpus's signed notices keep reaching settlement.
fn build() -> State {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cfg = Config::from_file(&root.join("config/shardbid.toml")).expect("config");
    cfg.money.reservations_per_shard = 1 << 14;
    cfg.money.frequency_cap_entries = 1 << 14;
    cfg.money.notice_max_age_s = 10 * 366 * 86_400;
    cfg.validate().expect("valid config");
    let set = control::read_campaigns(&cfg.campaigns.file).expect("campaigns");
    let table = control::build_table(&set, &control::table_settings(&cfg), 1).expect("table");
    let settings = Rc::new(ShardSettings::from_config(&cfg));
    let metrics = Arc::new(ShardMetrics::new(settings.exchanges.len()));
    let global = Arc::new(Global {
        shard_count: 1,
        ..Global::default()
    });
    let (peer_tx, peer) = crossbeam_channel::unbounded();
    let (to_control, control) = crossbeam_channel::unbounded();
    let money = ShardMoney::from_config(&cfg, 0, 1, ShardEvents::off(0), vec![peer_tx], to_control)
        .expect("money");
    let purses = Registry::default().purses(&table);
    money.bind(&table, &purses);
    for &(p, terms) in purses.iter() {
        let l = terms.limits;
        if let Some(amount) = [l.daily, l.total].into_iter().flatten().min() {
            money.wallet.granted(p, amount);
        }
    }
    let (_, rx) = crossbeam_channel::unbounded();
    let shard = Rc::new(Shard::new(0, settings, global, metrics, table, money, rx));
    State {
        shard,
        peer,
        _control: control,
        served: 0,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, input)) = data.split_first() else {
        return;
    };
    STATE.with(|state| {
        let mut state = state.borrow_mut();
        if state.as_ref().is_none_or(|s| s.served >= REBUILD_EVERY) {
            *state = None;
            *state = Some(build());
        }
        let s = state.as_mut().expect("built");
        s.served += 1;
        serve(&s.shard, input, chunk as usize);
        // What the shard's housekeeping would do with its own messages.
        while let Ok(msg) = s.peer.try_recv() {
            if let ShardMsg::Impression {
                user,
                purse,
                cap,
                at,
            } = msg
            {
                s.shard.money.impression(user, purse, cap, at);
            }
        }
    });
});

/// Serves `input` as one connection and checks what was written back.
fn serve(shard: &Rc<Shard>, input: &[u8], chunk: usize) {
    let mut wire = Wire {
        input,
        chunk: if chunk == 0 { usize::MAX } else { chunk },
        out: Vec::new(),
    };
    let requests: RefCell<Vec<(Method, Version)>> = RefCell::new(Vec::new());
    let service = service_fn(|req: http::Request<hyper::body::Incoming>| {
        requests
            .borrow_mut()
            .push((req.method().clone(), req.version()));
        let shard = shard.clone();
        async move { Ok::<_, std::convert::Infallible>(router::route(&shard, req).await) }
    });
    // Errors (a malformed request, a connection closed mid-request) end the connection,
    // as they do on a socket.
    let builder = http1_builder(&shard.settings.conn);
    let _ = futures_lite::future::block_on(builder.serve_connection(&mut wire, service));
    check_responses(&wire.out, &requests.borrow());
}

/// Every byte written is a whole response: status line, head, and the body the head
/// announces. Responses answer the requests in order (a `100 Continue` comes before
/// its request's answer; hyper's own answer to what it could not parse comes last).
fn check_responses(out: &[u8], requests: &[(Method, Version)]) {
    let mut rest = out;
    let mut answered = requests.iter();
    while !rest.is_empty() {
        let shown = || String::from_utf8_lossy(out).into_owned();
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .unwrap_or_else(|| panic!("a response without a status line: {}", shown()));
        let line = &rest[..line_end];
        let well_formed = line.len() >= 13
            && (line.starts_with(b"HTTP/1.1 ") || line.starts_with(b"HTTP/1.0 "))
            && line[9..12].iter().all(u8::is_ascii_digit)
            && line[12] == b' '
            && line[13..]
                .iter()
                .all(|&b| b == b'\t' || b == b' ' || b.is_ascii_graphic() || b >= 0x80);
        assert!(
            well_formed,
            "status line {:?} in {}",
            String::from_utf8_lossy(line),
            shown()
        );
        let code: u16 = std::str::from_utf8(&line[9..12])
            .expect("digits")
            .parse()
            .expect("digits");
        assert!((100..=599).contains(&code), "status {code} in {}", shown());

        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut head = httparse::Response::new(&mut headers);
        let head_len = match head.parse(rest) {
            Ok(httparse::Status::Complete(n)) => n,
            other => panic!(
                "a response head that does not parse ({other:?}): {}",
                shown()
            ),
        };
        let interim = code < 200;
        let request = if interim { None } else { answered.next() };
        if let Some((_, version)) = request {
            assert_eq!(
                line.starts_with(b"HTTP/1.0 "),
                *version == Version::HTTP_10,
                "the answer's version to an {version:?} request: {}",
                shown()
            );
        }
        let header = |name: &str| {
            head.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value)
        };
        assert!(
            header("transfer-encoding").is_none(),
            "a chunked response: {}",
            shown()
        );
        let no_body = interim
            || code == 204
            || code == 304
            || request.is_some_and(|(m, _)| *m == Method::HEAD);
        let body_len = match header("content-length") {
            _ if no_body => 0,
            Some(v) => std::str::from_utf8(v)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or_else(|| panic!("content-length {v:?}: {}", shown())),
            None => rest.len() - head_len,
        };
        assert!(
            head_len + body_len <= rest.len(),
            "a body shorter than its content-length: {}",
            shown()
        );
        rest = &rest[head_len + body_len..];
    }
}

/// One client connection in memory: hyper reads the input `chunk` bytes at a time,
/// then end of file; everything it writes is kept.
struct Wire<'a> {
    input: &'a [u8],
    chunk: usize,
    out: Vec<u8>,
}

impl hyper::rt::Read for Wire<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let n = self.input.len().min(self.chunk).min(buf.remaining());
        let (now, later) = self.input.split_at(n);
        buf.put_slice(now);
        self.input = later;
        Poll::Ready(Ok(()))
    }
}

impl hyper::rt::Write for Wire<'_> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.out.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
