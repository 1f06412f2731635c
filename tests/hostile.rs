//! Hostile requests against the real server, while good traffic flows beside them.
//!
//! One table of hostile requests, each sent as raw bytes on its own connection:
//! framing tricks (conflicting lengths, transfer codings that do not end in `chunked`,
//! bad chunk sizes, the shapes request smuggling uses), heads that are too large or
//! malformed, compression bombs and unknown codings, and bid requests that are hostile
//! in themselves (too many imps, duplicate imp ids, JSON nested past any stack). Each
//! gets the answer the project defines for it (431, 413, 415, 408, a 400 naming the
//! field) or, where HTTP leaves the choice to hyper, a 4xx and a closed connection.
//!
//! Meanwhile two keep-alive connections send valid bid requests (plain, chunked and
//! gzipped) without pause, and after every hostile request both must have been served
//! again. At the end they must have seen no error at all: every answer a 200 or 204,
//! no connection closed. So what this file proves is that no hostile request crashes,
//! stalls or confuses the server, nor costs a good client anything.
//!
//! `tests/limits.rs` and `tests/encoding.rs` test each limit and coding on its own;
//! this is the broad sweep, with shapes those do not send.

mod common;

use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{fixture, gzip, zlib, Options, Response, Server, FIXTURES};
use serde_json::{json, Value};

/// The request timeout of the server under test: short, so that the slowloris case
/// ends within a second or so instead of the default 10 s.
const REQUEST_TIMEOUT_MS: u64 = 1000;

/// What a hostile request must get.
#[derive(Clone, Copy)]
enum Expect {
    /// Exactly this status, and the connection goes on: a request sent after it on the
    /// same connection is served.
    Status(u16),
    /// This status with this text in the body (the field a 400 names, the header a 415
    /// names), and the connection goes on.
    StatusWith(u16, &'static str),
    /// Exactly this status, then the connection closes with nothing more sent.
    StatusAndClose(u16),
    /// A status from this set, or no answer at all, and then the connection closes with
    /// nothing more sent: where HTTP lets the server choose between answering and
    /// hanging up, and between the statuses listed.
    RefusedAndClose(&'static [u16]),
    /// A status from this set; the connection may go on or close (the framing was
    /// sound, so either is safe).
    Refused(&'static [u16]),
    /// Served (200 or 204), and the connection goes on.
    Served,
    /// Served once (200 or 204), then the connection closes with nothing more sent:
    /// bytes that hide after the body are never read as a request.
    ServedThenClose,
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expect::Status(s) => write!(f, "{s}, stays open"),
            Expect::StatusWith(s, t) => write!(f, "{s} naming {t:?}, stays open"),
            Expect::StatusAndClose(s) => write!(f, "{s} + close"),
            Expect::RefusedAndClose(set) => write!(f, "{set:?} or none, + close"),
            Expect::Refused(set) => write!(f, "{set:?}"),
            Expect::Served => write!(f, "200/204, stays open"),
            Expect::ServedThenClose => write!(f, "200/204 once + close"),
        }
    }
}

/// How the bytes are sent.
#[derive(Clone, Copy, PartialEq)]
enum Pace {
    /// All at once.
    AtOnce,
    /// One byte every 50 ms until the server answers (slowloris).
    Trickle,
}

struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    pace: Pace,
    expect: Expect,
}

fn case(name: &'static str, bytes: Vec<u8>, expect: Expect) -> Case {
    Case {
        name,
        bytes,
        pace: Pace::AtOnce,
        expect,
    }
}

/// The head of a bid request up to (not including) its framing headers.
const BID: &str = "POST /openrtb2/bid HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n";

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A bid request with a correct `content-length` and `extra` header lines.
fn post(extra: &str, body: &[u8]) -> Vec<u8> {
    cat(&[
        format!("{BID}{extra}content-length: {}\r\n\r\n", body.len()).as_bytes(),
        body,
    ])
}

/// `body` as a chunked body of about `pieces` chunks.
fn chunked(body: &[u8], pieces: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in body.chunks(body.len().div_ceil(pieces).max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// A small valid bid request with imps of these ids.
fn with_imps(ids: &[String]) -> Vec<u8> {
    let imps: Vec<Value> = ids
        .iter()
        .map(|id| json!({"id": id, "banner": {"w": 300, "h": 250}}))
        .collect();
    serde_json::to_vec(&json!({"id": "hostile", "imp": imps})).unwrap()
}

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| i.to_string()).collect()
}

