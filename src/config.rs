//! Typed settings. Precedence: built-in defaults < the TOML file < `SHARDBID_*`
//! environment variables < command-line flags. `validate()` runs before any port is
//! bound and names the key that is wrong.
//!
//! `config/shardbid.toml` documents every key; a test keeps it parsing.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::money::Micros;

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub http: HttpConfig,
    pub bidding: BiddingConfig,
    pub campaigns: CampaignsConfig,
    /// Exchanges by name: each gets `POST /openrtb2/bid/{name}`.
    pub exchanges: BTreeMap<String, ExchangeConfig>,
    /// Currencies accepted besides USD: code -> USD per unit, e.g. `EUR = "1.08"`.
    pub currencies: BTreeMap<String, Micros>,
    pub money: MoneyConfig,
    pub events: EventsConfig,
    pub log: LogConfig,
    pub admin: AdminConfig,
}

/// A secret (a key): read from the config or the environment, never shown in logs or
/// debug output.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { REDACTED })
    }
}

/// `--print-config` writes a secret that is set as this placeholder (an unset one as
/// `""`), so the output can be shown and shared.
impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { REDACTED })
    }
}

/// What a set secret looks like in debug output and in `--print-config`.
pub const REDACTED: &str = "<redacted>";

/// The key of the sample configuration. It signs notices in development only: the
/// server warns loudly when it serves anything but loopback with it.
pub const DEVELOPMENT_NOTICE_KEY: &str = "development-only-notice-key-do-not-use-in-production";

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MoneyConfig {
    /// Where exchanges send win, billing and loss notices: the traffic listener as the
    /// exchanges reach it, e.g. `https://bid.example.com`. Empty: `http://` + the
    /// traffic address.
    pub notice_base_url: String,
    /// The key notices are signed with (HMAC-SHA256). Required. Env:
    /// `SHARDBID_NOTICE_KEY`.
    pub notice_key: Secret,
    /// A notice older than this (from its bid) is refused.
    pub notice_max_age_s: u64,
    /// A bid's reservation is released when no notice has claimed it after this long.
    #[serde(with = "duration_ms")]
    pub win_timeout_ms: Duration,
    /// The time zone whose midnight starts a new day for daily budgets: `UTC`, a fixed
    /// offset such as `+05:30`, or a zone name such as `America/New_York`.
    pub day_starts: String,
    /// Bids a shard keeps a record of at once (a bid's record holds its reservation
    /// until a notice settles it or the win timeout passes). A shard with this many
    /// reservations outstanding bids no more on campaigns with a budget.
    pub reservations_per_shard: usize,
    /// Users and campaigns a shard counts frequency-capped impressions for; when full,
    /// the oldest window is forgotten.
    pub frequency_cap_entries: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Write the event log.
    pub enabled: bool,
    /// Folder of the event files, relative to the working directory.
    pub dir: PathBuf,
    /// Share of bid events kept (0.0-1.0); money events are always kept.
    pub bid_sample: f64,
    /// A file is closed and a new one started past this size, in bytes ...
    pub max_file_bytes: u64,
    /// ... or this age.
    #[serde(with = "duration_secs")]
    pub rotate_s: Duration,
    /// Events are written and fsynced at least this often: what a crash can lose.
    #[serde(with = "duration_ms")]
    pub flush_ms: Duration,
    /// Bytes of events a shard holds while the writer is behind; beyond it bid events
    /// are dropped and counted (money events get eight times the room).
    pub buffer_bytes: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Bid traffic address; every shard binds it with SO_REUSEPORT.
    pub listen: SocketAddr,
    /// Admin and metrics address. Keep it on loopback or a private network.
    pub admin_listen: SocketAddr,
    /// Number of shards; 0 means one per online CPU.
    pub shards: usize,
    /// Pin shard i to the i-th online CPU.
    pub pin_shards: bool,
    /// On SIGTERM/SIGINT: time allowed for in-flight requests to finish before exit.
    #[serde(with = "duration_ms")]
    pub drain_timeout_ms: Duration,
    /// On SIGTERM/SIGINT: time `/readyz` answers 503 before the listeners close, so a
    /// load balancer stops sending new connections first.
    #[serde(with = "duration_ms")]
    pub drain_delay_ms: Duration,
    /// glommio I/O buffer memory per shard, in bytes (locked memory).
    pub io_memory: usize,
    /// io_uring submission ring depth per shard.
    pub ring_depth: usize,
    /// Even out connections across shards: a shard serving two or more connections
    /// above the least-loaded one hands a newly accepted connection to it.
    pub balance_connections: bool,
    /// Open traffic connections per shard; a connection over it is closed at once,
    /// unread. 0: as many as the open-files limit leaves room for (at most 32,768).
    pub max_connections: usize,
    /// When the open traffic connections fall by this many from their highest, freed
    /// memory is handed back to the OS (at most once a second). 0: never.
    pub memory_trim_connections: usize,
    /// How traffic connections' bytes move: "ring" (the shard's network ring: multishot
    /// receives into provided buffers, sends through the ring) or "poll" (glommio's
    /// streams: readiness, then `recv`/`send` calls).
    pub io: IoMode,
    /// Receive buffers in each shard's network ring (a power of two, at most 32768).
    pub recv_buffers: u16,
    /// Bytes per receive buffer.
    pub recv_buffer_bytes: u32,
}

