//! A request resolved against the index.
//!
//! A [`Query`] turns the request's values into posting sets once (at most [`MAX_IDS`]
//! of them, on the stack), grouped in terms: "campaign is in one of these sets" (union)
//! or "campaign is in none of these sets" (subtract). Each imp then adds its own terms
//! (formats, deals, blocked attributes). [`Scan`](super::scan::Scan) intersects them.
//!
//! The index may only ever admit too many campaigns, never too few: when a request
//! carries more values than fit, the term is left out (or cut short) and the dimension
//! is marked for an exact check of each candidate instead ([`Query::verify`]).

#![forbid(unsafe_code)]

use super::index::{format_key, AllowDim, Index, HOURS_PER_WEEK};
use super::keys::DEAL_FORMAT_SEP;
use super::keys::{category_prefixes, domain_suffixes, prefetch, KeyBuf, KeyTable, Lookup, Lower};
use super::placement::{imp_formats, place, Place};
use super::posting::{PostingId, EMPTY};
use super::verify;
use super::MatchContext;
use crate::openrtb::request::{BidRequest, Imp, Str};

/// Posting sets one request may resolve to before terms are checked exactly instead.
pub(crate) const MAX_IDS: usize = 256;
/// Terms per imp; the index has fewer dimensions than this.
pub(crate) const MAX_TERMS: usize = 32;

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

/// Number of stages.
pub(crate) const STAGES: usize = 6;

impl Stage {
    pub(crate) const ALL: [Stage; STAGES] = [
        Stage::NoMatch,
        Stage::Test,
        Stage::DealsOnly,
        Stage::Blocked,
        Stage::Currency,
        Stage::BelowFloor,
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Op {
    Union,
    Subtract,
}

/// A group of posting sets in [`Query`]'s id list.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Term {
    pub stage: Stage,
    pub op: Op,
    /// Campaigns a union admits at most: within a stage the most selective goes first.
    pub weight: u32,
    pub start: u16,
    pub len: u16,
}

const NO_TERM: Term = Term {
    stage: Stage::NoMatch,
    op: Op::Union,
    weight: 0,
    start: 0,
    len: 0,
};

/// The resolved terms of a request, then of one of its imps ([`Query::set_imp`]).
pub(crate) struct Query {
    ids: [PostingId; MAX_IDS],
    n_ids: usize,
    terms: [Term; MAX_TERMS],
    n_terms: usize,
    /// Where the request's own ids and terms end; an imp's follow.
    request_ids: usize,
    request_terms: usize,
    /// Dimensions that candidates must be checked against exactly ([`verify`] flags).
    pub verify: u16,
    request_verify: u16,
    /// The earliest stage of a term that admits no campaign: nobody gets past it.
    pub ceiling: Option<Stage>,
    request_ceiling: Option<Stage>,
    /// A term below the blocked stage did not fit: only the no-match terms are
    /// matched, and each candidate goes through every stage exactly
    /// ([`verify::stages`]) so that the no-bid reason stays exact.
    pub degraded: bool,
    request_degraded: bool,
    /// Campaigns in the table.
    pub campaigns: usize,
}

impl Query {
    /// An empty query over `campaigns` campaigns; [`Query::resolve`] fills it in. The
    /// two are separate so that the ~2 KB query is built where the caller keeps it:
    /// returning a filled one by value copied it.
    #[inline(always)]
    pub(crate) fn empty(campaigns: usize) -> Query {
        Query {
            ids: [EMPTY; MAX_IDS],
            n_ids: 0,
            terms: [NO_TERM; MAX_TERMS],
            n_terms: 0,
            request_ids: 0,
            request_terms: 0,
            verify: 0,
            request_verify: 0,
            ceiling: None,
            request_ceiling: None,
            degraded: false,
            request_degraded: false,
            campaigns,
        }
    }

