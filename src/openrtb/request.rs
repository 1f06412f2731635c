//! The parts of an OpenRTB 2.5/2.6 `BidRequest` that shardbid reads.
//!
//! Every string borrows from the request body (see [`Str`]); fields the bidder does not
//! use are not modelled at all, so the decoder skips each in one step.
//! Unknown fields and `ext` objects are ignored everywhere, and `null` reads as absent.
//! Numbers that exchanges are known to send as strings (`bidfloor`, `w`, `h`, `tmax`,
//! ...) are read leniently. A modelled key given twice in one object is an error.
//!
//! The serde derives here are the reference reading of a body; the
//! [`Decoder`](super::Decoder) reads the same way with a reader of its own, and tests
//! and the fuzz target check the two agree.

#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::ops::Deref;

use serde::{Deserialize, Deserializer};

use super::lenient;

/// A list of the decoded model: its first `N` elements live inline, so a typical request
/// decodes without a heap allocation (a longer list spills to the heap as a `Vec` would).
pub type List<T, const N: usize> = smallvec::SmallVec<[T; N]>;

/// A string borrowed from the request body when it has no escapes (or when the
/// decoder unescapes in place), owned otherwise.
///
/// `#[serde(borrow)]` only borrows on a field whose type is exactly `Cow<str>`;
/// wrapping the `Cow` in this newtype makes `Option<Str>` and `Vec<Str>` borrow too.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq, Default, Hash, PartialOrd, Ord)]
#[serde(transparent)]
pub struct Str<'a>(#[serde(borrow)] pub Cow<'a, str>);

impl<'a> Str<'a> {
    /// A string borrowed as is.
    pub const fn borrowed(s: &'a str) -> Self {
        Str(Cow::Borrowed(s))
    }

    /// The string's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for Str<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for Str<'_> {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Str<'_> {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// OpenRTB `BidRequest`. Required: `id` and at least one `imp` (checked by
/// [`BidRequest::validate`], not by the decoder, so the error can be precise).
#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
pub struct BidRequest<'a> {
    #[serde(borrow, default, deserialize_with = "lenient::nullable")]
    pub id: Str<'a>,
    /// Most requests carry one imp: it is kept inline, without an allocation.
    #[serde(borrow, default, deserialize_with = "lenient::nullable")]
    pub imp: List<Imp<'a>, 1>,
    #[serde(borrow, default)]
    pub site: Option<Site<'a>>,
    #[serde(borrow, default)]
    pub app: Option<App<'a>>,
    #[serde(borrow, default)]
    pub device: Option<Device<'a>>,
    #[serde(borrow, default)]
    pub user: Option<User<'a>>,
    /// 1 = test mode, the auction is not billable.
    #[serde(default, deserialize_with = "lenient::u8")]
    pub test: u8,
    /// Auction type: 1 first price, 2 second price (default, also for `null`).
    /// 500+ exchange-specific.
    #[serde(default = "default_at", deserialize_with = "lenient_at")]
    pub at: u32,
    /// Maximum time in milliseconds the exchange waits for a bid, network included.
    #[serde(default, deserialize_with = "lenient::opt_u32")]
    pub tmax: Option<u32>,
    /// Currencies allowed for bids (ISO-4217). Empty means USD.
    #[serde(borrow, default, deserialize_with = "lenient::nullable")]
    pub cur: List<Str<'a>, 2>,
    /// Blocked advertiser categories (IAB content taxonomy).
    #[serde(borrow, default, deserialize_with = "lenient::nullable")]
    pub bcat: List<Str<'a>, 8>,
    /// Blocked advertiser domains.
    #[serde(borrow, default, deserialize_with = "lenient::nullable")]
    pub badv: List<Str<'a>, 4>,
    /// Blocked app bundles / package names of advertised apps.
    #[serde(borrow, default, deserialize_with = "lenient::nullable")]
    pub bapp: List<Str<'a>, 2>,
    /// Buyer seats allowed to bid; empty means any.
    #[serde(borrow, default, deserialize_with = "lenient::nullable")]
    pub wseat: List<Str<'a>, 2>,
    /// Buyer seats blocked from bidding.
    #[serde(borrow, default, deserialize_with = "lenient::nullable")]
    pub bseat: List<Str<'a>, 2>,
}

