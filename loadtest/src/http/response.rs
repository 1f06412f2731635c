//! An incremental HTTP/1.1 response parser for a client that sends one request at a
//! time per connection.
//!
//! The caller accumulates the bytes of one response in a buffer and calls
//! [`ResponseParser::parse`] after each read; the parser resumes where it stopped, so
//! partial reads cost nothing extra. It reads the status line, `Content-Length`,
//! `Transfer-Encoding: chunked`, `Connection` and `Retry-After`, skips `1xx` interim
//! responses, and de-chunks chunked bodies into its own reused buffer.

use memchr::memmem;

/// Largest accepted response head.
pub const MAX_HEAD: usize = 64 * 1024;
/// Largest accepted response body.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// Why a response could not be parsed; the connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    StatusLine,
    Header,
    Chunk,
    TooLarge,
    /// The connection closed before the response was complete.
    Truncated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    None,
    Length(usize),
    Chunked,
    UntilClose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkPhase {
    Size,
    Data(usize),
    DataEnd,
    Trailer,
}

/// A complete response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Bytes of the buffer this response occupied (interim `1xx` responses included).
    pub len: usize,
    /// The server will close the connection (`Connection: close`, or HTTP/1.0 without
    /// keep-alive, or a body delimited by the close).
    pub close: bool,
    /// `Retry-After` in seconds, when given as a number.
    pub retry_after: Option<u32>,
    body_start: usize,
    body_end: usize,
    chunked: bool,
}

/// Parser state for the response being received on one connection.
#[derive(Debug)]
pub struct ResponseParser {
    /// Where the current (non-interim) response starts in the buffer.
    start: usize,
    /// How far the head search got, to resume without rescanning.
    scanned: usize,
    head: Option<Head>,
    chunk_pos: usize,
    chunk: ChunkPhase,
    chunked_body: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
struct Head {
    status: u16,
    end: usize,
    framing: Framing,
    close: bool,
    retry_after: Option<u32>,
}

impl Default for ResponseParser {
    fn default() -> Self {
        ResponseParser {
            start: 0,
            scanned: 0,
            head: None,
            chunk_pos: 0,
            chunk: ChunkPhase::Size,
            chunked_body: Vec::new(),
        }
    }
}

impl ResponseParser {
    /// Forgets the response so far (keeps the de-chunk buffer's memory).
    pub fn reset(&mut self) {
        self.start = 0;
        self.scanned = 0;
        self.head = None;
        self.chunk_pos = 0;
        self.chunk = ChunkPhase::Size;
        self.chunked_body.clear();
    }

    /// Whether any byte of a response head has been seen.
    pub fn started(&self) -> bool {
        self.head.is_some() || self.scanned > 0
    }

    /// Parses `buf`, all bytes received since the request was sent. `Ok(None)`: more
    /// bytes are needed.
    pub fn parse(&mut self, buf: &[u8]) -> Result<Option<Response>, ParseError> {
        loop {
            let head = match self.head {
                Some(h) => h,
                None => match self.parse_head(buf)? {
                    Some(h) if (100..200).contains(&h.status) => {
                        // Interim response (100 Continue, 103 Early Hints): skip it.
                        self.start = h.end;
                        self.scanned = h.end;
                        continue;
                    }
                    Some(h) => {
                        self.head = Some(h);
                        self.chunk_pos = h.end;
                        h
                    }
                    None => return Ok(None),
                },
            };
            return match head.framing {
                Framing::None => Ok(Some(self.done(head, head.end, head.end, head.end, false))),
                Framing::Length(n) => {
                    let end = head.end + n;
                    Ok((buf.len() >= end).then(|| self.done(head, end, head.end, end, false)))
                }
                Framing::Chunked => Ok(self
                    .parse_chunks(buf)?
                    .map(|end| self.done(head, end, 0, 0, true))),
                Framing::UntilClose => {
                    if buf.len() - head.end > MAX_BODY {
                        return Err(ParseError::TooLarge);
                    }
                    Ok(None)
                }
            };
        }
    }

