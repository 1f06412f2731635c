//! The config file and the campaign file, as `shardbid --check-config` reads them.
//!
//! The first byte picks the file; its other bits pick the exchange and the hour the
//! campaigns' bids are tried at. The rest is the file:
//! - even: the config (TOML), through `Config::from_file` and `Config::validate`; a
//!   config that validates also gets its table settings, shard settings, warnings and
//!   a table of the sample campaigns built with them, and its notice key works;
//! - odd: the campaign file (JSON), read as `control::read_campaigns` reads it and
//!   built into a table as `control::build_table` builds it (validation included). A
//!   table that builds is then served: the six IAB examples run through the pipeline
//!   against it, with the money side on (budgets, caps, signed notice URLs), and every
//!   bid response must be JSON. The set as `GET /admin/campaigns` writes it must read
//!   back as the same set, which builds again (so that it can be sent back with `PUT`).
//!
//! No input may panic: a bad file is an error, returned as one.
//!
//! `RUSTFLAGS="-C target-cpu=x86-64-v3" cargo +nightly fuzz run config fuzz/corpus/config -- -max_total_time=600`

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

use shardbid::config::Config;
use shardbid::control;
use shardbid::events::writer::ShardEvents;
use shardbid::money::notice::NoticeKey;
use shardbid::pipeline::{self, Answer, Money, Scratch};
use shardbid::shard::money::{Registry, ShardMoney};
use shardbid::shard::ShardSettings;
use shardbid::targeting::{CampaignSet, MatchContext, Table, TableSettings};

const FIXTURES: [&[u8]; 6] = [
    include_bytes!("../../tests/fixtures/expandable-creative.json"),
    include_bytes!("../../tests/fixtures/mobile.json"),
    include_bytes!("../../tests/fixtures/native-ad.json"),
    include_bytes!("../../tests/fixtures/pmp-with-direct-deal.json"),
    include_bytes!("../../tests/fixtures/simple-banner.json"),
    include_bytes!("../../tests/fixtures/video.json"),
];

struct Sample {
    /// The sample config, with a small ledger and cap table (built per input).
    cfg: Config,
    settings: TableSettings,
    campaigns: CampaignSet,
    /// Where the config under test is written, so that `Config::from_file` reads it.
    file: PathBuf,
}

fn sample() -> &'static Sample {
    static SAMPLE: OnceLock<Sample> = OnceLock::new();
    SAMPLE.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut cfg = Config::from_file(&root.join("config/shardbid.toml")).expect("config");
        cfg.money.reservations_per_shard = 1024;
        cfg.money.frequency_cap_entries = 1024;
        let campaigns = control::read_campaigns(&cfg.campaigns.file).expect("campaigns");
        let dir = std::env::temp_dir().join(format!("shardbid-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Sample {
            settings: control::table_settings(&cfg),
            cfg,
            campaigns,
            file: dir.join("shardbid.toml"),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, file)) = data.split_first() else {
        return;
    };
    if which & 1 == 0 {
        config(file);
    } else {
        campaigns(which, file);
    }
});

fn config(text: &[u8]) {
    let s = sample();
    std::fs::write(&s.file, text).expect("write the config");
    let Ok(cfg) = Config::from_file(&s.file) else {
        return;
    };
    if cfg.validate().is_err() {
        return;
    }
    // What start-up does with a config that validated (its campaigns file aside: the
    // sample campaigns stand in for it).
    let _ = cfg.warnings();
    let _ = ShardSettings::from_config(&cfg);
    let _ = control::build_table(&s.campaigns, &control::table_settings(&cfg), 1);
    let key = cfg.money.notice_key.expose().as_bytes();
    assert!(
        NoticeKey::new(key, &cfg.notice_base_url()).is_some(),
        "a config that validates signs notices: {:?}",
        cfg.notice_base_url()
    );
}

fn campaigns(which: u8, json: &[u8]) {
    let s = sample();
    let Ok(set) = serde_json::from_slice::<CampaignSet>(json) else {
        return;
    };
    let Ok(table) = control::build_table(&set, &s.settings, 1) else {
        return;
    };
    assert_eq!(table.campaign_count(), set.campaigns.len());

    // As `GET /admin/campaigns` lists it, read back by `PUT`.
    let listed = serde_json::to_vec(table.campaign_set()).expect("a set serializes");
    let back: CampaignSet = serde_json::from_slice(&listed)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&listed)));
    assert_eq!(&back, table.campaign_set());
    control::build_table(&back, &s.settings, 2).expect("the listed set builds again");

    serve(which, &table);
}

/// The six IAB examples against `table`, as a lone shard with the money side on.
fn serve(which: u8, table: &Table) {
    let s = sample();
    let (tx, _rx) = crossbeam_channel::unbounded();
    let (to_control, _control_rx) = crossbeam_channel::unbounded();
    let m = ShardMoney::from_config(&s.cfg, 0, 1, ShardEvents::off(0), vec![tx], to_control)
        .expect("money");
    let purses = Registry::default().purses(table);
    m.bind(table, &purses);
    for &(p, terms) in purses.iter() {
        let l = terms.limits;
        if let Some(amount) = [l.daily, l.total].into_iter().flatten().min() {
            m.wallet.granted(p, amount);
        }
    }
    let exchange = match (which >> 1) % 3 {
        0 => None,
        e => Some(e as u32 - 1),
    };
    let ctx = MatchContext {
        exchange,
        hour_of_week: (which as u16 >> 3) * 6 % 168,
    };
    let exchange_name = m.exchange(exchange).map_or("", |e| e.name.as_str());
    let mut scratch = Scratch::default();
    let mut body = Vec::new();
    let caps = m.caps.borrow();
    for fixture in FIXTURES {
        body.clear();
        body.extend_from_slice(fixture);
        let (now_s, now_ms) = m.now();
        let mut on_bid = |_: &shardbid::events::Event<'_>| {};
        let mut money = Money {
            wallet: &m.wallet,
            caps: &caps,
            key: &m.key,
            users: &m.users,
            now_s,
            now_ms,
            shard: 0,
            exchange,
            exchange_name,
            on_bid: &mut on_bid,
        };
        let answer = pipeline::process(
            &mut scratch,
            table,
            &mut body,
            &ctx,
            Some(&mut money),
            |_| true,
        );
        if answer == Answer::Bid {
            let out = scratch.take_out();
            if let Err(e) = serde_json::from_slice::<serde_json::Value>(out.as_slice()) {
                panic!("{e}: {}", String::from_utf8_lossy(out.as_slice()));
            }
        }
    }
}
