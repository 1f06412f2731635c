//! A real Prometheus for tests: started on a free loopback port with its config and
//! TSDB in a temporary folder, queried over plain HTTP, killed when dropped.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{write_file, TempDir};

/// A running Prometheus. Dropping it kills the process, then removes its folder.
pub struct Prometheus {
    child: Child,
    pub addr: SocketAddr,
    dir: TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` as job `job` every second, with the rules
    /// in `rules` evaluated every second. It sends `token` as a bearer token, from a
    /// credentials file as docs/operations.md shows.
    pub fn start(target: SocketAddr, job: &str, rules: &Path, token: &str) -> Prometheus {
        // A port found free may be taken before Prometheus binds it: try again.
        for _ in 0..3 {
            let dir = TempDir::new("prometheus");
            let addr = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port");
            let credentials = write_file(&dir.0, "admin-token", token);
            // The scrape job as docs/operations.md shows it, the token in a file.
            let config = format!(
                r#"global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
rule_files:
  - {rules}
scrape_configs:
  - job_name: {job}
    authorization:
      credentials_file: {credentials}
    static_configs:
      - targets: ["{target}"]
"#,
                rules = rules.display(),
                credentials = credentials.display(),
            );
            let config = write_file(&dir.0, "prometheus.yml", &config);
            let log = File::create(dir.0.join("prometheus.log")).expect("log file");
            let child = tool("prometheus")
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.0.join("data").display()
                ))
                .arg(format!("--web.listen-address={addr}"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log file"))
                .stderr(log)
                .spawn()
                .expect("start prometheus");
            let mut prom = Prometheus { child, addr, dir };
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if matches!(http_get(addr, "/-/ready"), Ok((200, _))) {
                    return prom;
                }
                if prom.child.try_wait().ok().flatten().is_some() {
                    if prom.log().contains("address already in use") {
                        break;
                    }
                    panic!("prometheus exited:\n{}", prom.log());
                }
                assert!(
                    Instant::now() < deadline,
                    "prometheus not ready in 20 s:\n{}",
                    prom.log()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("prometheus found no free port in three tries");
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("prometheus.log")).unwrap_or_default()
    }

    /// Waits up to 20 s for `ok`; fails with Prometheus's log otherwise.
    pub fn wait_for(&mut self, what: &str, ok: impl Fn(&Prometheus) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ok(self) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("prometheus exited ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "no {what} in 20 s; prometheus log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs an instant query: its series, or why it failed.
    pub fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let v = self.get(&format!("/api/v1/query?query={}", encode(expr)))?;
        match v["data"]["resultType"].as_str() {
            Some("vector" | "matrix") => {
                Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
            }
            Some("scalar" | "string") => Ok(vec![v["data"]["result"].clone()]),
            other => Err(format!("result type {other:?}")),
        }
    }

    /// `None` when `expr` parses and returns a series, else the failure, named `what`.
    pub fn expect_series(&self, what: &str, expr: &str) -> Option<String> {
        match self.query(expr) {
            Ok(series) if !series.is_empty() => None,
            Ok(_) => Some(format!("{what}: no series\n    {expr}")),
            Err(e) => Some(format!("{what}: {e}\n    {expr}")),
        }
    }

    /// The first series' value of an instant query.
    pub fn value(&self, expr: &str) -> Option<f64> {
        let series = self.query(expr).ok()?;
        series.first()?["value"][1].as_str()?.parse().ok()
    }

    /// The alerting rules as Prometheus loaded them (`/api/v1/rules`).
    pub fn alert_rules(&self) -> Vec<Value> {
        let v = self
            .get("/api/v1/rules?type=alert")
            .unwrap_or_else(|e| panic!("/api/v1/rules: {e}"));
        v["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// An API call's JSON answer, when its status is "success".
    fn get(&self, path: &str) -> Result<Value, String> {
        let (status, body) = http_get(self.addr, path).map_err(|e| format!("request: {e}"))?;
        let v: Value = serde_json::from_str(&body)
            .map_err(|e| format!("HTTP {status}, not JSON ({e}): {body}"))?;
        if v["status"] != "success" {
            return Err(format!("HTTP {status}: {}: {}", v["errorType"], v["error"]));
        }
        Ok(v)
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A command for one of the Prometheus tools, which must be installed.
pub fn tool(name: &str) -> Command {
    match Command::new(name).arg("--version").output() {
        Ok(out) if out.status.success() => Command::new(name),
        Ok(out) => panic!("`{name} --version` failed: {}", out.status),
        Err(e) => panic!(
            "{name}: {e}. Install the Debian package `prometheus` \
             (apt-get install prometheus), which provides prometheus and promtool; \
             CI's .ci/run installs it."
        ),
    }
}

/// One HTTP/1.0 GET (so the server closes the connection after the body and never
/// sends it chunked): the status and the body.
fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_string()))
}

/// Percent-encodes a query parameter's value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
