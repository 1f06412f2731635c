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
#[command(version, about)]
struct Cli {
    /// Config file (TOML). Without one, the built-in defaults apply.
    #[arg(
        long,
        short,
        env = "SHARDBID_CONFIG",
        default_value = "config/shardbid.toml"
    )]
    config: PathBuf,
    /// Validate the config and the campaigns, then exit without binding any port.
    #[arg(long)]
    check_config: bool,
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
}

/// Exit code for a bad configuration (EX_CONFIG from sysexits.h).
const EX_CONFIG: u8 = 78;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cfg = match load(&cli) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("shardbid: {e:#}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let table = match load_campaigns(&cfg) {
        Ok(table) => table,
        Err(e) => {
            eprintln!("shardbid: {e:#}");
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
        for id in &unlimited {
            eprintln!("warning: campaign {id}: no budget, so no limit on what it spends");
        }
        for warning in cfg.warnings() {
            eprintln!("warning: {warning}");
        }
        println!(
            "{}: ok ({} campaigns, {} shards)",
            cli.config.display(),
            table.campaign_count(),
            cfg.shard_count()
        );
        return ExitCode::SUCCESS;
    }
    telemetry::init(&cfg.log);
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
    match server::run(cfg, table) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shardbid: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// defaults < file < SHARDBID_* < flags, then validation.
fn load(cli: &Cli) -> Result<Config> {
    let mut cfg = if cli.config.exists() {
        Config::from_file(&cli.config)?
    } else if std::env::var_os("SHARDBID_CONFIG").is_some()
        || cli.config != Path::new("config/shardbid.toml")
    {
        anyhow::bail!("config file {} does not exist", cli.config.display());
    } else {
        Config::default()
    };
    cfg.apply_env(std::env::vars())?;
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
    cfg.validate()
        .with_context(|| format!("{}", cli.config.display()))?;
    Ok(cfg)
}

/// Reads the campaigns and builds the first table (version 1), so that bad campaigns
/// fail start-up (and `--check-config`) with every problem listed, before any port is
/// bound. The server starts with this table.
fn load_campaigns(cfg: &Config) -> Result<Table> {
    let set = control::read_campaigns(&cfg.campaigns.file).context("campaigns.file")?;
    control::build_table(&set, &control::table_settings(cfg), 1)
        .with_context(|| format!("{}", cfg.campaigns.file.display()))
}
