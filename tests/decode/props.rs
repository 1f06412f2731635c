//! Property tests. `PROPTEST_CASES=100000 cargo test --release --test decode props`
//! runs them as a longer fuzzing session.

use std::fmt::Write;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use shardbid::openrtb::{BidRequest, Decoder};
use shardbid_testkit::rng::Rng;

use super::fixture;

/// serde_json's reading of `body` through the model's derives, when it is a valid request
/// (serde_json rounds floats correctly here, as the decoder does: `float_roundtrip`).
fn serde_json_reading(body: &[u8]) -> Option<BidRequest<'_>> {
    let req: BidRequest<'_> = serde_json::from_slice(body).ok()?;
    req.validate().ok()?;
    Some(req)
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..600)) {
        let mut body = bytes;
        let _ = Decoder::new().decode(&mut body);
    }

    /// Bodies a few edits away from a real request: the decoder never panics, and
    /// whatever it accepts, serde_json reads the same way.
    #[test]
    fn edited_requests_never_panic_and_agree_with_serde_json(
        which in 0..6usize,
        edits in vec((any::<Index>(), any::<u8>(), 0..3u8), 1..6),
    ) {
        let names = ["simple-banner", "expandable-creative", "mobile", "native-ad",
            "pmp-with-direct-deal", "video"];
        let mut body = fixture(names[which]);
        for (at, byte, kind) in edits {
            match kind {
                0 if !body.is_empty() => {
                    let i = at.index(body.len());
                    body[i] = byte;
                }
                1 => body.insert(at.index(body.len() + 1), byte),
                _ if !body.is_empty() => {
                    body.remove(at.index(body.len()));
                }
                _ => {}
            }
        }
        let original = body.clone();
        if let Ok(got) = Decoder::new().decode(&mut body) {
            let want = serde_json_reading(&original);
            prop_assert_eq!(Some(&got), want.as_ref());
        };
    }

    #[test]
    fn generated_requests_decode_as_generated_and_as_serde_json_reads_them(
        g in request(),
    ) {
        let json = g.to_json();
        let mut body = json.clone().into_bytes();
        let got = Decoder::new().decode(&mut body);
        let got = got.map_err(|e| TestCaseError::fail(format!("{e:?} for {json}")))?;
        let want = serde_json_reading(json.as_bytes());
        prop_assert_eq!(Some(&got), want.as_ref());
        g.check(&got)?;
    }
}

/// A request as generated: the values the decoder must find, however they are written.
#[derive(Debug, Clone)]
struct Gen {
    id: String,
    imps: Vec<GenImp>,
    tmax: Option<u32>,
    bcat: Vec<String>,
    page: Option<String>,
    segments: Vec<String>,
    /// Drives the choices of how to write it: escapes, quoted numbers, key order, junk.
    seed: u64,
}

#[derive(Debug, Clone)]
struct GenImp {
    id: String,
    /// Floor in cents: written as a decimal with two places.
    floor: Option<u32>,
    sizes: Vec<(u32, u32)>,
    mimes: Vec<String>,
    deals: Vec<(String, u32, Vec<String>)>,
}

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9/\"\\\\ .:_\u{e9}\u{1F600}\n-]{0,10}"
}

fn non_empty_text() -> impl Strategy<Value = String> {
    "[a-z0-9/\"\u{e9}-]{1,8}"
}

fn imp() -> impl Strategy<Value = GenImp> {
    (
        non_empty_text(),
        proptest::option::of(0..1_000_000u32),
        vec((1..2000u32, 1..2000u32), 0..4),
        vec(text(), 0..3),
        vec((non_empty_text(), 0..100_000u32, vec(text(), 0..3)), 0..3),
    )
        .prop_map(|(id, floor, sizes, mimes, deals)| GenImp {
            id,
            floor,
            sizes,
            mimes,
            deals,
        })
}

fn request() -> impl Strategy<Value = Gen> {
    (
        non_empty_text(),
        vec(imp(), 1..4),
        proptest::option::of(0..100_000u32),
        vec(text(), 0..4),
        proptest::option::of(text()),
        vec(text(), 0..5),
        any::<u64>(),
    )
        .prop_map(|(id, mut imps, tmax, bcat, page, segments, seed)| {
            // A valid request's imp ids differ (two the same are a 400).
            for i in 1..imps.len() {
                while imps[..i].iter().any(|o| o.id == imps[i].id) {
                    imps[i].id.push('+');
                }
            }
            Gen {
                id,
                imps,
                tmax,
                bcat,
                page,
                segments,
                seed,
            }
        })
}

/// Builds one JSON object, writing its members in a random order with unknown members
/// and random whitespace mixed in.
struct Obj<'r> {
    rng: &'r mut Rng,
    members: Vec<String>,
}

