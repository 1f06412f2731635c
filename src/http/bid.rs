//! The bid handler: the story of one bid request, top to bottom.
//!
//! headers -> admission -> body -> decode -> auction -> encode -> deadline check -> respond
//!
//! | answer | when |
//! |---|---|
//! | 200 + BidResponse | at least one imp got a bid |
//! | 204, empty | no bid (reason counted in `shardbid_nobid_total`; `overload` and `quota` are decided from the headers, before the body is parsed), or the deadline passed |
//! | 429 + `Retry-After`, `X-RateLimit-*` | the exchange is over its `max_qps` and its `over_quota` is `"429"` |
//! | 400 + reason | the body is not JSON, or not a valid bid request; the reason names the field (`imp[0].banner.w: invalid type: ...`) or the byte of a JSON error; or a compressed body that does not inflate |
//! | 413 | the body, or what it inflates to, is larger than `http.max_body_bytes` |
//! | 415 | a `Content-Type` that is not JSON (see `is_json`), or a `Content-Encoding` other than `gzip`, `deflate` or `identity` (the answer lists them in `Accept-Encoding`) |
//!
//! A bid response is gzipped when the exchange's `gzip_responses` is on, the request's
//! `Accept-Encoding` takes gzip, and it is at least `http.gzip_min_bytes` long.
//!
//! `x-openrtb-version` is echoed on every answer. A no-bid is a normal result, not an
//! error; the deadline never produces a 5xx.

use std::cell::Cell;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{
    HeaderName, HeaderValue, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE,
    RETRY_AFTER, VARY,
};
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Incoming};

use super::reply::{Refusal, Reply};
use super::{Body, Chunk, JSON, TEXT};
use crate::admission::OverQuota;
use crate::auction::NoBidReason;
use crate::config::OverQuotaAnswer;
use crate::encoding::{self, Coding, InflateError};
use crate::events::Event;
use crate::pipeline::{self, Money};
use crate::shard::Shard;
use crate::targeting::MatchContext;

const OPENRTB_VERSION: HeaderName = HeaderName::from_static("x-openrtb-version");

pub async fn handle(
    shard: &Shard,
    req: Request<Incoming>,
    exchange: Option<u32>,
) -> Response<Body> {
    let start = picked_up();
    let (parts, incoming) = req.into_parts();
    let mut headers = parts.headers;
    // The deadline check's clock reading, reused for the latency histogram.
    let took = Cell::new(None);

    // Whether this exchange may get a gzip response; the request says if it takes one.
    let may_gzip = exchange.is_some_and(|e| shard.settings.exchange_gzip[e as usize]);
    let mut head = Head {
        version: None,
        coding: Coding::Identity,
        gzip: false,
    };

    let (reply, body) =
        match check_headers(&headers, shard.settings.max_body_bytes, may_gzip, &mut head) {
            Err(refusal) => (Reply::Refused(refusal), None),
            Ok(()) => {
                let turned_away = admit(shard, exchange, start);
                // The body is read even when the request is turned away: the connection
                // stays open for the exchange's next request.
                let mut body = shard.take_body();
                let max = shard.settings.max_body_bytes;
                let answer = match read_body(incoming, &mut body, max).await {
                    Ok(()) => match turned_away {
                        None if head.coding == Coding::Identity => {
                            bid(shard, &mut body, exchange, start, &mut head.gzip, &took)
                        }
                        None => {
                            shard.metrics.compressed_request(head.coding);
                            let mut plain = shard.take_body();
                            let inflated =
                                shard
                                    .scratch()
                                    .codec
                                    .inflate(head.coding, &body, &mut plain, max);
                            let answer = match inflated {
                                Ok(()) => {
                                    bid(shard, &mut plain, exchange, start, &mut head.gzip, &took)
                                }
                                Err(InflateError::TooLarge) => {
                                    (Reply::Refused(Refusal::TooLarge), None)
                                }
                                Err(InflateError::Corrupt) => {
                                    (Reply::Refused(Refusal::BadEncoding), None)
                                }
                            };
                            shard.put_body(plain);
                            answer
                        }
                        Some(reply) => (reply, None),
                    },
                    Err(refusal) => (Reply::Refused(refusal), None),
                };
                shard.put_body(body);
                answer
            }
        };

    // The request's header map becomes the response's. hyper parses the next request
    // on the connection into the map of the response it last wrote, so in steady state
    // neither the request's headers nor the response's allocate.
    headers.clear();
    let body = match (reply, body) {
        (Reply::Bid, Some(out)) => {
            headers.insert(CONTENT_TYPE, JSON);
            if may_gzip {
                headers.insert(VARY, ACCEPT_ENCODING_NAME);
            }
            if head.gzip {
                headers.insert(CONTENT_ENCODING, GZIP);
            }
            out
        }
        (Reply::Refused(_), Some(why)) => {
            headers.insert(CONTENT_TYPE, TEXT);
            why
        }
        _ if reply.text().is_empty() => Chunk::Bytes(Bytes::new()),
        _ => {
            headers.insert(CONTENT_TYPE, TEXT);
            Chunk::Bytes(Bytes::from_static(reply.text().as_bytes()))
        }
    };
    if let Some(v) = head.version {
        headers.insert(OPENRTB_VERSION, v);
    }
    if reply == Reply::Refused(Refusal::UnsupportedEncoding) {
        headers.insert(ACCEPT_ENCODING, ENCODINGS_TAKEN);
    }
    if let Reply::OverQuota(q) = reply {
        rate_limit_headers(&mut headers, q);
    }
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = reply.status();
    *resp.headers_mut() = headers;

    let took = took.get().unwrap_or_else(|| start.elapsed());
    shard.shedder.done(start + took);
    shard.metrics.record(exchange, reply.outcome(), took);
    resp
}