/// The auction type when the request names none: second price.
pub(crate) const DEFAULT_AT: u32 = 2;

fn default_at() -> u32 {
    DEFAULT_AT
}

fn lenient_at<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    lenient::opt_u32(d).map(|at| at.unwrap_or(DEFAULT_AT))
}

/// One impression (ad slot) offered in the auction; a bid names it by `id`.
#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
pub struct Imp<'a> {
    #[serde(borrow, default, deserialize_with = "lenient::nullable")]
    pub id: Str<'a>,
    #[serde(default)]
    pub banner: Option<Banner>,
    #[serde(borrow, default)]
    pub video: Option<Video<'a>>,
    #[serde(borrow, default)]
    pub native: Option<Native<'a>>,
    #[serde(borrow, default)]
    pub pmp: Option<Pmp<'a>>,
    /// Minimum bid, CPM, in `bidfloorcur`.
    #[serde(default, deserialize_with = "lenient::f64")]
    pub bidfloor: f64,
    /// Currency of `bidfloor`; absent means USD.
    #[serde(borrow, default)]
    pub bidfloorcur: Option<Str<'a>>,
    /// 1 = the creative must be HTTPS-safe.
    #[serde(default, deserialize_with = "lenient::opt_u8")]
    pub secure: Option<u8>,
    /// 1 = interstitial or full-screen.
    #[serde(default, deserialize_with = "lenient::u8")]
    pub instl: u8,
    #[serde(borrow, default)]
    pub tagid: Option<Str<'a>>,
}

/// One allowed banner size.
#[derive(Deserialize, Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Format {
    #[serde(default, deserialize_with = "lenient::u32")]
    pub w: u32,
    #[serde(default, deserialize_with = "lenient::u32")]
    pub h: u32,
}

/// A banner (display) impression.
#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
pub struct Banner {
    #[serde(default, deserialize_with = "lenient::opt_u32")]
    pub w: Option<u32>,
    #[serde(default, deserialize_with = "lenient::opt_u32")]
    pub h: Option<u32>,
    /// Allowed sizes; takes precedence over `w`/`h` when present.
    #[serde(default, deserialize_with = "lenient::nullable")]
    pub format: List<Format, 4>,
    /// Blocked creative attributes.
    #[serde(default, deserialize_with = "lenient::vec_u32")]
    pub battr: List<u32, 8>,
    /// Blocked banner ad types.
    #[serde(default, deserialize_with = "lenient::vec_u32")]
    pub btype: List<u32, 4>,
}

impl Banner {
    /// The sizes this banner slot accepts: `format[]` if given, else `w`x`h`.
    pub fn sizes(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        let single = match (self.format.is_empty(), self.w, self.h) {
            (true, Some(w), Some(h)) => Some((w, h)),
            _ => None,
        };
        self.format.iter().map(|f| (f.w, f.h)).chain(single)
    }
}

/// A video impression.
#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
pub struct Video<'a> {
    #[serde(borrow, default, deserialize_with = "lenient::nullable")]
    pub mimes: List<Str<'a>, 4>,
    #[serde(default, deserialize_with = "lenient::opt_u32")]
    pub minduration: Option<u32>,
    #[serde(default, deserialize_with = "lenient::opt_u32")]
    pub maxduration: Option<u32>,
    #[serde(default, deserialize_with = "lenient::vec_u32")]
    pub protocols: List<u32, 8>,
    /// OpenRTB 2.2 single protocol, still sent by some exchanges.
    #[serde(default, deserialize_with = "lenient::opt_u32")]
    pub protocol: Option<u32>,
    #[serde(default, deserialize_with = "lenient::opt_u32")]
    pub w: Option<u32>,
    #[serde(default, deserialize_with = "lenient::opt_u32")]
    pub h: Option<u32>,
    #[serde(default, deserialize_with = "lenient::vec_u32")]
    pub battr: List<u32, 8>,
}

