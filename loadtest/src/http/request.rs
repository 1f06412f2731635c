//! Pre-serialised HTTP/1.1 requests: every body is turned into its complete request
//! bytes once, before the run, so sending is a single `write` of a ready buffer.

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;

use super::target::Target;

/// The complete bytes of a `POST` of `body` to `target`; with `gzip`, the body is
/// compressed and sent with `Content-Encoding: gzip`.
pub fn build(target: &Target, body: &[u8], gzip: bool) -> Vec<u8> {
    let compressed;
    let payload: &[u8] = if gzip {
        compressed = gzip_bytes(body);
        &compressed
    } else {
        body
    };
    let mut out = Vec::with_capacity(payload.len() + 200);
    out.extend_from_slice(b"POST ");
    out.extend_from_slice(target.path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(target.host.as_bytes());
    out.extend_from_slice(b"\r\nUser-Agent: shardbid-load\r\nContent-Type: application/json\r\nx-openrtb-version: 2.6\r\n");
    if gzip {
        out.extend_from_slice(b"Content-Encoding: gzip\r\n");
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", payload.len()).as_bytes());
    out.extend_from_slice(payload);
    out
}

/// gzip of `data` at the default level.
pub fn gzip_bytes(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(
        Vec::with_capacity(data.len() / 2 + 64),
        Compression::default(),
    );
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn target() -> Target {
        Target {
            url: String::new(),
            host: "127.0.0.1:8080".into(),
            path: "/openrtb2/bid/example".into(),
            addr: "127.0.0.1:8080".parse().unwrap(),
        }
    }

    fn split(req: &[u8]) -> (String, &[u8]) {
        let i = memchr::memmem::find(req, b"\r\n\r\n").unwrap();
        (String::from_utf8(req[..i].to_vec()).unwrap(), &req[i + 4..])
    }

    #[test]
    fn plain_request_has_the_openrtb_headers_and_exact_length() {
        let body = br#"{"id":"1","imp":[{"id":"1"}]}"#;
        let req = build(&target(), body, false);
        let (head, rest) = split(&req);
        assert!(head.starts_with("POST /openrtb2/bid/example HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"));
        assert!(head.contains("\r\nx-openrtb-version: 2.6"));
        assert!(head.contains("\r\nContent-Type: application/json"));
        assert!(head.ends_with(&format!("Content-Length: {}", body.len())));
        assert!(!head.contains("gzip"));
        assert_eq!(rest, body);
    }

    #[test]
    fn gzip_request_decompresses_to_the_body() {
        let body = br#"{"id":"abc","imp":[{"id":"1","banner":{"w":300,"h":250}}],"site":{"domain":"example.com"}}"#;
        let req = build(&target(), body, true);
        let (head, rest) = split(&req);
        assert!(head.contains("\r\nContent-Encoding: gzip"));
        assert!(head.ends_with(&format!("Content-Length: {}", rest.len())));
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(rest)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, body);
    }
}
