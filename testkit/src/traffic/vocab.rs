//! The vocabulary that both generators draw from: geos, devices, inventory, categories,
//! segments, deals, sizes, advertisers.
//!
//! Values are split into *lit* values (campaigns may target them) and *dark* values
//! (no generated campaign ever targets or accepts them). A request built to get no bid
//! carries a dark value in one dimension; a request built to bid carries only lit ones.

use crate::rng::Rng;

/// A region (ISO 3166-2) and some of its cities.
pub struct Region {
    pub code: &'static str,
    pub cities: &'static [&'static str],
}

/// A country (ISO 3166-1 alpha-3), its traffic weight and regions.
pub struct Country {
    pub code: &'static str,
    pub weight: u32,
    pub regions: &'static [Region],
}

macro_rules! country {
    ($code:literal, $w:literal, [$(($r:literal, [$($c:literal),*])),*]) => {
        Country { code: $code, weight: $w, regions: &[$(Region { code: $r, cities: &[$($c),*] }),*] }
    };
}

/// Countries that generated campaigns target.
pub const LIT_COUNTRIES: &[Country] = &[
    country!(
        "USA",
        30,
        [
            (
                "US-CA",
                ["Los Angeles", "San Francisco", "San Diego", "Sacramento"]
            ),
            ("US-NY", ["New York", "Buffalo", "Rochester"]),
            ("US-TX", ["Houston", "Austin", "Dallas", "San Antonio"]),
            ("US-FL", ["Miami", "Orlando", "Tampa"]),
            ("US-IL", ["Chicago", "Springfield"]),
            ("US-WA", ["Seattle", "Spokane"]),
            ("US-GA", ["Atlanta"]),
            ("US-MA", ["Boston", "Cambridge"])
        ]
    ),
    country!(
        "GBR",
        8,
        [
            ("GB-ENG", ["London", "Manchester", "Birmingham", "Leeds"]),
            ("GB-SCT", ["Glasgow", "Edinburgh"]),
            ("GB-WLS", ["Cardiff"])
        ]
    ),
    country!(
        "DEU",
        7,
        [
            ("DE-BE", ["Berlin"]),
            ("DE-BY", ["München", "Nürnberg"]),
            ("DE-HH", ["Hamburg"]),
            ("DE-NW", ["Köln", "Düsseldorf"])
        ]
    ),
    country!(
        "FRA",
        5,
        [
            ("FR-IDF", ["Paris", "Versailles"]),
            ("FR-ARA", ["Lyon", "Grenoble"])
        ]
    ),
    country!(
        "CAN",
        5,
        [
            ("CA-ON", ["Toronto", "Ottawa"]),
            ("CA-QC", ["Montréal", "Québec"]),
            ("CA-BC", ["Vancouver"])
        ]
    ),
    country!(
        "AUS",
        3,
        [
            ("AU-NSW", ["Sydney"]),
            ("AU-VIC", ["Melbourne"]),
            ("AU-QLD", ["Brisbane"])
        ]
    ),
    country!(
        "JPN",
        5,
        [
            ("JP-13", ["Tokyo"]),
            ("JP-27", ["Osaka"]),
            ("JP-23", ["Nagoya"])
        ]
    ),
    country!(
        "BRA",
        5,
        [
            ("BR-SP", ["São Paulo", "Campinas"]),
            ("BR-RJ", ["Rio de Janeiro"])
        ]
    ),
    country!("ESP", 3, [("ES-MD", ["Madrid"]), ("ES-CT", ["Barcelona"])]),
    country!("ITA", 3, [("IT-62", ["Roma"]), ("IT-25", ["Milano"])]),
    country!(
        "NLD",
        2,
        [
            ("NL-NH", ["Amsterdam", "Haarlem"]),
            ("NL-ZH", ["Rotterdam"])
        ]
    ),
    country!(
        "MEX",
        3,
        [
            ("MX-CMX", ["Ciudad de México"]),
            ("MX-JAL", ["Guadalajara"])
        ]
    ),
    country!(
        "IND",
        6,
        [
            ("IN-MH", ["Mumbai", "Pune"]),
            ("IN-DL", ["New Delhi"]),
            ("IN-KA", ["Bengaluru"])
        ]
    ),
    country!("SWE", 1, [("SE-AB", ["Stockholm"])]),
    country!("POL", 2, [("PL-14", ["Warszawa"]), ("PL-12", ["Kraków"])]),
    country!("KOR", 2, [("KR-11", ["Seoul"]), ("KR-26", ["Busan"])]),
];

