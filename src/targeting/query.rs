//! Matching a request against the index.
//!
//! A [`Query`] resolves the request's values to posting sets once (at most
//! [`MAX_IDS`] of them, on the stack), as a list of terms: "campaign is in one of these
//! sets" (union) or "campaign is in none of these sets" (subtract). Each imp adds its own
//! terms (formats, deals, blocked attributes). Matching then intersects the terms one
//! chunk of campaigns at a time, most selective term first, and stops a chunk as soon as
//! it is empty. Campaigns are numbered in price order, so the first chunks hold the best
//! candidates and the auction usually stops after the first.
//!
//! The index may only ever admit too many campaigns, never too few: when a request
//! carries more values than fit, the term is left out (or cut short) and the dimension
//! is marked for an exact check of each candidate instead ([`Query::verify`]).

use super::campaign::Campaign;
use super::index::{AllowDim, Index, HOURS_PER_WEEK};
use super::keys::{category_prefixes, category_under, domain_suffixes, domain_under, page_host};
use super::keys::{KeyMap, Lower};
use super::posting::{self, Mask, PostingId, CHUNK_BITS, CHUNK_WORDS, EMPTY};
use crate::auction::{AuctionContext, NoBidReason};
use crate::openrtb::request::{BidRequest, Imp, Str};

/// Posting sets one request may resolve to before terms are checked exactly instead.
pub(crate) const MAX_IDS: usize = 256;
/// Terms per imp; the index has fewer dimensions than this.
const MAX_TERMS: usize = 32;

/// How far a campaign got towards a bid. Ordered: a later stage is a more informative
/// no-bid reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Stage {
    NoMatch,
    Test,
    DealsOnly,
    Blocked,
    Currency,
    BelowFloor,
}

impl Stage {
    pub(crate) fn reason(self) -> NoBidReason {
        match self {
            Stage::NoMatch => NoBidReason::NoMatch,
            Stage::Test => NoBidReason::Test,
            Stage::DealsOnly => NoBidReason::DealsOnly,
            Stage::Blocked => NoBidReason::Blocked,
            Stage::Currency => NoBidReason::Currency,
            Stage::BelowFloor => NoBidReason::BelowFloor,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Union,
    Subtract,
}

#[derive(Debug, Clone, Copy)]
struct Term {
    stage: Stage,
    op: Op,
    /// Campaigns the term admits at most (union) : evaluation goes most selective first.
    weight: u32,
    start: u16,
    len: u16,
}

const NO_TERM: Term = Term {
    stage: Stage::NoMatch,
    op: Op::Union,
    weight: 0,
    start: 0,
    len: 0,
};

/// Dimensions to check exactly per candidate (their terms overflowed).
const DOMAINS: u16 = 1;
const CATEGORIES: u16 = 2;
const SEGMENTS: u16 = 4;
const WSEAT: u16 = 8;
const BSEAT: u16 = 16;
const BADV: u16 = 32;
const BAPP: u16 = 64;

/// The resolved terms of a request (then of one of its imps).
#[derive(Clone)]
pub(crate) struct Query {
    ids: [PostingId; MAX_IDS],
    n_ids: usize,
    terms: [Term; MAX_TERMS],
    n_terms: usize,
    /// Dimensions that candidates must be checked against exactly.
    verify: u16,
    /// The earliest stage of a term that admits no campaign: nobody gets past it.
    pub ceiling: Option<Stage>,
    campaigns: usize,
}

/// Where the impression is: the site or app facts that targeting reads.
struct Place<'r> {
    /// 0 site, 1 app, 2 neither.
    kind: usize,
    domain: Option<&'r str>,
    bundle: Option<&'r str>,
    publisher: Option<&'r str>,
    cats: &'r [Str<'r>],
}

