//! The traffic listener's routes: a plain `match` on method and path.
//!
//! | route | answer |
//! |---|---|
//! | `POST /openrtb2/bid` | bid (200) or no bid (204), see `http::bid` |
//! | `POST /openrtb2/bid/{exchange}` | the same, for an exchange named in the config; unknown: 404 |
//! | `GET`/`POST /notice/{win,billing,loss}` | a bid's notice, see `http::notice` |
//! | `GET /healthz` | 200 while the process runs |
//! | `GET /readyz` | 200 when every shard serves a table; 503 otherwise and while draining |
//! | other methods on those paths | 405 with `Allow` |
//! | anything else | 404 |

use http::header::{HeaderValue, ALLOW, CONNECTION};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::{bid, empty, notice, text, Body};
use crate::money::notice::NoticeKind;
use crate::shard::Shard;

const BID_PATH: &str = "/openrtb2/bid";

/// Routes one request. Once the shard is closing (the drain has begun) every answer
/// carries `Connection: close`, so keep-alive clients learn to go elsewhere and each
/// connection closes after its current response.
pub async fn route(shard: &Shard, req: Request<Incoming>) -> Response<Body> {
    let mut resp = dispatch(shard, req).await;
    if shard.conns.is_closing() {
        resp.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

async fn dispatch(shard: &Shard, req: Request<Incoming>) -> Response<Body> {
    shard.metrics.http_requests.inc();
    let path = req.uri().path();
    if let Some(rest) = path
        .strip_prefix(BID_PATH)
        .filter(|r| r.is_empty() || r.starts_with('/'))
    {
        let exchange = match &rest[rest.len().min(1)..] {
            "" => None,
            name => match shard.settings.exchange_id(name) {
                Some(id) => Some(id),
                None => return text(StatusCode::NOT_FOUND, "unknown exchange\n"),
            },
        };
        if req.method() != Method::POST {
            return not_allowed("POST");
        }
        return bid::handle(shard, req, exchange).await;
    }
    if let Some(kind) = path.strip_prefix("/notice/") {
        let Some(kind) = NoticeKind::from_label(kind) else {
            return text(StatusCode::NOT_FOUND, "not found\n");
        };
        if req.method() != Method::GET && req.method() != Method::POST {
            return not_allowed("GET, POST");
        }
        return notice::handle(shard, &req, kind);
    }
    match (req.method(), path) {
        (&Method::GET | &Method::HEAD, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET | &Method::HEAD, "/readyz") => super::readiness(&shard.global),
        (_, "/healthz" | "/readyz") => not_allowed("GET, HEAD"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn not_allowed(allow: &'static str) -> Response<Body> {
    let mut resp = empty(StatusCode::METHOD_NOT_ALLOWED);
    resp.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    resp
}