/// Countries that no generated campaign targets.
pub const DARK_COUNTRIES: &[Country] = &[
    country!("ARG", 3, [("AR-C", ["Buenos Aires"])]),
    country!("ZAF", 2, [("ZA-GT", ["Johannesburg", "Pretoria"])]),
    country!("NGA", 2, [("NG-LA", ["Lagos"])]),
    country!("EGY", 2, [("EG-C", ["Cairo"])]),
    country!("IDN", 4, [("ID-JK", ["Jakarta"])]),
    country!("PHL", 3, [("PH-00", ["Manila"])]),
    country!("VNM", 3, [("VN-SG", ["Ho Chi Minh City"])]),
    country!("TUR", 3, [("TR-34", ["İstanbul"])]),
    country!("UKR", 1, [("UA-30", ["Kyiv"])]),
    country!("PAK", 2, [("PK-SD", ["Karachi"])]),
];

/// Draws a country by traffic weight.
pub fn pick_country<'a>(rng: &mut Rng, from: &'a [Country]) -> &'a Country {
    let total: u64 = from.iter().map(|c| c.weight as u64).sum();
    let mut x = rng.range(0, total.saturating_sub(1));
    for c in from {
        if x < c.weight as u64 {
            return c;
        }
        x -= c.weight as u64;
    }
    &from[from.len() - 1]
}

/// AdCOM device types: 1 mobile/tablet, 2 PC, 3 CTV, 4 phone, 5 tablet, 6 connected
/// device, 7 set-top box.
pub const DEVICE_TYPES: &[u32] = &[1, 2, 3, 4, 5, 6, 7];

/// A device profile: type, OS, OS versions, make/model and a user agent template.
pub struct DeviceProfile {
    pub devicetype: u32,
    pub os: &'static str,
    pub osv: &'static [&'static str],
    pub make: &'static str,
    pub models: &'static [&'static str],
    pub ua: &'static str,
    pub w: u32,
    pub h: u32,
}

/// Devices seen on web (site) inventory.
pub const WEB_DEVICES: &[(u32, DeviceProfile)] = &[
    (30, DeviceProfile { devicetype: 2, os: "Windows", osv: &["10", "11"], make: "", models: &[""],
        ua: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
        w: 1920, h: 1080 }),
    (12, DeviceProfile { devicetype: 2, os: "macOS", osv: &["13.6", "14.4"], make: "Apple", models: &["Macintosh"],
        ua: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
        w: 1440, h: 900 }),
    (3, DeviceProfile { devicetype: 2, os: "Linux", osv: &[""], make: "", models: &[""],
        ua: "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
        w: 1920, h: 1080 }),
    (25, DeviceProfile { devicetype: 4, os: "Android", osv: &["12", "13", "14"], make: "Samsung", models: &["SM-S918B", "SM-A546B", "SM-G991B"],
        ua: "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
        w: 412, h: 915 }),
    (22, DeviceProfile { devicetype: 4, os: "iOS", osv: &["16.7", "17.4", "17.5"], make: "Apple", models: &["iPhone"],
        ua: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
        w: 390, h: 844 }),
    (8, DeviceProfile { devicetype: 5, os: "iOS", osv: &["17.4"], make: "Apple", models: &["iPad"],
        ua: "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
        w: 820, h: 1180 }),
];

