//! How a request ends. [`Reply`] is the one place that maps each ending of a bid
//! request to its HTTP status, its `shardbid_bid_requests_total` outcome and its body,
//! and [`Fault`] says whose fault a failure is: the client's (4xx, counted, never
//! logged) or ours (5xx, logged with the reason).

use http::StatusCode;

use crate::admission::OverQuota;
use crate::auction::NoBidReason;
use crate::metrics::Outcome;
use crate::openrtb::DecodeError;
use crate::pipeline::Answer;

/// Whose fault a failed request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The request cannot be served as sent: 4xx.
    Client,
    /// The request was fine and we failed it (a file we cannot read, a shard that did
    /// not answer): 5xx, logged with the reason.
    Server,
}

/// How a bid request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// 200 with the BidResponse the pipeline encoded.
    Bid,
    /// 204: no bid, for this reason.
    NoBid(NoBidReason),
    /// 204: the deadline passed before the answer was ready; a late bid is worth
    /// nothing, and a timeout is never a 5xx.
    Late,
    /// The request cannot be answered as sent.
    Refused(Refusal),
    /// 429: the exchange is over its `max_qps` (its `over_quota` is `"429"`).
    OverQuota(OverQuota),
}

/// Why a bid request was refused. Every refusal is the client's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The body is not JSON, or a field has the wrong type.
    Malformed,
    /// JSON, but not a bid request: no `id`, no `imp`, an `imp` without `id`, two imps
    /// with one id, or more imps than `http.max_imps`.
    NotABidRequest,
    /// The body could not be read (a broken chunked encoding).
    UnreadableBody,
    /// The body is larger than `http.max_body_bytes`.
    TooLarge,
    /// A `Content-Type` that is not JSON.
    UnsupportedType,
    /// A `Content-Encoding` other than `gzip`, `deflate` or `identity`, or stacked
    /// codings.
    UnsupportedEncoding,
    /// A compressed body that does not inflate as its `Content-Encoding` says.
    BadEncoding,
}

impl Reply {
    pub fn status(self) -> StatusCode {
        match self {
            Reply::Bid => StatusCode::OK,
            Reply::NoBid(_) | Reply::Late => StatusCode::NO_CONTENT,
            Reply::OverQuota(_) => StatusCode::TOO_MANY_REQUESTS,
            Reply::Refused(r) => match r {
                Refusal::Malformed
                | Refusal::NotABidRequest
                | Refusal::UnreadableBody
                | Refusal::BadEncoding => StatusCode::BAD_REQUEST,
                Refusal::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                Refusal::UnsupportedType | Refusal::UnsupportedEncoding => {
                    StatusCode::UNSUPPORTED_MEDIA_TYPE
                }
            },
        }
    }

    /// The label it is counted under in `shardbid_bid_requests_total`.
    pub fn outcome(self) -> Outcome {
        match self {
            Reply::Bid => Outcome::Bid,
            Reply::NoBid(reason) => Outcome::NoBid(reason),
            Reply::Late => Outcome::Timeout,
            Reply::OverQuota(_) => Outcome::RateLimited,
            Reply::Refused(r) => match r {
                Refusal::Malformed
                | Refusal::NotABidRequest
                | Refusal::UnreadableBody
                | Refusal::BadEncoding => Outcome::BadRequest,
                Refusal::TooLarge => Outcome::TooLarge,
                Refusal::UnsupportedType | Refusal::UnsupportedEncoding => {
                    Outcome::UnsupportedMedia
                }
            },
        }
    }

    /// The plain-text body of a refusal (the 200's body is the encoded response; a 204
    /// has none).
    pub fn text(self) -> &'static str {
        match self {
            Reply::Bid | Reply::NoBid(_) | Reply::Late => "",
            Reply::OverQuota(_) => "over the exchange's request quota (max_qps)\n",
            Reply::Refused(r) => match r {
                Refusal::Malformed => "malformed JSON or wrong field types\n",
                Refusal::NotABidRequest => {
                    "not a valid bid request: id and imp[] with ids are required\n"
                }
                Refusal::UnreadableBody => "unreadable request body\n",
                Refusal::TooLarge => "request body too large\n",
                Refusal::UnsupportedType => "content-type must be application/json\n",
                Refusal::UnsupportedEncoding => {
                    "unsupported content-encoding: gzip, deflate or identity\n"
                }
                Refusal::BadEncoding => "the body does not inflate as its content-encoding says\n",
            },
        }
    }

    /// Whose fault it is, if it failed.
    pub fn fault(self) -> Option<Fault> {
        match self {
            Reply::Bid | Reply::NoBid(_) | Reply::Late => None,
            Reply::Refused(_) | Reply::OverQuota(_) => Some(Fault::Client),
        }
    }
}

impl From<Answer> for Reply {
    fn from(answer: Answer) -> Reply {
        match answer {
            Answer::Bid => Reply::Bid,
            Answer::NoBid(reason) => Reply::NoBid(reason),
            Answer::Late => Reply::Late,
            Answer::Bad(DecodeError::Syntax { .. }) => Reply::Refused(Refusal::Malformed),
            Answer::Bad(DecodeError::Invalid(_)) => Reply::Refused(Refusal::NotABidRequest),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_is_a_client_error_with_a_reason() {
        for r in [
            Refusal::Malformed,
            Refusal::NotABidRequest,
            Refusal::UnreadableBody,
            Refusal::TooLarge,
            Refusal::UnsupportedType,
            Refusal::UnsupportedEncoding,
            Refusal::BadEncoding,
        ] {
            let reply = Reply::Refused(r);
            assert!(reply.status().is_client_error(), "{r:?}");
            assert_eq!(reply.fault(), Some(Fault::Client));
            assert!(reply.text().ends_with('\n') && reply.text().len() > 10);
        }
    }

    #[test]
    fn no_bids_and_late_answers_are_empty_204s() {
        for reply in [Reply::NoBid(NoBidReason::NoMatch), Reply::Late] {
            assert_eq!(reply.status(), StatusCode::NO_CONTENT);
            assert_eq!((reply.text(), reply.fault()), ("", None));
        }
        assert_eq!(Reply::Late.outcome(), Outcome::Timeout);
    }
}