/// The table. Every case is sent on its own connection.
fn cases() -> Vec<Case> {
    use Expect::*;
    let body = fixture("simple-banner.json");
    let len = body.len();
    let good_chunked = chunked(&body, 3);
    // A request hidden after a body: answered only if the framing was misread.
    let smuggled: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n";
    let te = |te: &str, rest: &[u8]| cat(&[format!("{BID}{te}\r\n\r\n").as_bytes(), rest]);
    let chunk_head = |size: &str| {
        cat(&[
            format!("{BID}transfer-encoding: chunked\r\n\r\n{size}\r\n").as_bytes(),
            &body,
            b"\r\n0\r\n\r\n",
        ])
    };
    // A request line of the case's own, then a bid request's content-length and body
    // (no host: these cases are about the request line).
    let with_head = |line: &str| cat(&[line.as_bytes(), b"\r\n", &post("", &body)[BID.len()..]]);
    let bid_head = |extra: &str| post(extra, &body);
    // Bombs: each inflates far past http.max_body_bytes (256 KiB) from a few KiB.
    let zeros = vec![0u8; 2 << 20];
    let json_bomb = cat(&[
        br#"{"id":"bomb","imp":[{"id":"1","banner":{"w":300,"h":250}}],"ext":{"p":""#,
        &vec![b'a'; 2 << 20],
        br#""}}"#,
    ]);
    let mut lying_bomb = gzip(&json_bomb);
    let n = lying_bomb.len();
    // The gzip trailer's size field claims 300 bytes: inflating still stops at the cap.
    lying_bomb[n - 4..].copy_from_slice(&300u32.to_le_bytes());
    let mut bad_crc = gzip(&body);
    let n = bad_crc.len();
    bad_crc[n - 8] ^= 0xff;
    let mut dup_far = ids(50);
    dup_far[49] = "7".into();
    let deep = cat(&[
        br#"{"id":"deep","imp":[{"id":"1","banner":{"w":300,"h":250}}],"ext":"#,
        &vec![b'['; 100_000],
        &vec![b']'; 100_000],
        b"}",
    ]);
    let over_max = vec![b' '; 5 * 65536];

    vec![
        // --- Framing: Content-Length and Transfer-Encoding ---------------------------
        // Both framings: RFC 9112 6.1 lets the origin process the chunked framing
        // alone and then requires it to close. The content-length (the JSON's length,
        // not the chunked body's) is ignored.
        case(
            "cl_and_te_chunked_wins",
            bid_head_te(&format!("content-length: {len}"), &good_chunked),
            ServedThenClose,
        ),
        // Smuggling shape: a front end that trusted content-length: 4 would take the
        // rest of the chunked body and the GET after it for the next request. Here the
        // chunked framing ends the body, one answer, the close: the GET is never read.
        case(
            "smuggle_short_content_length",
            bid_head_te("content-length: 4", &cat(&[&good_chunked, smuggled])),
            ServedThenClose,
        ),
        // Smuggling shape the other way: content-length covers the GET as if it were
        // body, for a front end that trusts it; the chunked framing ends before it.
        case(
            "smuggle_long_content_length",
            bid_head_te(
                &format!("content-length: {}", good_chunked.len() + smuggled.len()),
                &cat(&[&good_chunked, smuggled]),
            ),
            ServedThenClose,
        ),
        // Both framings, and the chunked body is empty (the JSON follows its last
        // chunk): the empty body is what the handler sees, a 400, then the close.
        case(
            "cl_and_te_empty_chunked_body",
            bid_head_te(
                &format!("content-length: {}", len + 5),
                &cat(&[b"0\r\n\r\n", &body]),
            ),
            StatusAndClose(400),
        ),
        // Two Content-Lengths that disagree: no framing can be trusted (RFC 9112 6.3).
        case(
            "two_content_lengths",
            bid_head(&format!("content-length: {}\r\n", len + 1)),
            StatusAndClose(400),
        ),
        case(
            "content_length_list_that_disagrees",
            cat(&[
                format!("{BID}content-length: {len}, 5\r\n\r\n").as_bytes(),
                &body,
            ]),
            StatusAndClose(400),
        ),
        case(
            "content_length_negative",
            cat(&[format!("{BID}content-length: -1\r\n\r\n").as_bytes(), &body]),
            RefusedAndClose(&[400]),
        ),
        case(
            "content_length_hex",
            cat(&[
                format!("{BID}content-length: 0x10\r\n\r\n").as_bytes(),
                &body,
            ]),
            RefusedAndClose(&[400]),
        ),
        case(
            "content_length_past_u64",
            cat(&[
                format!("{BID}content-length: 99999999999999999999999\r\n\r\n").as_bytes(),
                &body,
            ]),
            RefusedAndClose(&[400]),
        ),
        // A transfer coding list that does not end in chunked has no framing a server
        // can read (RFC 9112 6.3): 400, or 501 for a coding it does not know.
        case(
            "te_chunked_then_gzip",
            te("transfer-encoding: chunked, gzip", &good_chunked),
            RefusedAndClose(&[400, 501]),
        ),
        case(
            "te_gzip_alone",
            te("transfer-encoding: gzip", &body),
            RefusedAndClose(&[400, 501]),
        ),
        case(
            "te_unknown_xchunked",
            te("transfer-encoding: xchunked", &good_chunked),
            RefusedAndClose(&[400, 501]),
        ),
        // A gzip transfer coding under chunked, with a gzipped body: the framing
        // (chunked, last) is sound, but hyper does not undo the gzip, so the body is
        // not JSON: 400 (or 501, the answer RFC 9112 7 suggests for a transfer coding
        // the server does not implement).
        case(
            "te_gzip_chunked_with_gzip_body",
            te(
                "transfer-encoding: gzip, chunked",
                &chunked(&gzip(&body), 2),
            ),
            Refused(&[400, 501]),
        ),
        // RFC 9112 5.1: whitespace between a field name and the colon is a 400.
        case(
            "te_space_before_colon",
            te("transfer-encoding : chunked", &good_chunked),
            RefusedAndClose(&[400]),
        ),
        case(
            "te_obs_fold",
            te("transfer-encoding:\r\n chunked", &good_chunked),
            RefusedAndClose(&[400]),
        ),
        // Chunked framing in HTTP/1.0 is faulty (RFC 9112 6.1): the server must not
        // trust it, and closes.
        case(
            "te_chunked_in_http_1_0",
            cat(&[
                b"POST /openrtb2/bid HTTP/1.0\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n",
                &good_chunked,
            ]),
            RefusedAndClose(&[400]),
        ),
        // --- Framing: chunk sizes ---------------------------------------------------
        // A chunk size that is not hex, overflows, is negative or has a prefix: the
        // body is unreadable and nothing after it can be trusted.
        case(
            "chunk_size_not_hex",
            chunk_head("zz"),
            RefusedAndClose(&[400]),
        ),
        case(
            "chunk_size_overflows",
            chunk_head("ffffffffffffffffff"),
            RefusedAndClose(&[400]),
        ),
        case(
            "chunk_size_negative",
            chunk_head("-5"),
            RefusedAndClose(&[400]),
        ),
        case(
            "chunk_size_0x_prefix",
            chunk_head("0x10"),
            RefusedAndClose(&[400]),
        ),
        case(
            "chunk_size_with_underscore",
            chunk_head("1_0"),
            RefusedAndClose(&[400]),
        ),
        // The chunk is longer than its size says: no CRLF where the size ends it.
        case(
            "chunk_longer_than_its_size",
            chunk_head("5"),
            RefusedAndClose(&[400]),
        ),
        case(
            "chunk_bare_lf_after_data",
            cat(&[
                format!("{BID}transfer-encoding: chunked\r\n\r\n{len:x}\r\n").as_bytes(),
                &body,
                b"\n0\r\n\r\n",
            ]),
            RefusedAndClose(&[400]),
        ),
        // Chunk extensions and trailers are bounded too: a flood of either is refused
        // instead of buffered.
        case(
            "chunk_extension_flood",
            cat(&[
                format!("{BID}transfer-encoding: chunked\r\n\r\n{len:x};").as_bytes(),
                &vec![b'a'; 100_000],
                b"\r\n",
                &body,
                b"\r\n0\r\n\r\n",
            ]),
            RefusedAndClose(&[400]),
        ),
        case(
            "chunk_trailer_flood",
            cat(&[
                format!("{BID}transfer-encoding: chunked\r\n\r\n{len:x}\r\n").as_bytes(),
                &body,
                b"\r\n0\r\n",
                "x-t: 1\r\n".repeat(20_000).as_bytes(),
                b"\r\n",
            ]),
            RefusedAndClose(&[400]),
        ),
        // A chunked body past http.max_body_bytes: 413 as soon as it passes the cap;
        // the rest is not read, so the connection cannot go on.
        case(
            "chunked_body_over_max",
            te(
                "transfer-encoding: chunked",
                &chunked(&over_max, over_max.len() / 65536),
            ),
            StatusAndClose(413),
        ),
        case(
            "one_chunk_over_max",
            te(
                "transfer-encoding: chunked",
                &chunked(&vec![b' '; 1 << 20], 1),
            ),
            StatusAndClose(413),
        ),
        // Legal but tedious framing: every byte its own chunk.
        case(
            "one_byte_chunks",
            te("transfer-encoding: chunked", &chunked(&body, len)),
            Served,
        ),
        // --- Heads --------------------------------------------------------------------
        // Over http.max_head_bytes (16 KiB) in the request line, in one header name,
        // and in a head that never ends: 431 before the end of the head is seen.
        case(
            "request_line_over_max_head",
            format!("GET /{} HTTP/1.1\r\nhost: t\r\n\r\n", "a".repeat(20_000)).into_bytes(),
            StatusAndClose(431),
        ),
        case(
            "header_name_over_max_head",
            format!("{BID}{}: 1\r\n\r\n", "x".repeat(17_000)).into_bytes(),
            StatusAndClose(431),
        ),
        case(
            "head_that_never_ends",
            format!("{BID}{}", "x-a: b\r\n".repeat(3000)).into_bytes(),
            StatusAndClose(431),
        ),
        // Empty lines before a request line are skipped (RFC 9112 2.2), but not
        // without limit: they count against the head.
        case(
            "crlf_flood_before_request",
            "\r\n".repeat(200_000).into_bytes(),
            StatusAndClose(431),
        ),
        // Over http.max_headers (100) in under 16 KiB: the count decides.
        case(
            "a_thousand_headers",
            post(
                &(0..1000)
                    .map(|i| format!("x-h{i}: 1\r\n"))
                    .collect::<String>(),
                &body,
            ),
            StatusAndClose(431),
        ),
        case(
            "obs_fold",
            bid_head("x-a: 1\r\n  folded\r\n"),
            RefusedAndClose(&[400]),
        ),
        case(
            "space_before_colon_in_content_length",
            cat(&[
                format!("{BID}content-length : {len}\r\n\r\n").as_bytes(),
                &body,
            ]),
            RefusedAndClose(&[400]),
        ),
        case(
            "nul_in_header_value",
            bid_head("x-a: a\0b\r\n"),
            RefusedAndClose(&[400]),
        ),
        case(
            "control_byte_in_header_value",
            bid_head("x-a: a\x07b\r\n"),
            RefusedAndClose(&[400]),
        ),
        case(
            "header_line_without_colon",
            bid_head("garbage line\r\n"),
            RefusedAndClose(&[400]),
        ),
        case(
            "empty_header_name",
            bid_head(": value\r\n"),
            RefusedAndClose(&[400]),
        ),
        case(
            "bare_cr_in_head",
            with_head("POST /openrtb2/bid HTTP/1.1\rx: y"),
            RefusedAndClose(&[400]),
        ),
        // --- Request lines ----------------------------------------------------------
        // A TLS ClientHello on the plain-text port.
        case(
            "tls_client_hello",
            cat(&[b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", &[0u8; 64]]),
            RefusedAndClose(&[400]),
        ),
        // HTTP/0.9 (no version): not served as HTTP/0.9.
        case(
            "http_0_9",
            b"GET /healthz\r\n\r\n".to_vec(),
            RefusedAndClose(&[400, 505]),
        ),
        // HTTP/2 with prior knowledge, on an HTTP/1.1-only port.
        case(
            "h2_preface",
            cat(&[
                b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
                &[0, 0, 0, 4, 0, 0, 0, 0, 0],
            ]),
            RefusedAndClose(&[400, 505]),
        ),
        case(
            "version_http_2_0",
            b"GET /healthz HTTP/2.0\r\nhost: t\r\n\r\n".to_vec(),
            RefusedAndClose(&[400, 505]),
        ),
        case(
            "version_not_http",
            b"GET /healthz HTTX/1.1\r\nhost: t\r\n\r\n".to_vec(),
            RefusedAndClose(&[400, 505]),
        ),
        case(
            "control_byte_in_method",
            with_head("PO\x01ST /openrtb2/bid HTTP/1.1"),
            RefusedAndClose(&[400]),
        ),
        case(
            "space_in_target",
            with_head("POST /openrtb2/ bid HTTP/1.1"),
            RefusedAndClose(&[400]),
        ),
        case(
            "leading_space_before_method",
            b" GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n".to_vec(),
            RefusedAndClose(&[400]),
        ),
        case(
            "non_ascii_target",
            b"GET /\xff\xfe HTTP/1.1\r\nhost: t\r\n\r\n".to_vec(),
            RefusedAndClose(&[400]),
        ),
        // A 2,000-byte method is a valid token, just not one the bid path takes: 405,
        // and its body is read, so the connection goes on.
        case(
            "absurd_method",
            with_head(&format!("{} /openrtb2/bid HTTP/1.1", "Z".repeat(2000))),
            Status(405),
        ),
        // --- Encodings ----------------------------------------------------------------
        // Bombs: 413 once inflating reaches http.max_body_bytes, and the connection
        // goes on (the body was read in full).
        case(
            "gzip_bomb_of_zeros",
            post("content-encoding: gzip\r\n", &gzip(&zeros)),
            Status(413),
        ),
        case(
            "zlib_deflate_bomb",
            post("content-encoding: deflate\r\n", &zlib(&zeros)),
            Status(413),
        ),
        case(
            "x_gzip_json_bomb_lying_size",
            post("content-encoding: x-gzip\r\n", &lying_bomb),
            Status(413),
        ),
        // A body that is not what its coding says: 400 with the reason.
        case(
            "gzip_bad_checksum",
            post("content-encoding: gzip\r\n", &bad_crc),
            StatusWith(400, "does not inflate"),
        ),
        case(
            "deflate_garbage",
            post("content-encoding: deflate\r\n", &[0xff; 100]),
            StatusWith(400, "does not inflate"),
        ),
        case(
            "gzip_empty_body",
            post("content-encoding: gzip\r\n", b""),
            StatusWith(400, "does not inflate"),
        ),
        // Gzipped twice, labelled once: inflated once, what is left is not JSON.
        case(
            "gzip_inside_gzip",
            post("content-encoding: gzip\r\n", &gzip(&gzip(&body))),
            StatusWith(400, "JSON"),
        ),
        // Codings shardbid does not take, however they are spelled: 415 naming the
        // header, and the connection goes on.
        case(
            "coding_with_parameter",
            post("content-encoding: gzip;q=1\r\n", &gzip(&body)),
            StatusWith(415, "content-encoding"),
        ),
        case(
            "coding_not_ascii",
            post("content-encoding: \u{ff}\r\n", &body),
            StatusWith(415, "content-encoding"),
        ),
        // Two header lines are one list: gzip twice, stacked.
        case(
            "gzip_in_two_header_lines",
            post(
                "content-encoding: gzip\r\ncontent-encoding: gzip\r\n",
                &gzip(&gzip(&body)),
            ),
            StatusWith(415, "content-encoding"),
        ),
        case(
            "identity_then_br_in_two_header_lines",
            post(
                "content-encoding: identity\r\ncontent-encoding: br\r\n",
                &body,
            ),
            StatusWith(415, "content-encoding"),
        ),
        // --- The bid request itself ------------------------------------------------------
        // http.max_imps (50): 50 is served, 51 and 2,000 are 400 naming imp.
        case("imps_at_max", post("", &with_imps(&ids(50))), Served),
        case(
            "imps_one_over_max",
            post("", &with_imps(&ids(51))),
            StatusWith(400, "imp"),
        ),
        case(
            "two_thousand_imps",
            post("", &with_imps(&ids(2000))),
            StatusWith(400, "imp"),
        ),
        // Duplicate imp ids: the 400 names the second one.
        case(
            "duplicate_imp_ids",
            post("", &with_imps(&["a".into(), "b".into(), "a".into()])),
            StatusWith(400, "imp[2].id"),
        ),
        case(
            "duplicate_imp_id_at_the_last_of_fifty",
            post("", &with_imps(&dup_far)),
            StatusWith(400, "imp[49].id"),
        ),
        case(
            "imp_is_an_object",
            post("", br#"{"id":"x","imp":{"id":"1"}}"#),
            StatusWith(400, "imp"),
        ),
        // 100,000 nested arrays (under 256 KiB): the decoder's depth limit answers,
        // the shard's stack is not the limit.
        case("json_nested_100k_deep", post("", &deep), Status(400)),
        case(
            "duplicate_json_key",
            post(
                "",
                br#"{"id":"x","id":"y","imp":[{"id":"1","banner":{"w":300,"h":250}}]}"#,
            ),
            StatusWith(400, "duplicate field"),
        ),
        case(
            "number_past_f64",
            post(
                "",
                br#"{"id":"x","imp":[{"id":"1","bidfloor":1e999999,"banner":{"w":300,"h":250}}]}"#,
            ),
            Status(400),
        ),
        case(
            "invalid_utf8_in_string",
            post(
                "",
                b"{\"id\":\"\xff\xfe\",\"imp\":[{\"id\":\"1\",\"banner\":{\"w\":300,\"h\":250}}]}",
            ),
            Status(400),
        ),
        case(
            "two_json_documents",
            post("", &cat(&[&body, &body])),
            Status(400),
        ),
        // Over http.max_body_bytes by its Content-Length: refused before the body is
        // read (most of it is never sent), so the connection closes.
        case(
            "content_length_over_max",
            cat(&[
                format!("{BID}content-length: 300000\r\n\r\n").as_bytes(),
                &body,
            ]),
            StatusAndClose(413),
        ),
        // --- Slowloris ----------------------------------------------------------------
        // A head trickled a byte every 50 ms: the request timeout runs from its first
        // byte, so each byte does not buy more time.
        Case {
            name: "slowloris_trickled_head",
            bytes: format!("{BID}x-slow: {}", "a".repeat(200)).into_bytes(),
            pace: Pace::Trickle,
            expect: StatusAndClose(408),
        },
    ]
}

/// A bid request head with `framing` (a Content-Length line) and chunked framing.
fn bid_head_te(framing: &str, body: &[u8]) -> Vec<u8> {
    cat(&[
        format!("{BID}{framing}\r\ntransfer-encoding: chunked\r\n\r\n").as_bytes(),
        body,
    ])
}

/// One raw connection whose every received byte is kept, so that anything the server
/// sends after its first answer is seen (common's `Conn` reads ahead into a buffer of
/// its own, where a second answer would hide from `closed_within`).
struct Wire {
    stream: TcpStream,
    buf: Vec<u8>,
    /// The server closed (or reset) the connection.
    ended: bool,
}

impl Wire {
    fn open(server: &Server) -> Wire {
        let stream = TcpStream::connect(server.traffic).expect("connect");
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        // A server that stops reading without closing cannot hang the test.
        stream
            .set_write_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        Wire {
            stream,
            buf: Vec::new(),
            ended: false,
        }
    }

    /// Reads what has come; false at the end of the connection or the read timeout.
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => {
                self.ended = true;
                false
            }
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
            Err(_) => {
                self.ended = true;
                false
            }
        }
    }

    /// The next final answer (a `1xx` is skipped); `None` if the connection ended, or
    /// went silent for the read timeout, first.
    fn answer(&mut self) -> Option<Response> {
        loop {
            let head_end = loop {
                if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i;
                }
                if !self.fill() {
                    return None;
                }
            };
            let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
            let mut lines = head.split("\r\n");
            let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            let len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .map_or(Some(0), |(_, v)| v.parse().ok())?;
            let total = head_end + 4 + len;
            while self.buf.len() < total {
                if !self.fill() {
                    return None;
                }
            }
            let body = self.buf[head_end + 4..total].to_vec();
            self.buf.drain(..total);
            if status >= 200 {
                return Some(Response {
                    status,
                    headers,
                    body,
                });
            }
        }
    }

    /// `Ok` if the server closes within 2 s having sent nothing more.
    fn closes_silently(&mut self) -> Result<(), String> {
        self.stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        while self.fill() {}
        if !self.buf.is_empty() {
            Err(format!(
                "then sent {:?}",
                String::from_utf8_lossy(&self.buf[..self.buf.len().min(80)])
            ))
        } else if !self.ended {
            Err("then the connection stayed open".into())
        } else {
            Ok(())
        }
    }

    /// `Ok` if the connection goes on: nothing more was sent after the answer, and a
    /// request sent now is served.
    fn goes_on(&mut self) -> Result<(), String> {
        if !self.buf.is_empty() {
            return Err(format!(
                "then sent {:?}",
                String::from_utf8_lossy(&self.buf[..self.buf.len().min(80)])
            ));
        }
        let _ = self
            .stream
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n");
        match self.answer() {
            Some(r) if r.status == 200 => Ok(()),
            Some(r) => Err(format!("then /healthz on it got {}", r.status)),
            None => Err("then the connection closed".into()),
        }
    }

    /// Whether the server has sent something (without taking it).
    fn answered(&self) -> bool {
        self.stream.set_nonblocking(true).unwrap();
        let mut b = [0u8; 1];
        let any = matches!(self.stream.peek(&mut b), Ok(n) if n > 0);
        self.stream.set_nonblocking(false).unwrap();
        any
    }
}

