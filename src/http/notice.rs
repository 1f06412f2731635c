//! The notice endpoints on the traffic listener: `GET` or `POST`
//! `/notice/{win,billing,loss}?...`, the URLs shardbid writes on its bids.
//!
//! | answer | when |
//! |---|---|
//! | 200, empty | taken: settled, or a duplicate (which changes nothing) |
//! | 400 + reason | malformed, or a clearing price that is missing, not a number, negative or above the bid |
//! | 403 + reason | the signature does not hold (forged or altered), the notice is older than `money.notice_max_age_s`, or an encrypted price fails its integrity check |
//! | 503 | the shard that made the bid has stopped (shutting down): retry |
//!
//! Every refusal is counted (`shardbid_notices_rejected_total{reason}`) and logged as a
//! `rejected` event; none changes anything.

use bytes::Bytes;
use http::header::{HeaderValue, RETRY_AFTER};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::{empty, respond, Body, TEXT};
use crate::money::notice::NoticeKind;
use crate::shard::money::NoticeError;
use crate::shard::Shard;

pub fn handle(shard: &Shard, req: &Request<Incoming>, kind: NoticeKind) -> Response<Body> {
    let query = req.uri().query().unwrap_or("");
    let table = shard.table();
    match shard.money.receive(kind, query, &table, &shard.metrics) {
        Ok(()) => empty(StatusCode::OK),
        Err(NoticeError::Rejected(r)) => {
            let status = StatusCode::from_u16(r.status()).unwrap_or(StatusCode::BAD_REQUEST);
            let mut body = r.label().as_bytes().to_vec();
            body.push(b'\n');
            respond(status, TEXT, Bytes::from(body))
        }
        Err(NoticeError::Unavailable) => {
            let mut resp = empty(StatusCode::SERVICE_UNAVAILABLE);
            resp.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            resp
        }
    }
}