    /// The connection reached end of file after `buf`: completes a body delimited by
    /// the close, or reports a truncated response.
    pub fn finish_eof(&mut self, buf: &[u8]) -> Result<Response, ParseError> {
        if let Some(r) = self.parse(buf)? {
            return Ok(r);
        }
        match self.head {
            Some(h) if h.framing == Framing::UntilClose => {
                Ok(self.done(h, buf.len(), h.end, buf.len(), false))
            }
            _ => Err(ParseError::Truncated),
        }
    }

    /// The body of `resp`, which was parsed from `buf`.
    pub fn body<'a>(&'a self, buf: &'a [u8], resp: &Response) -> &'a [u8] {
        if resp.chunked {
            &self.chunked_body
        } else {
            &buf[resp.body_start..resp.body_end]
        }
    }

    fn done(
        &self,
        h: Head,
        len: usize,
        body_start: usize,
        body_end: usize,
        chunked: bool,
    ) -> Response {
        let close = h.close || h.framing == Framing::UntilClose;
        Response {
            status: h.status,
            len,
            close,
            retry_after: h.retry_after,
            body_start,
            body_end,
            chunked,
        }
    }

    fn parse_head(&mut self, buf: &[u8]) -> Result<Option<Head>, ParseError> {
        let from = self.scanned.saturating_sub(3).max(self.start);
        let Some(i) = memmem::find(&buf[from..], b"\r\n\r\n") else {
            self.scanned = buf.len();
            if buf.len() - self.start > MAX_HEAD {
                return Err(ParseError::TooLarge);
            }
            return Ok(None);
        };
        let end = from + i + 4;
        let head = &buf[self.start..end - 4];
        let mut lines = head
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
        let status_line = lines.next().ok_or(ParseError::StatusLine)?;
        // "HTTP/1.1 200 OK"
        if status_line.len() < 12 || !status_line.starts_with(b"HTTP/1.") || status_line[8] != b' '
        {
            return Err(ParseError::StatusLine);
        }
        let http10 = status_line[7] == b'0';
        let code = &status_line[9..12];
        if !code.iter().all(u8::is_ascii_digit) || status_line.get(12).is_some_and(|&b| b != b' ') {
            return Err(ParseError::StatusLine);
        }
        let status = code.iter().fold(0u16, |a, &d| a * 10 + (d - b'0') as u16);
        let mut length: Option<usize> = None;
        let mut chunked = false;
        let mut close = http10;
        let mut retry_after = None;
        for line in lines {
            let colon = memchr::memchr(b':', line).ok_or(ParseError::Header)?;
            let name = &line[..colon];
            let value = trim(&line[colon + 1..]);
            if name.eq_ignore_ascii_case(b"content-length") {
                let n = parse_decimal(value).ok_or(ParseError::Header)?;
                if length.is_some_and(|l| l != n) {
                    return Err(ParseError::Header);
                }
                length = Some(n);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                chunked = value
                    .rsplit(|&b| b == b',')
                    .next()
                    .is_some_and(|last| trim(last).eq_ignore_ascii_case(b"chunked"));
            } else if name.eq_ignore_ascii_case(b"connection") {
                for token in value.split(|&b| b == b',') {
                    let t = trim(token);
                    if t.eq_ignore_ascii_case(b"close") {
                        close = true;
                    } else if t.eq_ignore_ascii_case(b"keep-alive") && http10 {
                        close = false;
                    }
                }
            } else if name.eq_ignore_ascii_case(b"retry-after") {
                retry_after = parse_decimal(value).and_then(|n| u32::try_from(n).ok());
            }
        }
        let framing = if (100..200).contains(&status) || status == 204 || status == 304 {
            Framing::None
        } else if chunked {
            Framing::Chunked
        } else if let Some(n) = length {
            if n > MAX_BODY {
                return Err(ParseError::TooLarge);
            }
            Framing::Length(n)
        } else {
            Framing::UntilClose
        };
        Ok(Some(Head {
            status,
            end,
            framing,
            close,
            retry_after,
        }))
    }