fn place<'r>(req: &'r BidRequest<'_>) -> Place<'r> {
    if let Some(s) = &req.site {
        let domain = s
            .domain
            .as_deref()
            .or_else(|| s.page.as_deref().and_then(page_host));
        let publisher = s.publisher.as_ref().and_then(|p| p.id.as_deref());
        Place {
            kind: 0,
            domain,
            bundle: None,
            publisher,
            cats: &s.cat,
        }
    } else if let Some(a) = &req.app {
        let publisher = a.publisher.as_ref().and_then(|p| p.id.as_deref());
        let (domain, bundle) = (a.domain.as_deref(), a.bundle.as_deref());
        Place {
            kind: 1,
            domain,
            bundle,
            publisher,
            cats: &a.cat,
        }
    } else {
        Place {
            kind: 2,
            domain: None,
            bundle: None,
            publisher: None,
            cats: &[],
        }
    }
}

impl Query {
    /// Resolves the request-wide terms.
    pub(crate) fn new(
        ix: &Index,
        campaigns: usize,
        req: &BidRequest<'_>,
        ctx: &AuctionContext,
    ) -> Query {
        let mut q = Query {
            ids: [EMPTY; MAX_IDS],
            n_ids: 0,
            terms: [NO_TERM; MAX_TERMS],
            n_terms: 0,
            verify: 0,
            ceiling: None,
            campaigns,
        };
        let mut lower = Lower::new();
        let nm = Stage::NoMatch;
        if let Some(a) = ix.active {
            q.term(ix, nm, Op::Union, 0, [a]);
        }
        if let Some(ex) = &ix.exchanges {
            let i = ctx
                .exchange
                .map_or(ex.len() - 1, |e| (e as usize).min(ex.len() - 1));
            q.term(ix, nm, Op::Union, 0, ex.get(i).copied());
        }
        if let Some(hours) = &ix.hours {
            let h = (ctx.hour_of_week as usize).min(HOURS_PER_WEEK);
            q.term(ix, nm, Op::Union, 0, hours.get(h).copied());
        }
        let at = place(req);
        if let Some(inv) = &ix.inventory {
            q.term(ix, nm, Op::Union, 0, [inv[at.kind]]);
        }
        if req.test == 1 {
            if let Some(t) = ix.test_ok {
                q.term(ix, Stage::Test, Op::Union, 0, [t]);
            }
        }
        let device = req.device.as_ref();
        q.allow(
            ix,
            &ix.device,
            device.and_then(|d| d.devicetype).as_ref().into_iter(),
            0,
        );
        let os = device.and_then(|d| d.os.as_deref());
        q.allow(ix, &ix.os, os.and_then(|s| lower.of(s)).into_iter(), 0);
        let geo = req.geo();
        let country = geo.and_then(|g| g.country.as_deref());
        q.allow(
            ix,
            &ix.country,
            country.and_then(|s| lower.of(s)).into_iter(),
            0,
        );
        let region = geo.and_then(|g| g.region.as_deref());
        q.allow(
            ix,
            &ix.region,
            region.and_then(|s| lower.of(s)).into_iter(),
            0,
        );
        let city = geo.and_then(|g| g.city.as_deref());
        q.allow(ix, &ix.city, city.and_then(|s| lower.of(s)).into_iter(), 0);
        if let Some(b) = at.bundle.and_then(|b| lower.of(b)) {
            q.allow(ix, &ix.bundles, std::iter::once(b), 0);
            q.lookup(
                ix,
                nm,
                Op::Subtract,
                &ix.bundles_deny,
                std::iter::once(b),
                0,
            );
        } else {
            q.allow(ix, &ix.bundles, std::iter::empty::<&str>(), 0);
        }
        q.allow(ix, &ix.publishers, at.publisher.into_iter(), 0);
        q.lookup(
            ix,
            nm,
            Op::Subtract,
            &ix.publishers_deny,
            at.publisher.into_iter(),
            0,
        );

        // Terms from here on may hold any number of ids. The ones above hold at most two
        // each, so they always fit; these have an exact check for when they do not.
        q.allow(ix, &ix.segments, req.segments(), SEGMENTS);
        if let Some(d) = at.domain.and_then(|d| lower.of(d)) {
            q.allow(ix, &ix.domains, domain_suffixes(d), DOMAINS);
            q.lookup(
                ix,
                Stage::NoMatch,
                Op::Subtract,
                &ix.domains_deny,
                domain_suffixes(d),
                DOMAINS,
            );
        } else {
            q.allow(ix, &ix.domains, std::iter::empty::<&str>(), DOMAINS);
        }
        // Categories: each site/app category and its parents, lowercased one at a time.
        q.category_terms(ix, &mut lower, at.cats);

        let blocked = Stage::Blocked;
        if !req.wseat.is_empty() {
            let seats = req.wseat.iter().map(|s| s.as_str());
            q.lookup(ix, blocked, Op::Union, &ix.seats, seats, WSEAT);
        }
        let bseat = req.bseat.iter().map(|s| s.as_str());
        q.lookup(ix, blocked, Op::Subtract, &ix.seats, bseat, BSEAT);
        let ids = req
            .badv
            .iter()
            .filter_map(|s| ix.adomains.get(lower.of(s.trim())?).copied());
        q.term(ix, blocked, Op::Subtract, BADV, ids);
        let ids = req
            .bapp
            .iter()
            .filter_map(|s| ix.app_bundles.get(lower.of(s.trim())?).copied());
        q.term(ix, blocked, Op::Subtract, BAPP, ids);
        // Creative-level blocks: an overflow here is safe, the auction checks every
        // creative against bcat and battr anyway.
        let ids = req
            .bcat
            .iter()
            .filter_map(|s| ix.cats_all.get(lower.of(s.trim())?).copied());
        q.term(ix, blocked, Op::Subtract, 0, ids);
        q
    }

