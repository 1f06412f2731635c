//! Shared by the `http` bench and the HTTP allocation test: a real shard with the sample
//! campaigns, and one keep-alive connection in memory served by hyper with the server's
//! own settings (`net::http1_builder`), router and bid handler.

use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::rt::ReadBufCursor;
use hyper::service::service_fn;

use shardbid::config::Config;
use shardbid::http::router;
use shardbid::metrics::ShardMetrics;
use shardbid::net::{http1_builder, ConnLimits};
use shardbid::shard::money::ShardMoney;
use shardbid::shard::{Global, Shard, ShardSettings};

use super::support;

/// The answers a connection got, by status.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Statuses {
    /// 200: a bid.
    pub bid: u64,
    /// 204: no bid.
    pub no_bid: u64,
    /// 4xx.
    pub client_error: u64,
    /// 5xx.
    pub server_error: u64,
    /// Anything else.
    pub other: u64,
}

impl Statuses {
    /// 200s and 204s.
    pub fn answered(&self) -> u64 {
        self.bid + self.no_bid
    }
}

/// One keep-alive client connection in memory: each read gets the next whole request
/// (until `left` runs out, then EOF); writes are counted and the responses' status
/// codes tallied.
struct Wire<'r> {
    request: &'r [u8],
    left: u64,
    statuses: Statuses,
}

impl<'r> Wire<'r> {
    fn new(request: &'r [u8], requests: u64) -> Wire<'r> {
        Wire {
            request,
            left: requests,
            statuses: Statuses::default(),
        }
    }
}

impl hyper::rt::Read for Wire<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        if self.left > 0 {
            self.left -= 1;
            buf.put_slice(self.request);
        }
        Poll::Ready(Ok(()))
    }
}

impl hyper::rt::Write for Wire<'_> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // Each response is written whole by one call (`writev(false)`, small bodies).
        if buf.len() > 12 && buf.starts_with(b"HTTP/1.1 ") {
            let st = &mut self.statuses;
            match &buf[9..12] {
                b"200" => st.bid += 1,
                b"204" => st.no_bid += 1,
                [b'4', ..] => st.client_error += 1,
                [b'5', ..] => st.server_error += 1,
                _ => st.other += 1,
            }
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A shard as the server builds it, serving the sample config's campaigns.
pub fn shard() -> Rc<Shard> {
    let cfg = Config::from_file(&support::root().join("config/shardbid.toml")).expect("config");
    let settings = Rc::new(ShardSettings::from_config(&cfg));
    let metrics = Arc::new(ShardMetrics::new(settings.exchanges.len()));
    let global = Arc::new(Global {
        shard_count: 1,
        ..Global::default()
    });
    let table = support::table();
    // The money side as a lone shard has it: budgets, caps and signed notices on every
    // bid, no bank or event log behind it.
    let money = ShardMoney::solo(&cfg, &table).expect("money");
    let (_, rx) = crossbeam_channel::unbounded();
    Rc::new(Shard::new(0, settings, global, metrics, table, money, rx))
}

/// A request as a keep-alive exchange client sends it.
pub fn request(body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST /openrtb2/bid HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\
         Content-Type: application/json\r\nx-openrtb-version: 2.6\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// Serves `n` requests on one connection; returns the answers it got.
pub fn serve(shard: &Rc<Shard>, request: &[u8], n: u64) -> Statuses {
    let mut wire = Wire::new(request, n);
    let service = service_fn(|req| {
        let shard = shard.clone();
        async move { Ok::<_, std::convert::Infallible>(router::route(&shard, req).await) }
    });
    let served = futures_lite::future::block_on(
        http1_builder(&ConnLimits::default()).serve_connection(&mut wire, service),
    );
    served.expect("connection served");
    wire.statuses
}
