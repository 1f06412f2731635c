//! Test harness: starts the real `shardbid` binary on free ports and speaks raw
//! HTTP/1.1 to it, so tests see exactly what an exchange would.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(root().join("tests/fixtures").join(name)).expect("fixture")
}

pub const FIXTURES: [&str; 6] = [
    "simple-banner.json",
    "expandable-creative.json",
    "mobile.json",
    "video.json",
    "native-ad.json",
    "pmp-with-direct-deal.json",
];

/// `data` compressed as gzip, zlib (HTTP's `deflate`) and raw deflate, by flate2: an
/// implementation other than the server's.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn raw_deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// The key test servers sign notices with.
pub const TEST_NOTICE_KEY: &str = "test-notice-key";

/// A running server. Killed (SIGKILL) when dropped, unless it already exited.
pub struct Server {
    child: Child,
    pub traffic: SocketAddr,
    pub admin: SocketAddr,
    pub log: Arc<Mutex<String>>,
    /// Shards the server was started with.
    pub shards: usize,
    /// Where its event log goes (a temporary folder unless the test chose one).
    pub events_dir: PathBuf,
    /// The admin token it was started with (`SHARDBID_ADMIN_TOKEN` in the options'
    /// environment), which [`Server::admin`] connections send.
    pub admin_token: Option<String>,
    _dir: Option<TempDir>,
    _events: Option<TempDir>,
}