    fn category_terms(&mut self, ix: &Index, lower: &mut Lower, cats: &[Str<'_>]) {
        if ix.categories.unrestricted.is_some() {
            let mut t = self.open(Stage::NoMatch, Op::Union);
            t.add(ix, ix.categories.unrestricted.unwrap_or(EMPTY));
            for c in cats {
                if let Some(c) = lower.of(c) {
                    for p in category_prefixes(c) {
                        t.add(ix, ix.categories.values.get(p).copied().unwrap_or(EMPTY));
                    }
                }
            }
            t.finish(CATEGORIES);
        }
        if !ix.categories_deny.is_empty() {
            let mut t = self.open(Stage::NoMatch, Op::Subtract);
            for c in cats {
                if let Some(c) = lower.of(c) {
                    for p in category_prefixes(c) {
                        t.add(ix, ix.categories_deny.get(p).copied().unwrap_or(EMPTY));
                    }
                }
            }
            t.finish(CATEGORIES);
        }
    }

    /// This query plus the terms of one imp, in evaluation order.
    pub(crate) fn for_imp(&self, ix: &Index, imp: &Imp<'_>) -> Query {
        let mut q = self.clone();
        let secure = (imp.secure == Some(1)) as usize;
        let mut lower = Lower::new();
        let mut t = q.open(Stage::NoMatch, Op::Union);
        if let Some(b) = &imp.banner {
            for (w, h) in b.sizes() {
                t.add(ix, ix.banner.get(&(w, h)).map_or(EMPTY, |p| p[secure]));
            }
        }
        if let Some(v) = &imp.video {
            if v.mimes.is_empty() {
                t.add(ix, ix.video_any[secure]);
            }
            for m in &v.mimes {
                let id = lower.of(m.trim()).and_then(|m| ix.video_mime.get(m));
                t.add(ix, id.map_or(EMPTY, |p| p[secure]));
            }
        }
        if imp.native.is_some() {
            t.add(ix, ix.native[secure]);
        }
        t.finish(0);

        let private = imp.pmp.as_ref().is_some_and(|p| p.private_auction == 1);
        let every_campaign_open = ix.posting(ix.open).count() as usize == q.campaigns;
        if private || !every_campaign_open {
            let stage = if private {
                Stage::DealsOnly
            } else {
                Stage::NoMatch
            };
            let mut t = q.open(stage, Op::Union);
            if !private {
                t.add(ix, ix.open);
            }
            for d in imp.pmp.iter().flat_map(|p| &p.deals) {
                t.add(ix, ix.deals.get(d.id.as_str()).copied().unwrap_or(EMPTY));
            }
            t.finish(0);
        }

        let battr = match (&imp.banner, &imp.video, &imp.native) {
            (Some(b), None, None) => &b.battr[..],
            (None, Some(v), None) => &v.battr[..],
            (None, None, Some(n)) => &n.battr[..],
            _ => &[],
        };
        let ids = battr.iter().filter_map(|a| ix.attrs_all.get(a).copied());
        q.term(ix, Stage::Blocked, Op::Subtract, 0, ids);

        q.terms[..q.n_terms].sort_unstable_by_key(|t| (t.stage, t.op, t.weight, t.start));
        q
    }

    /// Writes into `acc` the campaigns of `chunk` that pass every term, or returns the
    /// stage of the term that left none.
    #[inline]
    pub(crate) fn eval(&self, ix: &Index, chunk: usize, acc: &mut Mask) -> Result<(), Stage> {
        *acc = [u64::MAX; CHUNK_WORDS];
        let rem = self.campaigns.saturating_sub(chunk * CHUNK_BITS);
        if rem < CHUNK_BITS {
            for (w, word) in acc.iter_mut().enumerate() {
                let bits = rem.saturating_sub(w * 64).min(64);
                *word = if bits == 64 {
                    u64::MAX
                } else {
                    (1u64 << bits) - 1
                };
            }
        }
        for t in &self.terms[..self.n_terms] {
            let ids = self
                .ids
                .get(t.start as usize..(t.start + t.len) as usize)
                .unwrap_or(&[]);
            match (t.op, ids) {
                (Op::Union, [one]) => ix.posting(*one).and_into(chunk, acc),
                (Op::Union, _) => {
                    let mut any = [0u64; CHUNK_WORDS];
                    for &id in ids {
                        ix.posting(id).or_into(chunk, &mut any);
                    }
                    posting::and(acc, &any);
                }
                (Op::Subtract, _) => {
                    for &id in ids {
                        ix.posting(id).and_not_into(chunk, acc);
                    }
                }
            }
            if posting::is_empty(acc) {
                return Err(t.stage);
            }
        }
        if posting::is_empty(acc) {
            return Err(Stage::NoMatch);
        }
        Ok(())
    }

    /// The exact check of a candidate on the dimensions whose terms overflowed.
    #[inline]
    pub(crate) fn verify(
        &self,
        c: &Campaign,
        seat: &str,
        req: &BidRequest<'_>,
    ) -> Result<(), Stage> {
        if self.verify == 0 {
            return Ok(());
        }
        verify(self.verify, c, seat, req)
    }

    fn open(&mut self, stage: Stage, op: Op) -> Building<'_> {
        let start = self.n_ids;
        Building {
            q: self,
            stage,
            op,
            start,
            weight: 0,
            overflow: false,
        }
    }

