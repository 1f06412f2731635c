//! Configuration as the operator meets it, through the real binary: `--print-config`,
//! secrets kept out of every output, and mistakes said plainly (exit 78, naming the
//! key or the path) rather than guessed around.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{root, Options, Server, TempDir};

const NOTICE_KEY: &str = "notice-key-that-must-stay-secret";
const ADMIN_TOKEN: &str = "admin-token-that-must-stay-secret";
/// Google's example keys (its documentation's), here as an exchange's secrets.
const ENCRYPTION_KEY: &str = "skU7Ax_NL5pPAFyKdkfZjZz2-VhIN8bjj1rVFOaJ_5o=";
const INTEGRITY_KEY: &str = "arO23ykdNqUQ5LEoQ0FVmPkBd7xB5CO89PDZlSjpFxo=";
const SECRETS: [&str; 4] = [NOTICE_KEY, ADMIN_TOKEN, ENCRYPTION_KEY, INTEGRITY_KEY];

/// The sample config with an exchange whose keys are in the file.
fn config_with_keys() -> String {
    let mut text = std::fs::read_to_string(root().join("config/shardbid.toml")).unwrap();
    text.push_str(&format!(
        "\n[exchanges.gdx]\nprice_encryption = \"google\"\n\
         encryption_key = \"{ENCRYPTION_KEY}\"\nintegrity_key = \"{INTEGRITY_KEY}\"\n"
    ));
    text
}