/// How traffic connections' bytes move (see `server.io`).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum IoMode {
    Ring,
    Poll,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Largest accepted request body, in bytes (after decompression); larger gets 413.
    pub max_body_bytes: usize,
    /// A request (head and body) must arrive in full within this time of its first
    /// byte, or the connection is closed.
    #[serde(with = "duration_ms")]
    pub header_read_timeout_ms: Duration,
    /// Idle keep-alive connections are closed after this long (exchanges expect ~150 s).
    #[serde(with = "duration_ms")]
    pub keep_alive_timeout_ms: Duration,
    /// Set TCP_NODELAY on accepted connections.
    pub tcp_nodelay: bool,
    /// Largest request head (request line and headers), in bytes; larger gets 431.
    pub max_head_bytes: usize,
    /// Most headers in a request; more gets 431.
    pub max_headers: usize,
    /// Most imps in a bid request; more gets 400.
    pub max_imps: usize,
    /// Load shedding: a bid request that has waited longer than this in the shard's
    /// queue (the executor loop before it, and this loop so far) gets a no-bid
    /// (reason `overload`) without being parsed. 0 turns shedding off.
    #[serde(with = "duration_ms")]
    pub shed_queue_delay_ms: Duration,
    /// Bid responses at least this large are gzipped, for an exchange whose
    /// `gzip_responses` is on and whose request's `Accept-Encoding` takes gzip.
    pub gzip_min_bytes: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BiddingConfig {
    /// Seat used in `seatbid[].seat` for campaigns that name none.
    pub default_seat: String,
    /// Deadline when a request has no `tmax`, in milliseconds.
    pub default_tmax_ms: u32,
    /// Time reserved for the network round trip: the bidder's own budget is
    /// `tmax - network_margin_ms`.
    pub network_margin_ms: u32,
    /// Default win-notice URL template for campaigns without `nurl` (empty: none).
    pub nurl: String,
    /// Default billing-notice URL template for campaigns without `burl` (empty: none).
    pub burl: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CampaignsConfig {
    /// Campaign file (JSON), relative to the config file's folder.
    pub file: PathBuf,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ExchangeConfig {
    /// Override of `bidding.network_margin_ms` for this exchange.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_margin_ms: Option<u32>,
    /// Which notice charges the campaign: `billing` (the impression was billable) or
    /// `win`. The other one only marks the bid.
    pub charge_on: ChargeOn,
    /// How the exchange writes `${AUCTION_PRICE}`: `none` (a decimal) or `google`
    /// (Google Authorized Buyers' encrypted price).
    pub price_encryption: PriceEncryption,
    /// For `google`: the encryption and integrity keys, web-safe base64.
    pub encryption_key: Secret,
    pub integrity_key: Secret,
    /// Bid requests per second taken from this exchange, on the whole server (each
    /// shard takes its share); 0: no limit.
    pub max_qps: u64,
    /// The answer over `max_qps`: `"204"` (a no-bid, reason `quota`: what exchanges
    /// prefer) or `"429"` (with `Retry-After` and `X-RateLimit-*`).
    pub over_quota: OverQuotaAnswer,
    /// Gzip bid responses of at least `http.gzip_min_bytes` when the request's
    /// `Accept-Encoding` takes gzip.
    pub gzip_responses: bool,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
pub enum OverQuotaAnswer {
    #[default]
    #[serde(rename = "204")]
    NoBid,
    #[serde(rename = "429")]
    TooManyRequests,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ChargeOn {
    #[default]
    Billing,
    Win,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum PriceEncryption {
    #[default]
    None,
    Google,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `shardbid=debug`. `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".parse().expect("literal address"),
            admin_listen: "127.0.0.1:9100".parse().expect("literal address"),
            shards: 0,
            pin_shards: true,
            drain_timeout_ms: Duration::from_secs(10),
            drain_delay_ms: Duration::ZERO,
            io_memory: 2 << 20,
            ring_depth: 128,
            balance_connections: true,
            max_connections: 0,
            memory_trim_connections: 128,
            io: IoMode::Ring,
            recv_buffers: 1024,
            recv_buffer_bytes: 4096,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_body_bytes: 256 * 1024,
            header_read_timeout_ms: Duration::from_secs(10),
            keep_alive_timeout_ms: Duration::from_secs(150),
            tcp_nodelay: true,
            max_head_bytes: 16 * 1024,
            max_headers: 100,
            max_imps: 50,
            shed_queue_delay_ms: Duration::from_millis(10),
            gzip_min_bytes: 1024,
        }
    }
}

impl Default for BiddingConfig {
    fn default() -> Self {
        BiddingConfig {
            default_seat: "shardbid".into(),
            default_tmax_ms: 100,
            network_margin_ms: 20,
            nurl: String::new(),
            burl: String::new(),
        }
    }
}

impl Default for CampaignsConfig {
    fn default() -> Self {
        CampaignsConfig {
            file: PathBuf::from("campaigns.json"),
        }
    }
}

impl Default for MoneyConfig {
    fn default() -> Self {
        MoneyConfig {
            notice_base_url: String::new(),
            notice_key: Secret::default(),
            notice_max_age_s: 3600,
            win_timeout_ms: Duration::from_secs(300),
            day_starts: "UTC".into(),
            reservations_per_shard: 1 << 20,
            frequency_cap_entries: 1 << 20,
        }
    }
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            enabled: true,
            dir: PathBuf::from("data/events"),
            bid_sample: 1.0,
            max_file_bytes: 256 << 20,
            rotate_s: Duration::from_secs(3600),
            flush_ms: Duration::from_millis(1000),
            buffer_bytes: 4 << 20,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// The admin listener's own settings (`[admin]`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// The bearer token every admin request must carry (`Authorization: Bearer
    /// <token>`), but for `GET /healthz` and `GET /readyz`. Empty: no authentication,
    /// and the admin listener must stay on loopback or a private network. Env:
    /// `SHARDBID_ADMIN_TOKEN`.
    pub token: Secret,
    /// Largest accepted admin request body (a campaign upload), in bytes; larger gets
    /// 413. 100,000 campaigns take about 60 MB.
    pub max_body_bytes: usize,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            token: Secret::default(),
            max_body_bytes: 64 << 20,
        }
    }
}

/// The shortest `admin.token` accepted: a short token can be guessed by trying.
const MIN_TOKEN_LEN: usize = 16;

impl AdminConfig {
    /// What is wrong with these settings, each naming its key (never the token).
    fn problems(&self, errors: &mut Vec<String>) {
        let token = self.token.expose();
        if !token.is_empty() && token.len() < MIN_TOKEN_LEN {
            errors.push(format!(
                "admin.token: must be at least {MIN_TOKEN_LEN} characters long (or empty: no authentication)"
            ));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            errors.push(
                "admin.token: only printable ASCII without spaces (it travels in an HTTP header)"
                    .into(),
            );
        }
        if self.max_body_bytes < 1024 {
            errors.push("admin.max_body_bytes: must be at least 1024".into());
        }
    }
}

/// Checks a `log.level` filter the way telemetry reads it (tracing's `EnvFilter`), and
/// also refuses a bare word that is not a level: `EnvFilter` reads `verbose` as "every
/// event of the target `verbose`", which is never what was meant. A target's level is
/// written `target=level`.
pub fn check_log_level(level: &str) -> std::result::Result<(), String> {
    if level.trim().is_empty() {
        return Err("must not be empty".into());
    }
    for directive in level.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let bare = !directive.contains('=') && !directive.contains('[');
        if bare
            && directive
                .parse::<tracing::level_filters::LevelFilter>()
                .is_err()
        {
            return Err(format!(
                "{directive:?} is not a level (trace, debug, info, warn, error, off); \
                 a module's level is written target=level, e.g. shardbid=debug"
            ));
        }
    }
    tracing_subscriber::EnvFilter::try_new(level)
        .map(drop)
        .map_err(|e| format!("{level:?} is not a tracing filter: {e}"))
}

mod duration_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
}

mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis().min(u64::MAX as u128) as u64)
    }
}

