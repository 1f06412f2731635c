//! The admin listener's routes (served by the control thread, never by a shard).
//!
//! | route | answer |
//! |---|---|
//! | `GET /metrics` | Prometheus text format, every shard summed at scrape time |
//! | `GET /admin/campaigns` | `{"campaigns": [...], "live": {...}}`: what is loaded (a campaign file `PUT` takes back as it is), and in `live` the table version, the count and each campaign's spend, reservations, remaining budget, pacing, counts and paused state |
//! | `POST /admin/campaigns/{id}/pause`, `/resume` | the kill switch: no shard bids for the campaign within 100 ms (until resumed); 404 for an unknown id |
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
use crate::control::{treasury, ChangeError, Control};
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
        (&Method::GET, "/admin/campaigns") => campaigns_page(control),
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
        (method, path) if path.starts_with("/admin/campaigns/") => {
            let rest = &path["/admin/campaigns/".len()..];
            let (id, action) = rest.rsplit_once('/').unwrap_or((rest, ""));
            let paused = match action {
                "pause" => true,
                "resume" => false,
                _ => return text(StatusCode::NOT_FOUND, "not found\n"),
            };
            if method != Method::POST {
                return not_allowed("POST");
            }
            let id = percent_decoded(id);
            if control.pause(&id, paused) {
                json_response(StatusCode::OK, &json!({ "campaign": id, "paused": paused }))
            } else {
                errors(StatusCode::NOT_FOUND, vec![format!("no campaign {id:?}")])
            }
        }
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

/// What is loaded, as a campaign file, and the campaigns' live state beside it.
fn campaigns_page(control: &Control) -> Response<Body> {
    let (version, set) = control.current();
    let snapshot = control.money.snapshot.borrow().clone();
    let live: serde_json::Map<String, serde_json::Value> = set
        .campaigns
        .iter()
        .filter_map(|c| Some((c.id.clone(), treasury::live_json(snapshot.get(&c.id)?))))
        .collect();
    let body = json!({
        "campaigns": set.campaigns,
        "live": { "version": version, "count": set.campaigns.len(), "campaigns": live },
    });
    json_response(StatusCode::OK, &body)
}

/// A campaign id from a path segment.
fn percent_decoded(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn metrics_page(control: &Control) -> Response<Body> {
    let shards: Vec<&metrics::ShardMetrics> = control.metrics.iter().map(|m| &**m).collect();
    let mut out = String::with_capacity(8 * 1024);
    metrics::render(&shards, &control.settings.exchanges, &mut out);
    let snapshot = control.money.snapshot.borrow().clone();
    metrics::render_money(&shards, &treasury::figures(&snapshot), &mut out);
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