/// Runs the binary in `dir` with only `env` (and no inherited `SHARDBID_*`), failing
/// if it runs longer than 20 s.
fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shardbid"));
    cmd.current_dir(dir)
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start shardbid");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("shardbid {args:?} still running after 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// A campaigns file that needs no configured exchange, in `dir`.
fn campaigns_in(dir: &Path) -> String {
    let set = r#"{"campaigns": [{"id": "c", "adomain": ["c.example"], "bid_cpm": "1.00",
        "creatives": [{"id": "c", "kind": "banner", "w": 300, "h": 250, "adm": "<b>c</b>"}]}]}"#;
    let path = common::write_file(dir, "campaigns.json", set);
    path.to_str().unwrap().to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn print_config_shows_the_effective_settings_and_no_secret() {
    let dir = TempDir::new("print");
    let file = common::write_file(&dir.0, "shardbid.toml", &config_with_keys());
    let file = file.to_str().unwrap();
    let out = run(
        &dir.0,
        &[
            "--config",
            file,
            "--print-config",
            "--listen",
            "127.0.0.1:7000",
        ],
        &[
            ("SHARDBID_NOTICE_KEY", NOTICE_KEY),
            ("SHARDBID_ADMIN_TOKEN", ADMIN_TOKEN),
            ("SHARDBID_SHARDS", "3"),
            ("SHARDBID_LISTEN", "127.0.0.1:6000"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    for secret in SECRETS {
        assert!(!text.contains(secret), "{secret} printed:\n{text}");
    }
    let printed: toml::Value = toml::from_str(&text).expect("TOML");
    for path in [
        "money.notice_key",
        "admin.token",
        "exchanges.gdx.encryption_key",
        "exchanges.gdx.integrity_key",
    ] {
        let value = path.split('.').fold(&printed, |v, k| &v[k]);
        assert_eq!(value.as_str(), Some("<redacted>"), "{path}");
    }
    // defaults < file < environment < flags.
    assert_eq!(printed["server"]["listen"].as_str(), Some("127.0.0.1:7000"));
    assert_eq!(printed["server"]["shards"].as_integer(), Some(3));
    assert_eq!(
        printed["exchanges"]["adx"]["network_margin_ms"].as_integer(),
        Some(30)
    );
    assert_eq!(
        printed["admin"]["max_body_bytes"].as_integer(),
        Some(64 << 20)
    );
    // Every section is there, and the output is a config the server reads, but for
    // the placeholders, which it refuses to take for keys.
    let again = common::write_file(&dir.0, "printed.toml", &text);
    let out = run(
        &dir.0,
        &["--config", again.to_str().unwrap(), "--check-config"],
        &[],
    );
    assert_eq!(out.status.code(), Some(78));
    let err = stderr(&out);
    assert!(
        err.contains("money.notice_key: \"<redacted>\" is what --print-config shows"),
        "{err}"
    );
    assert!(!err.contains("unknown field"), "{err}");
}

#[test]
fn secrets_never_reach_the_log() {
    let server = Server::start_with(Options {
        config: Some(config_with_keys()),
        env: vec![
            ("RUST_LOG".into(), "debug".into()),
            ("SHARDBID_NOTICE_KEY".into(), NOTICE_KEY.into()),
            ("SHARDBID_ADMIN_TOKEN".into(), ADMIN_TOKEN.into()),
        ],
        ..Options::default()
    });
    // Traffic, a refused and an accepted admin request, a table change.
    let bid = server.bid(&common::fixture("simple-banner.json"));
    assert_eq!(bid.status, 200);
    let refused = common::Conn::open(server.admin).send(
        "GET",
        "/metrics",
        &[("authorization", &format!("Bearer {ADMIN_TOKEN}x"))],
        b"",
    );
    assert_eq!(refused.status, 401);
    assert_eq!(server.admin().post("/admin/reload", b"").status, 200);
    let mut server = server;
    server.signal("TERM");
    assert!(server
        .wait(Duration::from_secs(15))
        .is_some_and(|s| s.success()));
    std::thread::sleep(Duration::from_millis(100));
    let log = server.log.lock().unwrap().clone();
    // The debug level was on (a shard logs each table swap at debug).
    assert!(log.contains("Table swapped"), "{log}");
    for secret in SECRETS {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}

#[test]
fn a_missing_default_config_is_said_with_its_path() {
    let dir = TempDir::new("noconfig");
    // Without a notice key the defaults cannot start: one message says both things.
    let out = run(&dir.0, &[], &[]);
    assert_eq!(out.status.code(), Some(78));
    let err = stderr(&out);
    let cwd = dir.0.display().to_string();
    assert!(
        err.starts_with(&format!(
            "shardbid: no config file: config/shardbid.toml does not exist in {cwd}"
        )),
        "{err}"
    );
    assert!(err.contains("--config FILE or SHARDBID_CONFIG"), "{err}");
    assert!(err.contains("they cannot start the server"), "{err}");
    assert!(err.contains("money.notice_key: required"), "{err}");
    assert_eq!(err.matches("shardbid:").count(), 1, "{err}");

    // With what the defaults lack given by the environment, it runs, and says so.
    let campaigns = campaigns_in(&dir.0);
    let out = run(
        &dir.0,
        &["--check-config"],
        &[
            ("SHARDBID_NOTICE_KEY", NOTICE_KEY),
            ("SHARDBID_CAMPAIGNS", &campaigns),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("warning: no config file: config/shardbid.toml does not exist"),
        "{}",
        stderr(&out)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("config/shardbid.toml: ok"));

    // A config file named on purpose must exist.
    let out = run(&dir.0, &["--config", "nope.toml"], &[]);
    assert_eq!(out.status.code(), Some(78));
    assert_eq!(
        stderr(&out),
        "shardbid: config file nope.toml does not exist\n"
    );
}

#[test]
fn an_invalid_log_level_is_a_configuration_error() {
    let dir = TempDir::new("loglevel");
    let campaigns = campaigns_in(&dir.0);
    let campaigns = campaigns.as_str();
    let env = [("SHARDBID_NOTICE_KEY", NOTICE_KEY)];
    for level in ["verbose", "info,foo=bar=baz"] {
        let file = common::write_file(
            &dir.0,
            "shardbid.toml",
            &format!("[log]\nlevel = \"{level}\"\n"),
        );
        let file = file.to_str().unwrap();
        let start = [
            "--config",
            file,
            "--campaigns",
            campaigns,
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--shards",
            "1",
        ];
        for args in [&start[..], &[&start[..], &["--check-config"]].concat()] {
            let out = run(&dir.0, args, &env);
            assert_eq!(out.status.code(), Some(78), "{level} {args:?}");
            let err = stderr(&out);
            assert!(err.contains(&format!("log.level: \"{level}\"")), "{err}");
        }
    }
    // From the environment too; a good filter passes.
    let good = common::write_file(
        &dir.0,
        "good.toml",
        "[log]\nlevel = \"shardbid=debug,info\"\n",
    );
    let args = [
        "--config",
        good.to_str().unwrap(),
        "--campaigns",
        campaigns,
        "--check-config",
    ];
    let out = run(&dir.0, &args, &[env[0], ("SHARDBID_LOG_LEVEL", "loud")]);
    assert_eq!(out.status.code(), Some(78));
    assert!(stderr(&out).contains("log.level: \"loud\" is not a level"));
    let out = run(&dir.0, &args, &env);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn a_secret_on_a_line_that_does_not_parse_is_not_quoted() {
    let dir = TempDir::new("badsecret");
    let file = common::write_file(
        &dir.0,
        "shardbid.toml",
        "[admin]\ntoken = 98765432109876543210\n",
    );
    let out = run(
        &dir.0,
        &["--config", file.to_str().unwrap(), "--check-config"],
        &[],
    );
    assert_eq!(out.status.code(), Some(78));
    let err = stderr(&out);
    assert!(err.contains("shardbid.toml: line 2: token:"), "{err}");
    assert!(!err.contains("98765432109876543210"), "{err}");
}