impl Config {
    /// Reads a TOML file; relative paths inside it resolve against its folder.
    pub fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let mut cfg: Config = toml::from_str(&text).map_err(|e| parse_error(path, &text, &e))?;
        if cfg.campaigns.file.is_relative() {
            let dir = path.parent().unwrap_or(Path::new("."));
            cfg.campaigns.file = dir.join(&cfg.campaigns.file);
        }
        Ok(cfg)
    }

    /// Applies `SHARDBID_*` environment variables from `vars`.
    pub fn apply_env<I: IntoIterator<Item = (String, String)>>(&mut self, vars: I) -> Result<()> {
        for (key, value) in vars {
            let Some(name) = key.strip_prefix("SHARDBID_") else {
                continue;
            };
            let bad = |what: &str| anyhow::anyhow!("{key}={value:?}: {what}");
            match name {
                "LISTEN" => self.server.listen = value.parse().map_err(|_| bad("not an address"))?,
                "ADMIN_LISTEN" => {
                    self.server.admin_listen = value.parse().map_err(|_| bad("not an address"))?
                }
                "SHARDS" => self.server.shards = value.parse().map_err(|_| bad("not a number"))?,
                "CAMPAIGNS" => self.campaigns.file = PathBuf::from(value),
                "LOG_FORMAT" => {
                    self.log.format = match value.as_str() {
                        "text" => LogFormat::Text,
                        "json" => LogFormat::Json,
                        _ => return Err(bad("expected text or json")),
                    }
                }
                "LOG_LEVEL" => self.log.level = value,
                "NOTICE_KEY" => self.money.notice_key = Secret::new(value),
                "ADMIN_TOKEN" => self.admin.token = Secret::new(value),
                "EVENTS_DIR" => self.events.dir = PathBuf::from(value),
                "NOTICE_BASE_URL" => self.money.notice_base_url = value,
                "SHED_QUEUE_DELAY_MS" => {
                    self.http.shed_queue_delay_ms = Duration::from_millis(
                        value.parse().map_err(|_| bad("not a number of milliseconds"))?,
                    )
                }
                // SHARDBID_CONFIG names the file itself and is read by the CLI;
                // SHARDBID_COMMIT is the build's (build.rs), left over in a shell.
                "CONFIG" | "COMMIT" => {}
                _ => bail!("{key}: unknown setting (known: SHARDBID_CONFIG, SHARDBID_LISTEN, SHARDBID_ADMIN_LISTEN, SHARDBID_SHARDS, SHARDBID_CAMPAIGNS, SHARDBID_LOG_FORMAT, SHARDBID_LOG_LEVEL, SHARDBID_NOTICE_KEY, SHARDBID_NOTICE_BASE_URL, SHARDBID_EVENTS_DIR, SHARDBID_ADMIN_TOKEN, SHARDBID_SHED_QUEUE_DELAY_MS)"),
            }
        }
        Ok(())
    }

    /// Checks what serde cannot; each error names its key.
    pub fn validate(&self) -> Result<()> {
        let mut errors = Vec::new();
        if self.server.listen == self.server.admin_listen && self.server.listen.port() != 0 {
            errors.push("server.admin_listen: must differ from server.listen".to_string());
        }
        if self.server.shards > 1024 {
            errors.push(format!(
                "server.shards: {} is more than 1024",
                self.server.shards
            ));
        }
        if self.server.io_memory < 64 * 1024 {
            errors.push("server.io_memory: must be at least 65536 bytes".into());
        }
        if !self.server.recv_buffers.is_power_of_two() || self.server.recv_buffers > 32768 {
            errors.push("server.recv_buffers: must be a power of two up to 32768".into());
        }
        if !(512..=1 << 20).contains(&self.server.recv_buffer_bytes) {
            errors.push("server.recv_buffer_bytes: must be between 512 and 1048576".into());
        }
        if !self.server.ring_depth.is_power_of_two()
            || !(8..=32768).contains(&self.server.ring_depth)
        {
            errors.push("server.ring_depth: must be a power of two between 8 and 32768".into());
        }
        if self.http.max_body_bytes < 1024 {
            errors.push("http.max_body_bytes: must be at least 1024".into());
        }
        if self.http.max_head_bytes < 8192 {
            errors.push("http.max_head_bytes: must be at least 8192".into());
        }
        if !(1..=10_000).contains(&self.http.max_headers) {
            errors.push("http.max_headers: must be 1-10000".into());
        }
        if !(1..=10_000).contains(&self.http.max_imps) {
            errors.push("http.max_imps: must be 1-10000".into());
        }
        if self.http.shed_queue_delay_ms > Duration::from_secs(10) {
            errors.push("http.shed_queue_delay_ms: must be 0 (off) to 10000".into());
        }
        if self.http.header_read_timeout_ms.is_zero() {
            errors.push("http.header_read_timeout_ms: must be positive".into());
        }
        if self.http.keep_alive_timeout_ms.is_zero() {
            errors.push("http.keep_alive_timeout_ms: must be positive".into());
        }
        if self.bidding.default_seat.is_empty() {
            errors.push("bidding.default_seat: must not be empty".into());
        }
        if self.bidding.default_tmax_ms == 0 {
            errors.push("bidding.default_tmax_ms: must be positive".into());
        }
        if self.bidding.network_margin_ms >= self.bidding.default_tmax_ms {
            errors.push(
                "bidding.network_margin_ms: must be less than bidding.default_tmax_ms".into(),
            );
        }
        for name in self.exchanges.keys() {
            let ok = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok {
                errors.push(format!(
                    "exchanges.{name}: names use only letters, digits, '-' and '_'"
                ));
            }
        }
        for (code, rate) in &self.currencies {
            if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
                errors.push(format!(
                    "currencies.{code}: not an ISO-4217 code such as EUR"
                ));
            }
            if rate.0 <= 0 {
                errors.push(format!("currencies.{code}: the rate must be positive"));
            }
        }
        for (name, ex) in &self.exchanges {
            if ex.price_encryption == PriceEncryption::Google {
                for (key, v) in [
                    ("encryption_key", &ex.encryption_key),
                    ("integrity_key", &ex.integrity_key),
                ] {
                    if crate::money::notice::decode_key(v.expose()).is_none() {
                        errors.push(format!(
                            "exchanges.{name}.{key}: price_encryption = \"google\" needs the key, in web-safe base64"
                        ));
                    }
                }
            }
        }
        let m = &self.money;
        if m.notice_key.is_empty() {
            errors.push(
                "money.notice_key: required (or SHARDBID_NOTICE_KEY): the key notices are signed with".into(),
            );
        }
        if crate::money::notice::NoticeKey::new(b"k", &self.notice_base_url()).is_none() {
            errors.push(format!(
                "money.notice_base_url: '{}' is not an http(s) URL without quotes, '?' or '#'",
                m.notice_base_url
            ));
        }
        if m.win_timeout_ms.is_zero() {
            errors.push("money.win_timeout_ms: must be positive".into());
        }
        if Duration::from_secs(m.notice_max_age_s) < m.win_timeout_ms {
            errors.push(
                "money.notice_max_age_s: must be at least money.win_timeout_ms (a notice after the win timeout is still charged, as late, until this age)".into(),
            );
        }
        if let Err(e) = crate::money::day::DayClock::new(&m.day_starts) {
            errors.push(format!("money.day_starts: {e}"));
        }
        if m.reservations_per_shard < 1024 {
            errors.push("money.reservations_per_shard: must be at least 1024".into());
        }
        if m.frequency_cap_entries == 0 {
            errors.push("money.frequency_cap_entries: must be positive".into());
        }
        let e = &self.events;
        if !(0.0..=1.0).contains(&e.bid_sample) {
            errors.push("events.bid_sample: must be between 0.0 and 1.0".into());
        }
        if e.max_file_bytes < 4096 {
            errors.push("events.max_file_bytes: must be at least 4096".into());
        }
        if e.rotate_s.is_zero() || e.flush_ms.is_zero() {
            errors.push("events.rotate_s and events.flush_ms: must be positive".into());
        }
        if e.buffer_bytes < 4096 {
            errors.push("events.buffer_bytes: must be at least 4096".into());
        }
        if let Err(e) = check_log_level(&self.log.level) {
            errors.push(format!("log.level: {e}"));
        }
        self.admin.problems(&mut errors);
        for (key, secret) in self.secrets() {
            if secret.expose() == REDACTED {
                errors.push(format!(
                    "{key}: \"{REDACTED}\" is what --print-config shows in place of a secret, not a secret: set the real one"
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            bail!("invalid configuration:\n  {}", errors.join("\n  "))
        }
    }

    /// Every secret of the configuration, with its key: what checks that must miss none
    /// go through.
    pub fn secrets(&self) -> Vec<(String, &Secret)> {
        let mut out = vec![
            ("money.notice_key".to_string(), &self.money.notice_key),
            ("admin.token".to_string(), &self.admin.token),
        ];
        for (name, ex) in &self.exchanges {
            out.push((
                format!("exchanges.{name}.encryption_key"),
                &ex.encryption_key,
            ));
            out.push((format!("exchanges.{name}.integrity_key"), &ex.integrity_key));
        }
        out
    }

    /// The configuration as TOML, every key included and every secret as
    /// `"<redacted>"` (`--print-config`).
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).context("cannot write the configuration as TOML")
    }

    /// The base of notice URLs: `money.notice_base_url`, or the traffic address.
    pub fn notice_base_url(&self) -> String {
        if self.money.notice_base_url.is_empty() {
            format!("http://{}", self.server.listen)
        } else {
            self.money.notice_base_url.trim_end_matches('/').to_string()
        }
    }

    /// What is valid but almost certainly wrong in production, said at start (and by
    /// `--check-config`).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let ip = self.server.listen.ip();
        if self.money.notice_key.expose() == DEVELOPMENT_NOTICE_KEY && !ip.is_loopback() {
            out.push(format!(
                "THE DEVELOPMENT NOTICE KEY SIGNS NOTICES ON A NON-LOOPBACK ADDRESS ({}): anyone \
                 who has read config/shardbid.toml can forge win and billing notices. Set \
                 money.notice_key or SHARDBID_NOTICE_KEY to a secret of your own.",
                self.server.listen
            ));
        }
        if self.money.notice_base_url.is_empty() && ip.is_unspecified() {
            out.push(format!(
                "money.notice_base_url is not set, so notice URLs name {}, which no exchange \
                 can call: set it (or SHARDBID_NOTICE_BASE_URL) to the address exchanges reach \
                 this server at, e.g. https://bid.example.com",
                self.notice_base_url()
            ));
        }
        out
    }

    /// Shards to run: the configured count, or one per online CPU.
    pub fn shard_count(&self) -> usize {
        if self.server.shards > 0 {
            self.server.shards
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        }
    }
}

