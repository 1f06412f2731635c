//! The campaign file: what an operator writes and `PUT /admin/campaigns` accepts.
//!
//! A JSON document `{"campaigns": [ ... ]}`. Every targeting list is optional; an empty
//! or absent list means "any". Names are matched ASCII case-insensitively (domains,
//! bundles, OS, geo, categories, MIME types, advertiser domains); ids exactly (publisher,
//! segment, deal and seat ids). Prices are CPM in USD, written as decimals (`"2.50"` or
//! 2.5) and held as exact micros.
//!
//! `Table::build` checks a set and names every problem by campaign and key: ids (letters,
//! digits, `-`, `_`, `.`) unique per set and per campaign, at least one advertiser domain
//! and one creative, `w`/`h` on banners, `mime`/`duration`/`protocol` on videos,
//! `max_cpm >= bid_cpm >= 0`, known exchange names, alpha-3 countries, valid dayparts,
//! `http(s)://` notice URLs.

#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};

use crate::money::budget::{Budget, FrequencyCap, Pacing};
use crate::money::Micros;

#[derive(Debug, Clone, Deserialize, Serialize, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CampaignSet {
    pub campaigns: Vec<Campaign>,
    /// What `GET /admin/campaigns` adds about the campaigns' live state (spend,
    /// pacing, paused): ignored when a set is read, so that the document `GET` returns
    /// can be sent back with `PUT` as it is.
    #[serde(default, skip_serializing)]
    pub live: Ignored,
}

/// Any JSON value, read and dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Ignored;

impl<'de> Deserialize<'de> for Ignored {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| Ignored)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Campaign {
    /// Unique id; appears in the bid's `cid` and in notice URLs.
    pub id: String,
    /// Human-readable name, for operators only.
    #[serde(default)]
    pub name: String,
    /// Inactive campaigns are loaded (and listed) but never bid.
    #[serde(default = "yes")]
    pub active: bool,
    /// Buyer seat for `seatbid[].seat`; also checked against `wseat`/`bseat` and deal
    /// `wseat`. Absent: the server's `bidding.default_seat`.
    #[serde(default)]
    pub seat: Option<String>,
    /// Advertiser domains, sent as the bid's `adomain` and checked against `badv`.
    pub adomain: Vec<String>,
    /// Bundle of the advertised app, if any; checked against `bapp`.
    #[serde(default)]
    pub bundle: Option<String>,
    /// The campaign's CPM bid in USD.
    pub bid_cpm: Micros,
    /// Never bid above this CPM (USD): a bid below a floor is raised to the floor only
    /// up to this. Absent: `bid_cpm`.
    #[serde(default)]
    pub max_cpm: Option<Micros>,
    /// A third-party win tracker: a URL template (`{campaign}` and `{creative}`
    /// replaced, OpenRTB macros such as `${AUCTION_PRICE}` filled from the notice) that
    /// the win notice's event line carries for the campaign's own reporting. The bid's
    /// own `nurl` is always shardbid's. Absent: the server's default.
    #[serde(default)]
    pub nurl: Option<String>,
    /// A third-party billing tracker, like `nurl`. Absent: the server's default.
    #[serde(default)]
    pub burl: Option<String>,
    /// Spend limits in USD: `{"total": "500.00", "daily": "50.00"}`, either or both.
    /// Absent: no limit (`--check-config` warns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
    /// `asap` (the default) or `even`: spread the daily budget over the day.
    #[serde(default, skip_serializing_if = "Pacing::is_asap")]
    pub pacing: Pacing,
    /// At most `impressions` per user in `window_s` seconds:
    /// `{"impressions": 3, "window_s": 86400}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_cap: Option<FrequencyCap>,
    #[serde(default)]
    pub targeting: Targeting,
    /// At least one creative; the auction picks the first that fits the impression.
    pub creatives: Vec<Creative>,
}

fn yes() -> bool {
    true
}

/// Allow and deny lists for one string dimension. A value on the deny list never bids;
/// a non-empty allow list requires the value to be present and listed.
#[derive(Debug, Clone, Deserialize, Serialize, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ListFilter {
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub deny: Vec<String>,
}

impl ListFilter {
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }
}

/// Where the impression is shown.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Inventory {
    #[default]
    Any,
    Site,
    App,
}

/// A recurring window of the week, in UTC: on each of `days`, hours `from` (inclusive)
/// to `to` (exclusive), 0-24.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Daypart {
    /// `mon`, `tue`, `wed`, `thu`, `fri`, `sat`, `sun`.
    pub days: Vec<String>,
    pub from: u8,
    pub to: u8,
}