/// Devices seen on app inventory.
pub const APP_DEVICES: &[(u32, DeviceProfile)] = &[
    (38, DeviceProfile { devicetype: 4, os: "Android", osv: &["11", "12", "13", "14"], make: "Samsung", models: &["SM-A145F", "SM-G998B", "SM-S911U"],
        ua: "Dalvik/2.1.0 (Linux; U; Android 13; SM-A145F Build/TP1A.220624.014)",
        w: 1080, h: 2408 }),
    (10, DeviceProfile { devicetype: 4, os: "Android", osv: &["13", "14"], make: "Google", models: &["Pixel 7", "Pixel 8"],
        ua: "Dalvik/2.1.0 (Linux; U; Android 14; Pixel 8 Build/AP1A.240405.002)",
        w: 1080, h: 2400 }),
    (30, DeviceProfile { devicetype: 4, os: "iOS", osv: &["16.7", "17.4", "17.5"], make: "Apple", models: &["iPhone14,5", "iPhone15,2", "iPhone16,1"],
        ua: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
        w: 1170, h: 2532 }),
    (6, DeviceProfile { devicetype: 5, os: "Android", osv: &["13"], make: "Lenovo", models: &["TB-X606F"],
        ua: "Dalvik/2.1.0 (Linux; U; Android 13; TB-X606F Build/TP1A.220624.014)",
        w: 1200, h: 1920 }),
    (6, DeviceProfile { devicetype: 3, os: "tvOS", osv: &["17.4"], make: "Apple", models: &["AppleTV6,2"],
        ua: "AppleCoreMedia/1.0.0.21L569 (Apple TV; U; CPU OS 17_4 like Mac OS X; en_us)",
        w: 1920, h: 1080 }),
    (5, DeviceProfile { devicetype: 7, os: "Roku", osv: &["12.5"], make: "Roku", models: &["3941X", "4802X"],
        ua: "Roku/DVP-12.5 (12.5.0.4178-46)",
        w: 1920, h: 1080 }),
    (3, DeviceProfile { devicetype: 3, os: "Tizen", osv: &["6.5"], make: "Samsung", models: &["UN55TU7000"],
        ua: "Mozilla/5.0 (SMART-TV; LINUX; Tizen 6.5) AppleWebKit/537.36 (KHTML, like Gecko) 85.0.4183.93/6.5 TV Safari/537.36",
        w: 3840, h: 2160 }),
    (2, DeviceProfile { devicetype: 6, os: "Android", osv: &["11"], make: "Amazon", models: &["AFTMM"],
        ua: "Dalvik/2.1.0 (Linux; U; Android 11; AFTMM Build/RS8101.1849N)",
        w: 1920, h: 1080 }),
];

/// Operating systems campaigns may target (every OS of the device profiles).
pub const OSES: &[&str] = &[
    "Windows", "macOS", "Linux", "Android", "iOS", "tvOS", "Roku", "Tizen",
];

const SITE_WORDS: &[&str] = &[
    "daily", "city", "tech", "sports", "food", "travel", "auto", "money", "health", "game",
    "music", "style", "home", "news", "weather", "movie", "garden", "science", "family", "pet",
];
const SITE_SUFFIXES: &[&str] = &[
    "herald", "times", "hub", "zone", "world", "post", "digest", "wire", "planet", "insider",
];
const TLDS: &[&str] = &[
    ".com", ".net", ".co.uk", ".de", ".fr", ".com.br", ".io", ".jp",
];

/// Number of distinct site domains.
pub const DOMAIN_COUNT: usize = 20 * 10 * 8;

/// Site domain `i` (`0..DOMAIN_COUNT`), e.g. `sportsherald.de`.
pub fn domain(i: usize) -> String {
    let i = i % DOMAIN_COUNT;
    let w = SITE_WORDS[i % SITE_WORDS.len()];
    let s = SITE_SUFFIXES[(i / SITE_WORDS.len()) % SITE_SUFFIXES.len()];
    let t = TLDS[i / (SITE_WORDS.len() * SITE_SUFFIXES.len())];
    format!("{w}{s}{t}")
}

/// Domains every generated campaign denies (brand-unsafe inventory).
pub const UNSAFE_DOMAINS: &[&str] = &[
    "warez-downloads.net",
    "free-casino-spins.biz",
    "clickfarm-news.xyz",
];

