//! The admin listener's routes (served by the control thread, never by a shard).
//!
//! | route | answer |
//! |---|---|
//! | `GET /metrics` | Prometheus text format, every shard summed at scrape time, and the process's own series |
//! | `GET /admin/campaigns` | `{"campaigns": [...], "live": {...}}`: what is loaded (a campaign file `PUT` takes back as it is), and in `live` the table version, the count and each campaign's spend, reservations, remaining budget, pacing, counts and paused state |
//! | `POST /admin/campaigns/{id}/pause`, `/resume` | the kill switch: no shard bids for the campaign within 100 ms (until resumed); 404 for an unknown id |
//! | `PUT /admin/campaigns` | replace the campaign set (a campaign file as the body, at most `admin.max_body_bytes`, else 413): 200 `{"version","campaigns","took_ms"}`; invalid: 400 `{"errors": [...]}` and the old set stays |
//! | `POST /admin/reload` | re-read the campaigns file; answers like `PUT` |
//! | `POST /admin/drain` | 202, and the process drains as on SIGTERM (a `--takeover` start asks this of the process it replaces) |
//! | `GET /healthz` | 200 |
//! | `GET /readyz` | as on the traffic listener: 200 when every shard serves, 503 while starting or draining |
//! | other methods on those paths | 405 with `Allow` |
//!
//! An empty campaign set (`PUT` or reload) would stop every bid: it is refused with 400
//! unless the request says `?allow_empty=1`.
//!
//! With `admin.token` set, every request but `GET /healthz` and `GET /readyz` (the
//! probes) must carry `Authorization: Bearer <token>`, or gets 401 (counted in
//! `shardbid_admin_unauthorized_total`).

use std::cell::Cell;
use std::convert::Infallible;
use std::rc::Rc;

