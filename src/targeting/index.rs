//! The inverted index: for every targeting dimension, which campaigns each value
//! admits, plus the campaigns that do not restrict that dimension at all.
//!
//! Campaigns are numbered in price order (highest `bid_cpm` first), so walking a
//! posting set in number order visits candidates from the best price down.

#![forbid(unsafe_code)]

use super::campaign::{Campaign, CreativeKind, Inventory};
use super::keys::{
    category_prefixes, domain_suffixes, exact_key, lower_key, KeyBuf, KeyMap, KeyTable,
    DEAL_FORMAT_SEP,
};
use super::lists::{
    push_once, split_secure, table, table_dim, union, AllowLists, FilterLists, Lists, Pool,
};
use super::posting::{Posting, PostingId, CHUNK_BITS, EMPTY};

/// Hours in a week; `MatchContext::hour_of_week` counts from Monday 00:00 UTC.
pub const HOURS_PER_WEEK: usize = 168;

/// An allow-list dimension: a campaign with an empty list accepts any value (and none).
#[derive(Clone, Debug, Default)]
pub(crate) struct AllowDim<M> {
    /// Campaigns without a list here; `None` when no campaign restricts this dimension,
    /// so matching can skip it.
    pub unrestricted: Option<PostingId>,
    /// Campaigns that list each value (a [`KeyTable`], or a map for numbers).
    pub values: M,
}

/// Format postings split by whether the creative is HTTPS-safe: `[any, secure]`.
pub(crate) type BySecure = [PostingId; 2];

/// Every posting set of a table and the maps from request values to them.
#[derive(Clone, Debug)]
pub(crate) struct Index {
    /// Number of chunks the campaigns span.
    pub chunks: usize,
    /// Posting sets; entry 0 is the empty set.
    pub pool: Vec<Posting>,
    /// Active campaigns; `None` when all are active.
    pub active: Option<PostingId>,
    /// Per exchange id, campaigns that bid there; the last entry is for requests that
    /// name no exchange. `None` when no campaign restricts exchanges.
    pub exchanges: Option<Box<[PostingId]>>,
    /// Per hour of the week, campaigns whose dayparts include it; the last entry is for
    /// hours out of range. `None` when every campaign is always on.
    pub hours: Option<Box<[PostingId]>>,
    /// Campaigns that accept site, app, and neither inventory, by `PlaceKind`.
    pub inventory: Option<[PostingId; 3]>,
    /// Campaigns that bid on `test = 1` requests; `None` when all do.
    pub test_ok: Option<PostingId>,
    pub device: AllowDim<KeyMap<u32, PostingId>>,
    pub os: AllowDim<KeyTable>,
    pub country: AllowDim<KeyTable>,
    pub region: AllowDim<KeyTable>,
    pub city: AllowDim<KeyTable>,
    pub segments: AllowDim<KeyTable>,
    pub domains: AllowDim<KeyTable>,
    pub domains_deny: KeyTable,
    pub bundles: AllowDim<KeyTable>,
    pub bundles_deny: KeyTable,
    pub publishers: AllowDim<KeyTable>,
    pub publishers_deny: KeyTable,
    pub categories: AllowDim<KeyTable>,
    pub categories_deny: KeyTable,
    /// Campaigns with a banner creative of a size.
    pub banner: KeyMap<(u32, u32), BySecure>,
    /// Campaigns with any video creative, and by MIME type.
    pub video_any: BySecure,
    pub video_mime: KeyMap<Box<str>, BySecure>,
    pub native: BySecure,
    /// Campaigns without deals (they bid in the open auction).
    pub open: PostingId,
    pub deals: KeyTable,
    /// Campaigns by deal and creative format ([`format_key`] after the deal id and
    /// [`DEAL_FORMAT_SEP`]): the holders of a deal that can fill an imp.
    pub deal_formats: KeyTable,
    /// Campaigns by seat.
    pub seats: KeyTable,
    /// Campaigns by advertiser domain and each of its parents (for `badv`).
    pub adomains: KeyTable,
    /// Campaigns by advertised app bundle (for `bapp`).
    pub app_bundles: KeyTable,
    /// Campaigns all of whose creatives carry a category or a subcategory of it (for
    /// `bcat`; campaigns with mixed creatives are checked creative by creative).
    pub cats_all: KeyTable,
    /// Campaigns all of whose creatives carry an attribute (for `battr`).
    pub attrs_all: KeyMap<u32, PostingId>,
    /// The sets take more memory than stays in a core's caches between requests, so
    /// matching asks for the lines it will read before reading them (prefetch); for a
    /// small table that is only extra work.
    pub cold: bool,
    /// For a table of at most 64 campaigns, every set's members as one word (by
    /// posting id): matching is then a few word operations per term
    /// ([`Scan::eval`](super::scan::Scan::eval)), with no chunk walk.
    pub words: Option<Box<[u64]>>,
}

