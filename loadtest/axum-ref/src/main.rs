//! The server a team would build instead of shardbid: tokio's multi-threaded runtime (one
//! worker per core), axum and hyper, the bid request decoded with serde_json (borrowing
//! its strings) and a bid for the first imp formatted with `format!`. No targeting, no
//! auction, no budgets, no metrics: `loadtest/compare.sh` runs it as `axum` to show what
//! shardbid's runtime and bid path cost against a conventional stack doing less work.
//!
//!   axum-ref --listen 127.0.0.1:18090
//!
//! It is built as its users would build it: the defaults of tokio and axum, the
//! workspace's release profile, `TCP_NODELAY` on, nothing turned off to make it slower.

use std::borrow::Cow;
use std::net::SocketAddr;

use axum::body::Bytes;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::ListenerExt;
use axum::Router;
use clap::Parser;
use serde::Deserialize;

/// Command line of `axum-ref`.
#[derive(Parser, Debug)]
#[command(
    name = "axum-ref",
    about = "tokio + axum + serde_json reference bidder"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:18090")]
    listen: SocketAddr,
}

/// The part of an OpenRTB bid request this bidder reads.
#[derive(Deserialize)]
struct BidRequest<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow, default)]
    imp: Vec<Imp<'a>>,
}

#[derive(Deserialize)]
struct Imp<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(default)]
    bidfloor: f64,
    banner: Option<Banner>,
}

#[derive(Deserialize)]
struct Banner {
    w: Option<u32>,
    h: Option<u32>,
}

async fn bid(body: Bytes) -> Response {
    let request: BidRequest<'_> = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let Some(imp) = request.imp.first() else {
        return StatusCode::NO_CONTENT.into_response();
    };
    let (w, h) = imp
        .banner
        .as_ref()
        .map_or((300, 250), |b| (b.w.unwrap_or(300), b.h.unwrap_or(250)));
    let price = imp.bidfloor.max(0.01) * 1.2;
    let body = format!(
        r#"{{"id":"{}","seatbid":[{{"seat":"ref","bid":[{{"id":"{}-1","impid":"{}","price":{:.4},"adm":"<a href=\"https://ads.example.com/c\"><img src=\"https://cdn.example.com/{}x{}.png\"/></a>","adomain":["example.com"],"crid":"c1","w":{},"h":{}}}]}}],"cur":"USD"}}"#,
        request.id, request.id, imp.id, price, w, h, w, h
    );
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let app = Router::new()
        .route("/openrtb2/bid", post(bid))
        .route("/openrtb2/bid/{exchange}", post(bid));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await?
        .tap_io(|tcp| {
            // A failure here leaves Nagle on for one connection; nothing to report per connection.
            let _ = tcp.set_nodelay(true);
        });
    eprintln!("axum-ref listening on {}", args.listen);
    axum::serve(listener, app).await
}