    /// A term from posting ids (`EMPTY` ids are skipped).
    fn term(
        &mut self,
        ix: &Index,
        stage: Stage,
        op: Op,
        flag: u16,
        ids: impl IntoIterator<Item = PostingId>,
    ) {
        let mut t = self.open(stage, op);
        for id in ids {
            t.add(ix, id);
        }
        t.finish(flag);
    }

    /// A term from looking values up in a map.
    fn lookup<'v>(
        &mut self,
        ix: &Index,
        stage: Stage,
        op: Op,
        map: &KeyMap<Box<str>, PostingId>,
        values: impl Iterator<Item = &'v str>,
        flag: u16,
    ) {
        if map.is_empty() && op == Op::Subtract {
            return;
        }
        let ids = values.filter_map(|v| map.get(v).copied());
        self.term(ix, stage, op, flag, ids);
    }

    /// An allow-list term: campaigns without a list, or listing one of `values`.
    fn allow<K, V>(
        &mut self,
        ix: &Index,
        dim: &AllowDim<K>,
        values: impl Iterator<Item = V>,
        flag: u16,
    ) where
        K: std::borrow::Borrow<V::Target> + std::hash::Hash + Eq,
        V: std::ops::Deref,
        V::Target: std::hash::Hash + Eq,
    {
        let Some(unrestricted) = dim.unrestricted else {
            return;
        };
        let mut t = self.open(Stage::NoMatch, Op::Union);
        t.add(ix, unrestricted);
        for v in values {
            t.add(ix, dim.values.get(&*v).copied().unwrap_or(EMPTY));
        }
        t.finish(flag);
    }
}

