//! `shardbid-load`: generate OpenRTB traffic and campaign files, and load a bidder with
//! it in closed or open loop. See loadtest/README.md.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use shardbid_load::campaigns;
use shardbid_load::control::backoff::Backoff;
use shardbid_load::engine::{self, RunSpec};
use shardbid_load::http::target;
use shardbid_load::notices;
use shardbid_load::report::plot;
use shardbid_load::report::summary::{progress_line, Summary};
use shardbid_testkit::traffic::campaign::FULL_SHARE_MIN_CAMPAIGNS;
use shardbid_testkit::traffic::corpus;
use shardbid_testkit::traffic::request::Mix;

#[derive(Parser)]
#[command(
    name = "shardbid-load",
    version,
    about = "Load generator and benchmark driver for OpenRTB bidders"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write a corpus of OpenRTB 2.6 bid requests, one JSON body per file.
    Corpus(CorpusArgs),
    /// Write a shardbid campaign file consistent with the generated requests.
    Campaigns(CampaignArgs),
    /// Load one or more bidder URLs and report latency, outcomes and bids.
    Run(Box<RunArgs>),
}

#[derive(Args)]
struct CorpusArgs {
    /// Number of requests.
    #[arg(long)]
    count: usize,
    /// Folder to write req-000001.json, ... into (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Generator seed: the same seed gives the same bytes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Share of requests built to bid (0..1); the rest are built to get no bid.
    #[arg(long, default_value_t = 0.25)]
    bid_share: f64,
}

#[derive(Args)]
struct CampaignArgs {
    /// Number of campaigns (any size; 100,000 and more is fine).
    #[arg(long)]
    count: usize,
    /// Generator seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output file; standard output when absent.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct RunArgs {
    /// Target URL (repeatable); loopback only unless --allow-remote. Connections are
    /// spread over the targets round-robin.
    #[arg(long = "url", required = true)]
    urls: Vec<String>,
    /// Folder of request bodies (*.json, sent in file-name order, in rotation).
    #[arg(
        long,
        conflicts_with = "generate",
        required_unless_present = "generate"
    )]
    corpus: Option<PathBuf>,
    /// Generate this many request bodies in memory instead of reading a corpus.
    #[arg(long)]
    generate: Option<usize>,
    /// Seed for --generate.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Share of generated requests built to bid.
    #[arg(long, default_value_t = 0.25)]
    bid_share: f64,
    /// Open loop: requests per second (constant arrival rate). Closed loop without it.
    #[arg(long)]
    rate: Option<f64>,
    /// Keep-alive connections (spread over the threads).
    #[arg(long, short = 'c', default_value_t = 64)]
    connections: usize,
    /// Worker threads, each an event loop over its share of the connections.
    #[arg(long, short = 't', default_value_t = 1)]
    threads: usize,
    /// Recorded duration (e.g. 10s, 500ms, 2m).
    #[arg(long, short = 'd', default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Load sent before recording starts (not recorded).
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    warmup: Duration,
    /// Longest wait for the response to one attempt.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    timeout: Duration,
    /// Longest life of a request from its intended send time, queueing and retries
    /// included; older requests are counted as expired instead of sent.
    #[arg(long, value_parser = parse_duration)]
    deadline: Option<Duration>,
    /// Send bodies gzip-compressed (Content-Encoding: gzip).
    #[arg(long)]
    gzip: bool,
    /// Client-side limit: at most N requests in any sliding second, per target.
    #[arg(long)]
    limit: Option<u32>,
    /// Adaptive headroom: lower the limit while the service-time p99 of the last second
    /// is above this (needs --limit); recover additively otherwise.
    #[arg(long, value_parser = parse_duration)]
    latency_target: Option<Duration>,
    /// Bounded pending queue (requests waiting for a connection, the limiter or a
    /// retry); overflow is dead-lettered.
    #[arg(long, default_value_t = 100_000)]
    queue: usize,
    /// Retries of 429 and 503 answers, with exponential backoff and jitter.
    #[arg(long, default_value_t = 0)]
    retries: u32,
    /// First retry delay (doubles per retry, half of it random).
    #[arg(long, default_value = "10ms", value_parser = parse_duration)]
    backoff: Duration,
    /// Largest retry delay.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    backoff_max: Duration,
    /// Act as the exchange after the auction: call the notices of the bids received
    /// (win and billing for `--win-share` of them, loss for the rest), with duplicates,
    /// forgeries and over-price notices, and report what the server answered.
    #[arg(long)]
    notices: bool,
    /// With --notices: share of bids that win.
    #[arg(long, default_value_t = 0.3)]
    win_share: f64,
    /// With --notices: share of wins whose billing notice is retried.
    #[arg(long, default_value_t = 0.1)]
    duplicate_share: f64,
    /// With --notices: share of wins followed by a forged billing notice.
    #[arg(long, default_value_t = 0.05)]
    forged_share: f64,
    /// With --notices: share of wins followed by a billing notice above the bid.
    #[arg(long, default_value_t = 0.05)]
    over_price_share: f64,
    /// Print the summary as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Write an SVG chart (latency percentiles and per-second series) to this file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// No live progress line on stderr.
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Allow targets that are not on the loopback network.
    #[arg(long)]
    allow_remote: bool,
}