const APP_WORDS: &[&str] = &[
    "puzzle",
    "solitaire",
    "weather",
    "radio",
    "fitness",
    "recipes",
    "chess",
    "racing",
    "photo",
    "wallpaper",
    "scanner",
    "translator",
    "podcast",
    "bubble",
    "match3",
    "sudoku",
    "flashlight",
    "stream",
    "quiz",
    "slots",
];
const APP_MAKERS: &[&str] = &[
    "acmegames",
    "bluefish",
    "pixelforge",
    "toucan",
    "northstar",
    "sunnyapps",
    "mobilezen",
    "kiwilabs",
];

/// Number of distinct apps.
pub const APP_COUNT: usize = 20 * 8 * 2;

/// App `i`: (bundle, name, domain). Even apps are Android package names, odd ones
/// numeric App Store ids.
pub fn app(i: usize) -> (String, String, String) {
    let i = i % APP_COUNT;
    let w = APP_WORDS[(i / 2) % APP_WORDS.len()];
    let m = APP_MAKERS[(i / 2 / APP_WORDS.len()) % APP_MAKERS.len()];
    let bundle = if i % 2 == 0 {
        format!("com.{m}.{w}")
    } else {
        format!("{}", 1_100_000_000 + i as u64 * 7919)
    };
    (bundle, format!("{w} by {m}"), format!("{m}.com"))
}

/// Number of distinct publishers; publisher `i` is `pub-{i}`.
pub const PUBLISHER_COUNT: usize = 600;

/// Publisher id `i`.
pub fn publisher(i: usize) -> String {
    format!("pub-{:04}", i % PUBLISHER_COUNT)
}

/// Content categories of sites and apps (IAB content taxonomy 1.0).
pub const CONTENT_CATS: &[&str] = &[
    "IAB1", "IAB1-1", "IAB1-6", "IAB2", "IAB2-3", "IAB3", "IAB3-1", "IAB4", "IAB5", "IAB6", "IAB9",
    "IAB9-30", "IAB12", "IAB12-2", "IAB13", "IAB13-7", "IAB15", "IAB15-10", "IAB17", "IAB17-12",
    "IAB18", "IAB19", "IAB19-18", "IAB20", "IAB20-3", "IAB22", "IAB10",
];

/// Categories generated creatives carry. None of them shares a top-level category
/// with [`BLOCKED_CATS`], so a request's `bcat` never blocks a generated creative.
pub const CREATIVE_CATS: &[&str] = &[
    "IAB1", "IAB2", "IAB3", "IAB4", "IAB5", "IAB13", "IAB17", "IAB18", "IAB19", "IAB20", "IAB22",
];

/// Categories requests block (sensitive categories, as exchanges send in `bcat`).
pub const BLOCKED_CATS: &[&str] = &[
    "IAB7-39", "IAB8-18", "IAB8-5", "IAB9-9", "IAB11-4", "IAB14-1", "IAB23", "IAB24", "IAB25",
    "IAB25-3", "IAB26",
];

/// Creative attributes generated creatives may carry.
pub const CREATIVE_ATTRS: &[u32] = &[1, 2, 3, 4];
/// Creative attributes requests block; disjoint from [`CREATIVE_ATTRS`].
pub const BLOCKED_ATTRS: &[u32] = &[6, 7, 8, 9, 10, 13, 14, 16, 17];

const ADV_BRANDS: &[&str] = &[
    "acme", "globex", "initech", "umbrella", "stark", "wayne", "wonka", "hooli", "vandelay",
    "soylent",
];
const ADV_LINES: &[&str] = &[
    "shop", "cars", "bank", "travel", "mobile", "foods", "games", "energy",
];

/// Number of distinct advertisers of generated campaigns.
pub const ADVERTISER_COUNT: usize = 10 * 8;

