//! Build script: the commit shardbid is built from, for `shardbid_build_info` and
//! `--version` (the compile-time env `BUILD_COMMIT`; not `SHARDBID_*`, which names
//! settings).
//!
//! The short hash of `HEAD` when the package is a git checkout of its own; else the
//! environment's `SHARDBID_COMMIT` (a Docker build, which has no `.git`, passes it as a
//! build argument); else `unknown`. It never fails the build.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SHARDBID_COMMIT");
    let commit = match git_commit(&dir) {
        Some(commit) => {
            watch_head(&dir);
            commit
        }
        None => std::env::var("SHARDBID_COMMIT")
            .ok()
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_alphanumeric()))
            .unwrap_or_else(|| "unknown".into()),
    };
    println!("cargo:rustc-env=BUILD_COMMIT={commit}");
}

/// `git`'s answer in `dir`, trimmed; `None` when git is missing or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
}

/// The short hash of `HEAD`, only when `dir` is the top of its checkout: a source
/// tarball unpacked inside some other repository must not take that one's commit.
fn git_commit(dir: &Path) -> Option<String> {
    let top = PathBuf::from(git(dir, &["rev-parse", "--show-toplevel"])?);
    if top.canonicalize().ok()? != dir.canonicalize().ok()? {
        return None;
    }
    git(dir, &["rev-parse", "--short", "HEAD"])
}

/// Reruns this script when `HEAD` moves, and only then: a commit, checkout or reset
/// rewrites `HEAD` or the branch it names, and appends to `HEAD`'s reflog. Only files
/// that exist are named (cargo reruns on every build for a missing one). Worktrees keep
/// `HEAD` in their own git dir and branches in the common one.
fn watch_head(dir: &Path) {
    let path = |args: &[&str]| git(dir, args).map(|p| dir.join(p));
    let mut files = Vec::new();
    if let Some(git_dir) = path(&["rev-parse", "--git-dir"]) {
        files.push(git_dir.join("HEAD"));
        files.push(git_dir.join("logs/HEAD"));
    }
    if let Some(common) = path(&["rev-parse", "--git-common-dir"]) {
        files.push(common.join("packed-refs"));
        if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
            files.push(common.join(branch));
        }
    }
    for f in files.iter().filter(|f| f.is_file()) {
        println!("cargo:rerun-if-changed={}", f.display());
    }
}