/// A native impression.
#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
pub struct Native<'a> {
    /// The native ad request, a JSON document carried as an opaque string.
    #[serde(borrow, default, deserialize_with = "lenient::nullable")]
    pub request: Str<'a>,
    #[serde(borrow, default)]
    pub ver: Option<Str<'a>>,
    #[serde(default, deserialize_with = "lenient::vec_u32")]
    pub battr: List<u32, 8>,
}

/// Private marketplace: the deals on offer for an impression.
#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
pub struct Pmp<'a> {
    /// 1 = only bids on the listed deals are accepted.
    #[serde(default, deserialize_with = "lenient::u8")]
    pub private_auction: u8,
    #[serde(borrow, default, deserialize_with = "lenient::nullable")]
    pub deals: Vec<Deal<'a>>,
}

/// One direct deal between a buyer and the seller.
#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
pub struct Deal<'a> {
    #[serde(borrow, default, deserialize_with = "lenient::nullable")]
    pub id: Str<'a>,
    /// Deal floor, CPM, in the deal's own `bidfloorcur` (it does not inherit the imp's).
    #[serde(default, deserialize_with = "lenient::f64")]
    pub bidfloor: f64,
    #[serde(borrow, default)]
    pub bidfloorcur: Option<Str<'a>>,
    /// Buyer seats allowed on this deal; empty means any.
    #[serde(borrow, default, deserialize_with = "lenient::nullable")]
    pub wseat: List<Str<'a>, 2>,
    #[serde(default, deserialize_with = "lenient::opt_u32")]
    pub at: Option<u32>,
}

/// The seller of the site or app.
#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
pub struct Publisher<'a> {
    #[serde(borrow, default)]
    pub id: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub domain: Option<Str<'a>>,
}

/// The website the impression appears on (absent for apps).
#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
pub struct Site<'a> {
    #[serde(borrow, default)]
    pub id: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub domain: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub page: Option<Str<'a>>,
    /// IAB content categories of the site.
    #[serde(borrow, default, deserialize_with = "lenient::nullable")]
    pub cat: List<Str<'a>, 4>,
    #[serde(borrow, default)]
    pub publisher: Option<Publisher<'a>>,
}

/// The app the impression appears in (absent for sites).
#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
pub struct App<'a> {
    #[serde(borrow, default)]
    pub id: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub bundle: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub domain: Option<Str<'a>>,
    #[serde(borrow, default, deserialize_with = "lenient::nullable")]
    pub cat: List<Str<'a>, 4>,
    #[serde(borrow, default)]
    pub publisher: Option<Publisher<'a>>,
}

/// A location: where the device is, or the user's home.
#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
pub struct Geo<'a> {
    /// ISO-3166-1 alpha-3.
    #[serde(borrow, default)]
    pub country: Option<Str<'a>>,
    /// ISO-3166-2 subdivision code.
    #[serde(borrow, default)]
    pub region: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub city: Option<Str<'a>>,
}

/// The device the ad is shown on.
#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
pub struct Device<'a> {
    /// AdCOM device type (1 mobile/tablet, 2 PC, 3 CTV, 4 phone, 5 tablet, ...).
    #[serde(default, deserialize_with = "lenient::opt_u32")]
    pub devicetype: Option<u32>,
    #[serde(borrow, default)]
    pub os: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub geo: Option<Geo<'a>>,
    /// The advertising id (a user key for frequency caps when `user` names none).
    #[serde(borrow, default)]
    pub ifa: Option<Str<'a>>,
}

/// One audience segment from a data provider.
#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
pub struct Segment<'a> {
    #[serde(borrow, default)]
    pub id: Option<Str<'a>>,
}