/// Parses `10s`, `250ms`, `100us`, `2m`, `1h`, `1.5s`; a bare number is seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let v: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration such as 10s or 250ms"))?;
    let scale = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "ns" => 1e-9,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        u => {
            return Err(format!(
                "'{s}': unknown unit '{u}' (use ns, us, ms, s, m or h)"
            ))
        }
    };
    let secs = v * scale;
    if !secs.is_finite() || secs > 7.0 * 86_400.0 {
        return Err(format!("'{s}' is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn check_share(share: f64) -> Result<Mix> {
    if !(0.0..=1.0).contains(&share) {
        bail!("--bid-share must be between 0 and 1");
    }
    Ok(Mix { bid_share: share })
}

fn corpus_cmd(a: CorpusArgs) -> Result<()> {
    let mix = check_share(a.bid_share)?;
    let stats = corpus::write(&a.out, a.count, a.seed, &mix)?;
    print!("{}", stats.describe());
    println!(
        "intended bid share: {:.1}% of requests, against a campaign file from `shardbid-load campaigns` of at least {} campaigns on a server with the example config (exchanges example and adx; EUR and GBP accepted)",
        100.0 * stats.bid_share(),
        FULL_SHARE_MIN_CAMPAIGNS
    );
    println!("wrote {} files to {}", stats.count, a.out.display());
    Ok(())
}

fn campaigns_cmd(a: CampaignArgs) -> Result<()> {
    match &a.out {
        Some(path) => {
            let f =
                File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
            let mut w = BufWriter::with_capacity(1 << 20, f);
            campaigns::write_json(&mut w, a.count, a.seed)
                .with_context(|| format!("cannot write {}", path.display()))?;
            let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            eprintln!(
                "wrote {} campaigns ({} bytes) to {}",
                a.count,
                bytes,
                path.display()
            );
        }
        None => {
            let stdout = std::io::stdout();
            let mut w = BufWriter::with_capacity(1 << 20, stdout.lock());
            campaigns::write_json(&mut w, a.count, a.seed)
                .context("cannot write to standard output")?;
            w.flush()?;
        }
    }
    if a.count >= FULL_SHARE_MIN_CAMPAIGNS {
        eprintln!("intended bid share: every request built to bid (25% by default in `corpus` and `run --generate`) fits one of these campaigns; the others fit none");
    } else {
        eprintln!(
            "warning: fewer than {FULL_SHARE_MIN_CAMPAIGNS} campaigns: the private-auction requests built to bid (about 2.5% of requests) will get no bid"
        );
    }
    Ok(())
}

fn run_cmd(a: RunArgs) -> Result<()> {
    let targets = a
        .urls
        .iter()
        .map(|u| target::parse(u, a.allow_remote))
        .collect::<Result<Vec<_>>>()?;
    let bodies = match (&a.corpus, a.generate) {
        (Some(dir), _) => corpus::read(dir)?,
        (None, Some(n)) if n > 0 => corpus::generate(n, a.seed, &check_share(a.bid_share)?).0,
        _ => bail!("give --corpus DIR or --generate N (N >= 1)"),
    };
    let notifier = a.notices.then(|| {
        let first = &targets[0];
        notices::Notifier::start(
            first.addr,
            notices::NoticePlan {
                win_share: a.win_share,
                duplicates: a.duplicate_share,
                forgeries: a.forged_share,
                over_price: a.over_price_share,
                connections: 4,
                seed: a.seed,
            },
        )
    });
    let mut spec = RunSpec {
        notices: notifier.as_ref().map(|n| n.sink()),
        targets,
        bodies,
        gzip: a.gzip,
        rate: a.rate,
        connections: a.connections,
        threads: a.threads,
        duration: a.duration,
        warmup: a.warmup,
        timeout: a.timeout,
        deadline: a.deadline,
        limit: a.limit,
        latency_target: a.latency_target,
        queue: a.queue,
        backoff: Backoff {
            retries: a.retries,
            base: a.backoff.as_nanos() as u64,
            max: a.backoff_max.as_nanos() as u64,
        },
    };
    spec.validate()?;
    let quiet = a.quiet;
    let mut on_second = |p: &engine::SecondPoint| {
        if !quiet {
            eprintln!("{}", progress_line(p));
        }
    };
    let result = engine::run(spec.clone(), &mut on_second)?;
    let summary = Summary::new(&spec, &result);
    drop(spec.notices.take());
    let notices = notifier.map(notices::Notifier::finish);
    if a.json {
        match &notices {
            Some(n) => {
                let mut v: serde_json::Value = serde_json::from_str(&summary.to_json())?;
                v["notices"] = serde_json::to_value(n)?;
                println!("{v}");
            }
            None => println!("{}", summary.to_json()),
        }
    } else {
        print!("{}", summary.to_table());
        if let Some(n) = &notices {
            print!("{}", n.to_table());
        }
    }
    if let Some(path) = &a.plot {
        let title = format!(
            "shardbid-load {} loop, {} connections{} - {}",
            summary.mode,
            spec.connections,
            spec.rate
                .map(|r| format!(", {r} req/s offered"))
                .unwrap_or_default(),
            summary.targets.join(", ")
        );
        let svg = plot::render(
            &title,
            &result.stats.latency,
            &result.stats.service,
            &result.seconds,
            spec.rate,
        );
        std::fs::write(path, svg).with_context(|| format!("cannot write {}", path.display()))?;
        if !quiet {
            eprintln!("chart written to {}", path.display());
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Corpus(a) => corpus_cmd(a),
        Cmd::Campaigns(a) => campaigns_cmd(a),
        Cmd::Run(a) => run_cmd(*a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shardbid-load: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("100us"), Ok(Duration::from_micros(100)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("1000h").is_err());
    }

    #[test]
    fn command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        assert!(Cli::try_parse_from([
            "shardbid-load",
            "run",
            "--url",
            "http://127.0.0.1:1/",
            "--corpus",
            "x",
            "--generate",
            "5"
        ])
        .is_err());
        assert!(
            Cli::try_parse_from(["shardbid-load", "run", "--url", "http://127.0.0.1:1/"]).is_err()
        );
        assert!(Cli::try_parse_from([
            "shardbid-load",
            "run",
            "--url",
            "http://127.0.0.1:1/",
            "--generate",
            "5",
            "--rate",
            "100"
        ])
        .is_ok());
    }
}
