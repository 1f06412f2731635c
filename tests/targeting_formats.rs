//! Creative formats: banner sizes, video, native, HTTPS-safe creatives, blocked
//! attributes of the imp's format, and one bid per imp.

mod targeting_support;

use serde_json::json;
use shardbid::auction::NoBidReason;
use targeting_support::*;

#[test]
fn banner_sizes_come_from_format_else_w_h() {
    let t = table(vec![campaign(
        "multi",
        "1",
        json!({"creatives": [
            {"id": "leader", "kind": "banner", "w": 728, "h": 90, "adm": "x"},
            {"id": "rect", "kind": "banner", "w": 300, "h": 250, "adm": "x"}
        ]}),
    )]);
    // format[] wins over w/h: 728x90 is allowed, 300x250 (w/h) is not.
    let r = request(json!({"imp": [{"id": "1", "banner": {"w": 300, "h": 250,
        "format": [{"w": 728, "h": 90}, {"w": 160, "h": 600}]}}]}));
    assert_eq!(first(&t, &r).unwrap().creative, "leader");
    let r = request(json!({"imp": [{"id": "1", "banner": {"w": 300, "h": 250,
        "format": [{"w": 160, "h": 600}]}}]}));
    assert_eq!(winner(&t, &r), Err(NoBidReason::NoMatch));
    // Without format[], w/h: the first creative that fits.
    assert_eq!(first(&t, &request(json!({}))).unwrap().creative, "rect");
    let r = request(json!({"imp": [{"id": "1", "banner": {"w": 300, "h": 251}}]}));
    assert_eq!(winner(&t, &r), Err(NoBidReason::NoMatch));
}

#[test]
fn video_checks_mime_duration_and_protocol() {
    let video = |patch| {
        let mut cr = json!({"id": "v", "kind": "video", "mime": "video/mp4", "duration": 15,
                            "protocol": 3, "adm": "<VAST/>"});
        merge(&mut cr, patch);
        table(vec![campaign("vid", "5", json!({"creatives": [cr]}))])
    };
    let req = |v| request(json!({"imp": [{"id": "1", "video": v}]}));
    let t = video(json!({}));
    assert!(winner(&t, &req(json!({}))).is_ok(), "no constraints");
    let ok =
        json!({"mimes": ["video/MP4"], "minduration": 5, "maxduration": 15, "protocols": [2, 3]});
    assert!(winner(&t, &req(ok)).is_ok());
    for bad in [
        json!({"mimes": ["video/webm"]}),
        json!({"minduration": 16}),
        json!({"maxduration": 10}),
        json!({"protocols": [2, 7]}),
        json!({"protocol": 2}),
    ] {
        assert_eq!(
            winner(&t, &req(bad.clone())),
            Err(NoBidReason::NoMatch),
            "{bad}"
        );
    }
    assert!(
        winner(&t, &req(json!({"protocol": 3}))).is_ok(),
        "legacy single protocol"
    );
    // A banner imp does not take a video creative, nor a video imp a banner.
    assert_eq!(winner(&t, &request(json!({}))), Err(NoBidReason::NoMatch));
    let banner_only = table(vec![campaign("b", "1", json!({}))]);
    assert_eq!(
        winner(&banner_only, &req(json!({}))),
        Err(NoBidReason::NoMatch)
    );
}

#[test]
fn native_imps_take_native_creatives() {
    let t = table(vec![
        campaign(
            "native",
            "1",
            json!({"creatives": [{"id": "n", "kind": "native", "adm": "{}"}]}),
        ),
        campaign("banner", "2", json!({})),
    ]);
    let r = request(json!({"imp": [{"id": "1", "native": {"request": "{}"}}]}));
    assert_eq!(winner(&t, &r).unwrap(), "native");
    // A multi-format imp: the better price wins whichever format it uses.
    let r = request(json!({"imp": [{"id": "1", "native": {"request": "{}"},
                                     "banner": {"w": 300, "h": 250}}]}));
    assert_eq!(winner(&t, &r).unwrap(), "banner");
}

#[test]
fn secure_imps_need_secure_creatives() {
    let t = table(vec![
        campaign(
            "plain-http",
            "3",
            json!({"creatives": [{"id": "x", "kind": "banner", "w": 300,
            "h": 250, "adm": "x", "secure": false}]}),
        ),
        campaign("https", "1", json!({})),
    ]);
    assert_eq!(winner(&t, &request(json!({}))).unwrap(), "plain-http");
    let r = request(json!({"imp": [{"id": "1", "secure": 1, "banner": {"w": 300, "h": 250}}]}));
    assert_eq!(winner(&t, &r).unwrap(), "https");
}

#[test]
fn battr_is_read_from_the_imps_format() {
    let t = table(vec![campaign(
        "attr",
        "1",
        json!({"creatives": [
            {"id": "b", "kind": "banner", "w": 300, "h": 250, "adm": "x", "attr": [13]},
            {"id": "v", "kind": "video", "mime": "video/mp4", "duration": 15, "protocol": 3,
             "adm": "x", "attr": [14]},
            {"id": "n", "kind": "native", "adm": "x", "attr": [1]}
        ]}),
    )]);
    let imp = |v| request(json!({"imp": [v]}));
    let banner = |battr| imp(json!({"id": "1", "banner": {"w": 300, "h": 250, "battr": battr}}));
    assert_eq!(winner(&t, &banner(json!([13]))), Err(NoBidReason::Blocked));
    assert!(winner(&t, &banner(json!([14]))).is_ok());
    let video = |battr| imp(json!({"id": "1", "video": {"battr": battr}}));
    assert_eq!(winner(&t, &video(json!([14]))), Err(NoBidReason::Blocked));
    assert!(winner(&t, &video(json!([13]))).is_ok());
    let native = |battr| imp(json!({"id": "1", "native": {"request": "{}", "battr": battr}}));
    assert_eq!(winner(&t, &native(json!([1]))), Err(NoBidReason::Blocked));
    assert!(winner(&t, &native(json!([13, 14]))).is_ok());
}

#[test]
fn one_bid_per_imp_and_imps_are_independent() {
    let t = table(vec![
        campaign("rect", "2", json!({})),
        campaign(
            "leader",
            "1",
            json!({"creatives": [{"id": "l", "kind": "banner", "w": 728, "h": 90, "adm": "x"}]}),
        ),
    ]);
    let r = request(json!({"imp": [
        {"id": "a", "banner": {"w": 300, "h": 250}},
        {"id": "b", "banner": {"w": 160, "h": 600}},
        {"id": "c", "banner": {"w": 728, "h": 90}},
        {"id": "d", "banner": {"w": 300, "h": 250}}
    ]}));
    let (won, cur) = run_ctx(&t, &r, &CTX).unwrap();
    let ids: Vec<_> = won
        .iter()
        .map(|w| w.as_ref().map(|w| w.campaign.as_str()))
        .collect();
    assert_eq!(ids, [Some("rect"), None, Some("leader"), Some("rect")]);
    assert_eq!(cur, "USD");
}