    /// Resolves the request-wide terms into a fresh ([`Query::empty`]) query.
    pub(crate) fn resolve(&mut self, ix: &Index, req: &BidRequest<'_>, ctx: &MatchContext) {
        let q = self;
        let mut lower = Lower::new();
        let nm = Stage::NoMatch;
        let at = place(req);
        if ix.cold {
            prefetch_keys(ix, req, &at);
        }
        // Terms of at most two ids each come first, so they always fit.
        if let Some(a) = ix.active {
            q.term(ix, nm, Op::Union, 0, [a]);
        }
        if let Some(ex) = &ix.exchanges {
            let none = ex.len() - 1;
            let i = ctx.exchange.map_or(none, |e| (e as usize).min(none));
            q.term(ix, nm, Op::Union, 0, ex.get(i).copied());
        }
        if let Some(hours) = &ix.hours {
            let h = (ctx.hour_of_week as usize).min(HOURS_PER_WEEK);
            q.term(ix, nm, Op::Union, 0, hours.get(h).copied());
        }
        if let Some(inv) = &ix.inventory {
            q.term(ix, nm, Op::Union, 0, inv.get(at.kind as usize).copied());
        }
        if req.test == 1 {
            if let Some(t) = ix.test_ok {
                q.term(ix, Stage::Test, Op::Union, 0, [t]);
            }
        }
        let device = req.device.as_ref();
        let device_type = device.and_then(|d| d.devicetype);
        q.allow(ix, &ix.device, device_type.as_ref().into_iter(), 0);
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
        let bundle = at.bundle.and_then(|b| lower.of(b));
        q.allow(ix, &ix.bundles, bundle.into_iter(), 0);
        q.lookup(
            ix,
            nm,
            Op::Subtract,
            &ix.bundles_deny,
            bundle.into_iter(),
            0,
        );
        q.allow(ix, &ix.publishers, at.publisher.into_iter(), 0);
        q.lookup(
            ix,
            nm,
            Op::Subtract,
            &ix.publishers_deny,
            at.publisher.into_iter(),
            0,
        );

        // From here on a term may hold any number of ids; each has an exact check for
        // when it does not fit.
        q.allow(ix, &ix.segments, req.segments(), verify::SEGMENTS);
        let domain = at.domain.and_then(|d| lower.of(d));
        let suffixes = || domain.into_iter().flat_map(domain_suffixes);
        q.allow(ix, &ix.domains, suffixes(), verify::DOMAINS);
        q.lookup(
            ix,
            nm,
            Op::Subtract,
            &ix.domains_deny,
            suffixes(),
            verify::DOMAINS,
        );
        q.category_terms(ix, &mut lower, at.cats);

        let blocked = Stage::Blocked;
        if !req.wseat.is_empty() {
            let seats = req.wseat.iter().map(|s| s.as_str());
            q.lookup(ix, blocked, Op::Union, &ix.seats, seats, verify::WSEAT);
        }
        let bseat = req.bseat.iter().map(|s| s.as_str());
        q.lookup(ix, blocked, Op::Subtract, &ix.seats, bseat, verify::BSEAT);
        let mut lowered = |list: &[Str<'_>], map: &KeyTable, q: &mut Query, flag: u16| {
            let ids = list.iter().filter_map(|s| map.get(lower.of(s.trim())?));
            q.term(ix, blocked, Op::Subtract, flag, ids);
        };
        lowered(&req.badv, &ix.adomains, q, verify::BADV);
        lowered(&req.bapp, &ix.app_bundles, q, verify::BAPP);
        lowered(&req.bcat, &ix.cats_all, q, verify::AD_BLOCKS);

        q.weigh(ix, 0);
        q.request_ids = q.n_ids;
        q.request_terms = q.n_terms;
        q.request_verify = q.verify;
        q.request_ceiling = q.ceiling;
        q.request_degraded = q.degraded;
    }

