//! The module layering, checked: imports run one way, and the pure core never reaches
//! the runtime.
//!
//! Every top-level module of `src/` has a layer. A module may use modules of lower
//! layers only (`crate::x` paths, test code included): a cycle, or a pure module that
//! imports the runtime, fails here with the file and line. Adding a module means
//! giving it a layer below; ARCHITECTURE.md ("Layout") has the same stack.

use std::path::{Path, PathBuf};

/// Top-level modules from the bottom up. Modules on one line are on one layer and may
/// not use each other. `a::b` names a submodule that has a layer of its own (the event
/// log's records are pure, its writer is not).
const LAYERS: &[&[&str]] = &[
    // The pure core: no runtime, no I/O, testable anywhere.
    &["json", "admission", "encoding"],
    &["money"],
    &["openrtb", "events::record"],
    &["targeting"],
    &["auction"],
    &["pipeline"],
    // The runtime.
    &["config", "metrics", "net", "notify"],
    &["events", "telemetry", "process", "memory"],
    &["shard"],
    &["control"],
    &["http"],
    &["server"],
];

/// Layers below this index are the pure core.
const PURE: usize = 6;

/// Crates the pure core must not use: the runtime, I/O, logging.
const RUNTIME_CRATES: &[&str] = &[
    "glommio",
    "hyper",
    "http",
    "http_body_util",
    "crossbeam_channel",
    "signal_hook",
    "futures_lite",
    "tracing",
    "tracing_subscriber",
    "libc",
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The most specific layered module a path (`a` or `a::b`) falls in.
fn layered(path: &str) -> String {
    let mut parts = path.split("::");
    let first = parts.next().unwrap_or("");
    match parts.next() {
        Some(second) if layer_of(&format!("{first}::{second}")).is_some() => {
            format!("{first}::{second}")
        }
        _ => first.to_string(),
    }
}

/// The layered module a file of `src/` belongs to (`None` for the crate roots).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).unwrap();
    let parts: Vec<String> = rel
        .components()
        .map(|c| {
            c.as_os_str()
                .to_str()
                .unwrap()
                .trim_end_matches(".rs")
                .to_string()
        })
        .collect();
    match parts.first().map(String::as_str) {
        Some("lib" | "main") | None => None,
        _ => Some(layered(&parts.join("::"))),
    }
}

/// Every `crate::a::b` in `line` (also inside `use crate::{a::x, b::y}` groups), as
/// its layered module.
fn crate_paths(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let code = line.split("//").next().unwrap_or("");
    let path = |s: &str| -> String {
        s.trim()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect::<String>()
            .trim_end_matches(':')
            .to_string()
    };
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + 7..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = group.split('}').next().unwrap_or("");
            for item in inner.split(',') {
                out.push(path(item));
            }
        } else {
            out.push(path(rest));
        }
    }
    out.retain(|n| !n.is_empty());
    out.into_iter().map(|p| layered(&p)).collect()
}

/// External crates a line uses at its start (`use glommio::...`, `glommio::spawn_local`).
fn uses_crate(line: &str, krate: &str) -> bool {
    let code = line.split("//").next().unwrap_or("").trim_start();
    let code = code.strip_prefix("pub ").unwrap_or(code);
    let code = code.strip_prefix("use ").unwrap_or(code);
    code.starts_with(&format!("{krate}::"))
        || code.starts_with(&format!("{krate};"))
        || code.starts_with(&format!("{krate} as "))
        || code.contains(&format!(" {krate}::"))
        || code.contains(&format!("({krate}::"))
        || code.contains(&format!("<{krate}::"))
        || code.contains(&format!("&{krate}::"))
}

#[test]
fn imports_run_one_way_and_the_pure_core_stays_pure() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut problems = Vec::new();
    let mut seen_modules = std::collections::BTreeSet::new();
    for file in &files {
        let Some(module) = module_of(&src, file) else {
            continue;
        };
        seen_modules.insert(module.clone());
        let Some(mine) = layer_of(&module) else {
            problems.push(format!(
                "{}: module `{module}` has no layer in tests/layering.rs",
                file.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let at = format!("{}:{}", file.strip_prefix(&src).unwrap().display(), n + 1);
            for used in crate_paths(line) {
                if used == module || (module.starts_with(&format!("{used}::"))) {
                    continue;
                }
                match layer_of(&used) {
                    Some(l) if l < mine => {}
                    Some(_) => problems.push(format!(
                        "{at}: `{module}` uses `crate::{used}`, which is not below it"
                    )),
                    None => problems.push(format!(
                        "{at}: `crate::{used}` is not a module with a layer"
                    )),
                }
            }
            if mine < PURE {
                for krate in RUNTIME_CRATES {
                    if uses_crate(line, krate) {
                        problems.push(format!(
                            "{at}: the pure module `{module}` uses the runtime crate `{krate}`"
                        ));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
    // Every layer names a module that exists, so the table stays true.
    for module in LAYERS.iter().flat_map(|l| l.iter()) {
        assert!(
            seen_modules.contains(*module),
            "tests/layering.rs names `{module}`, which src/ no longer has"
        );
    }
}

#[test]
fn the_checker_sees_grouped_and_inline_paths() {
    assert_eq!(
        crate_paths("use crate::{auction::Bid, money::Micros};"),
        ["auction", "money"]
    );
    assert_eq!(
        crate_paths("use crate::events::record::Event; crate::events::writer::x"),
        ["events::record", "events"]
    );
    assert_eq!(
        crate_paths("    let x = crate::metrics::Outcome::Bid; // crate::http"),
        ["metrics"]
    );
    assert!(uses_crate("use glommio::net::TcpStream;", "glommio"));
    assert!(uses_crate("    glommio::spawn_local(x);", "glommio"));
    assert!(uses_crate("use glommio as g;", "glommio"));
    assert!(!uses_crate("use http_body_util::Full;", "http"));
}