/// Whether the shard takes the request on: `None` to serve it, or the answer that turns
/// it away unparsed. The exchange's quota first (its own limit), then the shard's load.
fn admit(shard: &Shard, exchange: Option<u32>, start: Instant) -> Option<Reply> {
    if let Some(id) = exchange {
        let quota = &shard.quotas[id as usize];
        if quota.is_limited() {
            if let Err(over) = quota.take(start, shard.settings.shards) {
                return Some(match shard.settings.exchange_quotas[id as usize].1 {
                    OverQuotaAnswer::NoBid => Reply::NoBid(NoBidReason::Quota),
                    OverQuotaAnswer::TooManyRequests => Reply::OverQuota(over),
                });
            }
        }
    }
    if !shard.shedder.admit(start) {
        return Some(Reply::NoBid(NoBidReason::Overload));
    }
    None
}

const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// `Retry-After` and `X-RateLimit-*` on a 429: the exchange's `max_qps`, the requests
/// left this second (on the whole server, as this shard sees it), and the seconds
/// until one is taken again.
fn rate_limit_headers(headers: &mut HeaderMap, q: OverQuota) {
    headers.insert(RETRY_AFTER, HeaderValue::from(q.reset_s));
    headers.insert(X_RATELIMIT_LIMIT, HeaderValue::from(q.limit));
    headers.insert(X_RATELIMIT_REMAINING, HeaderValue::from(q.remaining));
    headers.insert(X_RATELIMIT_RESET, HeaderValue::from(q.reset_s));
}

/// When the shard picked the request up: the instant its executor last read the clock,
/// on this loop over its ready tasks (`glommio::timer::loop_instant`), so no clock read
/// of its own. The time a request waited behind others of the same loop counts towards
/// its deadline and its latency, as it should: its response leaves when that loop
/// ends. Outside a shard (benches), now.
fn picked_up() -> Instant {
    glommio::timer::loop_instant().unwrap_or_else(Instant::now)
}

const GZIP: HeaderValue = HeaderValue::from_static("gzip");
const ACCEPT_ENCODING_NAME: HeaderValue = HeaderValue::from_static("accept-encoding");
/// What a 415 for an unknown `Content-Encoding` says is taken (RFC 9110, 15.5.16).
const ENCODINGS_TAKEN: HeaderValue = HeaderValue::from_static("gzip, deflate");

/// What the request's headers say about its body and its answer.
struct Head {
    /// `x-openrtb-version`, echoed.
    version: Option<HeaderValue>,
    /// The body's `Content-Encoding`.
    coding: Coding,
    /// Whether a bid may be gzipped: the exchange allows it and `Accept-Encoding` takes it.
    gzip: bool,
}

