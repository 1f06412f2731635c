//! Who sees the impression: `device` (with its `geo`) and `user` (with segments and
//! consent strings) of generated requests.

use super::json::Obj;
use super::request::Plan;
use super::vocab;
use crate::rng::Rng;

fn write_geo(o: &mut Obj<'_>, r: &mut Rng, plan: &Plan<'_>, kind: u32) {
    let region = &plan.country.regions[plan.region];
    o.num(
        "lat",
        format!("{:.4}", r.range(0, 1_400_000) as f64 / 10_000.0 - 70.0),
    );
    o.num(
        "lon",
        format!("{:.4}", r.range(0, 3_600_000) as f64 / 10_000.0 - 180.0),
    );
    o.num("type", kind);
    o.str("country", plan.country.code);
    o.str("region", region.code);
    o.str("city", region.cities[plan.city]);
    if r.chance(0.5) {
        o.str("zip", &format!("{:05}", r.range(1000, 99_999)));
    }
    o.num("utcoffset", *r.pick(&[-480i32, -300, 0, 60, 330, 540]));
}

pub(super) fn write_device(o: &mut Obj<'_>, r: &mut Rng, plan: &Plan<'_>) {
    let d = plan.device;
    o.str("ua", d.ua);
    if r.chance(0.15) {
        o.str(
            "ipv6",
            &format!("2001:db8:{}:{}::{}", r.hex(4), r.hex(4), r.hex(3)),
        );
    } else {
        o.str(
            "ip",
            &format!(
                "{}.{}.{}.0",
                r.pick(&[203u32, 198, 192, 100]),
                r.range(0, 255),
                r.range(0, 255)
            ),
        );
    }
    // Without device.geo the bidder must fall back to user.geo.
    if plan.device_geo {
        o.obj("geo", |o| write_geo(o, r, plan, 2));
    }
    o.num("dnt", 0)
        .num("lmt", if r.chance(0.1) { 1 } else { 0 });
    if r.chance(0.05) {
        o.num_str("devicetype", d.devicetype);
    } else {
        o.num("devicetype", d.devicetype);
    }
    if !d.make.is_empty() {
        let model = *r.pick(d.models);
        o.str("make", d.make).str("model", model);
    }
    o.str("os", d.os);
    let osv = *r.pick(d.osv);
    if !osv.is_empty() {
        o.str("osv", osv);
    }
    o.num("w", d.w).num("h", d.h).num("js", 1);
    let language = *r.pick(&["en", "de", "fr", "es", "pt", "ja"]);
    o.str("language", language);
    if plan.app {
        o.str("ifa", &r.uuid());
        let carrier = *r.pick(&["Verizon", "T-Mobile", "Vodafone", "Orange", "WIFI"]);
        o.str("carrier", carrier);
        o.num("connectiontype", *r.pick(&[2u32, 3, 5, 6]));
    } else {
        o.num("connectiontype", *r.pick(&[1u32, 2]));
    }
    o.obj("ext", |o| {
        o.num("atts", *r.pick(&[0u32, 2, 3]));
    });
}

pub(super) fn write_user(o: &mut Obj<'_>, r: &mut Rng, plan: &Plan<'_>) {
    o.str("id", &r.hex(40));
    if r.chance(0.6) {
        o.str("buyeruid", &r.uuid());
    }
    if r.chance(0.3) {
        o.num("yob", r.range(1950, 2006));
    }
    // Some exchanges send a home geo in user.geo too.
    if !plan.device_geo || r.chance(0.2) {
        o.obj("geo", |o| write_geo(o, r, plan, 3));
    }
    if r.chance(0.6) {
        let providers = r.range(1, 3) as usize;
        o.arr("data", |a| {
            for _ in 0..providers {
                let first = r.below(vocab::SEGMENT_COUNT);
                let (provider, _) = vocab::segment(first);
                a.obj(|o| {
                    o.str("id", provider)
                        .str("name", &format!("{provider}-dmp"));
                    o.arr("segment", |a| {
                        for k in 0..r.range(1, 6) as usize {
                            let (_, seg) = vocab::segment(first + k * 4 * r.range(1, 50) as usize);
                            a.obj(|o| {
                                o.str("id", &seg);
                            });
                        }
                    });
                });
            }
        });
    }
    o.obj("ext", |o| {
        if r.chance(0.7) {
            // A TCF consent string: long and base64url, the main source of request bulk.
            let len = r.range(120, 420) as usize;
            let mut consent = String::with_capacity(len + 8);
            consent.push_str("CP");
            const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            for _ in 0..len {
                consent.push(B64[r.below(64)] as char);
            }
            o.str("consent", &consent);
        }
        if r.chance(0.5) {
            o.arr("eids", |a| {
                a.obj(|o| {
                    o.str("source", "id5-sync.com");
                    o.arr("uids", |a| {
                        a.obj(|o| {
                            o.str("id", &format!("ID5*{}", r.hex(48))).num("atype", 1);
                        });
                    });
                });
            });
        }
    });
}
