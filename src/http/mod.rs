//! The HTTP services: each shard's traffic listener (routes, the bid handler) and the
//! control thread's admin API. The connections under them are `crate::net`'s.

#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod bid;
pub mod notice;
pub mod reply;
pub mod router;
pub mod traffic;

use bytes::{Buf, Bytes};
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use http_body_util::Full;

use crate::pipeline::OutBody;
use crate::shard::Global;

/// Every response body of the traffic and admin listeners: one chunk, whose length
/// hyper sends as `Content-Length`.
pub type Body = Full<Chunk>;

/// A response body's bytes: static or shared [`Bytes`], or a bid response handed over
/// from the shard's encoder without a copy ([`OutBody`]).
pub enum Chunk {
    Bytes(Bytes),
    Out(OutBody),
}

impl Buf for Chunk {
    fn remaining(&self) -> usize {
        match self {
            Chunk::Bytes(b) => b.remaining(),
            Chunk::Out(o) => o.remaining(),
        }
    }

    fn chunk(&self) -> &[u8] {
        match self {
            Chunk::Bytes(b) => b.chunk(),
            Chunk::Out(o) => o.chunk(),
        }
    }

    fn advance(&mut self, n: usize) {
        match self {
            Chunk::Bytes(b) => b.advance(n.min(b.remaining())),
            Chunk::Out(o) => o.advance(n),
        }
    }
}

pub const JSON: HeaderValue = HeaderValue::from_static("application/json");
pub const TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");

/// A response with a body and a content type.
pub fn respond(
    status: StatusCode,
    content_type: HeaderValue,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut resp = Response::new(Full::new(Chunk::Bytes(body.into())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, content_type);
    resp
}

/// A plain-text response, for errors and probes.
pub fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    respond(status, TEXT, Bytes::from_static(body.as_bytes()))
}

/// An empty response (204, 405 ...).
pub fn empty(status: StatusCode) -> Response<Body> {
    let mut resp = Response::new(Full::new(Chunk::Bytes(Bytes::new())));
    *resp.status_mut() = status;
    resp
}

/// `/readyz`, the same on both listeners: 200 when every shard serves; 503 `starting`
/// before, and `draining` from the start of a drain.
pub fn readiness(global: &Global) -> Response<Body> {
    if global.is_ready() {
        text(StatusCode::OK, "ready\n")
    } else if global.draining.load(std::sync::atomic::Ordering::Relaxed) {
        text(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, "starting\n")
    }
}