/// Sends one case on a fresh connection; `Ok` with what happened, or `Err` with why
/// that is not what the case expects.
fn run(server: &Server, case: &Case) -> Result<String, String> {
    let mut wire = Wire::open(server);
    let started = Instant::now();
    // A write may fail: the server can answer and close before it has read it all
    // (a head over the limit, a refused Content-Length). The answer is still read.
    match case.pace {
        Pace::AtOnce => {
            let _ = wire.stream.write_all(&case.bytes);
        }
        Pace::Trickle => {
            for b in &case.bytes {
                if wire.stream.write_all(std::slice::from_ref(b)).is_err()
                    || wire.answered()
                    || started.elapsed() > Duration::from_secs(5)
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    let answer = wire.answer();
    let took = started.elapsed();
    let status = answer.as_ref().map(|r| r.status);
    let shown = match &answer {
        Some(r) => {
            let text: String = r.text().trim_end().chars().take(60).collect();
            format!("{} {text:?}", r.status)
        }
        None => "no answer".to_string(),
    };
    // The request timeout runs from a request's first byte: had each byte bought
    // more time, the answer would come only after the trickle ends (5 s).
    if case.pace == Pace::Trickle && took > Duration::from_secs(3) {
        return Err(format!("{shown} only after {took:.1?} of trickling"));
    }
    let served = matches!(status, Some(200 | 204));
    let closes = |wire: &mut Wire| match wire.closes_silently() {
        Ok(()) => Ok(format!("{shown}, closed ({took:.0?})")),
        Err(e) => Err(format!("{shown}, {e}")),
    };
    let goes_on = |wire: &mut Wire| match wire.goes_on() {
        Ok(()) => Ok(format!("{shown}, stays open ({took:.0?})")),
        Err(e) => Err(format!("{shown}, {e}")),
    };
    match case.expect {
        Expect::Status(want) if status == Some(want) => goes_on(&mut wire),
        Expect::StatusWith(want, text)
            if status == Some(want) && answer.as_ref().unwrap().text().contains(text) =>
        {
            goes_on(&mut wire)
        }
        Expect::StatusAndClose(want) if status == Some(want) => closes(&mut wire),
        Expect::RefusedAndClose(set) if status.is_none_or(|s| set.contains(&s)) => {
            closes(&mut wire)
        }
        Expect::Refused(set) if status.is_some_and(|s| set.contains(&s)) => {
            Ok(format!("{shown} ({took:.0?})"))
        }
        Expect::Served if served => goes_on(&mut wire),
        Expect::ServedThenClose if served => closes(&mut wire),
        _ => Err(shown),
    }
}

/// Valid traffic on one keep-alive connection until `stop`: every answer must be a
/// 200 or 204 and the connection must never close. `chunked_and_gzip` sends every
/// other request chunked, the others gzipped.
fn good_traffic(
    server: &Server,
    chunked_and_gzip: bool,
    served: &AtomicU64,
    stop: &AtomicBool,
    errors: &Mutex<Vec<String>>,
) {
    let requests: Vec<Vec<u8>> = FIXTURES
        .iter()
        .flat_map(|name| {
            let body = fixture(name);
            if chunked_and_gzip {
                vec![
                    chunked_post(&chunked(&body, 4)),
                    post("content-encoding: gzip\r\n", &gzip(&body)),
                ]
            } else {
                vec![post("", &body)]
            }
        })
        .collect();
    let mut conn = server.conn();
    for (i, req) in requests.iter().cycle().enumerate() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        if let Err(e) = conn.stream.write_all(req) {
            errors
                .lock()
                .unwrap()
                .push(format!("good request {i}: {e}"));
            return;
        }
        match conn.read_response() {
            Some(r) if r.status == 200 || r.status == 204 => {
                served.fetch_add(1, Ordering::Relaxed);
            }
            Some(r) => {
                errors
                    .lock()
                    .unwrap()
                    .push(format!("good request {i}: {} {}", r.status, r.text()))
            }
            None => {
                errors
                    .lock()
                    .unwrap()
                    .push(format!("good request {i}: the connection closed"));
                return;
            }
        }
        // Leaves the two shared cores some room for the hostile sweep.
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A chunked bid request.
fn chunked_post(body: &[u8]) -> Vec<u8> {
    cat(&[
        format!("{BID}transfer-encoding: chunked\r\n\r\n").as_bytes(),
        body,
    ])
}

/// Sets the flag when dropped, so that a failing sweep still stops the good traffic
/// (and the scope can end).
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Waits until every good connection has been served again since `before`.
fn good_traffic_moves(served: &[AtomicU64; 2], before: [u64; 2]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if served
            .iter()
            .zip(before)
            .all(|(s, b)| s.load(Ordering::Relaxed) > b)
        {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn hostile_requests_are_refused_while_good_traffic_sees_no_error() {
    let cases = cases();
    assert!(cases.len() >= 35, "{} cases", cases.len());
    let server = Server::start_with(Options {
        config: Some(format!(
            "[http]\nheader_read_timeout_ms = {REQUEST_TIMEOUT_MS}\n"
        )),
        ..Options::default()
    });
    let served = [AtomicU64::new(0), AtomicU64::new(0)];
    let stop = AtomicBool::new(false);
    let errors = Mutex::new(Vec::new());
    let mut failures = Vec::new();
    std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        for (i, count) in served.iter().enumerate() {
            let (server, stop, errors) = (&server, &stop, &errors);
            s.spawn(move || good_traffic(server, i == 1, count, stop, errors));
        }
        // Both good connections are served before the first hostile request.
        assert!(good_traffic_moves(&served, [0, 0]), "no good traffic");
        for case in &cases {
            let before = served.each_ref().map(|s| s.load(Ordering::Relaxed));
            let outcome = run(&server, case);
            println!(
                "{:<40} expect {:<32} got {}",
                case.name,
                case.expect.to_string(),
                match &outcome {
                    Ok(seen) => seen.clone(),
                    Err(seen) => format!("WRONG: {seen}"),
                }
            );
            if let Err(seen) = outcome {
                failures.push(format!(
                    "{}: expected {}, got {seen}",
                    case.name, case.expect
                ));
            }
            // The server still serves: both good connections have had an answer since.
            if !good_traffic_moves(&served, before) {
                failures.push(format!("{}: good traffic stopped after it", case.name));
                break;
            }
        }
    });
    let errors = errors.into_inner().unwrap();
    let total: u64 = served.iter().map(|s| s.load(Ordering::Relaxed)).sum();
    println!(
        "{} hostile cases; {total} good requests served, {} errors",
        cases.len(),
        errors.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        errors.is_empty(),
        "good traffic saw errors:\n{}",
        errors.join("\n")
    );

    // The process is alive, its probes answer, and a new connection is served.
    let mut server = server;
    assert!(server.wait(Duration::from_millis(50)).is_none(), "exited");
    assert_eq!(server.admin().get("/healthz").status, 200);
    assert_eq!(server.admin().get("/readyz").status, 200);
    let ok = server.bid(&fixture("simple-banner.json"));
    assert!(ok.status == 200 || ok.status == 204, "{}", ok.status);
    let log = server.log.lock().unwrap().clone();
    assert!(!log.contains("panicked"), "{log}");
}

// Two behaviours this sweep once found wrong, kept as tests of their own.

/// A gzip body whose trailer claims it inflates to 0 bytes (it does not) is a 400 like
/// any other lying size field, and the shard goes on serving. (The first output size
/// tried was once that 0, grown fourfold to 0 again, forever.)
#[test]
fn a_gzip_size_field_of_zero_is_refused_not_spun_on() {
    let server = Server::start();
    let mut body = gzip(&fixture("simple-banner.json"));
    let n = body.len();
    body[n - 4..].copy_from_slice(&0u32.to_le_bytes());
    let mut conn = server.conn();
    conn.stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let _ = conn
        .stream
        .write_all(&post("content-encoding: gzip\r\n", &body));
    let r = conn.read_response().expect("an answer within 3 s");
    assert_eq!(r.status, 400, "{}", r.text());
    // Every shard still serves (connections are spread over both).
    for _ in 0..8 {
        let mut c = server.conn();
        c.stream
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        c.write_request("GET", "/healthz", &[], b"");
        assert_eq!(c.read_response().map(|r| r.status), Some(200));
    }
}

/// A request whose body stops arriving gets the 408 when the request timeout passes,
/// and nothing after it: the 408 says `connection: close`. (The handler's own answer
/// to the failed body read, a 400, once followed it on the wire.)
#[test]
fn a_body_cut_off_by_the_request_timeout_gets_the_408_alone() {
    let server = Server::start_with(Options {
        config: Some("[http]\nheader_read_timeout_ms = 300\n".into()),
        ..Options::default()
    });
    let body = fixture("simple-banner.json");
    let mut wire = Wire::open(&server);
    let mut req = post("", &body);
    req.truncate(req.len() - body.len() / 2);
    wire.stream.write_all(&req).unwrap();
    let r = wire.answer().expect("an answer");
    assert_eq!(r.status, 408);
    if let Err(e) = wire.closes_silently() {
        panic!("after the 408: {e}");
    }
}
