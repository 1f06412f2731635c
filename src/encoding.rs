//! Compressed bodies: gzip and deflate request bodies inflated under a size cap, and
//! gzip responses. Pure: bytes in, bytes out, no runtime.
//!
//! The codec is libdeflate (through `libdeflater`), chosen by measurement over zlib-rs
//! (through `flate2`): it inflates a bid request in 20-40% less time, and its
//! whole-buffer interface fits a body that is already read in full. Its compressor is
//! the slower of the two on a small response, but a response is compressed only when
//! it is a bid, above `http.gzip_min_bytes`, to an exchange that asked for it
//! (`benches/encoding.rs`, docs/performance.md).
//!
//! A bomb costs little: the output buffer grows only as far as the cap
//! (`http.max_body_bytes`), and inflating stops when the output would pass it.

use std::ptr::NonNull;

use libdeflate_sys as ffi;
use libdeflater::{CompressionLvl, Compressor};

/// A request body's `Content-Encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Identity,
    Gzip,
    /// The zlib format (RFC 9110's `deflate`), or raw deflate, which some clients send
    /// under that name: told apart by the zlib header.
    Deflate,
}

impl Coding {
    /// The `Content-Encoding` value's coding: `identity`, `gzip` (or `x-gzip`) or
    /// `deflate`, in any case, alone or in a list with `identity`. `None` for anything
    /// else, stacked codings included: the answer is 415.
    pub fn parse(value: &[u8]) -> Option<Coding> {
        let mut coding = Coding::Identity;
        for token in value.split(|&b| b == b',') {
            let token = token.trim_ascii();
            let this =
                if token.eq_ignore_ascii_case(b"gzip") || token.eq_ignore_ascii_case(b"x-gzip") {
                    Coding::Gzip
                } else if token.eq_ignore_ascii_case(b"deflate") {
                    Coding::Deflate
                } else if token.eq_ignore_ascii_case(b"identity") || token.is_empty() {
                    continue;
                } else {
                    return None;
                };
            if coding != Coding::Identity {
                return None;
            }
            coding = this;
        }
        Some(coding)
    }

    /// The label it is counted under.
    pub fn label(self) -> &'static str {
        match self {
            Coding::Identity => "identity",
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
        }
    }
}

/// Whether an `Accept-Encoding` value takes gzip: `gzip`, `x-gzip` or `*` with a
/// non-zero quality (RFC 9110, 12.5.3). An explicit `gzip;q=0` wins over `*`.
pub fn accepts_gzip(value: &[u8]) -> bool {
    let mut star = false;
    for item in value.split(|&b| b == b',') {
        let mut parts = item.split(|&b| b == b';');
        let coding = parts.next().unwrap_or_default().trim_ascii();
        let q_zero = parts.any(|p| {
            let p = p.trim_ascii();
            p.len() >= 2 && p[..2].eq_ignore_ascii_case(b"q=") && is_zero(&p[2..])
        });
        if coding.eq_ignore_ascii_case(b"gzip") || coding.eq_ignore_ascii_case(b"x-gzip") {
            return !q_zero;
        }
        if coding == b"*" {
            star = !q_zero;
        }
    }
    star
}

/// A quality value of zero: `0`, `0.`, `0.0`, `0.00`, `0.000`.
fn is_zero(q: &[u8]) -> bool {
    let q = q.trim_ascii();
    q.first() == Some(&b'0') && q[1..].iter().all(|&b| b == b'.' || b == b'0')
}

/// Why a compressed body was not inflated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflateError {
    /// It inflates to more than the cap: 413.
    TooLarge,
    /// It is not what its `Content-Encoding` says (a bad header, a bad checksum, a
    /// truncated stream): 400.
    Corrupt,
}

/// A shard's compression state, reused from request to request: no allocation per
/// request once its buffers have grown. libdeflate's state is made on first use.
#[derive(Default)]
pub struct Codec {
    inflater: Option<Inflater>,
    gzipper: Option<Compressor>,
}

impl Codec {
    /// The compression level of gzip responses: the fastest. A bid response is small
    /// and the exchange is waiting for it.
    const LEVEL: i32 = 1;
    /// The first output size tried when the input does not say how large it inflates.
    const FIRST_GUESS: usize = 4096;

