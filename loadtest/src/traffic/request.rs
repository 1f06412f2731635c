//! Varied, realistic OpenRTB 2.6 bid requests, generated deterministically from
//! `(seed, index)`.
//!
//! Each request is built either to bid (its first imp fits the always-present broad
//! campaigns of [`super::campaign`]) or to get no bid for one stated reason
//! ([`NoBidKind`]), so the share of requests that bids is known up front.

use super::json::{object, Arr, Obj};
use super::rng::Rng;
use super::vocab::{self, Country, DeviceProfile};

/// What a generated request is built to get from a bidder loaded with generated campaigns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// At least one imp fits a broad campaign: expect 200 with a bid.
    Bid,
    /// Expect 204, for this reason.
    NoBid(NoBidKind),
}

/// Why a request is built to get no bid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoBidKind {
    /// The country is one that no campaign targets (most no-bids in real traffic).
    DarkGeo,
    /// Every imp's floor is above every campaign's maximum CPM.
    HighFloor,
    /// Private auction on deals that no campaign holds.
    DarkDeals,
    /// Only banner sizes that no creative has.
    DarkSizes,
    /// A site every campaign denies.
    UnsafeDomain,
    /// `cur` allows only a currency the bidder does not price in.
    Currency,
}

impl NoBidKind {
    /// Every kind with its weight among no-bid requests (percent).
    pub const WEIGHTS: [(u32, NoBidKind); 6] = [
        (60, NoBidKind::DarkGeo),
        (12, NoBidKind::HighFloor),
        (8, NoBidKind::DarkDeals),
        (10, NoBidKind::DarkSizes),
        (6, NoBidKind::UnsafeDomain),
        (4, NoBidKind::Currency),
    ];

    /// A short label for reports.
    pub fn label(self) -> &'static str {
        match self {
            NoBidKind::DarkGeo => "untargeted country",
            NoBidKind::HighFloor => "floor above every campaign",
            NoBidKind::DarkDeals => "private auction, unknown deals",
            NoBidKind::DarkSizes => "no creative of the sizes",
            NoBidKind::UnsafeDomain => "denied site",
            NoBidKind::Currency => "unsupported currency",
        }
    }
}

/// The traffic mix.
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    /// Probability that a request is built to bid (0..=1).
    pub bid_share: f64,
}

impl Default for Mix {
    fn default() -> Self {
        Mix { bid_share: 0.25 }
    }
}

/// One generated request.
#[derive(Debug, Clone)]
pub struct Generated {
    pub body: String,
    pub intent: Intent,
}

/// Request `index` of the stream `seed`: the same bytes for the same arguments, whatever
/// else was generated before.
pub fn generate(seed: u64, index: u64, mix: &Mix) -> Generated {
    let mut r = Rng::for_item(seed, index);
    let intent = if r.chance(mix.bid_share) {
        Intent::Bid
    } else {
        Intent::NoBid(*r.weighted(&NoBidKind::WEIGHTS))
    };
    let body = write_request(&mut r, intent);
    Generated { body, intent }
}

fn is(intent: Intent, kind: NoBidKind) -> bool {
    intent == Intent::NoBid(kind)
}

/// Everything drawn before writing, shared by several parts of the request.
struct Plan<'a> {
    intent: Intent,
    app: bool,
    country: &'a Country,
    region: usize,
    city: usize,
    device: &'a DeviceProfile,
    escape_slashes: bool,
    /// Whether `device.geo` is sent; when it is not, `user.geo` always is.
    device_geo: bool,
}