/// Posting-set bytes from which an index counts as [`Index::cold`]: more than a core's
/// L2 cache holds. Measured with the targeting bench: prefetching costs 0.7 µs per imp
/// at 1,000 campaigns (0.5 MiB of sets) and saves 0.5-2 µs from 10,000 (3 MiB).
const COLD_FROM: usize = 1 << 20;

impl Index {
    /// Indexes `campaigns` (in price order). `seats[i]` is campaign i's resolved seat,
    /// `exchanges` the configured exchange names. The campaigns are already valid.
    pub(crate) fn build(campaigns: &[&Campaign], seats: &[&str], exchanges: &[String]) -> Index {
        let n = campaigns.len();
        let chunks = n.div_ceil(CHUNK_BITS).max(1);
        let mut pool = Pool {
            sets: vec![Posting::new(&[], chunks)],
            chunks,
        };

        let mut active = Vec::with_capacity(n);
        let mut test_ok = Vec::with_capacity(n);
        let mut open = Vec::with_capacity(n);
        let mut inventory = [Vec::new(), Vec::new(), Vec::new()];
        let mut ex_unrestricted = Vec::new();
        let mut ex_lists = vec![Vec::new(); exchanges.len()];
        let mut hour_lists = vec![Vec::new(); HOURS_PER_WEEK];
        let mut always_on = Vec::new();
        let mut device = AllowLists::default();
        let mut os = AllowLists::<Box<str>>::default();
        let mut country = AllowLists::<Box<str>>::default();
        let mut region = AllowLists::<Box<str>>::default();
        let mut city = AllowLists::<Box<str>>::default();
        let mut segments = AllowLists::default();
        let mut domains = FilterLists::default();
        let mut bundles = FilterLists::default();
        let mut publishers = FilterLists::default();
        let mut categories = FilterLists::default();
        let mut banner = Lists::<(u32, u32, bool)>::default();
        let mut video_mime = Lists::<(Box<str>, bool)>::default();
        let mut video_any = [Vec::new(), Vec::new()];
        let mut native = [Vec::new(), Vec::new()];
        let mut deals = Lists::default();
        let mut deal_formats = Lists::<Box<str>>::default();
        let mut key = KeyBuf::new();
        let mut seat_lists = Lists::default();
        let mut adomains = Lists::default();
        let mut app_bundles = Lists::default();
        let mut cats_all = Lists::default();
        let mut attrs_all = Lists::default();

        for (i, c) in campaigns.iter().enumerate() {
            let id = i as u32;
            let t = &c.targeting;
            if c.active {
                active.push(id);
            }
            if t.test_requests {
                test_ok.push(id);
            }
            let (site, app) = match t.inventory {
                Inventory::Any => (true, true),
                Inventory::Site => (true, false),
                Inventory::App => (false, true),
            };
            for (list, ok) in inventory.iter_mut().zip([site, app, site && app]) {
                if ok {
                    list.push(id);
                }
            }
            if t.exchanges.is_empty() {
                ex_unrestricted.push(id);
            }
            for name in &t.exchanges {
                if let Some(e) = exchanges.iter().position(|x| x == name) {
                    push_once(&mut ex_lists[e], id);
                }
            }
            if t.dayparts.is_empty() {
                always_on.push(id);
            }
            for d in &t.dayparts {
                for day in d.days.iter().filter_map(|s| day_index(s)) {
                    for h in d.from.min(24)..d.to.min(24) {
                        push_once(&mut hour_lists[day * 24 + h as usize], id);
                    }
                }
            }
            device.add(id, t.device_types.iter().copied());
            os.add(id, t.os.iter().map(|s| lower_key(s)));
            country.add(id, t.countries.iter().map(|s| lower_key(s)));
            region.add(id, t.regions.iter().map(|s| lower_key(s)));
            city.add(id, t.cities.iter().map(|s| lower_key(s)));
            segments.add(id, t.segments.iter().map(|s| exact_key(s)));
            domains.add(id, &t.domains.allow, &t.domains.deny, lower_key);
            bundles.add(id, &t.bundles.allow, &t.bundles.deny, lower_key);
            publishers.add(id, &t.publishers.allow, &t.publishers.deny, exact_key);
            categories.add(id, &t.categories.allow, &t.categories.deny, lower_key);

            for cr in &c.creatives {
                let slots: &[bool] = if cr.secure { &[false, true] } else { &[false] };
                for &secure in slots {
                    match cr.kind {
                        CreativeKind::Banner => {
                            if let (Some(w), Some(h)) = (cr.w, cr.h) {
                                banner.add((w, h, secure), id);
                            }
                        }
                        CreativeKind::Video => {
                            push_once(&mut video_any[secure as usize], id);
                            if let Some(m) = &cr.mime {
                                video_mime.add((lower_key(m), secure), id);
                            }
                        }
                        CreativeKind::Native => push_once(&mut native[secure as usize], id),
                    }
                }
            }
            if t.deals.is_empty() {
                open.push(id);
            }
            for d in &t.deals {
                deals.add(exact_key(d), id);
                for cr in &c.creatives {
                    let slots: &[bool] = if cr.secure { &[false, true] } else { &[false] };
                    for &secure in slots {
                        let mime = cr.mime.as_deref().map(lower_key);
                        let formats = match cr.kind {
                            CreativeKind::Banner => [
                                Format::Banner(cr.w.unwrap_or(0), cr.h.unwrap_or(0)),
                                Format::None,
                            ],
                            CreativeKind::Video => [
                                Format::AnyVideo,
                                Format::Video(mime.as_deref().unwrap_or("")),
                            ],
                            CreativeKind::Native => [Format::Native, Format::None],
                        };
                        for f in formats {
                            key.clear().push(d.trim()).push(DEAL_FORMAT_SEP);
                            if format_key(&mut key, f, secure) {
                                if let Some(k) = key.as_str() {
                                    deal_formats.add(k.into(), id);
                                }
                            }
                        }
                    }
                }
            }
            seat_lists.add(exact_key(seats[i]), id);
            for a in &c.adomain {
                for s in domain_suffixes(&lower_key(a)) {
                    adomains.add(s.into(), id);
                }
            }
            if let Some(b) = &c.bundle {
                app_bundles.add(lower_key(b), id);
            }
            if let Some((first, rest)) = c.creatives.split_first() {
                for cat in &first.cat {
                    let cat = lower_key(cat);
                    for p in category_prefixes(&cat) {
                        let all = rest
                            .iter()
                            .all(|cr| cr.cat.iter().any(|x| super::keys::category_under(x, p)));
                        if all {
                            cats_all.add(p.into(), id);
                        }
                    }
                }
                for &a in &first.attr {
                    if rest.iter().all(|cr| cr.attr.contains(&a)) {
                        attrs_all.add(a, id);
                    }
                }
            }
        }

        let restricted = |unrestricted: &[u32]| unrestricted.len() < n;
        let exchanges = restricted(&ex_unrestricted).then(|| {
            let mut ids: Vec<PostingId> = ex_lists
                .iter()
                .map(|l| pool.add(&union(&ex_unrestricted, l)))
                .collect();
            ids.push(pool.add(&ex_unrestricted));
            ids.into_boxed_slice()
        });
        let hours = restricted(&always_on).then(|| {
            let mut ids: Vec<PostingId> = hour_lists
                .iter()
                .map(|l| pool.add(&union(&always_on, l)))
                .collect();
            ids.push(pool.add(&always_on));
            ids.into_boxed_slice()
        });
        let inventory =
            restricted(&inventory[2]).then(|| [0, 1, 2].map(|k| pool.add(&inventory[k])));
        let by_secure =
            |pool: &mut Pool, lists: &[Vec<u32>; 2]| lists.each_ref().map(|l| pool.add(l));
        let video_any = by_secure(&mut pool, &video_any);
        let native = by_secure(&mut pool, &native);
        let mut index = Index {
            active: (active.len() < n).then(|| pool.add(&active)),
            test_ok: (test_ok.len() < n).then(|| pool.add(&test_ok)),
            exchanges,
            hours,
            inventory,
            device: device.finish(&mut pool, n),
            os: table_dim(os.finish(&mut pool, n)),
            country: table_dim(country.finish(&mut pool, n)),
            region: table_dim(region.finish(&mut pool, n)),
            city: table_dim(city.finish(&mut pool, n)),
            segments: table_dim(segments.finish(&mut pool, n)),
            domains: table_dim(domains.allow.finish(&mut pool, n)),
            domains_deny: table(domains.deny.finish(&mut pool)),
            bundles: table_dim(bundles.allow.finish(&mut pool, n)),
            bundles_deny: table(bundles.deny.finish(&mut pool)),
            publishers: table_dim(publishers.allow.finish(&mut pool, n)),
            publishers_deny: table(publishers.deny.finish(&mut pool)),
            categories: table_dim(categories.allow.finish(&mut pool, n)),
            categories_deny: table(categories.deny.finish(&mut pool)),
            banner: split_secure(banner.finish(&mut pool), |(w, h, s)| ((w, h), s)),
            video_any,
            video_mime: split_secure(video_mime.finish(&mut pool), |(m, s)| (m, s)),
            native,
            open: pool.add(&open),
            deals: table(deals.finish(&mut pool)),
            deal_formats: table(deal_formats.finish(&mut pool)),
            seats: table(seat_lists.finish(&mut pool)),
            adomains: table(adomains.finish(&mut pool)),
            app_bundles: table(app_bundles.finish(&mut pool)),
            cats_all: table(cats_all.finish(&mut pool)),
            attrs_all: attrs_all.finish(&mut pool),
            chunks,
            pool: pool.sets,
            cold: false,
            words: None,
        };
        let bytes: usize = index.pool.iter().map(Posting::bytes).sum();
        index.cold = bytes >= COLD_FROM;
        if n <= 64 {
            index.words = Some(index.pool.iter().map(Posting::first_word).collect());
        }
        index
    }