/// A term being added to a query.
struct Building<'q> {
    q: &'q mut Query,
    stage: Stage,
    op: Op,
    start: usize,
    weight: u64,
    overflow: bool,
}

impl Building<'_> {
    fn add(&mut self, ix: &Index, id: PostingId) {
        if id == EMPTY {
            return;
        }
        match self.q.ids.get_mut(self.q.n_ids) {
            Some(slot) => {
                *slot = id;
                self.q.n_ids += 1;
                self.weight += ix.posting(id).count() as u64;
            }
            None => self.overflow = true,
        }
    }

    fn finish(self, flag: u16) {
        let q = self.q;
        let len = q.n_ids - self.start;
        if self.overflow || q.n_terms == MAX_TERMS {
            // Leave the union out (admit more) or keep the partial subtraction (remove
            // less), and check the dimension exactly per candidate.
            q.verify |= flag;
            if self.op == Op::Union || q.n_terms == MAX_TERMS {
                q.n_ids = self.start;
                return;
            }
        }
        if len == 0 {
            match self.op {
                Op::Subtract => return,
                Op::Union => q.ceiling = Some(q.ceiling.map_or(self.stage, |c| c.min(self.stage))),
            }
        }
        let weight = match self.op {
            Op::Union => self.weight.min(u32::MAX as u64) as u32,
            Op::Subtract => 0,
        };
        q.terms[q.n_terms] = Term {
            stage: self.stage,
            op: self.op,
            weight,
            start: self.start as u16,
            len: len as u16,
        };
        q.n_terms += 1;
    }
}

/// The domain targeting reads: `site.domain` (else the host of `site.page`) or `app.domain`.
fn exact_domain_ok(c: &Campaign, req: &BidRequest<'_>) -> bool {
    let d = place(req).domain;
    let f = &c.targeting.domains;
    let under = |list: &[String]| d.is_some_and(|d| list.iter().any(|p| domain_under(d, p.trim())));
    (f.allow.is_empty() || under(&f.allow)) && !under(&f.deny)
}

fn exact_categories_ok(c: &Campaign, req: &BidRequest<'_>) -> bool {
    let cats = place(req).cats;
    let f = &c.targeting.categories;
    let under = |list: &[String]| {
        cats.iter()
            .any(|x| list.iter().any(|p| category_under(x, p.trim())))
    };
    (f.allow.is_empty() || under(&f.allow)) && !under(&f.deny)
}

#[cold]
fn verify(flags: u16, c: &Campaign, seat: &str, req: &BidRequest<'_>) -> Result<(), Stage> {
    let t = &c.targeting;
    let no_match = (flags & DOMAINS != 0 && !exact_domain_ok(c, req))
        || (flags & CATEGORIES != 0 && !exact_categories_ok(c, req))
        || (flags & SEGMENTS != 0
            && !t.segments.is_empty()
            && !req
                .segments()
                .any(|s| t.segments.iter().any(|x| x.trim() == s)));
    if no_match {
        return Err(Stage::NoMatch);
    }
    let blocked = (flags & WSEAT != 0 && !req.wseat.iter().any(|s| s == &seat))
        || (flags & BSEAT != 0 && req.bseat.iter().any(|s| s == &seat))
        || (flags & BADV != 0
            && c.adomain
                .iter()
                .any(|a| req.badv.iter().any(|b| domain_under(a.trim(), b.trim()))))
        || (flags & BAPP != 0
            && c.bundle.as_ref().is_some_and(|b| {
                req.bapp
                    .iter()
                    .any(|x| x.trim().eq_ignore_ascii_case(b.trim()))
            }));
    if blocked {
        return Err(Stage::Blocked);
    }
    Ok(())
}
