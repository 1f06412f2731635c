//! One imp's candidates: the campaigns that may bid on it, best price first, each with
//! the creative it would show. This is where targeting ends and pricing begins: the
//! auction (`crate::auction`) prices what this walk yields.
//!
//! The walk intersects the imp's terms one chunk of campaigns at a time
//! ([`Scan`](super::scan::Scan)), then checks each surviving campaign exactly where the
//! index cannot ([`verify`](super::verify): terms too large for the query, blocks on
//! every creative) and picks its first creative that fits the imp and is not blocked.
//! How far the best campaign got (a [`Stage`]) is kept as it goes, so a walk that
//! yields nothing still names the no-bid reason.

#![forbid(unsafe_code)]

use super::campaign::CreativeKind;
use super::keys::category_under;
use super::posting::{Mask, CHUNK_BITS, CHUNK_WORDS};
use super::query::{Query, Stage};
use super::scan::Scan;
use super::table::{Ad, Entry, Table};
use super::verify;
use crate::money::Micros;
use crate::openrtb::request::{BidRequest, Imp};

/// A campaign that passed every targeting check for one imp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Candidate {
    /// Campaign index in the table (price order).
    pub campaign: u32,
    /// Its first creative that fits the imp and is not blocked.
    pub creative: u32,
}

/// What the walk does after a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    /// No later candidate can do better: stop.
    Stop,
}

/// Walks `imp`'s candidates in price order (highest `bid_cpm` first) and calls `visit`
/// with each. `query` holds the request's terms ([`Query::resolve`]); this adds the
/// imp's own. `reached` is how far any campaign got towards a bid: raised by the walk
/// for what targeting removes, and by `visit` for what pricing refuses (its `&mut
/// Stage` argument). Before a chunk of campaigns is read, `worth(chunk_max, reached)`
/// is asked with the highest `max_cpm` (USD) in it: `false` skips the chunk.
#[inline]
pub(crate) fn walk(
    table: &Table,
    query: &mut Query,
    req: &BidRequest<'_>,
    imp: &Imp<'_>,
    reached: &mut Stage,
    mut worth: impl FnMut(Micros, Stage) -> bool,
    mut visit: impl FnMut(Candidate, &mut Stage) -> Flow,
) {
    let ix = &table.index;
    query.set_imp(ix, imp);
    if query.ceiling == Some(Stage::NoMatch) {
        // A term admits nobody: nothing can even match.
        return;
    }
    let query = &*query;
    let mut scan = Scan::new(query);
    scan.start(ix);
    let mut acc: Mask = [0; CHUNK_WORDS];
    for chunk in 0..ix.chunks {
        if query.ceiling.is_some_and(|c| *reached >= c) {
            // A term admits nobody: no later chunk can get further.
            break;
        }
        if scan.skip(ix, chunk, *reached) {
            continue;
        }
        let chunk_max = table.chunk_max.get(chunk).copied().unwrap_or_default();
        if !worth(chunk_max, *reached) {
            continue;
        }
        if !scan.eval(ix, chunk, &mut acc, reached) {
            continue;
        }
        for (w, &word) in acc.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                let campaign =
                    (chunk * CHUNK_BITS + w * 64 + bits.trailing_zeros() as usize) as u32;
                bits &= bits - 1;
                match admit(table, query, req, imp, campaign) {
                    Ok(c) => {
                        if visit(c, reached) == Flow::Stop {
                            return;
                        }
                    }
                    Err(stage) => *reached = (*reached).max(stage),
                }
            }
        }
    }
}

/// The exact checks on one campaign the index admitted, and its creative.
#[inline]
fn admit(
    table: &Table,
    q: &Query,
    req: &BidRequest<'_>,
    imp: &Imp<'_>,
    campaign: u32,
) -> Result<Candidate, Stage> {
    let e: &Entry = table.entries.get(campaign as usize).ok_or(Stage::NoMatch)?;
    if q.degraded || q.verify != 0 {
        let seat = table.seats.get(e.seat as usize).map_or("", |s| &*s.name);
        if q.degraded {
            verify::stages(q, &table.index, req, imp, e, campaign, seat)?;
        } else {
            verify::check(q.verify, &table.index, req, campaign, seat)?;
            if q.verify & verify::AD_BLOCKS != 0 && verify::every_ad_blocked(e, req, imp) {
                return Err(Stage::Blocked);
            }
        }
    }
    let creative = pick_creative(e, req, imp)?;
    Ok(Candidate { campaign, creative })
}

/// The campaign's first creative that fits the imp and is not blocked.
fn pick_creative(e: &Entry, req: &BidRequest<'_>, imp: &Imp<'_>) -> Result<u32, Stage> {
    let mut fail = Stage::NoMatch;
    for (i, ad) in e.ads.iter().enumerate() {
        let Some(battr) = fits(ad, imp) else { continue };
        let blocked = ad.attr.iter().any(|a| battr.contains(a))
            || ad
                .cat
                .iter()
                .any(|c| req.bcat.iter().any(|b| category_under(c, b.trim())));
        if blocked {
            fail = Stage::Blocked;
            continue;
        }
        return u32::try_from(i).map_err(|_| Stage::NoMatch);
    }
    Err(fail)
}

/// Whether a creative fits the imp's format, size and security; if so, the blocked
/// attributes of that format.
fn fits<'i>(ad: &Ad, imp: &'i Imp<'_>) -> Option<&'i [u32]> {
    if imp.secure == Some(1) && !ad.secure {
        return None;
    }
    match ad.kind {
        CreativeKind::Banner => {
            let b = imp.banner.as_ref()?;
            b.sizes().any(|s| s == (ad.w, ad.h)).then_some(&b.battr[..])
        }
        CreativeKind::Video => {
            let v = imp.video.as_ref()?;
            let mime = v.mimes.is_empty()
                || v.mimes
                    .iter()
                    .any(|m| m.trim().eq_ignore_ascii_case(&ad.mime));
            let duration = v.minduration.is_none_or(|min| ad.duration >= min)
                && v.maxduration.is_none_or(|max| ad.duration <= max);
            let protocol = (v.protocols.is_empty() && v.protocol.is_none())
                || v.protocols.contains(&ad.protocol)
                || v.protocol == Some(ad.protocol);
            (mime && duration && protocol).then_some(&v.battr[..])
        }
        CreativeKind::Native => imp.native.as_ref().map(|n| &n.battr[..]),
    }
}