    /// Inflates `input` into `out` (cleared first), refusing an output over `cap`
    /// bytes. Work and memory are bounded by the cap, whatever the input claims. A
    /// gzip body may hold several members (RFC 1952), inflated one after another;
    /// bytes after the last member, or after a deflate stream, make it corrupt: a
    /// body means one thing to every decoder that reads it.
    pub fn inflate(
        &mut self,
        coding: Coding,
        input: &[u8],
        out: &mut Vec<u8>,
        cap: usize,
    ) -> Result<(), InflateError> {
        out.clear();
        let kind = match coding {
            Coding::Identity => {
                if input.len() > cap {
                    return Err(InflateError::TooLarge);
                }
                out.reserve_exact(input.len());
                out.extend_from_slice(input);
                return Ok(());
            }
            Coding::Gzip => Kind::Gzip,
            Coding::Deflate if is_zlib_header(input) => Kind::Zlib,
            Coding::Deflate => Kind::Raw,
        };
        let d = self.inflater.get_or_insert_with(Inflater::new);
        // The first size tried: what gzip's trailer says (mod 2^32; exact for an
        // honest body of one member), else a guess; never more than the cap, and
        // never nothing, so that growing it gets somewhere.
        let hint = match input {
            [.., a, b, c, d] if kind == Kind::Gzip => u32::from_le_bytes([*a, *b, *c, *d]) as usize,
            _ => input.len().saturating_mul(4),
        };
        let mut size = hint.max(Self::FIRST_GUESS).min(cap);
        let (mut read, mut written) = (0, 0);
        loop {
            // Exactly: `resize` alone may double the capacity, past the cap.
            out.reserve_exact(size - out.len());
            out.resize(size, 0);
            match d.run(kind, &input[read..], &mut out[written..]) {
                Ok((r, w)) => {
                    read += r;
                    written += w;
                    if read == input.len() {
                        out.truncate(written);
                        return Ok(());
                    }
                    // Another gzip member follows; anything else is corrupt.
                    if kind != Kind::Gzip || r == 0 {
                        break;
                    }
                }
                // Short of room, for a lying size field or a guess: grow fourfold up
                // to the cap and inflate this member again. The work of the retries
                // is at most a third more than the last attempt's.
                Err(Failure::NoRoom) if size < cap => size = size.saturating_mul(4).min(cap),
                Err(Failure::NoRoom) => {
                    out.clear();
                    return Err(InflateError::TooLarge);
                }
                Err(Failure::BadData) => break,
            }
        }
        out.clear();
        Err(InflateError::Corrupt)
    }

    /// Compresses `input` as one gzip member into `out` (cleared first).
    pub fn gzip(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let c = self.gzipper.get_or_insert_with(|| {
            Compressor::new(CompressionLvl::new(Self::LEVEL).unwrap_or_default())
        });
        out.clear();
        out.resize(c.gzip_compress_bound(input.len()), 0);
        // The bound is what libdeflate needs for any input: this cannot run short.
        let n = c.gzip_compress(input, out).unwrap_or(0);
        out.truncate(n);
    }
}

/// The container around a deflate stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gzip,
    Zlib,
    Raw,
}

/// Why libdeflate stopped.
enum Failure {
    BadData,
    NoRoom,
}

/// libdeflate's decompressor, through its `_ex` calls, which say how much input a
/// stream took (the `libdeflater` wrapper does not offer them): what tells trailing
/// bytes and further gzip members apart from the end.
struct Inflater(NonNull<ffi::libdeflate_decompressor>);

// SAFETY: the decompressor is plain heap state with no tie to the thread that made it;
// `&mut self` on every call keeps it to one user at a time.
unsafe impl Send for Inflater {}

impl Inflater {
    fn new() -> Inflater {
        // SAFETY: no arguments; the result is checked for null.
        let p = unsafe { ffi::libdeflate_alloc_decompressor() };
        match NonNull::new(p) {
            Some(p) => Inflater(p),
            None => std::alloc::handle_alloc_error(std::alloc::Layout::new::<[u8; 32 << 10]>()),
        }
    }