/// Keys whose values are secrets, wherever they appear in a config file.
const SECRET_KEYS: [&str; 4] = ["notice_key", "token", "encryption_key", "integrity_key"];

/// A config file's parse error, naming the file, line and column. The offending line
/// is not quoted: it may hold a secret. On a secret's own line the message is replaced
/// too, since serde's may quote the value ("invalid type: integer `123`").
fn parse_error(path: &Path, text: &str, e: &toml::de::Error) -> anyhow::Error {
    let Some(start) = e.span().map(|s| s.start) else {
        return anyhow::anyhow!("{}: {}", path.display(), e.message().trim_end());
    };
    let before = text.get(..start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    let key = text
        .lines()
        .nth(line - 1)
        .and_then(|l| l.split_once('='))
        .map(|(k, _)| k.trim().trim_matches('"'));
    match key {
        Some(k) if SECRET_KEYS.contains(&k) => anyhow::anyhow!(
            "{}: line {line}: {k}: not a valid TOML string (the value is a secret and is not shown)",
            path.display()
        ),
        _ => anyhow::anyhow!(
            "{}: line {line}, column {column}: {}",
            path.display(),
            e.message().trim_end()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_config_parses_and_validates() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let cfg = Config::from_file(&path).unwrap();
                cfg.validate()
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert!(
                    cfg.campaigns.file.exists(),
                    "{}: campaigns file missing",
                    path.display()
                );
                seen += 1;
            }
        }
        assert!(seen > 0);
    }

    #[test]
    fn shipped_config_documents_the_defaults() {
        // The sample file is the documentation of every key: what it sets must be what
        // the server does with no file at all (apart from the campaigns path).
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/shardbid.toml");
        let mut cfg = Config::from_file(&path).unwrap();
        cfg.campaigns = CampaignsConfig::default();
        let mut expected = Config {
            exchanges: cfg.exchanges.clone(),
            currencies: cfg.currencies.clone(),
            ..Config::default()
        };
        // The sample signs notices with the development key; there is no default key.
        assert_eq!(cfg.money.notice_key.expose(), DEVELOPMENT_NOTICE_KEY);
        expected.money.notice_key = cfg.money.notice_key.clone();
        assert_eq!(cfg, expected);
    }

    #[test]
    fn production_mistakes_are_warned_of() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/shardbid.toml");
        let mut cfg = Config::from_file(&path).unwrap();
        assert!(cfg.warnings().is_empty(), "{:?}", cfg.warnings());
        cfg.server.listen = "0.0.0.0:8080".parse().unwrap();
        let w = cfg.warnings();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("DEVELOPMENT NOTICE KEY") && !w[0].contains(DEVELOPMENT_NOTICE_KEY));
        assert!(w[1].contains("http://0.0.0.0:8080"), "{}", w[1]);
        cfg.money.notice_key = Secret::new("a key of our own");
        cfg.money.notice_base_url = "https://bid.example.com".into();
        assert!(cfg.warnings().is_empty(), "{:?}", cfg.warnings());
    }

    #[test]
    fn unknown_key_is_named() {
        let err = toml::from_str::<Config>("[server]\nlisten_addr = \"1.2.3.4:5\"").unwrap_err();
        assert!(err.to_string().contains("listen_addr"), "{err}");
    }

    #[test]
    fn validation_names_the_key() {
        let mut cfg = Config::default();
        cfg.bidding.network_margin_ms = 500;
        cfg.currencies.insert("euro".into(), Micros(1));
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("bidding.network_margin_ms"), "{err}");
        assert!(err.contains("currencies.euro"), "{err}");
    }

    #[test]
    fn environment_overrides_file() {
        let mut cfg = Config::default();
        cfg.apply_env([
            ("SHARDBID_LISTEN".to_string(), "127.0.0.1:1234".to_string()),
            ("SHARDBID_SHARDS".to_string(), "3".to_string()),
            ("PATH".to_string(), "/bin".to_string()),
        ])
        .unwrap();
        assert_eq!(cfg.server.listen.port(), 1234);
        assert_eq!(cfg.server.shards, 3);
        assert!(cfg
            .apply_env([("SHARDBID_SHARDS".into(), "many".into())])
            .is_err());
        assert!(cfg
            .apply_env([("SHARDBID_NOPE".into(), "1".into())])
            .is_err());
    }

    #[test]
    fn log_levels_are_checked_as_telemetry_reads_them() {
        for ok in [
            "info",
            "WARN",
            "shardbid=debug,info",
            "off",
            "info,hyper=warn",
        ] {
            assert_eq!(check_log_level(ok), Ok(()), "{ok}");
        }
        for bad in ["verbose", "info,foo=bar=baz", "", "  ", "info,loud"] {
            assert!(check_log_level(bad).is_err(), "{bad:?}");
        }
        let mut cfg = Config::default();
        cfg.money.notice_key = Secret::new("k");
        cfg.log.level = "verbose".into();
        let err = cfg.validate().unwrap_err().to_string();
        assert!(
            err.contains("log.level: \"verbose\" is not a level"),
            "{err}"
        );
    }

    #[test]
    fn admin_settings_are_checked_without_showing_the_token() {
        let mut cfg = Config::default();
        cfg.money.notice_key = Secret::new("k");
        cfg.validate().unwrap();
        cfg.admin.token = Secret::new("short-token");
        cfg.admin.max_body_bytes = 10;
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("admin.token: must be at least 16"), "{err}");
        assert!(err.contains("admin.max_body_bytes"), "{err}");
        assert!(!err.contains("short-token"), "{err}");
        cfg.admin.token = Secret::new("a token with spaces in it");
        cfg.admin.max_body_bytes = 1024;
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("admin.token: only printable ASCII"), "{err}");
        cfg.admin.token = Secret::new("0123456789abcdef");
        cfg.validate().unwrap();
        cfg.apply_env([("SHARDBID_ADMIN_TOKEN".into(), "fedcba9876543210".into())])
            .unwrap();
        assert_eq!(cfg.admin.token.expose(), "fedcba9876543210");
    }

    #[test]
    fn printed_config_hides_every_secret_and_reads_back() {
        let mut cfg = Config::default();
        cfg.money.notice_key = Secret::new("notice-secret");
        cfg.admin.token = Secret::new("admin-secret-0123456789");
        cfg.exchanges.insert(
            "gdx".into(),
            ExchangeConfig {
                price_encryption: PriceEncryption::Google,
                encryption_key: Secret::new("encryption-secret"),
                integrity_key: Secret::new("integrity-secret"),
                network_margin_ms: Some(7),
                ..ExchangeConfig::default()
            },
        );
        cfg.exchanges
            .insert("plain".into(), ExchangeConfig::default());
        let secrets = cfg.secrets();
        assert_eq!(secrets.len(), 6, "{secrets:?}");
        let text = cfg.to_toml().unwrap();
        for (key, secret) in &secrets {
            if !secret.is_empty() {
                assert!(!text.contains(secret.expose()), "{key} shown:\n{text}");
            }
        }
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back.money.notice_key.expose(), REDACTED);
        assert_eq!(back.admin.token.expose(), REDACTED);
        assert_eq!(back.exchanges["gdx"].integrity_key.expose(), REDACTED);
        assert_eq!(back.exchanges["plain"].encryption_key.expose(), "");
        // Everything but the secrets comes back as it was.
        let mut expected = cfg.clone();
        expected.money.notice_key = back.money.notice_key.clone();
        expected.admin.token = back.admin.token.clone();
        let gdx = expected.exchanges.get_mut("gdx").unwrap();
        gdx.encryption_key = Secret::new(REDACTED);
        gdx.integrity_key = Secret::new(REDACTED);
        assert_eq!(back, expected);
        // The placeholder is never taken for a key.
        let err = back.validate().unwrap_err().to_string();
        for key in [
            "money.notice_key",
            "admin.token",
            "exchanges.gdx.encryption_key",
        ] {
            assert!(err.contains(&format!("{key}: \"<redacted>\"")), "{err}");
        }
    }

    #[test]
    fn a_parse_error_names_the_line_but_never_quotes_a_secret() {
        let path = Path::new("x.toml");
        let text = "[server]\nshards = 1\n\n[admin]\ntoken = 123456789012345678\n";
        let e = toml::from_str::<Config>(text).unwrap_err();
        let msg = parse_error(path, text, &e).to_string();
        assert!(msg.starts_with("x.toml: line 5: token:"), "{msg}");
        assert!(!msg.contains("123456789012345678"), "{msg}");
        let text = "[money]\nnotice_key = secret-without-quotes\n";
        let e = toml::from_str::<Config>(text).unwrap_err();
        let msg = parse_error(path, text, &e).to_string();
        assert!(!msg.contains("secret-without"), "{msg}");
        // A misspelt key's line is not quoted either: its value may be a secret.
        let text = "[admin]\ntokn = \"admin-secret-0123456789\"\n";
        let e = toml::from_str::<Config>(text).unwrap_err();
        let msg = parse_error(path, text, &e).to_string();
        assert!(
            msg.starts_with("x.toml: line 2, column 1: unknown field `tokn`"),
            "{msg}"
        );
        assert!(!msg.contains("admin-secret"), "{msg}");
    }
}