impl<'r> Obj<'r> {
    fn new(rng: &'r mut Rng) -> Self {
        Obj {
            rng,
            members: Vec::new(),
        }
    }
    fn raw(&mut self, key: &str, value: String) -> &mut Self {
        self.members.push(format!("\"{key}\":{value}"));
        self
    }
    fn str(&mut self, key: &str, value: &str) -> &mut Self {
        let v = quote(self.rng, value);
        self.raw(key, v)
    }
    fn strs(&mut self, key: &str, values: &[String]) -> &mut Self {
        let v: Vec<String> = values.iter().map(|s| quote(self.rng, s)).collect();
        self.raw(key, format!("[{}]", v.join(",")))
    }
    /// A number, sometimes written as a string.
    fn num(&mut self, key: &str, value: String) -> &mut Self {
        let v = if self.rng.chance(0.3) {
            format!("\"{value}\"")
        } else {
            value
        };
        self.raw(key, v)
    }
    fn finish(&mut self) -> String {
        if self.rng.chance(0.4) {
            self.members
                .push(r#""ext":{"id":"junk","imp":[{"id":""}],"n":[1.5e3,null,true]}"#.into());
        }
        if self.rng.chance(0.2) {
            self.members.push(r#""unknown":"\u00e9\/""#.into());
        }
        let n = self.members.len();
        for i in (1..n).rev() {
            if self.rng.chance(0.5) {
                self.members.swap(i, i - 1);
            }
        }
        let sep = if self.rng.chance(0.3) { ",\n  " } else { "," };
        format!("{{{}}}", self.members.join(sep))
    }
}

/// `s` as a JSON string, escaping what must be escaped and, at random, what may be.
fn quote(rng: &mut Rng, s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str(if rng.chance(0.5) { "\\n" } else { "\\u000a" }),
            '/' if rng.chance(0.5) => out.push_str("\\/"),
            c if !c.is_ascii() && rng.chance(0.5) => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{u:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn decimal(cents: u32) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

impl Gen {
    fn to_json(&self) -> String {
        let mut rng = Rng::new(self.seed);
        let imps: Vec<String> = self.imps.iter().map(|imp| imp.to_json(&mut rng)).collect();
        let site = self
            .page
            .as_ref()
            .map(|page| Obj::new(&mut rng).str("page", page).finish());
        let segments: Vec<String> = self
            .segments
            .iter()
            .map(|s| Obj::new(&mut rng).str("id", s).finish())
            .collect();
        let data = Obj::new(&mut rng)
            .raw("segment", format!("[{}]", segments.join(",")))
            .finish();
        let user = Obj::new(&mut rng).raw("data", format!("[{data}]")).finish();
        let mut top = Obj::new(&mut rng);
        top.str("id", &self.id)
            .raw("imp", format!("[{}]", imps.join(",")))
            .strs("bcat", &self.bcat);
        top.raw("user", user);
        if let Some(tmax) = self.tmax {
            top.num("tmax", tmax.to_string());
        }
        if let Some(site) = site {
            top.raw("site", site);
        }
        top.finish()
    }

    fn check(&self, r: &BidRequest<'_>) -> Result<(), TestCaseError> {
        prop_assert_eq!(r.id.as_str(), self.id.as_str());
        prop_assert_eq!(r.tmax, self.tmax);
        prop_assert_eq!(
            r.bcat.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            self.bcat.clone()
        );
        prop_assert_eq!(
            r.site.as_ref().and_then(|s| s.page.as_deref()),
            self.page.as_deref()
        );
        prop_assert_eq!(r.segments().collect::<Vec<_>>(), self.segments.clone());
        prop_assert_eq!(r.imp.len(), self.imps.len());
        for (got, want) in r.imp.iter().zip(&self.imps) {
            prop_assert_eq!(got.id.as_str(), want.id.as_str());
            let floor = want.floor.map_or(Ok(0.0), |c| decimal(c).parse::<f64>());
            prop_assert_eq!(Ok(got.bidfloor), floor);
            let sizes = got.banner.as_ref().map(|b| b.sizes().collect::<Vec<_>>());
            prop_assert_eq!(sizes.unwrap_or_default(), want.sizes.clone());
            let mimes: Option<Vec<String>> = got
                .video
                .as_ref()
                .map(|v| v.mimes.iter().map(|m| m.to_string()).collect());
            prop_assert_eq!(mimes.unwrap_or_default(), want.mimes.clone());
            let deals: Vec<_> = got.pmp.iter().flat_map(|p| &p.deals).collect();
            prop_assert_eq!(deals.len(), want.deals.len());
            for (d, (id, cents, wseat)) in deals.iter().zip(&want.deals) {
                prop_assert_eq!(d.id.as_str(), id.as_str());
                prop_assert_eq!(Ok(d.bidfloor), decimal(*cents).parse::<f64>());
                prop_assert_eq!(
                    d.wseat.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                    wseat.clone()
                );
            }
        }
        Ok(())
    }
}

impl GenImp {
    fn to_json(&self, rng: &mut Rng) -> String {
        let formats: Vec<String> = self
            .sizes
            .iter()
            .map(|(w, h)| {
                Obj::new(rng)
                    .num("w", w.to_string())
                    .num("h", h.to_string())
                    .finish()
            })
            .collect();
        let banner = (!self.sizes.is_empty()).then(|| {
            Obj::new(rng)
                .raw("format", format!("[{}]", formats.join(",")))
                .finish()
        });
        let video =
            (!self.mimes.is_empty()).then(|| Obj::new(rng).strs("mimes", &self.mimes).finish());
        let deals: Vec<String> = self
            .deals
            .iter()
            .map(|(id, cents, wseat)| {
                Obj::new(rng)
                    .str("id", id)
                    .num("bidfloor", decimal(*cents))
                    .strs("wseat", wseat)
                    .finish()
            })
            .collect();
        let pmp = (!deals.is_empty()).then(|| {
            Obj::new(rng)
                .raw("deals", format!("[{}]", deals.join(",")))
                .finish()
        });
        let mut imp = Obj::new(rng);
        imp.str("id", &self.id);
        if let Some(cents) = self.floor {
            imp.num("bidfloor", decimal(cents));
        }
        for (key, value) in [("banner", banner), ("video", video), ("pmp", pmp)] {
            if let Some(value) = value {
                imp.raw(key, value);
            }
        }
        imp.finish()
    }
}