fn write_request(r: &mut Rng, intent: Intent) -> String {
    let app = !is(intent, NoBidKind::UnsafeDomain) && r.chance(0.45);
    let country = if is(intent, NoBidKind::DarkGeo) {
        vocab::pick_country(r, vocab::DARK_COUNTRIES)
    } else {
        vocab::pick_country(r, vocab::LIT_COUNTRIES)
    };
    let region = r.below(country.regions.len());
    let city = r.below(country.regions[region].cities.len());
    let device = if app {
        r.weighted(vocab::APP_DEVICES)
    } else {
        r.weighted(vocab::WEB_DEVICES)
    };
    let device_geo = !r.chance(0.05);
    let plan = Plan {
        intent,
        app,
        country,
        region,
        city,
        device,
        escape_slashes: r.chance(0.2),
        device_geo,
    };

    let mut out = String::with_capacity(2048);
    object(&mut out, |o| {
        o.escape_slashes(plan.escape_slashes);
        o.str("id", &r.hex(32));
        let n_imps = *r.weighted(&[(75, 1usize), (15, 2), (7, 3), (3, 4)]);
        o.arr("imp", |a| {
            for i in 0..n_imps {
                a.obj(|o| write_imp(o, r, &plan, i));
            }
        });
        if plan.app {
            o.obj("app", |o| write_app(o, r));
        } else {
            o.obj("site", |o| write_site(o, r, &plan));
        }
        o.obj("device", |o| write_device(o, r, &plan));
        o.obj("user", |o| write_user(o, r, &plan));
        if r.chance(0.02) {
            o.num("test", 1);
        }
        o.num("at", if r.chance(0.3) { 1 } else { 2 });
        let tmax = *r.pick(&[80u32, 100, 100, 120, 120, 150, 200, 250, 300, 500]);
        if r.chance(0.1) {
            o.num_str("tmax", tmax);
        } else {
            o.num("tmax", tmax);
        }
        write_currency(o, r, intent);
        if r.chance(0.7) {
            let n = r.range(3, 8) as usize;
            o.strs(
                "bcat",
                r.sample_indices(vocab::BLOCKED_CATS.len(), n)
                    .into_iter()
                    .map(|i| vocab::BLOCKED_CATS[i]),
            );
        }
        if r.chance(0.4) {
            let n = r.range(1, 4) as usize;
            o.strs(
                "badv",
                r.sample_indices(vocab::BLOCKED_ADVERTISERS.len(), n)
                    .into_iter()
                    .map(|i| vocab::BLOCKED_ADVERTISERS[i]),
            );
        }
        if plan.app && r.chance(0.15) {
            o.strs(
                "bapp",
                vocab::BLOCKED_BUNDLES.iter().take(r.range(1, 3) as usize),
            );
        }
        if r.chance(0.05) {
            o.strs("wseat", [vocab::DEFAULT_SEAT, "agency-x"]);
        } else if r.chance(0.05) {
            o.strs("bseat", ["agency-y"]);
        }
        o.obj("source", |o| {
            o.num("fd", 1).str("tid", &r.uuid());
            o.obj("ext", |o| {
                o.obj("schain", |o| {
                    o.num("complete", 1).str("ver", "1.0");
                    o.arr("nodes", |a| {
                        for _ in 0..r.range(1, 2) {
                            a.obj(|o| {
                                o.str("asi", "exchange.example")
                                    .str("sid", &format!("{}", r.range(10_000, 99_999)))
                                    .num("hp", 1);
                            });
                        }
                    });
                });
            });
        });
        o.obj("regs", |o| {
            o.num("coppa", 0);
            o.obj("ext", |o| {
                o.num(
                    "gdpr",
                    if plan.country.code == "DEU" || plan.country.code == "FRA" {
                        1
                    } else {
                        0
                    },
                );
                if plan.country.code == "USA" {
                    o.str("us_privacy", "1YNN");
                }
            });
        });
    });
    out
}

fn write_currency(o: &mut Obj<'_>, r: &mut Rng, intent: Intent) {
    if is(intent, NoBidKind::Currency) {
        o.strs("cur", [vocab::DARK_CURRENCY]);
    } else if r.chance(0.25) {
        o.strs("cur", ["USD"]);
    } else if r.chance(0.07) {
        o.strs("cur", ["USD", vocab::LIT_CURRENCIES[0]]);
    }
}

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

