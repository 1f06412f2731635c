//! The admin listener's routes (served by the control thread, never by a shard).
//!
//! | route | answer |
//! |---|---|
//! | `GET /metrics` | Prometheus text format, every shard summed at scrape time |
//! | `GET /admin/campaigns` | `{"version", "count", "campaigns": [...]}`: what is loaded |
//! | `PUT /admin/campaigns` | replace the campaign set (a campaign file as the body): 200 `{"version","campaigns","took_ms"}`; invalid: 400 `{"errors": [...]}` and the old set stays |
//! | `POST /admin/reload` | re-read the campaigns file; answers like `PUT` |
//! | `GET /healthz` | 200 |
//! | other methods on those paths | 405 with `Allow` |

use std::convert::Infallible;
use std::rc::Rc;

use bytes::Bytes;
use glommio::net::{TcpListener, TcpStream};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use serde_json::json;
use tracing::warn;

use super::{empty, respond, text, Body, JSON};
use crate::control::{ChangeError, Control};
use crate::metrics;
use crate::net::{self, ConnLimits};

/// The admin listener, on the control thread: accepts until the drain and serves each
/// connection with [`route`].
pub async fn serve(control: Rc<Control>, listener: TcpListener, limits: ConnLimits) {
    let accepted = |stream: TcpStream| {
        let control = control.clone();
        glommio::spawn_local(async move {
            let c = control.clone();
            let service = service_fn(move |req| {
                let c = c.clone();
                async move { Ok::<_, Infallible>(route(&c, req).await) }
            });
            let _ = net::serve_connection(&control.conns, limits, stream, service).await;
        })
        .detach();
    };
    net::accept_tcp(&listener, &control.conns, accepted, |_| true).await;
}

/// Largest accepted campaign upload (100,000 campaigns take about 60 MB).
const MAX_UPLOAD: usize = 512 << 20;

pub async fn route(control: &Control, req: Request<Incoming>) -> Response<Body> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => metrics_page(control),
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/admin/campaigns") => {
            let (version, set) = control.current();
            let body = json!({ "version": version, "count": set.campaigns.len(), "campaigns": set.campaigns });
            json_response(StatusCode::OK, &body)
        }
        (&Method::PUT, "/admin/campaigns") => {
            let body = match Limited::new(req.into_body(), MAX_UPLOAD).collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => {
                    return text(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "campaign upload too large or unreadable\n",
                    )
                }
            };
            match serde_json::from_slice(&body) {
                Ok(set) => change(control.install(set).await),
                Err(e) => errors(
                    StatusCode::BAD_REQUEST,
                    vec![format!("not a valid campaign file: {e}")],
                ),
            }
        }
        (&Method::POST, "/admin/reload") => change(control.reload().await),
        (_, "/metrics" | "/healthz") => not_allowed("GET"),
        (_, "/admin/campaigns") => not_allowed("GET, PUT"),
        (_, "/admin/reload") => not_allowed("POST"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// 405 with the `Allow` header RFC 9110 requires, empty like the traffic router's.
fn not_allowed(allow: &'static str) -> Response<Body> {
    let mut resp = empty(StatusCode::METHOD_NOT_ALLOWED);
    resp.headers_mut()
        .insert(http::header::ALLOW, http::HeaderValue::from_static(allow));
    resp
}

fn metrics_page(control: &Control) -> Response<Body> {
    let shards: Vec<&metrics::ShardMetrics> = control.metrics.iter().map(|m| &**m).collect();
    let mut out = String::with_capacity(8 * 1024);
    metrics::render(&shards, &control.settings.exchanges, &mut out);
    respond(
        StatusCode::OK,
        http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        Bytes::from(out),
    )
}

/// The answer to a table change. A failure is the client's fault only when the
/// campaigns it sent are invalid; the others are ours (500, or 503 when a shard did not
/// confirm in time) and are logged with the reason.
fn change(result: Result<crate::control::Installed, ChangeError>) -> Response<Body> {
    let e = match result {
        Ok(done) => {
            return json_response(
                StatusCode::OK,
                &json!({ "version": done.version, "campaigns": done.campaigns, "took_ms": done.took.as_millis() as u64 }),
            )
        }
        Err(e) => e,
    };
    if !matches!(e, ChangeError::Invalid(_)) {
        warn!(error = ?e, "Campaign change failed");
    }
    match e {
        ChangeError::Invalid(list) => errors(StatusCode::BAD_REQUEST, list),
        ChangeError::InvalidFile(list) => errors(StatusCode::INTERNAL_SERVER_ERROR, list),
        ChangeError::Unreadable(msg) => errors(StatusCode::INTERNAL_SERVER_ERROR, vec![msg]),
        ChangeError::Unconfirmed { version } => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({ "version": version, "errors": ["not every shard confirmed the new table in time"] }),
        ),
    }
}

fn errors(status: StatusCode, list: Vec<String>) -> Response<Body> {
    json_response(status, &json!({ "errors": list }))
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
    body.push(b'\n');
    respond(status, JSON, body)
}