    /// One stream of `kind` from the start of `input` into `out`: the bytes read and
    /// written.
    fn run(&mut self, kind: Kind, input: &[u8], out: &mut [u8]) -> Result<(usize, usize), Failure> {
        let f = match kind {
            Kind::Gzip => ffi::libdeflate_gzip_decompress_ex,
            Kind::Zlib => ffi::libdeflate_zlib_decompress_ex,
            Kind::Raw => ffi::libdeflate_deflate_decompress_ex,
        };
        let (mut read, mut written) = (0usize, 0usize);
        // SAFETY: the decompressor is live and ours alone (`&mut self`); the input and
        // output pointers come with their slices' lengths, and libdeflate reads and
        // writes only within them; both counts are written through valid pointers.
        let result = unsafe {
            f(
                self.0.as_ptr(),
                input.as_ptr().cast(),
                input.len(),
                out.as_mut_ptr().cast(),
                out.len(),
                &mut read,
                &mut written,
            )
        };
        match result {
            ffi::libdeflate_result_LIBDEFLATE_SUCCESS => Ok((read, written)),
            ffi::libdeflate_result_LIBDEFLATE_INSUFFICIENT_SPACE => Err(Failure::NoRoom),
            _ => Err(Failure::BadData),
        }
    }
}

impl Drop for Inflater {
    fn drop(&mut self) {
        // SAFETY: allocated by `libdeflate_alloc_decompressor`, freed once, here.
        unsafe { ffi::libdeflate_free_decompressor(self.0.as_ptr()) }
    }
}

