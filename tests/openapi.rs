//! `docs/openapi.yaml` against the real server: the description is valid OpenAPI, and
//! schemathesis, fuzzing each listener of a running server from it, finds nothing. Its
//! default checks all run: no 5xx, every status, content type, header and body as
//! documented, schema-violating input rejected, schema-valid input accepted, 405 with
//! `Allow` for every undocumented method, and on the admin listener, which runs with
//! `admin.token` set, `401` for every operation that requires the token when a request
//! comes without it or with another one. `tests/schemathesis.toml` holds the
//! adjustments, with their reasons.
//!
//! The tools are Python packages, pinned in `.ci/requirements.txt` and installed by
//! `.ci/run`: `pip install -r .ci/requirements.txt`. A missing tool fails the test.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::time::Instant;

use common::{root, Options, Server, TempDir};

const SPEC: &str = "docs/openapi.yaml";
const CONFIG: &str = "tests/schemathesis.toml";

/// Test cases per operation in each generating phase. Enough to reach every documented
/// status of the bid and campaign operations; small enough that a run takes seconds.
const MAX_EXAMPLES: &str = "25";
/// A fixed seed: every run sends the same requests, so a failure reproduces.
const SEED: &str = "20261205";
/// The admin listener's token in [`the_admin_listener_answers_as_described`].
const ADMIN_TOKEN: &str = "openapi-admin-token-0123456789";

#[test]
fn the_description_is_valid_openapi() {
    let out = run(
        Command::new("openapi-spec-validator").arg(root().join(SPEC)),
        "openapi-spec-validator",
    );
    assert!(
        out.status.success(),
        "openapi-spec-validator {SPEC} failed:\n{}",
        output_text(&out)
    );
}

#[test]
fn the_traffic_listener_answers_as_described() {
    let server = Server::start();
    // No stateful phase: the traffic listener keeps no state between requests, so
    // chaining them (through a link schemathesis infers) would only cost time.
    fuzz(
        &server,
        server.traffic,
        "traffic",
        &["--phases", "examples,coverage,fuzzing"],
    );
}

/// `PUT /admin/campaigns` installs the generated sets on this throwaway server.
#[test]
fn the_admin_listener_answers_as_described() {
    let server = Server::start_with(Options {
        env: vec![("SHARDBID_ADMIN_TOKEN".into(), ADMIN_TOKEN.into())],
        ..Options::default()
    });
    // Every phase, stateful included: it follows the documented links from a
    // successful PUT or reload to `GET /admin/campaigns`, whose body then shows a
    // generated set written back. With the token given, schemathesis also sends each
    // operation that requires it without the token and with a wrong one, and expects
    // 401 (its `ignored_auth` check).
    let auth = format!("Authorization: Bearer {ADMIN_TOKEN}");
    fuzz(&server, server.admin, "admin", &["--header", &auth]);
}

/// schemathesis checks that a 405 carries `Allow`; this checks that it names exactly what
/// the description documents for the path (on the admin listener too).
#[test]
fn a_405_allows_exactly_the_documented_methods() {
    let server = Server::start();
    let cases = [
        (server.traffic, "/openrtb2/bid", "POST"),
        (server.traffic, "/openrtb2/bid/example", "POST"),
        (server.traffic, "/healthz", "GET, HEAD"),
        (server.traffic, "/readyz", "GET, HEAD"),
        (server.traffic, "/notice/win", "GET, POST"),
        (server.traffic, "/notice/billing", "GET, POST"),
        (server.traffic, "/notice/loss", "GET, POST"),
        (server.admin, "/healthz", "GET"),
        (server.admin, "/readyz", "GET"),
        (server.admin, "/metrics", "GET"),
        (server.admin, "/admin/campaigns", "GET, PUT"),
        (
            server.admin,
            "/admin/campaigns/acme-shoes-300x250/pause",
            "POST",
        ),
        (
            server.admin,
            "/admin/campaigns/no-such-campaign/resume",
            "POST",
        ),
        (server.admin, "/admin/reload", "POST"),
        (server.admin, "/admin/drain", "POST"),
    ];
    for (addr, path, allow) in cases {
        let resp = common::Conn::open(addr).send("DELETE", path, &[], b"");
        assert_eq!(resp.status, 405, "DELETE {path} on {addr}");
        assert_eq!(resp.header("allow"), Some(allow), "DELETE {path} on {addr}");
        assert_eq!(resp.header("content-type"), None, "DELETE {path} on {addr}");
        assert!(resp.body.is_empty(), "DELETE {path} on {addr}");
    }
}

/// Runs schemathesis (with `extra` options) on the operations tagged `tag`, against
/// `addr`, and asserts that it found nothing.
fn fuzz(server: &Server, addr: SocketAddr, tag: &str, extra: &[&str]) {
    // Its working folder is a fresh one: no stray `schemathesis.toml` is picked up and
    // nothing is written into the repository.
    let dir = TempDir::new("schemathesis");
    let started = Instant::now();
    let out = run(
        Command::new("schemathesis")
            .current_dir(&dir.0)
            .arg("--config-file")
            .arg(root().join(CONFIG))
            .arg("run")
            .arg(root().join(SPEC))
            .args(["--url", &format!("http://{addr}")])
            .args(["--include-tag", tag])
            .args(["--max-examples", MAX_EXAMPLES, "--seed", SEED])
            // The example database would replay earlier runs' failures: runs differ.
            .args(["--generation-database", "none"])
            // One request at a time: the machine is shared, and the order stays fixed.
            .args(["--workers", "1"])
            .args(["--request-timeout", "10", "--no-color"])
            .args(extra),
        "schemathesis",
    );
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "schemathesis found problems on the {tag} listener ({:.1} s):\n{}\n--- server log ---\n{}",
        took.as_secs_f64(),
        output_text(&out),
        server.log.lock().unwrap()
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let summary = text.lines().last().unwrap_or_default();
    eprintln!("schemathesis, {tag} listener: {summary} ({took:.1?})");
}

/// Runs `cmd`; a tool that is not installed fails, naming the package to install.
fn run(cmd: &mut Command, package: &str) -> Output {
    let program = cmd.get_program().to_string_lossy().into_owned();
    match cmd.output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`{program}` not found: install the Python package `{package}` \
             (pinned in .ci/requirements.txt: pip install -r .ci/requirements.txt)"
        ),
        Err(e) => panic!("cannot run `{program}`: {e}"),
    }
}

fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