    /// The set behind an id (the empty set for an unknown id).
    #[inline]
    pub(crate) fn posting(&self, id: PostingId) -> &Posting {
        self.pool
            .get(id as usize)
            .unwrap_or(&self.pool[EMPTY as usize])
    }
}

/// A creative format an imp can ask for.
#[derive(Clone, Copy)]
pub(crate) enum Format<'a> {
    Banner(u32, u32),
    /// A video creative of this (lowercase) MIME type.
    Video(&'a str),
    /// Any video creative (the imp lists no MIME types).
    AnyVideo,
    Native,
    None,
}

/// Appends the key of a format (`b300x250`, `vvideo/mp4`, `V`, `n`; `s` after it for
/// HTTPS-safe creatives) to `key`; `false` for [`Format::None`].
pub(crate) fn format_key(key: &mut KeyBuf, f: Format<'_>, secure: bool) -> bool {
    match f {
        Format::Banner(w, h) => key.push("b").push_u32(w).push("x").push_u32(h),
        Format::Video(mime) => key.push("v").push(mime),
        Format::AnyVideo => key.push("V"),
        Format::Native => key.push("n"),
        Format::None => return false,
    };
    if secure {
        key.push("s");
    }
    true
}

/// Monday = 0 .. Sunday = 6.
pub(crate) fn day_index(day: &str) -> Option<usize> {
    const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    DAYS.iter().position(|d| d.eq_ignore_ascii_case(day.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_days() {
        assert_eq!(day_index("Mon"), Some(0));
        assert_eq!(day_index("sun"), Some(6));
        assert_eq!(day_index("monday"), None);
    }

    #[test]
    fn formats_have_distinct_keys() {
        let key = |f, secure| {
            let mut k = KeyBuf::new();
            format_key(&mut k, f, secure)
                .then(|| k.as_str().map(String::from))
                .flatten()
        };
        assert_eq!(
            key(Format::Banner(300, 250), true).as_deref(),
            Some("b300x250s")
        );
        assert_eq!(
            key(Format::Video("video/mp4"), false).as_deref(),
            Some("vvideo/mp4")
        );
        assert_eq!(key(Format::AnyVideo, false).as_deref(), Some("V"));
        assert_eq!(key(Format::Native, true).as_deref(), Some("ns"));
        assert_eq!(key(Format::None, true), None);
    }
}
