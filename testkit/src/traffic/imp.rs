//! The imps of generated requests: banner (single size or `format[]`), video, native,
//! floors (numbers or strings, USD or other currencies) and deals.

use super::json::{object, Arr, Obj};
use super::request::{is, Intent, NoBidKind, Plan};
use super::vocab;
use crate::rng::Rng;

/// A decimal amount from cents, written like exchanges do (number or string).
fn write_amount(o: &mut Obj<'_>, r: &mut Rng, key: &str, cents: u64) {
    let text = if r.chance(0.3) {
        // Finer than cents, as floors computed by exchanges often are.
        format!("{}.{:02}{}", cents / 100, cents % 100, r.range(1, 99))
    } else {
        format!("{}.{:02}", cents / 100, cents % 100)
    };
    if r.chance(0.2) {
        o.str(key, &text);
    } else {
        o.num(key, text);
    }
}

pub(super) fn write_imp(o: &mut Obj<'_>, r: &mut Rng, plan: &Plan<'_>, i: usize) {
    let intent = plan.intent;
    // The first imp of a request built to bid is the one that must fit a broad campaign.
    let must_bid = intent == Intent::Bid && i == 0;
    o.str("id", &format!("{}", i + 1));
    let ctv = matches!(plan.device.devicetype, 3 | 6 | 7);
    let kind = if is(intent, NoBidKind::DarkSizes) {
        0
    } else if ctv {
        *r.weighted(&[(15, 0u8), (80, 1), (5, 2)])
    } else {
        *r.weighted(&[(65, 0u8), (20, 1), (15, 2)])
    };
    match kind {
        0 => o.obj("banner", |o| write_banner(o, r, plan, must_bid)),
        1 => o.obj("video", |o| write_video(o, r, plan, must_bid)),
        _ => o.obj("native", |o| write_native(o, r)),
    };
    // Floor.
    if is(intent, NoBidKind::Currency) {
        o.num("bidfloor", r.range(50, 300));
        o.str("bidfloorcur", vocab::DARK_CURRENCY);
    } else if is(intent, NoBidKind::HighFloor) {
        let cents = r.range(vocab::HIGH_FLOOR_MIN as u64 * 100, 80 * 100);
        write_amount(o, r, "bidfloor", cents);
        if r.chance(0.5) {
            o.str("bidfloorcur", "USD");
        }
    } else if !r.chance(0.1) {
        if r.chance(0.05) {
            // EUR floors stay low enough to clear once converted (1 EUR ~ 1.08 USD).
            let cents = r.range(1, 100);
            write_amount(o, r, "bidfloor", cents);
            o.str("bidfloorcur", vocab::LIT_CURRENCIES[0]);
        } else {
            let cents = r.range(1, vocab::BID_FLOOR_MAX_CENTS - 1);
            write_amount(o, r, "bidfloor", cents);
            if r.chance(0.5) {
                o.str("bidfloorcur", "USD");
            }
        }
    }
    if r.chance(0.7) {
        o.num("secure", 1);
    }
    o.str(
        "tagid",
        &format!(
            "{}-{}",
            if plan.app { "app" } else { "slot" },
            r.range(1, 5000)
        ),
    );
    write_pmp(o, r, intent, must_bid);
    o.obj("ext", |o| {
        o.str(
            "gpid",
            &format!(
                "/{}/{}/{}",
                r.range(1000, 9999),
                if plan.app { "app" } else { "web" },
                r.pick(&["top", "mid", "sidebar", "footer", "inline"])
            ),
        );
        if r.chance(0.5) {
            o.obj("data", |o| {
                o.str("pbadslot", &format!("ad-unit-{}", r.range(1, 400)));
            });
        }
    });
}

fn write_pmp(o: &mut Obj<'_>, r: &mut Rng, intent: Intent, must_bid: bool) {
    let deal = |a: &mut Arr<'_>, r: &mut Rng, id: String, max_cents: u64| {
        a.obj(|o| {
            o.str("id", &id);
            o.num(
                "bidfloor",
                format!("{:.2}", r.range(50, max_cents) as f64 / 100.0),
            );
            if r.chance(0.5) {
                o.num("at", 1);
            }
        });
    };
    if is(intent, NoBidKind::DarkDeals) {
        o.obj("pmp", |o| {
            o.num("private_auction", 1);
            o.arr("deals", |a| {
                for _ in 0..r.range(1, 3) {
                    let id = vocab::dark_deal(r.below(10_000));
                    deal(a, r, id, 800);
                }
            });
        });
    } else if is(intent, NoBidKind::HighFloor) {
        // Deals carry their own floors; priced-out requests have none.
    } else if must_bid && r.chance(0.1) {
        o.obj("pmp", |o| {
            o.num("private_auction", 1);
            o.arr("deals", |a| {
                let id = vocab::lit_deal(r.below(vocab::ANCHOR_DEAL_COUNT));
                deal(a, r, id, 300);
                if r.chance(0.5) {
                    let id = vocab::dark_deal(r.below(10_000));
                    deal(a, r, id, 800);
                }
            });
        });
    } else if r.chance(0.12) {
        o.obj("pmp", |o| {
            // Open auction: bids outside the deals stay allowed.
            o.num("private_auction", 0);
            o.arr("deals", |a| {
                for _ in 0..r.range(1, 3) {
                    let id = if r.chance(0.5) {
                        vocab::lit_deal(r.below(vocab::LIT_DEAL_COUNT))
                    } else {
                        vocab::dark_deal(r.below(10_000))
                    };
                    deal(a, r, id, 500);
                }
            });
        });
    }
}

