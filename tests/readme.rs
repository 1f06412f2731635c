//! The README's example is the server's real answer: its curl command is sent to the
//! real server (sample configuration, notices based at the address the README shows),
//! and the answer it shows must have the same shape as what comes back, with the same
//! values. In a string, `…` stands for what differs on every run (the README marks
//! ids and signatures so); the text on either side must match. Stale docs fail here.

mod common;

use common::{root, Options, Server};
use serde_json::Value;

/// The request in the README's curl example.
struct Example {
    path: String,
    headers: Vec<(String, String)>,
    body_file: String,
    /// The answer shown after it.
    answer: Value,
    status: u16,
    url: String,
}

fn readme_example() -> Example {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme
        .find("## Try it")
        .expect("README has a 'Try it' section");
    let section = &readme[start..];
    let block = |from: &str, fence: &str| -> (String, usize) {
        let open = from
            .find(fence)
            .unwrap_or_else(|| panic!("no {fence} block"));
        let body = &from[open + fence.len()..];
        let close = body.find("\n```").expect("closed code block");
        (body[..close].to_string(), open + fence.len() + close)
    };
    let (curl, end) = block(section, "```sh\n");
    let (json, _) = block(&section[end..], "```json\n");
    let after_curl = &section[end..section[end..].find("```json").unwrap() + end];
    let status = after_curl
        .split('`')
        .find_map(|w| w.parse::<u16>().ok())
        .expect("the README names the status of its example");

    let words: Vec<String> = curl
        .replace("\\\n", " ")
        .split_whitespace()
        .map(|w| w.trim_matches('\'').to_string())
        .collect();
    let joined = curl.replace("\\\n", " ");
    let mut headers = Vec::new();
    for part in joined.split("-H '").skip(1) {
        let h = part.split('\'').next().unwrap();
        let (k, v) = h.split_once(':').unwrap();
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let body_file = words
        .iter()
        .find_map(|w| w.strip_prefix('@'))
        .expect("--data-binary @file")
        .to_string();
    let url = words
        .iter()
        .find(|w| w.starts_with("http://"))
        .expect("a URL");
    let path = url["http://".len()..]
        .split_once('/')
        .map(|(_, p)| format!("/{p}"))
        .unwrap();
    Example {
        path,
        headers,
        body_file,
        answer: serde_json::from_str(&json).expect("the README's answer is JSON"),
        status,
        url: url.clone(),
    }
}

/// Differences between what the README shows and what the server answered.
fn compare(shown: &Value, real: &Value, at: &str, out: &mut Vec<String>) {
    match (shown, real) {
        (Value::Object(a), Value::Object(b)) => {
            let (ka, kb): (Vec<_>, Vec<_>) = (a.keys().collect(), b.keys().collect());
            if ka != kb {
                out.push(format!("{at}: keys {ka:?} in the README, {kb:?} answered"));
            }
            for (k, v) in a {
                if let Some(w) = b.get(k) {
                    compare(v, w, &format!("{at}.{k}"), out);
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            if a.len() != b.len() {
                out.push(format!(
                    "{at}: {} items shown, {} answered",
                    a.len(),
                    b.len()
                ));
            }
            for (i, (v, w)) in a.iter().zip(b).enumerate() {
                compare(v, w, &format!("{at}[{i}]"), out);
            }
        }
        (Value::String(a), Value::String(b)) => {
            // `…` stands for what differs from run to run (ids, times, signatures):
            // the text on either side of it must be the answer's.
            let same = match a.split_once('…') {
                Some((head, tail)) => {
                    b.len() >= head.len() + tail.len() && b.starts_with(head) && b.ends_with(tail)
                }
                None => a == b,
            };
            if !same {
                out.push(format!("{at}: {a:?} shown, {b:?} answered"));
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(format!("{at}: {a} shown, {b} answered")),
    }
}

#[test]
fn the_readme_example_is_what_the_server_answers() {
    let ex = readme_example();
    let base = ex.url.split("/openrtb2").next().unwrap().to_string();
    let server = Server::start_with(Options {
        env: vec![("SHARDBID_NOTICE_BASE_URL".into(), base)],
        ..Options::default()
    });
    let body = std::fs::read(root().join(&ex.body_file)).unwrap();
    let headers: Vec<(&str, &str)> = ex
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let resp = server.conn().send("POST", &ex.path, &headers, &body);
    assert_eq!(resp.status, ex.status, "{}", resp.text());
    let mut diffs = Vec::new();
    compare(&ex.answer, &resp.json(), "answer", &mut diffs);
    assert!(
        diffs.is_empty(),
        "README.md's example answer is stale:\n{}\nthe server answered:\n{}",
        diffs.join("\n"),
        resp.text()
    );
}

#[test]
fn the_comparison_notices_a_stale_answer() {
    let real: Value = serde_json::json!({"id": "a", "n": 1, "s": "https://x/y", "l": [1]});
    let mut diffs = Vec::new();
    compare(
        &serde_json::json!({"id": "a", "n": 1, "s": "https://x…", "l": [1]}),
        &real,
        "",
        &mut diffs,
    );
    assert!(diffs.is_empty(), "{diffs:?}");
    for stale in [
        serde_json::json!({"id": "b", "n": 1, "s": "https://x…", "l": [1]}),
        serde_json::json!({"id": "a", "n": 1, "s": "https://z…", "l": [1]}),
        serde_json::json!({"id": "a", "s": "https://x…", "l": [1]}),
        serde_json::json!({"id": "a", "n": 1, "s": "https://x…", "l": [1, 2]}),
    ] {
        let mut diffs = Vec::new();
        compare(&stale, &real, "", &mut diffs);
        assert!(!diffs.is_empty(), "{stale}");
    }
}