/// Who, where and when a campaign bids. The default (also for an absent `targeting`
/// object) targets everything, test requests included.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Targeting {
    /// Exchange names (as in the server config) this campaign bids on. Empty: all,
    /// including requests on the exchange-less `/openrtb2/bid` path.
    #[serde(default)]
    pub exchanges: Vec<String>,
    #[serde(default)]
    pub inventory: Inventory,
    /// `site.domain` (or `app.domain`), matched exactly or as a parent domain
    /// (`example.com` matches `news.example.com`).
    #[serde(default, skip_serializing_if = "ListFilter::is_empty")]
    pub domains: ListFilter,
    /// `app.bundle`.
    #[serde(default, skip_serializing_if = "ListFilter::is_empty")]
    pub bundles: ListFilter,
    /// `site.publisher.id` / `app.publisher.id`.
    #[serde(default, skip_serializing_if = "ListFilter::is_empty")]
    pub publishers: ListFilter,
    /// IAB content categories of the site or app (`site.cat`, `app.cat`); an allowed
    /// category also matches its subcategories (`IAB2` matches `IAB2-1`).
    #[serde(default, skip_serializing_if = "ListFilter::is_empty")]
    pub categories: ListFilter,
    /// AdCOM device types (`device.devicetype`).
    #[serde(default)]
    pub device_types: Vec<u32>,
    /// `device.os`, e.g. `iOS`, `Android`.
    #[serde(default)]
    pub os: Vec<String>,
    /// ISO-3166-1 alpha-3 countries (`device.geo`, else `user.geo`).
    #[serde(default)]
    pub countries: Vec<String>,
    /// ISO-3166-2 regions.
    #[serde(default)]
    pub regions: Vec<String>,
    #[serde(default)]
    pub cities: Vec<String>,
    /// User segment ids (`user.data[].segment[].id`); any one of them matches.
    #[serde(default)]
    pub segments: Vec<String>,
    /// Deal ids. When set, the campaign bids only through these deals (at the deal's
    /// floor); when empty it bids only in the open auction.
    #[serde(default)]
    pub deals: Vec<String>,
    /// When the campaign may bid. Empty: always.
    #[serde(default)]
    pub dayparts: Vec<Daypart>,
    /// Whether to bid on `test = 1` requests (which are never billed).
    #[serde(default = "yes")]
    pub test_requests: bool,
}

impl Default for Targeting {
    fn default() -> Self {
        Targeting {
            exchanges: Vec::new(),
            inventory: Inventory::Any,
            domains: ListFilter::default(),
            bundles: ListFilter::default(),
            publishers: ListFilter::default(),
            categories: ListFilter::default(),
            device_types: Vec::new(),
            os: Vec::new(),
            countries: Vec::new(),
            regions: Vec::new(),
            cities: Vec::new(),
            segments: Vec::new(),
            deals: Vec::new(),
            dayparts: Vec::new(),
            test_requests: true,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CreativeKind {
    Banner,
    Video,
    Native,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Creative {
    /// Creative id, sent as the bid's `crid`.
    pub id: String,
    pub kind: CreativeKind,
    /// Size in pixels; required for banners.
    #[serde(default)]
    pub w: Option<u32>,
    #[serde(default)]
    pub h: Option<u32>,
    /// Markup sent as `adm` (HTML for banners, VAST XML for video, a native response
    /// JSON string for native). OpenRTB macros allowed.
    pub adm: String,
    /// IAB categories of the ad, sent as `cat` and checked against `bcat`.
    #[serde(default)]
    pub cat: Vec<String>,
    /// Creative attributes, checked against `battr`.
    #[serde(default)]
    pub attr: Vec<u32>,
    /// Video (required): the creative's MIME type, which must be in `video.mimes`.
    #[serde(default)]
    pub mime: Option<String>,
    /// Video (required): duration in seconds, within `minduration..=maxduration`.
    #[serde(default)]
    pub duration: Option<u32>,
    /// Video (required): the protocol of the markup (2 VAST 2.0, 3 VAST 3.0, 7 VAST 4.0, ...),
    /// which must be in `video.protocols`.
    #[serde(default)]
    pub protocol: Option<u32>,
    /// The markup is safe on HTTPS pages (required when `imp.secure = 1`).
    #[serde(default = "yes")]
    pub secure: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_targeting_is_the_same_as_an_empty_one() {
        let base = r#"{"id":"c","adomain":["a.example"],"bid_cpm":"1","creatives":[]"#;
        let without: Campaign = serde_json::from_str(&format!("{base}}}")).unwrap();
        let empty: Campaign =
            serde_json::from_str(&format!("{base},\"targeting\":{{}}}}")).unwrap();
        assert_eq!(without.targeting, empty.targeting);
        assert!(without.targeting.test_requests);
        assert!(without.active);
    }
}