/// Advertiser domain `i`, e.g. `acmecars.com`.
pub fn advertiser(i: usize) -> String {
    let i = i % ADVERTISER_COUNT;
    format!(
        "{}{}.com",
        ADV_BRANDS[i % ADV_BRANDS.len()],
        ADV_LINES[i / ADV_BRANDS.len()]
    )
}

/// Advertiser domains requests block; no generated campaign advertises them.
pub const BLOCKED_ADVERTISERS: &[&str] = &[
    "apple.com",
    "go-text.me",
    "heywire.com",
    "rivalbrand.com",
    "cheapdeals.biz",
    "megacorp-ads.net",
];

/// App bundles requests block in `bapp`; no generated campaign advertises them.
pub const BLOCKED_BUNDLES: &[&str] = &["com.rival.app", "com.casino.slots", "1234567890"];

const SEGMENT_PROVIDERS: &[&str] = &["bk", "lt", "ey", "or"];

/// Number of distinct user segments.
pub const SEGMENT_COUNT: usize = 4 * 1500;

/// User segment `i`: (provider data id, segment id), e.g. `("lt", "lt-1042")`.
pub fn segment(i: usize) -> (&'static str, String) {
    let i = i % SEGMENT_COUNT;
    let p = SEGMENT_PROVIDERS[i % SEGMENT_PROVIDERS.len()];
    (p, format!("{p}-{}", i / SEGMENT_PROVIDERS.len()))
}

/// Deals held by the always-present deal campaigns; private auctions built to bid use them.
pub const ANCHOR_DEAL_COUNT: usize = 8;
/// All deals that generated campaigns may hold (anchors included).
pub const LIT_DEAL_COUNT: usize = 400;

/// Lit deal `i` (`0..LIT_DEAL_COUNT`; the first [`ANCHOR_DEAL_COUNT`] are anchors).
pub fn lit_deal(i: usize) -> String {
    format!("SB-DEAL-{:04}", i % LIT_DEAL_COUNT)
}

/// A deal no generated campaign holds.
pub fn dark_deal(i: usize) -> String {
    format!("XCH-PMP-{:05}", i % 10_000)
}

/// Banner sizes generated campaigns have creatives for.
pub const LIT_BANNER_SIZES: &[(u32, u32)] = &[
    (300, 250),
    (728, 90),
    (320, 50),
    (160, 600),
    (300, 600),
    (970, 250),
    (320, 100),
    (336, 280),
    (468, 60),
    (120, 600),
    (300, 50),
    (250, 250),
    (320, 480),
    (480, 320),
];

/// Banner sizes no generated creative has.
pub const DARK_BANNER_SIZES: &[(u32, u32)] = &[
    (234, 60),
    (180, 150),
    (88, 31),
    (1, 1),
    (970, 90),
    (200, 200),
];

/// Video MIME type every generated video creative uses.
pub const VIDEO_MIME: &str = "video/mp4";
/// Other video MIME types requests list.
pub const OTHER_VIDEO_MIMES: &[&str] = &[
    "video/webm",
    "application/javascript",
    "video/x-flv",
    "video/3gpp",
];
/// Video creatives: (duration s, VAST protocol).
pub const VIDEO_CREATIVES: &[(u32, u32)] = &[(15, 3), (30, 7)];

/// Exchange names of the example server config.
pub const EXCHANGES: &[&str] = &["example", "adx"];

/// Currencies of the example server config besides USD.
pub const LIT_CURRENCIES: &[&str] = &["EUR", "GBP"];
/// A currency the example server config does not accept.
pub const DARK_CURRENCY: &str = "JPY";

/// The default seat of the example server config, which generated campaigns bid as.
pub const DEFAULT_SEAT: &str = "shardbid";

/// Highest `max_cpm` (USD) of any generated campaign.
pub const MAX_CAMPAIGN_CPM: u32 = 25;
/// Lowest floor (USD) of requests built to be priced out; above every campaign.
pub const HIGH_FLOOR_MIN: u32 = 30;
/// Highest floor (USD cents) of an imp built to bid; below every broad campaign's bid.
pub const BID_FLOOR_MAX_CENTS: u64 = 150;