    /// Advances through chunks; returns the end of the response once the last chunk
    /// and the trailer are in.
    fn parse_chunks(&mut self, buf: &[u8]) -> Result<Option<usize>, ParseError> {
        loop {
            match self.chunk {
                ChunkPhase::Size => {
                    let Some(i) = memmem::find(&buf[self.chunk_pos..], b"\r\n") else {
                        return if buf.len() - self.chunk_pos > 1024 {
                            Err(ParseError::Chunk)
                        } else {
                            Ok(None)
                        };
                    };
                    let line = &buf[self.chunk_pos..self.chunk_pos + i];
                    let digits = line
                        .split(|&b| b == b';')
                        .next()
                        .map(trim)
                        .unwrap_or_default();
                    let size = parse_hex(digits).ok_or(ParseError::Chunk)?;
                    if self.chunked_body.len() + size > MAX_BODY {
                        return Err(ParseError::TooLarge);
                    }
                    self.chunk_pos += i + 2;
                    self.chunk = if size == 0 {
                        ChunkPhase::Trailer
                    } else {
                        ChunkPhase::Data(size)
                    };
                }
                ChunkPhase::Data(left) => {
                    let n = left.min(buf.len() - self.chunk_pos);
                    self.chunked_body
                        .extend_from_slice(&buf[self.chunk_pos..self.chunk_pos + n]);
                    self.chunk_pos += n;
                    if n < left {
                        self.chunk = ChunkPhase::Data(left - n);
                        return Ok(None);
                    }
                    self.chunk = ChunkPhase::DataEnd;
                }
                ChunkPhase::DataEnd => {
                    if buf.len() < self.chunk_pos + 2 {
                        return Ok(None);
                    }
                    if &buf[self.chunk_pos..self.chunk_pos + 2] != b"\r\n" {
                        return Err(ParseError::Chunk);
                    }
                    self.chunk_pos += 2;
                    self.chunk = ChunkPhase::Size;
                }
                ChunkPhase::Trailer => {
                    let Some(i) = memmem::find(&buf[self.chunk_pos..], b"\r\n") else {
                        return if buf.len() - self.chunk_pos > MAX_HEAD {
                            Err(ParseError::TooLarge)
                        } else {
                            Ok(None)
                        };
                    };
                    self.chunk_pos += i + 2;
                    if i == 0 {
                        return Ok(Some(self.chunk_pos));
                    }
                }
            }
        }
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn parse_decimal(s: &[u8]) -> Option<usize> {
    if s.is_empty() || s.len() > 15 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0usize, |a, &d| a * 10 + (d - b'0') as usize))
}

fn parse_hex(s: &[u8]) -> Option<usize> {
    if s.is_empty() || s.len() > 8 {
        return None;
    }
    s.iter().try_fold(0usize, |a, &d| {
        Some(a * 16 + (d as char).to_digit(16)? as usize)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(bytes: &[u8]) -> (Response, Vec<u8>) {
        let mut p = ResponseParser::default();
        let r = p.parse(bytes).unwrap().expect("complete");
        let body = p.body(bytes, &r).to_vec();
        (r, body)
    }

    /// Feeds `bytes` in pieces of `step` and checks that the response completes exactly
    /// when the last byte arrives.
    fn parse_in_steps(bytes: &[u8], step: usize) -> (Response, Vec<u8>) {
        let mut p = ResponseParser::default();
        let mut end = 0;
        loop {
            end = (end + step).min(bytes.len());
            match p.parse(&bytes[..end]).unwrap() {
                Some(r) => {
                    assert_eq!(end, bytes.len(), "completed early at {end}");
                    let body = p.body(&bytes[..end], &r).to_vec();
                    return (r, body);
                }
                None => assert!(end < bytes.len(), "incomplete after all bytes"),
            }
        }
    }

    const BID: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 47\r\n\r\n{\"id\":\"1\",\"seatbid\":[{\"bid\":[{\"price\":1.25}]}]}";

    #[test]
    fn content_length_response_in_one_read_and_byte_by_byte() {
        let (r, body) = parse_all(BID);
        assert_eq!((r.status, r.len, r.close), (200, BID.len(), false));
        assert_eq!(body, &BID[BID.len() - 47..]);
        for step in [1, 2, 7, 30] {
            let (r2, body2) = parse_in_steps(BID, step);
            assert_eq!(r2, r);
            assert_eq!(body2, body);
        }
    }

    #[test]
    fn no_content_and_close() {
        let bytes = b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n";
        let (r, body) = parse_all(bytes);
        assert_eq!((r.status, r.len, r.close), (204, bytes.len(), true));
        assert!(body.is_empty());
        let (r, _) = parse_all(b"HTTP/1.0 204 No Content\r\n\r\n");
        assert!(r.close, "HTTP/1.0 closes by default");
        let (r, _) = parse_all(b"HTTP/1.0 204 No Content\r\nConnection: Keep-Alive\r\n\r\n");
        assert!(!r.close);
    }

    #[test]
    fn chunked_body_across_partial_reads() {
        let bytes = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"pri\r\n10;ext=1\r\nce\":2.5,\"x\":\"abc\r\n3\r\n\"}!\r\n0\r\nX-Trailer: y\r\n\r\n";
        for step in [1, 3, 5, 11, bytes.len()] {
            let (r, body) = parse_in_steps(bytes, step);
            assert_eq!((r.status, r.len), (200, bytes.len()));
            assert_eq!(body, b"{\"price\":2.5,\"x\":\"abc\"}!");
            let prices = crate::http::price::scan_prices(&body);
            assert_eq!((prices.count, prices.sum_micros), (1, 2_500_000));
        }
    }

    #[test]
    fn interim_responses_are_skipped() {
        let bytes = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\nContent-Length: 0\r\n\r\n";
        let (r, _) = parse_in_steps(bytes, 4);
        assert_eq!(
            (r.status, r.len, r.retry_after),
            (429, bytes.len(), Some(3))
        );
    }

    #[test]
    fn body_until_close() {
        let bytes = b"HTTP/1.1 200 OK\r\n\r\n{\"price\":3}";
        let mut p = ResponseParser::default();
        assert_eq!(p.parse(bytes).unwrap(), None);
        let r = p.finish_eof(bytes).unwrap();
        assert!(r.close);
        assert_eq!(p.body(bytes, &r), b"{\"price\":3}");
        let mut p = ResponseParser::default();
        assert_eq!(
            p.finish_eof(&BID[..BID.len() - 1]),
            Err(ParseError::Truncated)
        );
    }

    #[test]
    fn reset_allows_the_next_response() {
        let mut p = ResponseParser::default();
        let _ = p
            .parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n")
            .unwrap();
        assert!(p.started());
        p.reset();
        assert!(!p.started());
        let r = p.parse(BID).unwrap().unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(p.body(BID, &r).len(), 47);
    }

    #[test]
    fn malformed_responses_are_errors() {
        let mut p = ResponseParser::default();
        assert_eq!(p.parse(b"HTTP/2 200\r\n\r\n"), Err(ParseError::StatusLine));
        let mut p = ResponseParser::default();
        assert_eq!(
            p.parse(b"HTTP/1.1 2x0 OK\r\n\r\n"),
            Err(ParseError::StatusLine)
        );
        let mut p = ResponseParser::default();
        assert_eq!(
            p.parse(b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n"),
            Err(ParseError::Header)
        );
        let mut p = ResponseParser::default();
        assert_eq!(
            p.parse(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            Err(ParseError::Header)
        );
        let mut p = ResponseParser::default();
        assert_eq!(
            p.parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
            Err(ParseError::Chunk)
        );
        let mut p = ResponseParser::default();
        assert_eq!(
            p.parse(b"HTTP/1.1 200 OK\r\nBroken\r\n\r\n"),
            Err(ParseError::Header)
        );
        let mut p = ResponseParser::default();
        let huge = vec![b'a'; MAX_HEAD + 10];
        assert_eq!(p.parse(&huge), Err(ParseError::TooLarge));
    }
}