    fn category_terms(&mut self, ix: &Index, lower: &mut Lower, cats: &[Str<'_>]) {
        if let Some(unrestricted) = ix.categories.unrestricted {
            let mut t = self.open(Stage::NoMatch, Op::Union);
            t.add(ix, unrestricted);
            for c in cats {
                for p in lower.of(c).into_iter().flat_map(category_prefixes) {
                    t.add(ix, ix.categories.values.get(p).unwrap_or(EMPTY));
                }
            }
            t.finish(verify::CATEGORIES);
        }
        if !ix.categories_deny.is_empty() {
            let mut t = self.open(Stage::NoMatch, Op::Subtract);
            for c in cats {
                for p in lower.of(c).into_iter().flat_map(category_prefixes) {
                    t.add(ix, ix.categories_deny.get(p).unwrap_or(EMPTY));
                }
            }
            t.finish(verify::CATEGORIES);
        }
    }

    /// Replaces the previous imp's terms with those of `imp`.
    pub(crate) fn set_imp(&mut self, ix: &Index, imp: &Imp<'_>) {
        self.n_ids = self.request_ids;
        self.n_terms = self.request_terms;
        self.verify = self.request_verify;
        self.ceiling = self.request_ceiling;
        self.degraded = self.request_degraded;
        let secure = (imp.secure == Some(1)) as usize;
        let mut lower = Lower::new();
        let mut t = self.open(Stage::NoMatch, Op::Union);
        if let Some(b) = &imp.banner {
            for size in b.sizes() {
                t.add(ix, ix.banner.get(&size).map_or(EMPTY, |p| p[secure]));
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
        let every_campaign_open = ix.posting(ix.open).count() as usize == self.campaigns;
        if private || !every_campaign_open {
            let stage = if private {
                Stage::DealsOnly
            } else {
                Stage::NoMatch
            };
            let mut t = self.open(stage, Op::Union);
            let deals = imp.pmp.iter().flat_map(|p| &p.deals);
            if private {
                // Only deal holders that can fill the imp: anyone that gets this far
                // has a fitting creative, so this is the same as holding a deal, with
                // far fewer chunks to look at.
                let mut key = KeyBuf::new();
                for d in deals {
                    imp_formats(imp, &mut lower, |f| {
                        key.clear().push(d.id.trim()).push(DEAL_FORMAT_SEP);
                        if format_key(&mut key, f, secure == 1) {
                            let id = key.as_str().and_then(|k| ix.deal_formats.get(k));
                            t.add(ix, id.unwrap_or(EMPTY));
                        }
                    });
                }
            } else {
                t.add(ix, ix.open);
                for d in deals {
                    t.add(ix, ix.deals.get(d.id.trim()).unwrap_or(EMPTY));
                }
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
        self.term(ix, Stage::Blocked, Op::Subtract, verify::AD_BLOCKS, ids);
        self.weigh(ix, self.request_terms);
    }

    /// For a cold index, sets the weight of terms `from..`: the campaigns a union
    /// admits at most. Done after all terms are built, so that the sets' headers,
    /// prefetched as each was added, are read together rather than one miss at a time.
    fn weigh(&mut self, ix: &Index, from: usize) {
        if !ix.cold {
            return;
        }
        for k in from..self.n_terms {
            let Some(&t) = self.terms.get(k) else { break };
            if t.op == Op::Union {
                let sum: u64 = self
                    .ids(&t)
                    .iter()
                    .map(|&id| ix.posting(id).count() as u64)
                    .sum();
                if let Some(t) = self.terms.get_mut(k) {
                    t.weight = sum.min(u32::MAX as u64) as u32;
                }
            }
        }
    }

    /// The current terms.
    pub(crate) fn terms(&self) -> &[Term] {
        &self.terms[..self.n_terms]
    }

    /// The posting ids of a term.
    pub(crate) fn ids(&self, t: &Term) -> &[PostingId] {
        self.ids
            .get(t.start as usize..(t.start + t.len) as usize)
            .unwrap_or(&[])
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
        map: &KeyTable,
        values: impl Iterator<Item = &'v str>,
        flag: u16,
    ) {
        if map.is_empty() && op == Op::Subtract {
            return;
        }
        let ids = values.filter_map(|v| map.get(v));
        self.term(ix, stage, op, flag, ids);
    }

    /// An allow-list term: campaigns without a list, or listing one of `values`.
    fn allow<M, V>(
        &mut self,
        ix: &Index,
        dim: &AllowDim<M>,
        values: impl Iterator<Item = V>,
        flag: u16,
    ) where
        M: Lookup<V::Target>,
        V: std::ops::Deref,
    {
        let Some(unrestricted) = dim.unrestricted else {
            return;
        };
        let mut t = self.open(Stage::NoMatch, Op::Union);
        t.add(ix, unrestricted);
        for v in values {
            t.add(ix, dim.values.find(&*v).unwrap_or(EMPTY));
        }
        t.finish(flag);
    }
}

/// Starts loading the first slot of the key lookups [`Query::resolve`] makes for the
/// request's values (in the same normal form; a domain's parents and a few rarer
/// lookups are left out), so that their cache misses overlap instead of following one
/// another. A hint only: a lookup it misses or gets wrong costs a wasted load.
fn prefetch_keys(ix: &Index, req: &BidRequest<'_>, at: &Place<'_>) {
    let mut lower = Lower::new();
    let mut lowered = |table: &KeyTable, v: &str| {
        if let Some(k) = lower.of(v) {
            table.prefetch(k);
        }
    };
    fn restricted(dim: &AllowDim<KeyTable>) -> Option<&KeyTable> {
        dim.unrestricted.is_some().then_some(&dim.values)
    }
    let device = req.device.as_ref();
    if let (Some(t), Some(os)) = (restricted(&ix.os), device.and_then(|d| d.os.as_deref())) {
        lowered(t, os);
    }
    if let Some(geo) = req.geo() {
        for (dim, v) in [
            (&ix.country, &geo.country),
            (&ix.region, &geo.region),
            (&ix.city, &geo.city),
        ] {
            if let (Some(t), Some(v)) = (restricted(dim), v.as_deref()) {
                lowered(t, v);
            }
        }
    }
    if let Some(b) = at.bundle {
        lowered(&ix.bundles.values, b);
        lowered(&ix.bundles_deny, b);
    }
    if let Some(p) = at.publisher {
        ix.publishers.values.prefetch(p);
        ix.publishers_deny.prefetch(p);
    }
    if let Some(t) = restricted(&ix.segments) {
        for s in req.segments() {
            t.prefetch(s);
        }
    }
    if let Some(d) = at.domain {
        // The whole name; its parents are usually one more miss each.
        lowered(&ix.domains.values, d);
        lowered(&ix.domains_deny, d);
    }
    for c in at.cats {
        lowered(&ix.categories.values, c);
    }
    for s in &req.badv {
        lowered(&ix.adomains, s.trim());
    }
    for s in &req.bcat {
        lowered(&ix.cats_all, s.trim());
    }
}

/// A term being added to a query.
struct Building<'q> {
    q: &'q mut Query,
    stage: Stage,
    op: Op,
    start: usize,
    /// The union's weight so far, unless the index is cold ([`Query::weigh`]).
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
                if ix.cold {
                    // Its header is read by `Query::weigh` and by the scan: start
                    // loading it now, alongside the other sets' headers.
                    prefetch(ix.posting(id));
                } else {
                    self.weight += ix.posting(id).count() as u64;
                }
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
            q.degraded |= self.stage < Stage::Blocked;
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
        let (start, len) = (self.start as u16, len as u16);
        q.terms[q.n_terms] = Term {
            stage: self.stage,
            op: self.op,
            weight: match self.op {
                Op::Union => self.weight.min(u32::MAX as u64) as u32,
                Op::Subtract => 0,
            },
            start,
            len,
        };
        q.n_terms += 1;
    }
}
