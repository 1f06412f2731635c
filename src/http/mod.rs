//! HTTP: the glommio/hyper glue and the shard's outbox, the traffic router, the bid
//! handler and the admin API.

pub mod admin;
pub mod bid;
pub mod compat;
pub mod outbox;
pub mod router;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use http_body_util::Full;

pub type Body = Full<Bytes>;

pub const JSON: HeaderValue = HeaderValue::from_static("application/json");
pub const TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");

/// A response with a body and a content type.
pub fn respond(
    status: StatusCode,
    content_type: HeaderValue,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut resp = Response::new(Full::new(body.into()));
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
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = status;
    resp
}
