//! The decoder as the bid handler uses it: bytes in, a validated borrowed request out,
//! or the reason for a 400.

use std::borrow::Cow;

use shardbid::openrtb::request::Str;
use shardbid::openrtb::{BidRequest, DecodeError, Decoder};

/// Property tests: no input panics, and the decoder agrees with serde_json.
#[path = "decode/props.rs"]
mod props;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Decodes `json` with a fresh decoder and hands the result to `check`.
fn with<R>(json: &str, check: impl FnOnce(Result<BidRequest<'_>, DecodeError>) -> R) -> R {
    let mut body = json.as_bytes().to_vec();
    check(Decoder::new().decode(&mut body))
}

fn err(json: &str) -> Option<DecodeError> {
    with(json, |r| r.err())
}

fn strs<'s>(v: &'s [Str<'_>]) -> Vec<&'s str> {
    v.iter().map(|s| s.as_str()).collect()
}

/// A minimal valid request with `imp` fields and top-level fields spliced in.
fn req(imp_fields: &str, top_fields: &str) -> String {
    format!(r#"{{"id":"r1","imp":[{{"id":"1"{imp_fields}}}]{top_fields}}}"#)
}

#[test]
fn simple_banner_decodes() {
    let mut body = fixture("simple-banner");
    let r = Decoder::new().decode(&mut body).expect("valid");
    assert_eq!(r.id, "80ce30c53c16e6ede735f123ef6e32361bfc7b22");
    assert_eq!((r.at, r.tmax, strs(&r.cur)), (1, None, vec!["USD"]));
    let imp = &r.imp[0];
    assert_eq!((imp.id.as_str(), imp.bidfloor), ("1", 0.03));
    let banner = imp.banner.as_ref().expect("banner");
    assert_eq!(banner.sizes().collect::<Vec<_>>(), vec![(300, 250)]);
    let site = r.site.as_ref().expect("site");
    assert_eq!(
        site.page.as_deref(),
        Some("http://www.foobar.com/1234.html ")
    );
    assert_eq!(strs(&site.cat), vec!["IAB3-1"]);
    let publisher = site.publisher.as_ref().expect("publisher");
    assert_eq!(publisher.domain.as_deref(), Some("foobar.com"));
    assert_eq!(
        r.user.as_ref().and_then(|u| u.id.as_deref()),
        Some("55816b39711f9b5acf3b90e313ed29e51665623f")
    );
    assert!(r.app.is_none() && r.device.is_none());
}

#[test]
fn expandable_creative_decodes() {
    let mut body = fixture("expandable-creative");
    let r = Decoder::new().decode(&mut body).expect("valid");
    let banner = r.imp[0].banner.as_ref().expect("banner");
    assert_eq!(
        (banner.w, banner.h, banner.battr.as_slice()),
        (Some(300), Some(250), &[13][..])
    );
    let user = r.user.as_ref().expect("user");
    assert_eq!(
        user.buyeruid.as_deref(),
        Some("545678765467876567898765678987654")
    );
    assert_eq!(user.data.len(), 3);
    assert_eq!(user.data[2].segment.len(), 1);
    // Its only segment has a value but no id.
    assert_eq!(r.segments().count(), 0);
}

#[test]
fn mobile_app_decodes() {
    let mut body = fixture("mobile");
    let r = Decoder::new().decode(&mut body).expect("valid");
    let app = r.app.as_ref().expect("app");
    assert_eq!(app.bundle.as_deref(), Some("12345"));
    assert_eq!(strs(&app.cat), vec!["IAB15", "IAB15-10"]);
    let device = r.device.as_ref().expect("device");
    assert_eq!(
        (device.os.as_deref(), device.devicetype),
        (Some("iOS"), Some(1))
    );
    assert_eq!(
        strs(&r.bcat),
        vec!["IAB25", "IAB7-39", "IAB8-18", "IAB8-5", "IAB9-9"]
    );
    assert_eq!(
        strs(&r.badv),
        vec!["apple.com", "go-text.me", "heywire.com"]
    );
    let imp = &r.imp[0];
    assert_eq!(
        (imp.bidfloor, imp.tagid.as_deref()),
        (0.5, Some("agltb3B1Yi1pbmNyDQsSBFNpdGUY7fD0FAw"))
    );
    let banner = imp.banner.as_ref().expect("banner");
    assert_eq!(
        (banner.btype.as_slice(), banner.battr.as_slice()),
        (&[4][..], &[14][..])
    );
    assert_eq!(banner.sizes().collect::<Vec<_>>(), vec![(728, 90)]);
}

#[test]
fn native_ad_decodes_with_its_request_string_borrowed() {
    let mut body = fixture("native-ad");
    let r = Decoder::new().decode(&mut body).expect("valid");
    let native = r.imp[0].native.as_ref().expect("native");
    assert_eq!(
        native.request,
        r#"{"native":{"ver":"1.0","assets":[ ... ]}}"#
    );
    assert!(matches!(native.request.0, Cow::Borrowed(_)));
    assert_eq!(
        (native.ver.as_deref(), native.battr.as_slice()),
        (Some("1.0"), &[13, 14][..])
    );
    assert!(r.imp[0].banner.is_none());
}

#[test]
fn pmp_deals_decode_with_floors_and_seats() {
    let mut body = fixture("pmp-with-direct-deal");
    let r = Decoder::new().decode(&mut body).expect("valid");
    let pmp = r.imp[0].pmp.as_ref().expect("pmp");
    assert_eq!(pmp.private_auction, 1);
    let deals: Vec<_> = pmp
        .deals
        .iter()
        .map(|d| (d.id.as_str(), d.bidfloor, strs(&d.wseat), d.at))
        .collect();
    assert_eq!(
        deals,
        vec![
            ("AB-Agency1-0001", 2.5, vec!["Agency1"], Some(1)),
            ("XY-Agency2-0001", 2.0, vec!["Agency2"], Some(2)),
        ]
    );
    assert_eq!((r.imp[0].bidfloor, r.at), (0.03, 1));
}

#[test]
fn video_decodes() {
    let mut body = fixture("video");
    let r = Decoder::new().decode(&mut body).expect("valid");
    assert_eq!((r.id.as_str(), r.at, r.tmax), ("1234567893", 2, Some(120)));
    let video = r.imp[0].video.as_ref().expect("video");
    assert_eq!(
        strs(&video.mimes),
        vec!["video/x-flv", "video/mp4", "application/javascript"]
    );
    assert_eq!((video.minduration, video.maxduration), (Some(5), Some(30)));
    assert_eq!(
        (video.w, video.h, video.protocol),
        (Some(640), Some(480), None)
    );
    assert_eq!(
        (video.protocols.as_slice(), video.battr.as_slice()),
        (&[2, 3][..], &[13, 14][..])
    );
    assert_eq!(
        r.segments().collect::<Vec<_>>(),
        vec!["12341318394918", "1234131839491234"]
    );
    assert_eq!(
        r.device.as_ref().and_then(|d| d.os.as_deref()),
        Some("OS X")
    );
    assert_eq!(
        strs(&r.site.as_ref().expect("site").cat),
        vec!["IAB2-1", "IAB2-2"]
    );
}

#[test]
fn escaped_strings_are_unescaped_and_still_borrowed() {
    let json = req(
        r#","tagid":"a\"b""#,
        r#","site":{"page":"http:\/\/a.com","domain":"caf\u00e9.fr","id":"\ud83d\ude00"}"#,
    );
    let mut body = json.into_bytes();
    let range = body.as_ptr_range();
    let r = Decoder::new().decode(&mut body).expect("valid");
    let site = r.site.as_ref().expect("site");
    let strings = [
        (r.imp[0].tagid.as_ref(), "a\"b"),
        (site.page.as_ref(), "http://a.com"),
        (site.domain.as_ref(), "café.fr"),
        (site.id.as_ref(), "😀"),
        (Some(&r.id), "r1"),
    ];
    for (got, want) in strings {
        let got = got.expect("present");
        assert_eq!(got, want);
        let Cow::Borrowed(s) = got.0 else {
            panic!("{want} was copied")
        };
        assert!(
            range.contains(&s.as_ptr()),
            "{want} does not point into the body"
        );
    }
}

#[test]
fn numbers_are_read_leniently() {
    let json = req(
        r#","bidfloor":"1.5","secure":true,"banner":{"w":"300","h":250.0,"format":[{"w":" 728 ","h":"90"}],"battr":[1,"2",null,3.0]}"#,
        r#","tmax":"120","test":true,"at":null"#,
    );
    with(&json, |r| {
        let r = r.expect("valid");
        let imp = &r.imp[0];
        assert_eq!((imp.bidfloor, imp.secure), (1.5, Some(1)));
        let banner = imp.banner.as_ref().expect("banner");
        assert_eq!((banner.w, banner.h), (Some(300), Some(250)));
        assert_eq!(banner.sizes().collect::<Vec<_>>(), vec![(728, 90)]);
        assert_eq!(banner.battr[..], [1, 2, 3]);
        assert_eq!((r.tmax, r.test, r.at), (Some(120), 1, 2));
    });
    let nulls = req(
        r#","bidfloor":null,"secure":null,"tagid":null,"banner":{"w":null,"h":"","format":null,"battr":null}"#,
        r#","tmax":null,"cur":null,"bcat":null,"site":null,"device":{"geo":null}"#,
    );
    with(&nulls, |r| {
        let r = r.expect("nulls read as absent");
        let imp = &r.imp[0];
        assert_eq!(
            (imp.bidfloor, imp.secure, imp.tagid.as_ref()),
            (0.0, None, None)
        );
        let banner = imp.banner.as_ref().expect("banner");
        assert_eq!((banner.w, banner.h, banner.format.len()), (None, None, 0));
        assert!(r.tmax.is_none() && r.cur.is_empty() && r.bcat.is_empty() && r.site.is_none());
    });
}

#[test]
fn numbers_that_are_not_numbers_are_rejected() {
    for bad in [
        req(r#","banner":{"w":"abc"}"#, ""),
        req(r#","bidfloor":-0.5"#, ""),
        req(r#","bidfloor":"-1""#, ""),
        req(r#","bidfloor":"NaN""#, ""),
        req(r#","banner":{"w":300.5}"#, ""),
        req(r#","banner":{"w":-1}"#, ""),
        req(r#","banner":{"w":4294967296}"#, ""),
        req(r#","instl":256"#, ""),
        req("", r#","tmax":[120]"#),
        req(r#","pmp":{"deals":[{"id":"d","bidfloor":"-2"}]}"#, ""),
        req(r#","bidfloor":1e400"#, ""),
        req(r#","banner":{"w":1e400}"#, ""),
    ] {
        assert!((err(&bad)).is_some_and(|e| e.is_syntax()), "{bad}");
    }
}

#[test]
fn numbers_read_as_serde_json_reads_them_at_the_edges() {
    // Beyond f64's range is no field's value, but an unmodelled value may be one, as
    // serde_json skips it.
    for json in [
        req(r#","ext":1e400"#, ""),
        req("", r#","ext":{"big":[-1e400,18446744073709551616]}"#),
    ] {
        assert!(err(&json).is_none(), "{json}");
    }
    // A long mantissa rounds as serde_json (with `float_roundtrip`) rounds it.
    let json = req(r#","bidfloor":11.309286627732835"#, "");
    let want = serde_json::from_str::<BidRequest>(&json).expect("serde_json reads it");
    with(&json, |r| {
        let got = r.expect("valid").imp[0].bidfloor;
        assert_eq!(got.to_bits(), want.imp[0].bidfloor.to_bits());
        assert_eq!(got, 11.309286627732835);
    });
    // `-0` is a float that keeps its sign, as serde_json reads it.
    let json = req(r#","bidfloor":-0"#, "");
    let want = serde_json::from_str::<BidRequest>(&json).expect("serde_json reads it");
    with(&json, |r| {
        let got = r.expect("valid").imp[0].bidfloor;
        assert_eq!(got.to_bits(), want.imp[0].bidfloor.to_bits());
        assert!(got.is_sign_negative());
    });
}

#[test]
fn unknown_fields_and_ext_are_ignored_everywhere() {
    let json = r#"{"ext":{"imp":[],"id":""},"id":"r","regs":{"coppa":1,"ext":{"gdpr":1}},
        "imp":[{"id":"1","ext":{"bidfloor":-1},"metric":[{"type":"viewability","value":0.8}],
          "banner":{"format":[{"w":300,"h":250,"ext":{}}],"ext":{"w":"x"},"api":[5]},
          "video":{"placement":1,"ext":null}}],
        "source":{"ext":{"schain":{"nodes":[{"asi":"a","sid":"1","hp":1}]}}},
        "device":{"ua":"Mozilla","ip":"1.2.3.4","ext":{"os":7},"geo":{"lat":1.5,"ext":{}}},
        "user":{"ext":{"eids":[{"source":"x","uids":[{"id":"u"}]}]},"data":[{"ext":{},"segment":[{"id":"s","ext":{}}]}]},
        "future_field":[1,{"a":null},"s",true,-2e5]}"#;
    with(json, |r| {
        let r = r.expect("valid");
        assert_eq!(
            (r.id.as_str(), r.imp.len(), r.imp[0].bidfloor),
            ("r", 1, 0.0)
        );
        let banner = r.imp[0].banner.as_ref().expect("banner");
        assert_eq!(banner.sizes().collect::<Vec<_>>(), vec![(300, 250)]);
        assert!(r.imp[0].video.is_some());
        assert_eq!(r.segments().collect::<Vec<_>>(), vec!["s"]);
        assert_eq!(r.device.as_ref().and_then(|d| d.os.as_ref()), None);
    });
    with(r#"{"id":"r","imp":[{"id":"1"}]}"#, |r| {
        let r = r.expect("optional objects may all be missing");
        assert_eq!((r.at, r.test, r.tmax), (2, 0, None));
        assert!(r.site.is_none() && r.app.is_none() && r.device.is_none() && r.user.is_none());
    });
}

#[test]
fn requests_without_what_a_bid_needs_are_invalid() {
    for bad in [
        r#"{"id":"r"}"#,
        r#"{"id":"r","imp":[]}"#,
        r#"{"id":"r","imp":null}"#,
        r#"{"imp":[{"id":"1"}]}"#,
        r#"{"id":"","imp":[{"id":"1"}]}"#,
        r#"{"id":null,"imp":[{"id":"1"}]}"#,
        r#"{"id":"r","imp":[{"banner":{"w":1,"h":1}}]}"#,
        r#"{"id":"r","imp":[{"id":"1"},{"id":""}]}"#,
        r#"{"id":"r","imp":[{"id":"1","pmp":{"deals":[{"bidfloor":1}]}}]}"#,
        "{}",
    ] {
        assert!((err(bad)).is_some_and(|e| e.is_invalid()), "{bad}");
    }
}

#[test]
fn bodies_that_are_not_bid_request_json_are_syntax_errors() {
    let valid = r#"{"id":"r","imp":[{"id":"1"}]}"#;
    let mut bad: Vec<String> = [
        "",
        " ",
        "null",
        "[]",
        "[{\"id\":\"r\"}]",
        "\"id\"",
        "42",
        "not json",
    ]
    .map(String::from)
    .to_vec();
    bad.extend((1..valid.len()).map(|n| valid[..n].to_string()));
    bad.extend(
        [
            r#"{"id":"r","imp":[{"id":"1"}]} x"#,
            r#"{"id":"r","imp":[{"id":"1"}]}{}"#,
            r#"{"id":"r","imp":[{"id":"1"}],}"#,
            r#"{"id":"r" "imp":[{"id":"1"}]}"#,
            r#"{"id":"r","imp":[{"id":"1"}],"x":01}"#,
            r#"{"id":"r","imp":[{"id":"1"}],"x":"\q"}"#,
            r#"{"id":"r","imp":{"id":"1"}}"#,
            r#"{"id":"r","imp":["1"]}"#,
            r#"{"id":"r","imp":[null]}"#,
            r#"{"id":7,"imp":[{"id":"1"}]}"#,
            r#"{"id":"r","imp":[{"id":"1"}],"site":"s"}"#,
            r#"{"id":"r","imp":[{"id":"1"}],"cur":"USD"}"#,
            r#"{"id":"r","imp":[{"id":"1"}],"bcat":[null]}"#,
            r#"{"id":"r","imp":[{"id":"1"}],"id":"s"}"#,
        ]
        .map(String::from),
    );
    bad.push("{\"id\":\"r\",\"imp\":[{\"id\":\"1\"}],\"x\":\"a\tb\"}".to_string());
    for body in &bad {
        assert!((err(body)).is_some_and(|e| e.is_syntax()), "{body:?}");
    }
    let mut invalid_utf8 = valid.as_bytes().to_vec();
    invalid_utf8.splice(8..8, [0xff, 0xfe]);
    assert!(Decoder::new()
        .decode(&mut invalid_utf8)
        .is_err_and(|e| e.is_syntax()));
}

#[test]
fn a_reused_body_buffer_and_decoder_see_only_the_current_request() {
    let mut decoder = Decoder::new();
    let mut body = Vec::new();
    let long = fixture("video");
    let short = br#"{"id":"s","imp":[{"id":"9","bidfloor":"0.5"}]}"#;
    for _ in 0..3 {
        body.clear();
        body.extend_from_slice(&long);
        assert_eq!(decoder.decode(&mut body).map(|r| r.imp.len()), Ok(1));
        body.clear();
        body.extend_from_slice(short);
        let r = decoder.decode(&mut body).expect("short request");
        assert_eq!(
            (r.id.as_str(), r.imp[0].bidfloor, r.site.is_none()),
            ("s", 0.5, true)
        );
        drop(r);
        // A body cut short must fail even though the buffers still hold a longer one.
        body.clear();
        body.extend_from_slice(&long[..long.len() / 2]);
        assert!((decoder.decode(&mut body).err()).is_some_and(|e| e.is_syntax()));
        body.clear();
        body.extend_from_slice(&short[..short.len() - 1]);
        assert!((decoder.decode(&mut body).err()).is_some_and(|e| e.is_syntax()));
    }
}

#[test]
fn errors_say_where_the_request_went_wrong() {
    let explain = |d: &mut Decoder, body: &str| {
        let mut b = body.as_bytes().to_vec();
        let e = d.decode(&mut b).expect_err("an error");
        d.explain(e, &b)
    };
    let mut d = Decoder::new();
    let wrong_type = explain(
        &mut d,
        r#"{"id":"r","imp":[{"id":"1","banner":{"w":"wide"}}]}"#,
    );
    assert!(wrong_type.starts_with("imp[0].banner.w: "), "{wrong_type}");
    let cut = explain(&mut d, r#"{"id":"r","imp":[{"id":"1"}"#);
    assert!(cut.contains("column"), "{cut}");
    let no_id = explain(&mut d, r#"{"id":"r","imp":[{"id":"1"},{"banner":{}}]}"#);
    assert_eq!(no_id, "imp[1].id: required, and not empty");
    let twice = explain(
        &mut d,
        r#"{"id":"r","imp":[{"id":"1"},{"id":"2"},{"id":"1"}]}"#,
    );
    assert_eq!(twice, "imp[2].id: duplicate of imp[0].id");
    // An escaped string read before the error: the path is not re-derived from a body
    // the decoder rewrote, but the offset still says where.
    let escaped = explain(
        &mut d,
        r#"{"id":"r\u0041","imp":[{"id":"1","bidfloor":"x"}]}"#,
    );
    assert!(
        escaped.starts_with("malformed JSON near byte "),
        "{escaped}"
    );
    // The imp limit stops the read at the first imp over it.
    let mut two = Decoder::with_max_imps(2);
    let many = explain(
        &mut two,
        r#"{"id":"r","imp":[{"id":"1"},{"id":"2"},{"id":"3"}]}"#,
    );
    assert_eq!(many, "imp: more than 2 imps (http.max_imps)");
    let mut ok = br#"{"id":"r","imp":[{"id":"1"},{"id":"2"}]}"#.to_vec();
    assert!(two.decode(&mut ok).is_ok());
}

#[test]
fn deep_nesting_is_rejected_not_a_stack_overflow() {
    let nest = |depth: usize| {
        let ext = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        req("", &format!(r#","ext":{ext}"#))
    };
    assert!(with(&nest(100), |r| r.is_ok()));
    assert!((err(&nest(100_000))).is_some_and(|e| e.is_syntax()));
}