fn write_imp(o: &mut Obj<'_>, r: &mut Rng, plan: &Plan<'_>, i: usize) {
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

fn write_site(o: &mut Obj<'_>, r: &mut Rng, plan: &Plan<'_>) {
    let (domain, publisher) = if is(plan.intent, NoBidKind::UnsafeDomain) {
        (
            r.pick(vocab::UNSAFE_DOMAINS).to_string(),
            vocab::publisher(vocab::PUBLISHER_COUNT - 1),
        )
    } else {
        let d = r.below(vocab::DOMAIN_COUNT);
        (
            vocab::domain(d),
            vocab::publisher(d % vocab::PUBLISHER_COUNT),
        )
    };
    let host = match r.below(4) {
        0 => format!("www.{domain}"),
        1 => format!("m.{domain}"),
        _ => domain.clone(),
    };
    o.str("id", &format!("{}", r.range(100_000, 999_999)));
    o.str("name", &domain);
    o.str("domain", &host);
    let cats = r.sample(vocab::CONTENT_CATS.len(), 1, 3);
    o.strs("cat", cats.iter().map(|&i| vocab::CONTENT_CATS[i]));
    let section = *r.pick(&[
        "news", "sports", "recipes", "reviews", "world", "local", "video",
    ]);
    o.str(
        "page",
        &format!(
            "https://{host}/{section}/{}-{}.html?utm_source=feed&ref={}",
            r.pick(&["story", "article", "gallery"]),
            r.range(10_000, 9_999_999),
            r.hex(8)
        ),
    );
    if r.chance(0.5) {
        o.str(
            "ref",
            &format!(
                "https://www.{}/search?q={}",
                r.pick(&["google.com", "bing.com", "duckduckgo.com"]),
                r.pick(&["weather+today", "best+recipes", "football+scores"])
            ),
        );
    }
    o.num("mobile", if plan.device.devicetype == 2 { 0 } else { 1 });
    o.num("privacypolicy", 1);
    o.obj("publisher", |o| {
        o.str("id", &publisher)
            .str("name", &format!("{domain} media"))
            .str("domain", &domain);
    });
    if r.chance(0.4) {
        o.obj("content", |o| {
            o.str("language", "en")
                .str("keywords", "local,weather,sports,lifestyle");
        });
    }
}

fn write_app(o: &mut Obj<'_>, r: &mut Rng) {
    let i = r.below(vocab::APP_COUNT);
    let (bundle, name, domain) = vocab::app(i);
    o.str("id", &r.hex(24));
    o.str("name", &name);
    o.str("bundle", &bundle);
    o.str("domain", &domain);
    let store = if i % 2 == 0 {
        format!("https://play.google.com/store/apps/details?id={bundle}")
    } else {
        format!("https://apps.apple.com/app/id{bundle}")
    };
    o.str("storeurl", &store);
    let cats = r.sample(vocab::CONTENT_CATS.len(), 1, 2);
    o.strs("cat", cats.iter().map(|&i| vocab::CONTENT_CATS[i]));
    o.str(
        "ver",
        &format!("{}.{}.{}", r.range(1, 9), r.range(0, 20), r.range(0, 99)),
    );
    o.num("paid", 0);
    o.obj("publisher", |o| {
        o.str("id", &vocab::publisher(i * 7 % vocab::PUBLISHER_COUNT))
            .str("name", &domain);
    });
}

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

fn write_device(o: &mut Obj<'_>, r: &mut Rng, plan: &Plan<'_>) {
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

fn write_user(o: &mut Obj<'_>, r: &mut Rng, plan: &Plan<'_>) {
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use shardbid::openrtb::request::BidRequest;

    use super::*;

    fn corpus(seed: u64, n: u64) -> Vec<Generated> {
        (0..n).map(|i| generate(seed, i, &Mix::default())).collect()
    }

    #[test]
    fn same_seed_gives_identical_bytes() {
        let a = corpus(42, 50);
        let b = corpus(42, 50);
        let c = corpus(43, 50);
        for i in 0..50 {
            assert_eq!(a[i].body, b[i].body);
            assert_eq!(a[i].intent, b[i].intent);
            assert_ne!(a[i].body, c[i].body);
        }
        assert_eq!(generate(42, 17, &Mix::default()).body, a[17].body);
    }

    #[test]
    fn every_request_is_a_valid_bid_request_for_shardbid() {
        for g in corpus(7, 3000) {
            let v: serde_json::Value =
                serde_json::from_str(&g.body).unwrap_or_else(|e| panic!("{e}: {}", g.body));
            assert!(v.is_object());
            let req: BidRequest<'_> = serde_json::from_slice(g.body.as_bytes())
                .unwrap_or_else(|e| panic!("{e}: {}", g.body));
            assert_eq!(req.validate(), Ok(()), "{}", g.body);
            assert!(
                req.geo().and_then(|g| g.country.as_deref()).is_some(),
                "every request has a country"
            );
            assert!(req.tmax.is_some());
        }
    }

    #[test]
    fn sizes_are_those_of_real_requests() {
        let mut sizes: Vec<usize> = corpus(1, 2000).iter().map(|g| g.body.len()).collect();
        sizes.sort_unstable();
        let median = sizes[sizes.len() / 2];
        let p10 = sizes[sizes.len() / 10];
        let p90 = sizes[sizes.len() * 9 / 10];
        assert!((1000..=3000).contains(&median), "median {median}");
        assert!(p10 >= 700 && p90 <= 4000, "p10 {p10} p90 {p90}");
        assert!(
            sizes[0] >= 400 && sizes[sizes.len() - 1] <= 8000,
            "{:?}",
            (sizes[0], sizes[sizes.len() - 1])
        );
    }

    #[test]
    fn traffic_is_varied() {
        let gs = corpus(5, 3000);
        let count = |pred: &dyn Fn(&serde_json::Value) -> bool| {
            gs.iter()
                .filter(|g| pred(&serde_json::from_str::<serde_json::Value>(&g.body).unwrap()))
                .count()
        };
        let any_imp = |v: &serde_json::Value, f: &dyn Fn(&serde_json::Value) -> bool| {
            v["imp"].as_array().unwrap().iter().any(f)
        };
        let at_least = |what: &str, n: usize, min: usize| assert!(n >= min, "{what}: {n} < {min}");
        at_least("site", count(&|v| v.get("site").is_some()), 1200);
        at_least("app", count(&|v| v.get("app").is_some()), 1000);
        at_least(
            "multi-imp",
            count(&|v| v["imp"].as_array().unwrap().len() > 1),
            450,
        );
        at_least(
            "banner w/h",
            count(&|v| any_imp(v, &|i| i["banner"].get("w").is_some())),
            400,
        );
        at_least(
            "banner format[]",
            count(&|v| any_imp(v, &|i| i["banner"].get("format").is_some())),
            600,
        );
        at_least(
            "video",
            count(&|v| any_imp(v, &|i| i.get("video").is_some())),
            400,
        );
        at_least(
            "native",
            count(&|v| any_imp(v, &|i| i.get("native").is_some())),
            250,
        );
        at_least(
            "private auction",
            count(&|v| any_imp(v, &|i| i["pmp"]["private_auction"] == 1)),
            150,
        );
        at_least(
            "open deals",
            count(&|v| any_imp(v, &|i| i["pmp"]["private_auction"] == 0)),
            150,
        );
        at_least(
            "string floor",
            count(&|v| any_imp(v, &|i| i["bidfloor"].is_string())),
            300,
        );
        at_least("bcat", count(&|v| v.get("bcat").is_some()), 1800);
        at_least("badv", count(&|v| v.get("badv").is_some()), 900);
        at_least(
            "battr",
            count(&|v| any_imp(v, &|i| i["banner"].get("battr").is_some())),
            300,
        );
        at_least(
            "segments",
            count(&|v| v["user"].get("data").is_some()),
            1500,
        );
        at_least(
            "escaped slashes",
            gs.iter().filter(|g| g.body.contains("\\/")).count(),
            400,
        );
        let distinct = |key: &dyn Fn(&serde_json::Value) -> Option<String>| {
            gs.iter()
                .filter_map(|g| key(&serde_json::from_str(&g.body).unwrap()))
                .collect::<BTreeSet<_>>()
                .len()
        };
        assert!(distinct(&|v| v["device"]["geo"]["country"].as_str().map(str::to_string)) >= 20);
        assert!(distinct(&|v| v["device"]["geo"]["city"].as_str().map(str::to_string)) >= 40);
        assert!(distinct(&|v| v["device"]["os"].as_str().map(str::to_string)) >= 7);
        assert!(distinct(&|v| v["device"]["devicetype"].as_u64().map(|d| d.to_string())) >= 5);
        assert!(distinct(&|v| v["site"]["domain"].as_str().map(str::to_string)) >= 800);
    }

    #[test]
    fn bid_share_follows_the_mix() {
        for share in [0.1, 0.25, 0.6] {
            let mix = Mix { bid_share: share };
            let bids = (0..4000)
                .filter(|&i| generate(3, i, &mix).intent == Intent::Bid)
                .count();
            let got = bids as f64 / 4000.0;
            assert!((got - share).abs() < 0.03, "share {share}: got {got}");
        }
    }
}
