//! Compressed bodies (`shardbid::encoding`): the `Content-Encoding` and
//! `Accept-Encoding` readers, `Codec::inflate` under a cap and `Codec::gzip`, with one
//! codec reused from input to input as a shard reuses it.
//!
//! No input may panic, and:
//! - `Coding::parse` and `accepts_gzip` read any bytes, and read them the same way in
//!   upper and lower case;
//! - inflating the payload as gzip, deflate (zlib or raw) or identity under a cap, the
//!   output is never longer than the cap, and the output buffer never grows past the
//!   cap (or past what it already had; a `Vec`'s least allocation, 8 bytes, aside): a
//!   bomb costs at most the cap. Identity takes the payload as it is, whole, and only
//!   it is never corrupt;
//! - what inflates inflates again to the same bytes under a cap of exactly its length,
//!   and is `TooLarge` under one byte less;
//! - the payload gzipped by `Codec::gzip` (the responses' compressor), and compressed
//!   as zlib and as raw deflate by libdeflate at the chosen level, inflates back to
//!   exactly the payload under a cap of its length (and under a larger one), and is
//!   `TooLarge` under one byte less; so does the payload gzipped in two members, split
//!   where its first byte says; with a byte after it, each is `Corrupt`.
//!
//! The first byte is the selector: bits 0-1 the coding (0 and 3 gzip, 1 deflate, 2
//! identity), bits 2-4 the cap (`CAPS`), bit 5 set to inflate into the buffer kept from
//! the last input rather than a new one, bits 6-7 the level of the zlib and raw-deflate
//! round trips (`LEVELS`). The rest is the payload, also read as a header value. The
//! seeds (`seed-*`) are the IAB examples gzipped, zlib- and raw-deflated, bombs (1 MiB
//! of zeros) in all three, one example in two gzip members and one with a gzip size
//! field of 0 (a fixed loop), one as identity, and two header values.
//!
//! `RUSTFLAGS="-C target-cpu=x86-64-v3" cargo +nightly fuzz run gzip fuzz/corpus/gzip -- -max_total_time=600`

#![no_main]

use std::cell::RefCell;

use libdeflater::{CompressionLvl, Compressor};
use libfuzzer_sys::fuzz_target;

use shardbid::encoding::{accepts_gzip, Codec, Coding, InflateError};

/// The caps tried: none, tiny, under and at the codec's first guess (4096), a body
/// limit that is not 4096 times a power of 4, the default `http.max_body_bytes`
/// (256 KiB), and 1 MiB (a whole bomb seed fits).
const CAPS: [usize; 8] = [0, 1, 100, 4096, 5000, 100_000, 256 << 10, 1 << 20];
/// libdeflate's levels for the zlib and raw-deflate round trips.
const LEVELS: [i32; 4] = [1, 6, 9, 12];
/// A `Vec<u8>`'s least allocation: a buffer under a smaller cap may have this much.
const SMALL: usize = 8;

struct State {
    codec: Codec,
    /// The output buffer kept from input to input, as a shard keeps its body buffers.
    kept: Vec<u8>,
    /// One per `LEVELS`.
    compressors: Vec<Compressor>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State {
        codec: Codec::default(),
        kept: Vec::new(),
        compressors: LEVELS
            .iter()
            .map(|&l| Compressor::new(CompressionLvl::new(l).unwrap()))
            .collect(),
    });
}

/// `Codec::inflate`, checked for the bounds every call must keep.
fn inflate(
    codec: &mut Codec,
    coding: Coding,
    input: &[u8],
    out: &mut Vec<u8>,
    cap: usize,
) -> Result<(), InflateError> {
    let before = out.capacity();
    let got = codec.inflate(coding, input, out, cap);
    if got.is_ok() {
        assert!(
            out.len() <= cap,
            "{coding:?} under a cap of {cap}: {} bytes out",
            out.len()
        );
    }
    assert!(
        out.capacity() <= before.max(cap.max(SMALL)),
        "{coding:?} under a cap of {cap} ({got:?}, {} bytes in): the buffer grew from {before} to {} bytes",
        input.len(),
        out.capacity()
    );
    got
}