/// Whether a deflate body starts with a zlib header (RFC 1950): method 8, a window
/// of at most 32 KiB, and the header's check bits. Otherwise it is raw deflate.
fn is_zlib_header(input: &[u8]) -> bool {
    match input {
        [cmf, flg, ..] => {
            cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        Codec::default().gzip(data, &mut out);
        out
    }

    fn compressed(data: &[u8], f: impl Fn(&mut Compressor, &[u8], &mut [u8]) -> usize) -> Vec<u8> {
        let mut c = Compressor::new(CompressionLvl::default());
        let mut out = vec![0; c.zlib_compress_bound(data.len()) + 64];
        let n = f(&mut c, data, &mut out);
        out.truncate(n);
        out
    }

    #[test]
    fn content_encodings() {
        assert_eq!(Coding::parse(b"gzip"), Some(Coding::Gzip));
        assert_eq!(Coding::parse(b"X-GZIP"), Some(Coding::Gzip));
        assert_eq!(Coding::parse(b" Deflate "), Some(Coding::Deflate));
        assert_eq!(Coding::parse(b"identity"), Some(Coding::Identity));
        assert_eq!(Coding::parse(b"identity, gzip"), Some(Coding::Gzip));
        assert_eq!(Coding::parse(b""), Some(Coding::Identity));
        for bad in [
            &b"br"[..],
            b"gzip, gzip",
            b"gzip, deflate",
            b"zstd",
            b"gzip;q=1",
        ] {
            assert_eq!(Coding::parse(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn accept_encoding() {
        for yes in [
            &b"gzip"[..],
            b"deflate, gzip;q=0.5",
            b"*",
            b"br, *;q=0.1",
            b"x-gzip",
            b"GZip",
        ] {
            assert!(accepts_gzip(yes), "{}", String::from_utf8_lossy(yes));
        }
        for no in [
            &b""[..],
            b"identity",
            b"br",
            b"gzip;q=0",
            b"*, gzip;q=0.000",
            b"*;q=0",
        ] {
            assert!(!accepts_gzip(no), "{}", String::from_utf8_lossy(no));
        }
    }

    #[test]
    fn round_trips_every_coding() {
        let body = br#"{"id":"1","imp":[{"id":"1","banner":{"w":300,"h":250}}]}"#.repeat(20);
        let zlib = compressed(&body, |c, d, o| c.zlib_compress(d, o).unwrap());
        let raw = compressed(&body, |c, d, o| c.deflate_compress(d, o).unwrap());
        let mut codec = Codec::default();
        let mut out = Vec::new();
        for (coding, input) in [
            (Coding::Gzip, gz(&body)),
            (Coding::Deflate, zlib),
            (Coding::Deflate, raw),
            (Coding::Identity, body.clone()),
        ] {
            codec.inflate(coding, &input, &mut out, 1 << 20).unwrap();
            assert_eq!(out, body, "{coding:?}");
        }
    }

    #[test]
    fn a_bomb_stops_at_the_cap() {
        let zeros = vec![0u8; 10 << 20];
        let bomb = gz(&zeros);
        assert!(bomb.len() < 64 << 10, "{}", bomb.len());
        let mut out = Vec::new();
        let mut codec = Codec::default();
        assert_eq!(
            codec.inflate(Coding::Gzip, &bomb, &mut out, 256 << 10),
            Err(InflateError::TooLarge)
        );
        assert!(out.capacity() <= 256 << 10, "{}", out.capacity());

        // The size field lies (says 100 bytes, or nothing): inflating stops at the cap.
        for claim in [100u32, 0] {
            let mut liar = bomb.clone();
            let n = liar.len();
            liar[n - 4..].copy_from_slice(&claim.to_le_bytes());
            assert_eq!(
                codec.inflate(Coding::Gzip, &liar, &mut out, 256 << 10),
                Err(InflateError::TooLarge)
            );
            assert!(out.capacity() <= 256 << 10, "{}", out.capacity());
        }

        // deflate has no size field.
        let raw = compressed(&zeros, |c, d, o| c.deflate_compress(d, o).unwrap());
        assert_eq!(
            codec.inflate(Coding::Deflate, &raw, &mut out, 256 << 10),
            Err(InflateError::TooLarge)
        );
        assert!(out.capacity() <= 256 << 10);
    }

    #[test]
    fn gzip_members_are_inflated_one_after_another() {
        let (a, b) = (b"{\"id\":\"1\",".repeat(300), b"\"imp\":[]}".repeat(500));
        let two = [gz(&a), gz(&b)].concat();
        let mut out = Vec::new();
        Codec::default()
            .inflate(Coding::Gzip, &two, &mut out, 1 << 20)
            .unwrap();
        assert_eq!(out, [a.clone(), b.clone()].concat());
        // Both count towards the cap.
        assert_eq!(
            Codec::default().inflate(Coding::Gzip, &two, &mut out, a.len() + b.len() - 1),
            Err(InflateError::TooLarge)
        );
    }

    #[test]
    fn a_body_exactly_at_the_cap_is_taken() {
        let body = vec![b'x'; 5000];
        let mut out = Vec::new();
        let raw = compressed(&body, |c, d, o| c.deflate_compress(d, o).unwrap());
        Codec::default()
            .inflate(Coding::Deflate, &raw, &mut out, 5000)
            .unwrap();
        assert_eq!(out.len(), 5000);
        assert!(
            out.capacity() <= 5000,
            "grown past the cap: {}",
            out.capacity()
        );
        assert_eq!(
            Codec::default().inflate(Coding::Deflate, &raw, &mut out, 4999),
            Err(InflateError::TooLarge)
        );
    }

    #[test]
    fn damaged_input_is_corrupt_not_a_panic() {
        let body = b"{\"id\":\"1\"}".repeat(50);
        let good = gz(&body);
        let mut codec = Codec::default();
        let mut out = Vec::new();
        let mut damaged = good.clone();
        damaged[20] ^= 0x55;
        let truncated = &good[..good.len() - 5];
        let mut bad_crc = good.clone();
        let n = bad_crc.len();
        bad_crc[n - 8] ^= 1;
        // A truncated body's size field is whatever bytes came last: too large or
        // corrupt, never inflated in full.
        assert!(codec
            .inflate(Coding::Gzip, truncated, &mut out, 1 << 20)
            .is_err());
        for input in [
            &damaged[..],
            &bad_crc,
            b"",
            b"\x1f\x8b",
            b"not gzip at all, really",
        ] {
            assert_eq!(
                codec.inflate(Coding::Gzip, input, &mut out, 1 << 20),
                Err(InflateError::Corrupt)
            );
        }
        assert_eq!(
            codec.inflate(Coding::Deflate, b"\xff\xff\xff", &mut out, 1 << 20),
            Err(InflateError::Corrupt)
        );
        let raw = compressed(&body, |c, d, o| c.deflate_compress(d, o).unwrap());
        let raw_trailing = [&raw[..], b"x"].concat();
        assert_eq!(
            codec.inflate(Coding::Deflate, &raw_trailing, &mut out, 1 << 20),
            Err(InflateError::Corrupt)
        );
        // And it still works after.
        codec
            .inflate(Coding::Gzip, &good, &mut out, 1 << 20)
            .unwrap();
        assert_eq!(out, body);
    }
}
