//! Shared set-up for the pipeline bench and the allocation test: the sample
//! campaigns (or `CAMPAIGNS=file`), the IAB fixtures (or `CORPUS=dir`), and one
//! request run through the server's own pipeline.

use std::path::{Path, PathBuf};

use shardbid::config::Config;
use shardbid::control;
use shardbid::pipeline::{self, Answer, Scratch};
use shardbid::targeting::MatchContext;
use shardbid::targeting::Table;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The table the sample config serves, or one built from `CAMPAIGNS`.
pub fn table() -> Table {
    let cfg = Config::from_file(&root().join("config/shardbid.toml")).expect("sample config");
    let file = std::env::var_os("CAMPAIGNS")
        .map(PathBuf::from)
        .unwrap_or(cfg.campaigns.file.clone());
    let set = control::read_campaigns(&file).expect("campaigns");
    control::build_table(&set, &control::table_settings(&cfg), 1).expect("valid campaigns")
}

/// (name, body) pairs: the IAB fixtures, or every `*.json` in `CORPUS`.
pub fn bodies() -> Vec<(String, Vec<u8>)> {
    let dir = std::env::var_os("CORPUS")
        .map(PathBuf::from)
        .unwrap_or(root().join("tests/fixtures"));
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .expect("corpus folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| (name(&p), std::fs::read(&p).expect("body")))
        .collect();
    out.sort();
    out
}

fn name(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// One request, bytes in to bytes out, as a shard runs it: the body is copied into the
/// reused body buffer (the decoder rewrites it in place) and a bid is frozen into the
/// response bytes the HTTP layer would send.
pub fn run(
    scratch: &mut Scratch,
    table: &Table,
    body: &[u8],
    buf: &mut Vec<u8>,
) -> (Answer, usize) {
    buf.clear();
    buf.extend_from_slice(body);
    let ctx = MatchContext {
        exchange: None,
        hour_of_week: 30,
    };
    let answer = pipeline::process(scratch, table, buf, &ctx, None, |_| true);
    let sent = match answer {
        Answer::Bid => scratch.take_out().as_slice().len(),
        _ => 0,
    };
    (answer, sent)
}