/// A temporary folder removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let p = std::env::temp_dir().join(format!(
            "shardbid-test-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    /// In memory (`/dev/shm`) where there is one: for event logs, whose fsyncs on a
    /// busy shared disk can stall a server's exit for seconds, which tests of timing
    /// (drains, takeovers) would misread.
    pub fn in_memory(tag: &str) -> TempDir {
        let shm = Path::new("/dev/shm");
        if !shm.is_dir() {
            return TempDir::new(tag);
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let p = shm.join(format!(
            "shardbid-test-{tag}-{}-{nanos}",
            std::process::id()
        ));
        match std::fs::create_dir_all(&p) {
            Ok(()) => TempDir(p),
            Err(_) => TempDir::new(tag),
        }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct Options {
    /// A config file's text (every key has a default); the sample exchanges are added.
    pub config: Option<String>,
    pub campaigns: Option<PathBuf>,
    pub shards: usize,
    pub env: Vec<(String, String)>,
    /// Fixed addresses (default: free ports on 127.0.0.1).
    pub listen: Option<SocketAddr>,
    pub admin_listen: Option<SocketAddr>,
    /// More command-line arguments (e.g. `--takeover`).
    pub args: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            config: None,
            campaigns: None,
            shards: 2,
            env: Vec::new(),
            listen: None,
            admin_listen: None,
            args: Vec::new(),
        }
    }
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(Options::default())
    }

    pub fn start_with(opts: Options) -> Server {
        let bin = env!("CARGO_BIN_EXE_shardbid");
        let mut cmd = Command::new(bin);
        let mut dir = None;
        let config = match &opts.config {
            None => root().join("config/shardbid.toml"),
            Some(toml) => {
                let d = TempDir::new("cfg");
                let path = d.0.join("shardbid.toml");
                // The sample campaigns target the sample exchanges.
                let mut text = toml.clone();
                if !text.contains("[exchanges") {
                    text.push_str("\n[exchanges.example]\n[exchanges.adx]\n");
                }
                std::fs::write(&path, text).unwrap();
                dir = Some(d);
                path
            }
        };
        let campaigns = opts
            .campaigns
            .clone()
            .unwrap_or_else(|| root().join("config/campaigns.json"));
        cmd.arg("--config")
            .arg(&config)
            .arg("--campaigns")
            .arg(&campaigns)
            .arg("--listen")
            .arg(opts.listen.map_or("127.0.0.1:0".into(), |a| a.to_string()))
            .arg("--admin-listen")
            .arg(
                opts.admin_listen
                    .map_or("127.0.0.1:0".into(), |a| a.to_string()),
            )
            .args(&opts.args)
            .arg("--shards")
            .arg(opts.shards.to_string())
            .env("RUST_LOG", "info")
            .env_remove("SHARDBID_LISTEN")
            // A test server never talks to a systemd that runs the test runner.
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            // Test configs carry no notice key: every test server signs with this one.
            .env("SHARDBID_NOTICE_KEY", TEST_NOTICE_KEY)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let events = (!opts.env.iter().any(|(k, _)| k == "SHARDBID_EVENTS_DIR"))
            .then(|| TempDir::in_memory("events"));
        if let Some(e) = &events {
            cmd.env("SHARDBID_EVENTS_DIR", &e.0);
        }
        // Load shedding answers requests that waited over 10 ms with a no-bid. Tests run
        // side by side on a busy machine (debug builds among them), where that happens
        // and would change answers that tests check; tests/overload.rs turns it on.
        let shed_set = opts
            .config
            .as_deref()
            .is_some_and(|c| c.contains("shed_queue_delay_ms"));
        if !shed_set {
            cmd.env("SHARDBID_SHED_QUEUE_DELAY_MS", "0");
        }
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        let events_dir = match &events {
            Some(e) => e.0.clone(),
            None => opts
                .env
                .iter()
                .find(|(k, _)| k == "SHARDBID_EVENTS_DIR")
                .map(|(_, v)| PathBuf::from(v))
                .unwrap_or_default(),
        };
        let mut child = cmd.spawn().expect("start shardbid");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("Listening") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(line.clone());
                    }
                }
                log2.lock().unwrap().push_str(&line);
                log2.lock().unwrap().push('\n');
            }
        });
        let line = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                panic!("server did not start:\n{}", log.lock().unwrap());
            }
        };
        let field = |name: &str| -> SocketAddr {
            let start = line.find(&format!("{name}=")).expect("address in log") + name.len() + 1;
            let rest = &line[start..];
            let end = rest
                .find(|c: char| c.is_whitespace() || c == ',' || c == '"')
                .unwrap_or(rest.len());
            rest[..end].parse().expect("socket address")
        };
        let admin_token = opts
            .env
            .iter()
            .find(|(k, _)| k == "SHARDBID_ADMIN_TOKEN")
            .map(|(_, v)| v.clone());
        Server {
            traffic: field("traffic"),
            admin: field("admin"),
            child,
            log,
            shards: opts.shards,
            events_dir,
            admin_token,
            _dir: dir,
            _events: events,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits for the process to exit, up to `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    pub fn conn(&self) -> Conn {
        Conn::open(self.traffic)
    }

    /// A connection to the admin listener that sends the server's admin token, if any.
    pub fn admin(&self) -> Conn {
        let mut conn = Conn::open(self.admin);
        conn.bearer = self.admin_token.clone();
        conn
    }

    pub fn bid(&self, body: &[u8]) -> Response {
        self.conn().post("/openrtb2/bid", body)
    }

    /// A per-shard series' value for every shard, in shard order (`name` without labels).
    pub fn per_shard(&self, name: &str) -> Vec<u64> {
        (0..self.shards)
            .map(|s| self.metric(&format!("{name}{{shard=\"{s}\"}}")))
            .collect()
    }

    /// One metric's value from `/metrics` (the full series name with labels).
    pub fn metric(&self, series: &str) -> u64 {
        let page = self.admin().get("/metrics").text();
        page.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no metric {series} in\n{page}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// One keep-alive HTTP/1.1 connection.
pub struct Conn {
    pub stream: TcpStream,
    buf: Vec<u8>,
    /// Sent as `Authorization: Bearer ...` with every request that carries none.
    pub bearer: Option<String>,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Conn {
            stream,
            buf: Vec::new(),
            bearer: None,
        }
    }

    pub fn get(&mut self, path: &str) -> Response {
        self.send("GET", path, &[], b"")
    }

    pub fn post(&mut self, path: &str, body: &[u8]) -> Response {
        self.send("POST", path, &[("content-type", "application/json")], body)
    }

    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        self.write_request(method, path, headers, body);
        self.read_response().expect("response")
    }

    pub fn write_request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nhost: test\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        let has_auth = headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("authorization"));
        if let (Some(token), false) = (&self.bearer, has_auth) {
            req.push_str(&format!("authorization: Bearer {token}\r\n"));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        self.stream.write_all(&bytes).expect("write");
    }

    /// Reads one response; `None` if the server closed the connection first.
    pub fn read_response(&mut self) -> Option<Response> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            if !self.fill() {
                return None;
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .map_or(0, |(_, v)| v.parse().unwrap());
        let total = head_end + 4 + len;
        while self.buf.len() < total {
            if !self.fill() {
                return None;
            }
        }
        let body = self.buf[head_end + 4..total].to_vec();
        self.buf.drain(..total);
        Some(Response {
            status,
            headers,
            body,
        })
    }

    /// True if the server closed the connection (EOF or reset) within `timeout`.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        self.stream.set_read_timeout(Some(timeout)).unwrap();
        let mut b = [0u8; 1];
        match self.stream.read(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        }
    }

    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A loopback address with a port nobody uses now, below the ephemeral range: a port
/// the kernel hands out to connecting clients could be taken by a test's own clients
/// between two processes binding it (a takeover), as an ephemeral port never is.
pub fn free_addr() -> SocketAddr {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let (low, high) = ephemeral_range();
    // Test processes run side by side: each starts at its own place in the range.
    let span = low.saturating_sub(10_000).max(1);
    let seed = std::process::id().wrapping_mul(7919);
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 10_000 + (seed.wrapping_add(n) % span);
        if (low..=high).contains(&port) {
            continue;
        }
        let addr = SocketAddr::from(([127, 0, 0, 1], port as u16));
        if std::net::TcpListener::bind(addr).is_ok() {
            return addr;
        }
    }
    panic!("no free port between 10000 and {low}");
}

/// `net.ipv4.ip_local_port_range`.
fn ephemeral_range() -> (u32, u32) {
    let text =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let mut it = text.split_whitespace().filter_map(|v| v.parse().ok());
    match (it.next(), it.next()) {
        (Some(a), Some(b)) => (a, b),
        _ => (32768, 60999),
    }
}

/// Writes `text` to a file in `dir` and returns its path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}
