//! Exact per-candidate checks for dimensions whose query term did not fit (see
//! [`Query`](super::query::Query)). Each asks the same posting sets the term would have
//! combined, about one campaign, so it agrees with the index by construction.

#![forbid(unsafe_code)]

use super::campaign::CreativeKind;
use super::index::{AllowDim, Index};
use super::keys::{category_prefixes, category_under, domain_suffixes, KeyTable, Lower};
use super::placement::place;
use super::query::{Query, Stage};
use super::table::{Ad, Entry};
use crate::openrtb::request::{BidRequest, Imp, Str};

pub(crate) const DOMAINS: u16 = 1;
pub(crate) const CATEGORIES: u16 = 2;
pub(crate) const SEGMENTS: u16 = 4;
pub(crate) const WSEAT: u16 = 8;
pub(crate) const BSEAT: u16 = 16;
pub(crate) const BADV: u16 = 32;
pub(crate) const BAPP: u16 = 64;
/// `bcat`/`battr` against every creative (the auction checks each creative later, but
/// a campaign all of whose creatives are blocked is blocked before its fit counts).
pub(crate) const AD_BLOCKS: u16 = 128;
/// Dimensions of the no-match stage.
const NO_MATCH: u16 = DOMAINS | CATEGORIES | SEGMENTS;
/// Request-wide blocks.
const BLOCKS: u16 = WSEAT | BSEAT | BADV | BAPP;

/// Whether campaign `c` passes an allow-list dimension for `values`.
fn allowed<'v>(
    ix: &Index,
    dim: &AllowDim<KeyTable>,
    c: u32,
    mut values: impl Iterator<Item = &'v str>,
) -> bool {
    let Some(unrestricted) = dim.unrestricted else {
        return true;
    };
    ix.posting(unrestricted).contains(c)
        || values.any(|v| {
            dim.values
                .get(v)
                .is_some_and(|id| ix.posting(id).contains(c))
        })
}

/// Whether campaign `c` is in the set of any of `values`.
fn listed<'v>(
    ix: &Index,
    map: &KeyTable,
    c: u32,
    mut values: impl Iterator<Item = &'v str>,
) -> bool {
    values.any(|v| map.get(v).is_some_and(|id| ix.posting(id).contains(c)))
}

/// Checks campaign `c` (bidding with `seat`) on the dimensions in `flags`.
#[cold]
pub(crate) fn check(
    flags: u16,
    ix: &Index,
    req: &BidRequest<'_>,
    c: u32,
    seat: &str,
) -> Result<(), Stage> {
    let at = place(req);
    let mut lower = Lower::new();
    let mut no_match = flags & SEGMENTS != 0 && !allowed(ix, &ix.segments, c, req.segments());
    if flags & DOMAINS != 0 {
        let d = at.domain.and_then(|d| lower.of(d));
        let suffixes = || d.into_iter().flat_map(domain_suffixes);
        no_match |=
            !allowed(ix, &ix.domains, c, suffixes()) || listed(ix, &ix.domains_deny, c, suffixes());
    }
    if flags & CATEGORIES != 0 {
        let mut allow = allowed(ix, &ix.categories, c, std::iter::empty());
        let mut deny = false;
        for cat in at.cats {
            for p in lower.of(cat).into_iter().flat_map(category_prefixes) {
                allow = allow || allowed(ix, &ix.categories, c, std::iter::once(p));
                deny = deny || listed(ix, &ix.categories_deny, c, std::iter::once(p));
            }
        }
        no_match |= !allow || deny;
    }
    if no_match {
        return Err(Stage::NoMatch);
    }
    let mut lowered = |list: &[Str<'_>], map: &KeyTable| {
        list.iter().any(|v| {
            let id = lower.of(v.trim()).and_then(|v| map.get(v));
            id.is_some_and(|id| ix.posting(id).contains(c))
        })
    };
    let wseat = &req.wseat;
    let blocked = (flags & WSEAT != 0 && !wseat.is_empty() && !wseat.iter().any(|s| s == seat))
        || (flags & BSEAT != 0 && req.bseat.iter().any(|s| s == seat))
        || (flags & BADV != 0 && lowered(&req.badv, &ix.adomains))
        || (flags & BAPP != 0 && lowered(&req.bapp, &ix.app_bundles));
    if blocked {
        return Err(Stage::Blocked);
    }
    Ok(())
}

/// Every stage up to the blocks, for one candidate of a degraded query (one whose
/// matching applied only the no-match terms that fit): in the order the index applies
/// them, so the stage a candidate fails at is the one the index would have reported.
#[cold]
pub(crate) fn stages(
    q: &Query,
    ix: &Index,
    req: &BidRequest<'_>,
    imp: &Imp<'_>,
    e: &Entry,
    c: u32,
    seat: &str,
) -> Result<(), Stage> {
    let deals = || imp.pmp.iter().flat_map(|p| &p.deals);
    let holds_deal = deals().any(|d| e.holds_deal(d.id.trim()));
    let private = imp.pmp.as_ref().is_some_and(|p| p.private_auction == 1);
    check(q.verify & NO_MATCH, ix, req, c, seat)?;
    if !e.ads.iter().any(|ad| has_format(ad, imp)) || !(private || e.deals.is_empty() || holds_deal)
    {
        return Err(Stage::NoMatch);
    }
    if req.test == 1 && !e.test_ok {
        return Err(Stage::Test);
    }
    if private && !holds_deal {
        return Err(Stage::DealsOnly);
    }
    check(BLOCKS, ix, req, c, seat)?;
    if every_ad_blocked(e, req, imp) {
        return Err(Stage::Blocked);
    }
    Ok(())
}

/// Whether one `bcat` entry, or one of the imp format's `battr`, blocks every creative.
pub(crate) fn every_ad_blocked(e: &Entry, req: &BidRequest<'_>, imp: &Imp<'_>) -> bool {
    let battr: &[u32] = match (&imp.banner, &imp.video, &imp.native) {
        (Some(b), None, None) => &b.battr,
        (None, Some(v), None) => &v.battr,
        (None, None, Some(n)) => &n.battr,
        _ => &[],
    };
    req.bcat.iter().any(|b| {
        e.ads
            .iter()
            .all(|ad| ad.cat.iter().any(|x| category_under(x, b.trim())))
    }) || battr
        .iter()
        .any(|a| e.ads.iter().all(|ad| ad.attr.contains(a)))
}

/// Whether a creative has the kind, size or MIME type and security an imp asks for
/// (what the index matches formats on; durations and protocols come later).
fn has_format(ad: &Ad, imp: &Imp<'_>) -> bool {
    if imp.secure == Some(1) && !ad.secure {
        return false;
    }
    match ad.kind {
        CreativeKind::Banner => imp
            .banner
            .as_ref()
            .is_some_and(|b| b.sizes().any(|s| s == (ad.w, ad.h))),
        CreativeKind::Video => imp.video.as_ref().is_some_and(|v| {
            v.mimes.is_empty()
                || v.mimes
                    .iter()
                    .any(|m| m.trim().eq_ignore_ascii_case(&ad.mime))
        }),
        CreativeKind::Native => imp.native.is_some(),
    }
}
