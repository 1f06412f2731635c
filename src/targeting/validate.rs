//! Campaign validation: every problem in a campaign set, each naming the campaign and
//! the key, e.g. `campaign "c7": creatives[0].w is required for banner creatives`.

#![forbid(unsafe_code)]

use std::collections::HashMap;

use super::campaign::{Campaign, CampaignSet, Creative, CreativeKind, ListFilter};
use super::index::day_index;
use super::keys::MAX_KEY;
use super::table::TableSettings;
use crate::money::Micros;

/// Longest campaign or creative id.
const MAX_ID: usize = 128;

/// Checks every campaign; returns all problems found.
pub(crate) fn validate(set: &CampaignSet, settings: &TableSettings) -> Vec<String> {
    let mut errors = Vec::new();
    let mut first_use: HashMap<&str, usize> = HashMap::new();
    for (i, c) in set.campaigns.iter().enumerate() {
        let mut e = Errors {
            out: &mut errors,
            who: who(i, c),
        };
        if c.id.is_empty() {
            e.push("id is required");
        } else {
            check_id(&mut e, "id", &c.id);
            if let Some(&j) = first_use.get(c.id.as_str()) {
                e.push(&format!(
                    "id is also used by campaigns[{j}]; ids must be unique"
                ));
            } else {
                first_use.insert(&c.id, i);
            }
        }
        check_campaign(&mut e, c, settings);
    }
    errors
}

struct Errors<'a> {
    out: &'a mut Vec<String>,
    who: String,
}

impl Errors<'_> {
    fn push(&mut self, msg: &str) {
        self.out.push(format!("{}: {msg}", self.who));
    }
}

fn who(i: usize, c: &Campaign) -> String {
    if c.id.is_empty() {
        format!("campaigns[{i}]")
    } else {
        format!("campaign {:?}", c.id)
    }
}

fn check_id(e: &mut Errors, key: &str, id: &str) {
    let ok = id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !ok {
        e.push(&format!(
            "{key} {id:?} may use only letters, digits, '-', '_' and '.'"
        ));
    }
    if id.len() > MAX_ID {
        e.push(&format!("{key} is longer than {MAX_ID} bytes"));
    }
}

/// A non-empty value no longer than an index key.
fn check_value(e: &mut Errors, key: &str, v: &str) {
    if v.trim().is_empty() {
        e.push(&format!("{key} must not be empty"));
    } else if v.len() > MAX_KEY {
        e.push(&format!("{key} is longer than {MAX_KEY} bytes"));
    }
}

fn check_values(e: &mut Errors, key: &str, values: &[String]) {
    for (i, v) in values.iter().enumerate() {
        check_value(e, &format!("{key}[{i}]"), v);
    }
}

fn check_filter(e: &mut Errors, key: &str, f: &ListFilter) {
    check_values(e, &format!("{key}.allow"), &f.allow);
    check_values(e, &format!("{key}.deny"), &f.deny);
}

fn check_url(e: &mut Errors, key: &str, url: &Option<String>) {
    if let Some(u) = url {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            e.push(&format!(
                "{key} must be an http:// or https:// URL template"
            ));
        }
    }
}