/// Rejects what can be rejected from the headers alone, before reading the body, and
/// notes what the rest of the request needs from them: one pass over the headers,
/// comparing names (standard names compare as small integers), instead of a hashed
/// lookup per header. `Accept-Encoding` is read only when a gzip answer is possible.
fn check_headers(
    headers: &HeaderMap,
    max_body: usize,
    may_gzip: bool,
    head: &mut Head,
) -> Result<(), Refusal> {
    let (mut too_large, mut bad_type, mut bad_encoding) = (false, false, false);
    for (name, value) in headers {
        if *name == CONTENT_LENGTH {
            too_large |= value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .is_some_and(|n| n > max_body as u64);
        } else if *name == CONTENT_TYPE {
            bad_type |= !is_json(value);
        } else if *name == CONTENT_ENCODING {
            match Coding::parse(value.as_bytes()) {
                // Two Content-Encoding lines are two codings, stacked.
                Some(c) if head.coding == Coding::Identity => head.coding = c,
                Some(Coding::Identity) => {}
                _ => bad_encoding = true,
            }
        } else if *name == ACCEPT_ENCODING && may_gzip {
            head.gzip |= encoding::accepts_gzip(value.as_bytes());
        } else if *name == OPENRTB_VERSION && head.version.is_none() {
            head.version = Some(value.clone());
        }
    }
    if too_large {
        return Err(Refusal::TooLarge);
    }
    if bad_type {
        return Err(Refusal::UnsupportedType);
    }
    if bad_encoding {
        return Err(Refusal::UnsupportedEncoding);
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
/// body has no Content-Length to check up front). A body with a Content-Length ends
/// with its last byte: no further poll of hyper's body channel just to learn that.
async fn read_body(mut incoming: Incoming, buf: &mut Vec<u8>, max: usize) -> Result<(), Refusal> {
    while !incoming.is_end_stream() {
        let Some(frame) = incoming.frame().await else {
            break;
        };
        let frame = frame.map_err(|_| Refusal::UnreadableBody)?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > max {
                return Err(Refusal::TooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(())
}

/// Decode, auction, encode: no `.await` in here, so the shard's scratch space can be
/// borrowed for the whole of it. A bid comes back with its encoded body, gzipped if
/// `gzip` allows and it is large enough; `gzip` then says whether it was.
fn bid(
    shard: &Shard,
    body: &mut Vec<u8>,
    exchange: Option<u32>,
    start: Instant,
    gzip: &mut bool,
    took: &Cell<Option<Duration>>,
) -> (Reply, Option<Chunk>) {
    let table = shard.table();
    let mut scratch = shard.scratch();
    let ctx = MatchContext {
        exchange,
        hour_of_week: shard.hour_of_week(),
    };
    let settings = &shard.settings;
    let m = &shard.money;
    let caps = m.caps.borrow();
    let mut on_bid = |e: &Event<'_>| {
        if m.events.sample_bid() {
            m.events.push(e);
        }
    };
    let (now_s, _) = m.now();
    let mut money = Money {
        wallet: &m.wallet,
        caps: &caps,
        key: &m.key,
        users: &m.users,
        now_s,
        now_ms: m.wall_ms(start),
        shard: shard.id as u16,
        exchange,
        exchange_name: m.exchange(exchange).map_or("", |e| e.name.as_str()),
        on_bid: &mut on_bid,
    };
    let answer = pipeline::process(&mut scratch, &table, body, &ctx, Some(&mut money), |tmax| {
        let elapsed = start.elapsed();
        took.set(Some(elapsed));
        elapsed < settings.budget(tmax, exchange)
    });
    let reply = Reply::from(answer);
    let out = match answer {
        pipeline::Answer::Bid => {
            *gzip &= scratch.out.len() >= settings.gzip_min_bytes;
            if *gzip {
                scratch.gzip_out();
                shard.metrics.gzipped_responses.inc();
            }
            Some(Chunk::Out(scratch.take_out()))
        }
        // Only a refused request pays for saying where it went wrong.
        pipeline::Answer::Bad(e) => {
            let mut why = scratch.decoder.explain(e, body);
            why.push('\n');
            Some(Chunk::Bytes(Bytes::from(why)))
        }
        _ => None,
    };
    (reply, out)
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
