//! A deliberately plain reference matcher (tests only): the straightforward reading of
//! the campaign format, used to check that generated requests and campaigns agree on
//! which requests can bid.

use shardbid::money::Micros;
use shardbid::openrtb::request::{BidRequest, Imp};
use shardbid::targeting::campaign::{Campaign, Creative, CreativeKind, Inventory, ListFilter};

use shardbid_testkit::traffic::vocab;

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn domain_matches(rule: &str, value: &str) -> bool {
    let (r, v) = (rule.to_ascii_lowercase(), value.to_ascii_lowercase());
    v == r || v.ends_with(&format!(".{r}"))
}

fn cat_matches(rule: &str, value: &str) -> bool {
    eq(rule, value)
        || value
            .to_ascii_lowercase()
            .starts_with(&format!("{}-", rule.to_ascii_lowercase()))
}

fn filter(f: &ListFilter, value: Option<&str>, m: fn(&str, &str) -> bool) -> bool {
    if let Some(v) = value {
        if f.deny.iter().any(|d| m(d, v)) {
            return false;
        }
    }
    f.allow.is_empty() || value.is_some_and(|v| f.allow.iter().any(|a| m(a, v)))
}

fn floor_usd(amount: f64, cur: Option<&str>) -> Option<Micros> {
    let m = Micros::from_f64(amount)?;
    match cur.unwrap_or("USD") {
        "USD" => Some(m),
        "EUR" => Some(m.to_usd(Micros(1_080_000))),
        "GBP" => Some(m.to_usd(Micros(1_270_000))),
        _ => None,
    }
}

fn creative_fits(c: &Creative, imp: &Imp<'_>) -> bool {
    if imp.secure == Some(1) && !c.secure {
        return false;
    }
    match c.kind {
        CreativeKind::Banner => imp.banner.as_ref().is_some_and(|b| {
            b.sizes().any(|(w, h)| Some(w) == c.w && Some(h) == c.h)
                && !c.attr.iter().any(|a| b.battr.contains(a))
        }),
        CreativeKind::Video => imp.video.as_ref().is_some_and(|v| {
            let d = c.duration.unwrap_or(0);
            c.mime
                .as_deref()
                .is_some_and(|m| v.mimes.iter().any(|x| eq(x, m)))
                && v.minduration.is_none_or(|min| d >= min)
                && v.maxduration.is_none_or(|max| d <= max)
                && c.protocol
                    .is_some_and(|p| v.protocols.contains(&p) || v.protocol == Some(p))
                && !c.attr.iter().any(|a| v.battr.contains(a))
        }),
        CreativeKind::Native => imp
            .native
            .as_ref()
            .is_some_and(|n| !c.attr.iter().any(|a| n.battr.contains(a))),
    }
}

/// Whether campaign `c` can bid on some imp of `req` (dayparts are treated as open;
/// the exchange is `example`).
pub fn fits(c: &Campaign, req: &BidRequest<'_>) -> bool {
    let t = &c.targeting;
    if !c.active || (req.test == 1 && !t.test_requests) {
        return false;
    }
    if !(req.cur.is_empty()
        || req
            .cur
            .iter()
            .any(|x| matches!(x.as_str(), "USD" | "EUR" | "GBP")))
    {
        return false;
    }
    if !t.exchanges.is_empty() && !t.exchanges.iter().any(|e| e == "example") {
        return false;
    }
    let geo = req.geo();
    let dim = |list: &Vec<String>, v: Option<&str>| {
        list.is_empty() || v.is_some_and(|v| list.iter().any(|x| eq(x, v)))
    };
    if !dim(&t.countries, geo.and_then(|g| g.country.as_deref()))
        || !dim(&t.regions, geo.and_then(|g| g.region.as_deref()))
        || !dim(&t.cities, geo.and_then(|g| g.city.as_deref()))
        || !dim(&t.os, req.device.as_ref().and_then(|d| d.os.as_deref()))
    {
        return false;
    }
    let devicetype = req.device.as_ref().and_then(|d| d.devicetype);
    if !t.device_types.is_empty() && !devicetype.is_some_and(|d| t.device_types.contains(&d)) {
        return false;
    }
    let (domain, bundle, publisher, cats) = match (&req.site, &req.app) {
        (Some(s), _) => (
            s.domain.as_deref(),
            None,
            s.publisher.as_ref().and_then(|p| p.id.as_deref()),
            &s.cat,
        ),
        (None, Some(a)) => (
            a.domain.as_deref(),
            a.bundle.as_deref(),
            a.publisher.as_ref().and_then(|p| p.id.as_deref()),
            &a.cat,
        ),
        (None, None) => return false,
    };
    match t.inventory {
        Inventory::Site if req.site.is_none() => return false,
        Inventory::App if req.app.is_none() => return false,
        _ => {}
    }
    if !filter(&t.domains, domain, domain_matches)
        || !filter(&t.bundles, bundle, eq)
        || !filter(&t.publishers, publisher, eq)
    {
        return false;
    }
    if !t.categories.is_empty() {
        if cats
            .iter()
            .any(|c| t.categories.deny.iter().any(|d| cat_matches(d, c)))
        {
            return false;
        }
        if !t.categories.allow.is_empty()
            && !cats
                .iter()
                .any(|c| t.categories.allow.iter().any(|a| cat_matches(a, c)))
        {
            return false;
        }
    }
    if !t.segments.is_empty() && !req.segments().any(|s| t.segments.iter().any(|x| x == s)) {
        return false;
    }
    let seat = c.seat.as_deref().unwrap_or(vocab::DEFAULT_SEAT);
    if (!req.wseat.is_empty() && !req.wseat.iter().any(|s| s == seat))
        || req.bseat.iter().any(|s| s == seat)
    {
        return false;
    }
    if c.adomain
        .iter()
        .any(|a| req.badv.iter().any(|b| domain_matches(b, a)))
    {
        return false;
    }
    if c.bundle
        .as_deref()
        .is_some_and(|b| req.bapp.iter().any(|x| x == b))
    {
        return false;
    }
    let max = c.max_cpm.unwrap_or(c.bid_cpm);
    req.imp.iter().any(|imp| {
        let priced = if !t.deals.is_empty() {
            imp.pmp.as_ref().is_some_and(|p| {
                p.deals.iter().any(|d| {
                    t.deals.iter().any(|x| x == d.id.as_str())
                        && floor_usd(d.bidfloor, d.bidfloorcur.as_deref()).is_some_and(|f| f <= max)
                })
            })
        } else {
            imp.pmp.as_ref().is_none_or(|p| p.private_auction == 0)
                && floor_usd(imp.bidfloor, imp.bidfloorcur.as_deref())
                    .is_some_and(|f| f <= c.bid_cpm)
        };
        priced
            && c.creatives.iter().any(|cr| {
                creative_fits(cr, imp)
                    && !cr.cat.iter().any(|cat| {
                        req.bcat
                            .iter()
                            .any(|b| cat_matches(b, cat) || cat_matches(cat, b))
                    })
            })
    })
}
