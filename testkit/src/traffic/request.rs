//! Varied, realistic OpenRTB 2.6 bid requests, generated deterministically from
//! `(seed, index)`.
//!
//! Each request is built either to bid (its first imp fits the always-present broad
//! campaigns of [`super::campaign`]) or to get no bid for one stated reason
//! ([`NoBidKind`]), so the share of requests that bids is known up front.

use super::audience::{write_device, write_user};
use super::imp::write_imp;
use super::inventory::{write_app, write_site};
use super::json::{object, Obj};
use super::vocab::{self, Country, DeviceProfile};
use crate::rng::Rng;

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

pub(super) fn is(intent: Intent, kind: NoBidKind) -> bool {
    intent == Intent::NoBid(kind)
}

/// Everything drawn before writing, shared by several parts of the request.
pub(super) struct Plan<'a> {
    pub(super) intent: Intent,
    pub(super) app: bool,
    pub(super) country: &'a Country,
    pub(super) region: usize,
    pub(super) city: usize,
    pub(super) device: &'a DeviceProfile,
    pub(super) escape_slashes: bool,
    /// Whether `device.geo` is sent; when it is not, `user.geo` always is.
    pub(super) device_geo: bool,
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

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