fn check_campaign(e: &mut Errors, c: &Campaign, settings: &TableSettings) {
    if let Some(seat) = &c.seat {
        check_value(e, "seat", seat);
    }
    if c.adomain.is_empty() {
        e.push("adomain must list at least one advertiser domain (exchanges drop bids without it)");
    }
    for (i, d) in c.adomain.iter().enumerate() {
        check_value(e, &format!("adomain[{i}]"), d);
        if d.contains(['/', ':', ' ']) {
            e.push(&format!(
                "adomain[{i}] {d:?} must be a bare domain such as example.com"
            ));
        }
    }
    if let Some(b) = &c.bundle {
        check_value(e, "bundle", b);
    }
    if c.bid_cpm < Micros::ZERO {
        e.push("bid_cpm must not be negative");
    }
    if let Some(max) = c.max_cpm {
        if max < c.bid_cpm {
            e.push(&format!(
                "max_cpm {max} must be at least bid_cpm {}",
                c.bid_cpm
            ));
        }
    }
    check_url(e, "nurl", &c.nurl);
    check_url(e, "burl", &c.burl);
    if let Some(b) = &c.budget {
        for p in b.problems() {
            e.push(&p);
        }
    }
    if c.pacing == crate::money::budget::Pacing::Even
        && c.budget.as_ref().is_none_or(|b| b.daily.is_none())
    {
        e.push("pacing \"even\" spreads a daily budget: it needs budget.daily");
    }
    if let Some(cap) = &c.frequency_cap {
        for p in cap.problems() {
            e.push(&p);
        }
    }

    let t = &c.targeting;
    for (i, name) in t.exchanges.iter().enumerate() {
        if !settings.exchanges.iter().any(|x| x == name) {
            let known = settings.exchanges.join(", ");
            e.push(&format!(
                "targeting.exchanges[{i}]: unknown exchange {name:?} (configured: {known})"
            ));
        }
    }
    check_filter(e, "targeting.domains", &t.domains);
    check_filter(e, "targeting.bundles", &t.bundles);
    check_filter(e, "targeting.publishers", &t.publishers);
    check_filter(e, "targeting.categories", &t.categories);
    check_values(e, "targeting.os", &t.os);
    check_values(e, "targeting.countries", &t.countries);
    for (i, country) in t.countries.iter().enumerate() {
        if country.len() != 3 || !country.bytes().all(|b| b.is_ascii_alphabetic()) {
            e.push(&format!(
                "targeting.countries[{i}] {country:?} must be an ISO-3166-1 alpha-3 code such as USA"
            ));
        }
    }
    check_values(e, "targeting.regions", &t.regions);
    check_values(e, "targeting.cities", &t.cities);
    check_values(e, "targeting.segments", &t.segments);
    check_values(e, "targeting.deals", &t.deals);
    for (i, d) in t.dayparts.iter().enumerate() {
        let key = format!("targeting.dayparts[{i}]");
        if d.days.is_empty() {
            e.push(&format!("{key}.days must list at least one day"));
        }
        for (j, day) in d.days.iter().enumerate() {
            if day_index(day).is_none() {
                e.push(&format!(
                    "{key}.days[{j}] {day:?} is not one of mon, tue, wed, thu, fri, sat, sun"
                ));
            }
        }
        if d.from >= d.to || d.to > 24 {
            e.push(&format!(
                "{key}: from ({}) must be less than to ({}), and to at most 24",
                d.from, d.to
            ));
        }
    }

    if c.creatives.is_empty() {
        e.push("creatives must hold at least one creative");
    }
    for (i, cr) in c.creatives.iter().enumerate() {
        check_creative(e, i, cr);
        if c.creatives[..i].iter().any(|o| o.id == cr.id) {
            e.push(&format!(
                "creatives[{i}].id {:?} is used twice in this campaign",
                cr.id
            ));
        }
    }
}

fn check_creative(e: &mut Errors, i: usize, cr: &Creative) {
    let key = format!("creatives[{i}]");
    if cr.id.is_empty() {
        e.push(&format!("{key}.id is required"));
    } else {
        check_id(e, &format!("{key}.id"), &cr.id);
    }
    if cr.adm.trim().is_empty() {
        e.push(&format!("{key}.adm must not be empty"));
    }
    check_values(e, &format!("{key}.cat"), &cr.cat);
    match cr.kind {
        CreativeKind::Banner => {
            for (name, v) in [("w", cr.w), ("h", cr.h)] {
                match v {
                    None => e.push(&format!("{key}.{name} is required for banner creatives")),
                    Some(0) => e.push(&format!("{key}.{name} must be positive")),
                    Some(_) => {}
                }
            }
        }
        CreativeKind::Video => {
            match &cr.mime {
                None => e.push(&format!("{key}.mime is required for video creatives")),
                Some(m) => check_value(e, &format!("{key}.mime"), m),
            }
            if cr.duration.is_none() {
                e.push(&format!("{key}.duration is required for video creatives"));
            }
            if cr.protocol.is_none() {
                e.push(&format!("{key}.protocol is required for video creatives"));
            }
        }
        CreativeKind::Native => {}
    }
}
