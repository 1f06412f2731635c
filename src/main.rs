//! shardbid: CLI -> config -> validate -> telemetry -> shards -> wait -> drain.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;

use shardbid::config::{Config, LogFormat};
use shardbid::targeting::Table;
use shardbid::{control, server, telemetry};

/// Thread-per-core OpenRTB bidder.
#[derive(Parser, Debug)]
#[command(version = VERSION, about)]
struct Cli {
    /// Config file (TOML) [default: config/shardbid.toml; when that file does not exist,
    /// the built-in defaults apply, and the server says so]
    #[arg(long, short, env = "SHARDBID_CONFIG")]
    config: Option<PathBuf>,
    /// Validate the config and the campaigns, then exit without binding any port.
    #[arg(long)]
    check_config: bool,
    /// Print the effective configuration (defaults < file < environment < flags) as
    /// TOML, secrets as "<redacted>", then exit.
    #[arg(long, conflicts_with = "check_config")]
    print_config: bool,
    /// Bid traffic address (server.listen).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Admin and metrics address (server.admin_listen).
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// Number of shards, 0 = one per CPU (server.shards).
    #[arg(long)]
    shards: Option<usize>,
    /// Campaign file (campaigns.file).
    #[arg(long)]
    campaigns: Option<PathBuf>,
    /// Log format: text or json (log.format).
    #[arg(long, value_parser = ["text", "json"])]
    log_format: Option<String>,
    /// Take over from a shardbid already serving these addresses (a rolling restart):
    /// share its traffic port, serve, then ask it to drain (POST /admin/drain) and take
    /// its admin port once it lets go.
    #[arg(long)]
    takeover: bool,
}

/// Exit code for a bad configuration (EX_CONFIG from sysexits.h).
const EX_CONFIG: u8 = 78;

/// The config file read when none is named.
const DEFAULT_CONFIG: &str = "config/shardbid.toml";

/// `--version`: the crate's version and the commit it was built from.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("BUILD_COMMIT"), ")");

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Loaded { cfg, path, note } = match load(&cli) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("shardbid: {e:#}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    if cli.print_config {
        return print_config(&cfg);
    }
    let table = match load_campaigns(&cfg) {
        Ok(table) => table,
        Err(e) => {
            match &note {
                Some(note) => eprintln!("shardbid: {e:#}\n({note})"),
                None => eprintln!("shardbid: {e:#}"),
            }
            return ExitCode::from(EX_CONFIG);
        }
    };
    let unlimited: Vec<&str> = table
        .campaigns()
        .iter()
        .filter(|c| c.budget.is_none())
        .map(|c| c.id.as_str())
        .collect();
    if cli.check_config {
        if let Some(note) = &note {
            eprintln!("warning: {note}");
        }
        for id in &unlimited {
            eprintln!("warning: campaign {id}: no budget, so no limit on what it spends");
        }
        for warning in cfg.warnings() {
            eprintln!("warning: {warning}");
        }
        println!(
            "{}: ok ({} campaigns, {} shards)",
            path.display(),
            table.campaign_count(),
            cfg.shard_count()
        );
        return ExitCode::SUCCESS;
    }
    telemetry::init(&cfg.log);
    if let Some(note) = &note {
        tracing::warn!("{note}");
    }
    if !unlimited.is_empty() {
        tracing::warn!(
            campaigns = unlimited.len(),
            first = unlimited[0],
            "Campaigns without a budget: no limit on what they spend"
        );
    }
    for warning in cfg.warnings() {
        tracing::error!("{warning}");
    }
    match server::run(cfg, table, cli.takeover) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shardbid: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A configuration ready to use, and where it came from.
struct Loaded {
    cfg: Config,
    /// The config file read, or the default path that did not exist.
    path: PathBuf,
    /// Said at start (and by `--check-config`) when no config file was read.
    note: Option<String>,
}

/// defaults < file < SHARDBID_* < flags, then validation.
///
/// A config file named with `--config` or `SHARDBID_CONFIG` must exist. When the
/// default one does not, the built-in defaults apply: enough with `SHARDBID_*` settings
/// (a container's way), and said in one line either way, since the defaults alone
/// cannot start the server (`money.notice_key` has no default).
fn load(cli: &Cli) -> Result<Loaded> {
    let (path, named) = match &cli.config {
        Some(p) => (p.clone(), true),
        None => (PathBuf::from(DEFAULT_CONFIG), false),
    };
    let (mut cfg, note) = if path.exists() {
        (Config::from_file(&path)?, None)
    } else if named {
        anyhow::bail!("config file {} does not exist", path.display());
    } else {
        (Config::default(), Some(missing_config_note(&path)))
    };
    cfg.apply_env(std::env::vars())?;
    apply_flags(cli, &mut cfg);
    let checked = cfg.validate();
    match &note {
        None => checked.with_context(|| format!("{}", path.display()))?,
        Some(note) => {
            checked.with_context(|| format!("{note}, and they cannot start the server"))?
        }
    }
    Ok(Loaded { cfg, path, note })
}

/// What to say when the default config file is missing.
fn missing_config_note(path: &Path) -> String {
    let cwd = std::env::current_dir().map_or_else(|_| "?".into(), |d| d.display().to_string());
    format!(
        "no config file: {} does not exist in {cwd} (the default path; name one with \
         --config FILE or SHARDBID_CONFIG), so the built-in defaults and SHARDBID_* \
         settings apply",
        path.display()
    )
}

fn apply_flags(cli: &Cli, cfg: &mut Config) {
    if let Some(a) = cli.listen {
        cfg.server.listen = a;
    }
    if let Some(a) = cli.admin_listen {
        cfg.server.admin_listen = a;
    }
    if let Some(n) = cli.shards {
        cfg.server.shards = n;
    }
    if let Some(f) = &cli.campaigns {
        cfg.campaigns.file = f.clone();
    }
    if let Some(f) = &cli.log_format {
        cfg.log.format = if f == "json" {
            LogFormat::Json
        } else {
            LogFormat::Text
        };
    }
}

/// `--print-config`: the effective configuration on stdout.
fn print_config(cfg: &Config) -> ExitCode {
    match cfg.to_toml() {
        Ok(text) => {
            println!(
                "# shardbid's effective configuration: defaults < file < SHARDBID_* < flags.\n\
                 # Secrets that are set show as \"{}\"; paths as resolved.\n",
                shardbid::config::REDACTED
            );
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("shardbid: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Reads the campaigns and builds the first table (version 1), so that bad campaigns
/// fail start-up (and `--check-config`) with every problem listed, before any port is
/// bound. The server starts with this table.
fn load_campaigns(cfg: &Config) -> Result<Table> {
    let set = control::read_campaigns(&cfg.campaigns.file).context("campaigns.file")?;
    control::build_table(&set, &control::table_settings(cfg), 1)
        .with_context(|| format!("{}", cfg.campaigns.file.display()))
}