fn write_banner(o: &mut Obj<'_>, r: &mut Rng, plan: &Plan<'_>, must_bid: bool) {
    let dark_only = is(plan.intent, NoBidKind::DarkSizes);
    let size = |r: &mut Rng, lit_share: f64| {
        if !dark_only && r.chance(lit_share) {
            *r.pick(vocab::LIT_BANNER_SIZES)
        } else {
            *r.pick(vocab::DARK_BANNER_SIZES)
        }
    };
    if r.chance(0.4) {
        let (w, h) = size(r, if must_bid { 1.0 } else { 0.9 });
        if r.chance(0.05) {
            o.num_str("w", w).num_str("h", h);
        } else {
            o.num("w", w).num("h", h);
        }
    } else {
        let n = r.range(1, 4) as usize;
        o.arr("format", |a| {
            for k in 0..n {
                let (w, h) = size(r, if must_bid && k == 0 { 1.0 } else { 0.8 });
                a.obj(|o| {
                    o.num("w", w).num("h", h);
                });
            }
        });
    }
    o.num("pos", *r.pick(&[0u32, 1, 1, 3, 4, 7]));
    if r.chance(0.4) {
        let n = r.range(1, 3) as usize;
        o.nums(
            "battr",
            r.sample_indices(vocab::BLOCKED_ATTRS.len(), n)
                .into_iter()
                .map(|i| vocab::BLOCKED_ATTRS[i]),
        );
    }
    if r.chance(0.3) {
        o.nums("btype", [4]);
    }
    if r.chance(0.5) {
        o.nums("api", [3, 5]);
    }
}

fn write_video(o: &mut Obj<'_>, r: &mut Rng, plan: &Plan<'_>, must_bid: bool) {
    o.arr("mimes", |a| {
        if must_bid || r.chance(0.9) {
            a.str(vocab::VIDEO_MIME);
        }
        for i in r.sample(vocab::OTHER_VIDEO_MIMES.len(), 1, 3) {
            a.str(vocab::OTHER_VIDEO_MIMES[i]);
        }
    });
    let min = *r.pick(&[0u32, 5, 5, 15]);
    let max = if must_bid {
        *r.pick(&[15u32, 30, 30, 60, 120])
    } else {
        *r.pick(&[6u32, 15, 30, 60])
    };
    o.num("minduration", min.min(max)).num("maxduration", max);
    o.arr("protocols", |a| {
        if must_bid || r.chance(0.8) {
            a.num(3);
        }
        for p in [2u32, 5, 6, 7, 8] {
            if r.chance(0.5) {
                a.num(p);
            }
        }
    });
    let (w, h) = if plan.device.w >= plan.device.h {
        (plan.device.w.min(1920), plan.device.h.min(1080))
    } else {
        (640, 480)
    };
    o.num("w", w).num("h", h);
    o.num("startdelay", *r.pick(&[0i32, 0, -1, -2]))
        .num("plcmt", *r.pick(&[1u32, 1, 2, 4]))
        .num("linearity", 1);
    o.num("skip", if r.chance(0.5) { 1 } else { 0 });
    o.nums("api", [1, 2, 7]);
    if r.chance(0.3) {
        o.nums("battr", [*r.pick(vocab::BLOCKED_ATTRS)]);
    }
    o.num("minbitrate", 300).num("maxbitrate", 4500);
}

fn write_native(o: &mut Obj<'_>, r: &mut Rng) {
    // The native request is a JSON document carried as a string (escaped quotes).
    let mut req = String::with_capacity(400);
    object(&mut req, |o| {
        o.str("ver", "1.2")
            .num("context", *r.pick(&[1u32, 2]))
            .num("plcmttype", *r.pick(&[1u32, 4]))
            .num("plcmtcnt", 1);
        o.arr("assets", |a| {
            a.obj(|o| {
                o.num("id", 1).num("required", 1).obj("title", |o| {
                    o.num("len", *r.pick(&[25u32, 90, 140]));
                });
            });
            a.obj(|o| {
                o.num("id", 2).num("required", 1).obj("img", |o| {
                    o.num("type", 3).num("wmin", 300).num("hmin", 157);
                });
            });
            a.obj(|o| {
                o.num("id", 3).num("required", 0).obj("img", |o| {
                    o.num("type", 1).num("wmin", 50).num("hmin", 50);
                });
            });
            a.obj(|o| {
                o.num("id", 4).num("required", 0).obj("data", |o| {
                    o.num("type", 2).num("len", 140);
                });
            });
            a.obj(|o| {
                o.num("id", 5).num("required", 0).obj("data", |o| {
                    o.num("type", 1).num("len", 25);
                });
            });
        });
        o.arr("eventtrackers", |a| {
            a.obj(|o| {
                o.num("event", 1).nums("methods", [1, 2]);
            });
        });
        o.num("privacy", 1);
    });
    o.str("request", &req).str("ver", "1.2");
    o.nums("api", [3, 5]);
    if r.chance(0.3) {
        o.nums("battr", [*r.pick(vocab::BLOCKED_ATTRS)]);
    }
}
