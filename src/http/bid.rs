//! The bid handler: the story of one bid request, top to bottom.
//!
//! body -> decode -> auction -> encode -> deadline check -> respond
//!
//! | answer | when |
//! |---|---|
//! | 200 + BidResponse | at least one imp got a bid |
//! | 204, empty | no bid (reason counted in `shardbid_nobid_total`), or the deadline passed |
//! | 400 + reason | the body is not JSON, or not a valid bid request |
//! | 413 | the body is larger than `http.max_body_bytes` |
//! | 415 | a `Content-Type` that is not JSON (see `is_json`), or a `Content-Encoding` |
//!
//! `x-openrtb-version` is echoed on every answer. A no-bid is a normal result, not an
//! error; the deadline never produces a 5xx.

use std::cell::Cell;
use std::time::{Duration, Instant};

use http::header::{HeaderValue, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::{empty, respond, text, Body, JSON};
use crate::auction::AuctionContext;
use crate::metrics::Outcome;
use crate::openrtb::DecodeError;
use crate::pipeline::{self, Answer};
use crate::shard::Shard;

const OPENRTB_VERSION: &str = "x-openrtb-version";

/// A request turned away before the auction: how it is counted and what it gets.
type Rejected = (Outcome, Response<Body>);

pub async fn handle(
    shard: &Shard,
    req: Request<Incoming>,
    exchange: Option<u32>,
) -> Response<Body> {
    let start = Instant::now();
    let (parts, incoming) = req.into_parts();
    let version = parts.headers.get(OPENRTB_VERSION).cloned();
    // The deadline check's clock reading, reused for the latency histogram.
    let took = Cell::new(None);

    let (outcome, mut resp) = match check_headers(&parts.headers, shard.settings.max_body_bytes) {
        Err(rejected) => rejected,
        Ok(()) => {
            let mut body = shard.take_body();
            let answer = match read_body(incoming, &mut body, shard.settings.max_body_bytes).await {
                Ok(()) => bid(shard, &mut body, exchange, start, &took),
                Err(rejected) => rejected,
            };
            shard.put_body(body);
            answer
        }
    };

    if let Some(v) = version {
        resp.headers_mut().insert(OPENRTB_VERSION, v);
    }
    let took = took.get().unwrap_or_else(|| start.elapsed());
    shard.metrics.record(exchange, outcome, took);
    resp
}

/// Rejects what can be rejected from the headers alone, before reading the body.
#[allow(clippy::result_large_err)] // built once per rejected request, never boxed
fn check_headers(headers: &HeaderMap, max_body: usize) -> Result<(), Rejected> {
    let too_large = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > max_body as u64);
    if too_large {
        return Err((
            Outcome::TooLarge,
            text(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n"),
        ));
    }
    if let Some(ct) = headers.get(CONTENT_TYPE) {
        if !is_json(ct) {
            return Err((
                Outcome::UnsupportedMedia,
                text(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "content-type must be application/json\n",
                ),
            ));
        }
    }
    if let Some(ce) = headers.get(CONTENT_ENCODING) {
        if !ce.as_bytes().eq_ignore_ascii_case(b"identity") {
            return Err((
                Outcome::UnsupportedMedia,
                text(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported content-encoding\n",
                ),
            ));
        }
    }
    Ok(())
}

/// Media types taken as JSON: `application/json`, `application/*+json`, `text/plain`
/// (some exchanges send it), and `application/x-www-form-urlencoded`, which is what
/// `curl --data-binary` and several load tools send unless told otherwise. Parameters
/// such as `charset` are ignored.
fn is_json(ct: &HeaderValue) -> bool {
    let Ok(s) = ct.to_str() else { return false };
    let media = s.split(';').next().unwrap_or("").trim();
    media.eq_ignore_ascii_case("application/json")
        || media.eq_ignore_ascii_case("text/plain")
        || media.eq_ignore_ascii_case("application/x-www-form-urlencoded")
        || (media.len() > 17
            && media[..12].eq_ignore_ascii_case("application/")
            && media[media.len() - 5..].eq_ignore_ascii_case("+json"))
}

/// Reads the whole body into `buf`, enforcing the size limit as it goes (a chunked
/// body has no Content-Length to check up front).
async fn read_body(
    mut incoming: Incoming,
    buf: &mut Vec<u8>,
    max: usize,
) -> Result<(), (Outcome, Response<Body>)> {
    while let Some(frame) = incoming.frame().await {
        let frame = frame.map_err(|_| {
            (
                Outcome::BadRequest,
                text(StatusCode::BAD_REQUEST, "unreadable request body\n"),
            )
        })?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > max {
                return Err((
                    Outcome::TooLarge,
                    text(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n"),
                ));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(())
}

/// Decode, auction, encode: no `.await` in here, so the shard's scratch space can be
/// borrowed for the whole of it.
fn bid(
    shard: &Shard,
    body: &mut [u8],
    exchange: Option<u32>,
    start: Instant,
    took: &Cell<Option<Duration>>,
) -> (Outcome, Response<Body>) {
    let table = shard.table();
    let mut scratch = shard.scratch();
    let ctx = AuctionContext {
        exchange,
        hour_of_week: shard.hour_of_week(),
    };
    let settings = &shard.settings;
    let answer = pipeline::process(&mut scratch, &table, body, &ctx, |tmax| {
        let elapsed = start.elapsed();
        took.set(Some(elapsed));
        elapsed < settings.budget(tmax, exchange)
    });
    let resp = match answer {
        Answer::Bid => respond(StatusCode::OK, JSON, scratch.freeze_out()),
        Answer::NoBid(_) | Answer::Late => empty(StatusCode::NO_CONTENT),
        Answer::Bad(e) => bad_request(e),
    };
    (answer.outcome(), resp)
}

fn bad_request(e: DecodeError) -> Response<Body> {
    match e {
        DecodeError::Syntax => text(
            StatusCode::BAD_REQUEST,
            "malformed JSON or wrong field types\n",
        ),
        DecodeError::Invalid => text(
            StatusCode::BAD_REQUEST,
            "not a valid bid request: id and imp[] with ids are required\n",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_types() {
        let ok = [
            "application/json",
            "Application/JSON; charset=utf-8",
            "text/plain",
            "application/vnd.x+json",
        ];
        for ct in ok {
            assert!(is_json(&HeaderValue::from_static(ct)), "{ct}");
        }
        for ct in [
            "application/xml",
            "text/html",
            "multipart/form-data",
            "application/+json",
        ] {
            assert!(!is_json(&HeaderValue::from_static(ct)), "{ct}");
        }
    }
}