/// One data provider's segments for the user.
#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
pub struct Data<'a> {
    #[serde(borrow, default)]
    pub id: Option<Str<'a>>,
    #[serde(borrow, default, deserialize_with = "lenient::nullable")]
    pub segment: Vec<Segment<'a>>,
}

/// The human user of the device.
#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
pub struct User<'a> {
    #[serde(borrow, default)]
    pub id: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub buyeruid: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub geo: Option<Geo<'a>>,
    #[serde(borrow, default, deserialize_with = "lenient::nullable")]
    pub data: Vec<Data<'a>>,
}

/// Why a decoded request is not a valid bid request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// `id` is absent, `null` or empty.
    MissingId,
    /// `imp` is absent, `null` or empty.
    NoImp,
    /// An `imp` (this one) has no `id`: a bid could not name it.
    ImpWithoutId(usize),
    /// A deal of an imp (this one) has no `id`: a deal bid could not name it.
    DealWithoutId(usize),
    /// More imps than the decoder's limit (this one).
    TooManyImps(usize),
    /// Two imps (these) share an id: one bid per imp could not be told apart.
    DuplicateImpId(usize, usize),
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Invalid::MissingId => f.write_str("id: required, and not empty"),
            Invalid::NoImp => f.write_str("imp: at least one imp is required"),
            Invalid::ImpWithoutId(i) => write!(f, "imp[{i}].id: required, and not empty"),
            Invalid::DealWithoutId(i) => {
                write!(f, "imp[{i}].pmp.deals: every deal needs a non-empty id")
            }
            Invalid::TooManyImps(max) => write!(f, "imp: more than {max} imps (http.max_imps)"),
            Invalid::DuplicateImpId(a, b) => {
                write!(f, "imp[{b}].id: duplicate of imp[{a}].id")
            }
        }
    }
}

impl<'a> BidRequest<'a> {
    /// The key frequency caps count a user by: the first present of `user.id`,
    /// `user.buyeruid` and `device.ifa`.
    pub fn user_key(&self) -> Option<&str> {
        fn present<'s>(s: Option<&'s Str<'_>>) -> Option<&'s str> {
            s.map(|s| s.trim()).filter(|s| !s.is_empty())
        }
        let user = self.user.as_ref();
        present(user.and_then(|u| u.id.as_ref()))
            .or_else(|| present(user.and_then(|u| u.buyeruid.as_ref())))
            .or_else(|| present(self.device.as_ref().and_then(|d| d.ifa.as_ref())))
    }

    /// The OpenRTB requirements the decoder leaves to us: a non-empty `id`, at least
    /// one `imp`, and an `id` on every `imp` and on every deal.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.id.is_empty() {
            return Err(Invalid::MissingId);
        }
        if self.imp.is_empty() {
            return Err(Invalid::NoImp);
        }
        for (i, imp) in self.imp.iter().enumerate() {
            if imp.id.is_empty() {
                return Err(Invalid::ImpWithoutId(i));
            }
            let mut deals = imp.pmp.iter().flat_map(|p| p.deals.iter());
            if deals.any(|d| d.id.is_empty()) {
                return Err(Invalid::DealWithoutId(i));
            }
            // A handful of imps: comparing each with those before it is cheapest.
            if let Some(first) = self.imp.iter().take(i).position(|o| o.id == imp.id) {
                return Err(Invalid::DuplicateImpId(first, i));
            }
        }
        Ok(())
    }

    /// The geo to target on: the device's (where the impression is), else the user's home.
    pub fn geo(&self) -> Option<&Geo<'_>> {
        self.device
            .as_ref()
            .and_then(|d| d.geo.as_ref())
            .or_else(|| self.user.as_ref().and_then(|u| u.geo.as_ref()))
    }

    /// Every user segment id, across all data providers.
    pub fn segments(&self) -> impl Iterator<Item = &str> + Clone + use<'_, 'a> {
        self.user
            .iter()
            .flat_map(|u| u.data.iter())
            .flat_map(|d| d.segment.iter())
            .filter_map(|s| s.id.as_deref())
    }
}
