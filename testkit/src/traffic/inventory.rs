//! Where the impression is: the `site` or `app` object of generated requests.

use super::json::Obj;
use super::request::{is, NoBidKind, Plan};
use super::vocab;
use crate::rng::Rng;

pub(super) fn write_site(o: &mut Obj<'_>, r: &mut Rng, plan: &Plan<'_>) {
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

pub(super) fn write_app(o: &mut Obj<'_>, r: &mut Rng) {
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