/// What inflates to `want` inflates to it again under a cap of exactly its length, and
/// is too large under one byte less.
fn exactly(codec: &mut Codec, coding: Coding, input: &[u8], want: &[u8], what: &str) {
    let mut out = Vec::new();
    let got = inflate(codec, coding, input, &mut out, want.len());
    assert_eq!(
        got,
        Ok(()),
        "{what}: under a cap of its length {}",
        want.len()
    );
    assert!(out == want, "{what}: inflated to other bytes");
    if let Some(less) = want.len().checked_sub(1) {
        let got = inflate(codec, coding, input, &mut out, less);
        assert_eq!(
            got,
            Err(InflateError::TooLarge),
            "{what}: under a cap of {less}"
        );
    }
}

/// `compressed` (the payload compressed as `what`) inflates back to the payload, and
/// with a byte after it is corrupt.
fn round_trip(
    codec: &mut Codec,
    coding: Coding,
    compressed: &mut Vec<u8>,
    payload: &[u8],
    what: &str,
) {
    let mut out = Vec::new();
    let cap = payload.len() + 4096;
    let got = inflate(codec, coding, compressed, &mut out, cap);
    assert_eq!(got, Ok(()), "{what}: under a cap over its length");
    assert!(out == payload, "{what}: inflated to other bytes");
    exactly(codec, coding, compressed, payload, what);
    compressed.push(payload.first().copied().unwrap_or(0));
    let got = inflate(codec, coding, compressed, &mut out, cap);
    assert_eq!(
        got,
        Err(InflateError::Corrupt),
        "{what}: with a byte after it"
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, payload)) = data.split_first() else {
        return;
    };

    // The payload as a header value.
    let coding = Coding::parse(payload);
    assert_eq!(Coding::parse(&payload.to_ascii_uppercase()), coding);
    assert_eq!(Coding::parse(&payload.to_ascii_lowercase()), coding);
    let gzip = accepts_gzip(payload);
    assert_eq!(accepts_gzip(&payload.to_ascii_uppercase()), gzip);
    assert_eq!(accepts_gzip(&payload.to_ascii_lowercase()), gzip);

    let coding = match selector & 3 {
        1 => Coding::Deflate,
        2 => Coding::Identity,
        _ => Coding::Gzip,
    };
    let cap = CAPS[usize::from(selector >> 2 & 7)];
    let keep = selector & 0x20 != 0;
    let level = usize::from(selector >> 6);

    STATE.with_borrow_mut(|state| {
        let State {
            codec,
            kept,
            compressors,
        } = state;

        // The payload as a compressed body.
        let mut fresh = Vec::new();
        let out = if keep { &mut *kept } else { &mut fresh };
        match inflate(codec, coding, payload, out, cap) {
            Ok(()) => {
                if coding == Coding::Identity {
                    assert!(out == payload, "identity: other bytes");
                }
                let got = out.clone();
                exactly(codec, coding, payload, &got, "the payload");
            }
            Err(InflateError::TooLarge) => {
                if coding == Coding::Identity {
                    assert!(
                        payload.len() > cap,
                        "identity: {} bytes refused",
                        payload.len()
                    );
                }
            }
            Err(InflateError::Corrupt) => assert_ne!(coding, Coding::Identity),
        }

        // The payload compressed.
        let mut compressed = Vec::new();
        codec.gzip(payload, &mut compressed);
        round_trip(codec, Coding::Gzip, &mut compressed, payload, "Codec::gzip");

        let split = payload
            .first()
            .map_or(0, |&b| payload.len() * usize::from(b) / 255);
        let mut second = Vec::new();
        codec.gzip(&payload[..split], &mut compressed);
        codec.gzip(&payload[split..], &mut second);
        compressed.extend_from_slice(&second);
        round_trip(
            codec,
            Coding::Gzip,
            &mut compressed,
            payload,
            "two gzip members",
        );

        let c = &mut compressors[level];
        compressed.resize(c.zlib_compress_bound(payload.len()), 0);
        let n = c.zlib_compress(payload, &mut compressed).unwrap();
        compressed.truncate(n);
        round_trip(codec, Coding::Deflate, &mut compressed, payload, "zlib");

        compressed.resize(c.deflate_compress_bound(payload.len()), 0);
        let n = c.deflate_compress(payload, &mut compressed).unwrap();
        compressed.truncate(n);
        round_trip(
            codec,
            Coding::Deflate,
            &mut compressed,
            payload,
            "raw deflate",
        );
    });
});