use bytes::Bytes;
use glommio::net::TcpStream;
use http::header::{HeaderMap, HeaderValue, CONTENT_LENGTH, WWW_AUTHENTICATE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use serde_json::json;
use tracing::{trace, warn};

use super::auth::{Refusal, Token};
use super::{empty, readiness, respond, text, Body, JSON};
use crate::config::AdminConfig;
use crate::control::{treasury, ChangeError, Control};
use crate::metrics;
use crate::net::{self, ConnLimits, Listener};
use crate::targeting::CampaignSet;

/// The admin listener's state: the control thread's, and its own settings and count.
pub struct Admin {
    control: Rc<Control>,
    token: Option<Token>,
    max_body: usize,
    /// Requests refused with 401.
    unauthorized: Cell<u64>,
}

impl Admin {
    pub fn new(control: Rc<Control>, cfg: &AdminConfig) -> Admin {
        Admin {
            control,
            token: Token::new(cfg.token.expose()),
            max_body: cfg.max_body_bytes,
            unauthorized: Cell::new(0),
        }
    }

    /// Whether the request may go on: always without a token, else with it.
    fn authorize(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        token.check(headers).inspect_err(|refusal| {
            self.unauthorized.set(self.unauthorized.get() + 1);
            trace!(?refusal, "Admin request refused");
        })
    }
}

/// The admin listener, on the control thread: accepts until the drain and serves each
/// connection with [`route`].
pub async fn serve(admin: Rc<Admin>, listener: Listener, limits: ConnLimits) {
    let conns = &admin.control.conns;
    let accepted = |stream: TcpStream| {
        let admin = admin.clone();
        glommio::spawn_local(async move {
            let a = admin.clone();
            let service = service_fn(move |req| {
                let a = a.clone();
                async move { Ok::<_, Infallible>(route(&a, req).await) }
            });
            let transport = net::Transport::Stream(stream);
            let _ = net::serve_connection(&admin.control.conns, limits, transport, service).await;
        })
        .detach();
    };
    net::accept_tcp(&listener, conns, accepted, |_| true).await;
}

pub async fn route(admin: &Admin, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path();
    // The probes answer without the token: a load balancer or kubelet has none.
    let probe = req.method() == Method::GET && matches!(path, "/healthz" | "/readyz");
    if !probe {
        if let Err(refusal) = admin.authorize(req.headers()) {
            return unauthorized(refusal);
        }
    }
    let control = &*admin.control;
    match (req.method(), path) {
        (&Method::GET, "/metrics") => metrics_page(admin).await,
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/readyz") => readiness(&control.global),
        (&Method::GET, "/admin/campaigns") => campaigns_page(control).await,
        (&Method::PUT, "/admin/campaigns") => put_campaigns(admin, req).await,
        (&Method::POST, "/admin/drain") => {
            // As SIGTERM: what a process taking over (--takeover) asks of this one.
            control
                .global
                .drain_requested
                .store(true, std::sync::atomic::Ordering::Relaxed);
            text(StatusCode::ACCEPTED, "draining\n")
        }
        (&Method::POST, "/admin/reload") => match allow_empty(req.uri().query()) {
            Ok(allow) => change(control.reload(allow).await),
            Err(e) => errors(StatusCode::BAD_REQUEST, vec![e]),
        },
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
        (_, "/metrics" | "/healthz" | "/readyz") => not_allowed("GET"),
        (_, "/admin/campaigns") => not_allowed("GET, PUT"),
        (_, "/admin/reload" | "/admin/drain") => not_allowed("POST"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// 401 with the challenge RFC 6750 describes (`error="invalid_token"` only for a token
/// that was presented).
fn unauthorized(refusal: Refusal) -> Response<Body> {
    let (challenge, body) = match refusal {
        Refusal::Missing => (
            "Bearer realm=\"shardbid-admin\"",
            "missing bearer token: send Authorization: Bearer <admin.token>\n",
        ),
        Refusal::Wrong => (
            "Bearer realm=\"shardbid-admin\", error=\"invalid_token\"",
            "wrong bearer token\n",
        ),
    };
    let mut resp = text(StatusCode::UNAUTHORIZED, body);
    resp.headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    resp
}

/// `PUT /admin/campaigns`: the body is a campaign file.
async fn put_campaigns(admin: &Admin, req: Request<Incoming>) -> Response<Body> {
    let allow = match allow_empty(req.uri().query()) {
        Ok(allow) => allow,
        Err(e) => return errors(StatusCode::BAD_REQUEST, vec![e]),
    };
    let body = match read_upload(req, admin.max_body).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    match serde_json::from_slice::<CampaignSet>(&body) {
        Ok(set) => change(admin.control.install(set, allow).await),
        Err(e) => errors(
            StatusCode::BAD_REQUEST,
            vec![format!("not a valid campaign file: {e}")],
        ),
    }
}

/// A campaign upload of at most `max` bytes: refused before reading when its declared
/// length is larger, else as soon as more than that has arrived.
async fn read_upload(req: Request<Incoming>, max: usize) -> Result<Bytes, Response<Body>> {
    let too_large = || {
        text(
            StatusCode::PAYLOAD_TOO_LARGE,
            "campaign upload larger than admin.max_body_bytes\n",
        )
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    match Limited::new(req.into_body(), max).collect().await {
        Ok(body) => Ok(body.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(too_large()),
        Err(e) => Err(errors(
            StatusCode::BAD_REQUEST,
            vec![format!("campaign upload unreadable: {e}")],
        )),
    }
}

/// `?allow_empty=1`: the caller means to load an empty campaign set. Other parameters
/// are ignored; a value other than `0` or `1` is refused.
fn allow_empty(query: Option<&str>) -> Result<bool, String> {
    let mut allow = false;
    for pair in query.unwrap_or_default().split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name == "allow_empty" {
            allow = match value {
                "1" => true,
                "0" => false,
                _ => return Err(format!("allow_empty: expected 1 or 0, not {value:?}")),
            };
        }
    }
    Ok(allow)
}

/// 405 with the `Allow` header RFC 9110 requires, empty like the traffic router's.
fn not_allowed(allow: &'static str) -> Response<Body> {
    let mut resp = empty(StatusCode::METHOD_NOT_ALLOWED);
    resp.headers_mut()
        .insert(http::header::ALLOW, http::HeaderValue::from_static(allow));
    resp
}

/// What is loaded, as a campaign file, and the campaigns' live state beside it.
async fn campaigns_page(control: &Control) -> Response<Body> {
    let snapshot = control.money.fresh_snapshot().await;
    let (version, set) = control.current();
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

async fn metrics_page(admin: &Admin) -> Response<Body> {
    let control = &admin.control;
    // The money figures of the loop's next round first, so that the counters read
    // below are of the same moment.
    let snapshot = control.money.fresh_snapshot().await;
    let shards: Vec<&metrics::ShardMetrics> = control.metrics.iter().map(|m| &**m).collect();
    let mut out = String::with_capacity(8 * 1024);
    metrics::render(&shards, &control.settings.exchanges, &mut out);
    metrics::render_money(&shards, &treasury::figures(&snapshot), &mut out);
    metrics::render_process(&crate::process::figures(), &mut out);
    let memory = control.memory.borrow();
    metrics::render_memory(memory.trims(), memory.returned_bytes(), &mut out);
    metrics::render_admin(admin.unauthorized.get(), &mut out);
    respond(
        StatusCode::OK,
        http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        Bytes::from(out),
    )
}

/// The answer to a table change. A failure is the client's fault only when the
/// campaigns it sent are invalid, or when the set is empty without `?allow_empty=1`;
/// the others are ours (500, or 503 when a shard did not confirm in time) and are
/// logged with the reason.
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
    if !matches!(e, ChangeError::Invalid(_) | ChangeError::Empty) {
        warn!(error = ?e, "Campaign change failed");
    }
    match e {
        ChangeError::Invalid(list) => errors(StatusCode::BAD_REQUEST, list),
        ChangeError::Empty => errors(
            StatusCode::BAD_REQUEST,
            vec!["the campaign set is empty: every shard would stop bidding. To load it anyway, add ?allow_empty=1 to the request".into()],
        ),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_empty_is_0_or_1_and_other_parameters_are_ignored() {
        assert_eq!(allow_empty(None), Ok(false));
        assert_eq!(allow_empty(Some("allow_empty=1")), Ok(true));
        assert_eq!(allow_empty(Some("x=2&allow_empty=1")), Ok(true));
        assert_eq!(allow_empty(Some("allow_empty=1&allow_empty=0")), Ok(false));
        assert_eq!(allow_empty(Some("allow_empty=0")), Ok(false));
        assert_eq!(allow_empty(Some("allow_emptyx=1")), Ok(false));
        for bad in [
            "allow_empty",
            "allow_empty=",
            "allow_empty=true",
            "allow_empty=%31",
        ] {
            assert!(allow_empty(Some(bad)).is_err(), "{bad}");
        }
    }
}
