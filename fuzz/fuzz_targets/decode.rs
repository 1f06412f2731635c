//! Any bytes into `Decoder::decode`: it must never panic, and whatever it accepts,
//! serde_json must read the same way through the model's derives.
//!
//! `RUSTFLAGS="-C target-cpu=x86-64-v3" cargo +nightly fuzz run decode fuzz/corpus/decode tests/fixtures -- -max_total_time=300`
//! (from the repository root; `tests/fixtures` seeds it with real requests). cargo-fuzz
//! sets `RUSTFLAGS` itself, which overrides `.cargo/config.toml`: without the flag above
//! the decoder's AVX2 scan would not be the one fuzzed.

#![no_main]

use libfuzzer_sys::fuzz_target;
use shardbid::openrtb::{BidRequest, Decoder};

fuzz_target!(|data: &[u8]| {
    let mut body = data.to_vec();
    if let Ok(got) = Decoder::new().decode(&mut body) {
        let want = serde_json::from_slice::<BidRequest<'_>>(data)
            .ok()
            .filter(|r| r.validate().is_ok());
        assert_eq!(Some(&got), want.as_ref(), "decoder and serde_json disagree");
    };
});
