#!/usr/bin/env bash
# Profile-guided release builds of shardbid and shardbid-floor.
#
#   bash loadtest/pgo-build.sh
#   NO_BUILD=1 CARGO_TARGET_DIR=target/pgo bash loadtest/compare.sh    # compare the results
#
# 1. builds both servers instrumented (-Cprofile-generate);
# 2. trains each on loopback: shardbid-load, closed loop, 64 connections, first on the IAB
#    example requests (tests/fixtures), then on generated requests (mostly no-bids), each
#    for TRAIN_SECONDS; the server is then stopped with SIGTERM and writes its profile;
# 3. merges the profiles (llvm-profdata) and builds both again with -Cprofile-use.
#
# Output: target/pgo/release/{shardbid,shardbid-floor}, plus a plain shardbid-load beside
# them, so that compare.sh can run on that directory. The ordinary build is untouched.
#
# Settings (environment):
#   LLVM_PROFDATA  llvm-profdata to use. Default: the one of rustup's llvm-tools component
#                  (`rustup component add llvm-tools`), else llvm-profdata-N for rustc's
#                  LLVM major version N, else the newest /usr/lib/llvm-*/bin/llvm-profdata.
#                  It must read the raw profiles of rustc's LLVM; the merge step says so
#                  if it cannot.
#   TRAIN_SECONDS  seconds of each training load (default 8)
#   PGO_DIR        output directory (default target/pgo)
#
# Needs what the servers need: io_uring and enough locked memory (see README.md).
# Loopback only; every load stops by itself.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

OUT=${PGO_DIR:-target/pgo}
TRAIN_SECONDS=${TRAIN_SECONDS:-8}
HOST=$(rustc -vV | sed -n 's/^host: //p')
LLVM_MAJOR=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')

log() { echo "pgo-build: $*" >&2; }
die() {
    log "$*"
    exit 1
}

find_profdata() {
    if [[ -n ${LLVM_PROFDATA:-} ]]; then
        echo "$LLVM_PROFDATA"
        return
    fi
    local tools
    tools="$(rustc --print sysroot)/lib/rustlib/$HOST/bin/llvm-profdata"
    if [[ -x $tools ]]; then
        echo "$tools"
        return
    fi
    if command -v "llvm-profdata-$LLVM_MAJOR" >/dev/null; then
        command -v "llvm-profdata-$LLVM_MAJOR"
        return
    fi
    local newest
    newest=$(ls -d /usr/lib/llvm-*/bin/llvm-profdata 2>/dev/null | sort -V | tail -n 1 || true)
    if [[ -n $newest ]]; then
        echo "$newest"
        return
    fi
    command -v llvm-profdata || true
}

PROFDATA=$(find_profdata)
[[ -n $PROFDATA && -x $PROFDATA ]] ||
    die "no llvm-profdata found: run 'rustup component add llvm-tools' or set LLVM_PROFDATA"

# One build command for both servers, for the host triple given explicitly, with the
# profile flags added to the target's rustflags through --config: they join the flags of
# .cargo/config.toml (RUSTFLAGS would replace them), and apply to the servers' code only,
# not to build scripts and proc-macros.
build() {
    local dir=$1 flags=$2
    cargo build --release --target "$HOST" --target-dir "$dir" \
        --config "target.$HOST.rustflags=$flags" \
        -p shardbid -p shardbid-load --bin shardbid --bin shardbid-floor
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# train NAME COMMAND...: runs the instrumented server, loads it, stops it with SIGTERM.
train() {
    local name=$1
    shift
    ! port_open 18481 || die "port 18481 is in use: stop what listens there first"
    LLVM_PROFILE_FILE="$ROOT/$OUT/raw/$name-%p-%m.profraw" "$@" >"$OUT/$name-train.log" 2>&1 &
    local pid=$!
    for _ in $(seq 100); do
        port_open 18481 && break
        kill -0 "$pid" 2>/dev/null || die "$name did not start (see $OUT/$name-train.log)"
        sleep 0.1
    done
    port_open 18481 || die "$name did not open port 18481 (see $OUT/$name-train.log)"
    local url=http://127.0.0.1:18481/openrtb2/bid
    target/release/shardbid-load run --url "$url" --corpus tests/fixtures -c64 \
        -d "${TRAIN_SECONDS}s" >"$OUT/$name-load.log" 2>&1
    target/release/shardbid-load run --url "$url" --generate 2000 -c64 \
        -d "${TRAIN_SECONDS}s" >>"$OUT/$name-load.log" 2>&1
    kill -TERM "$pid"
    wait "$pid" || die "$name exited with status $? after SIGTERM (see $OUT/$name-train.log)"
}

rm -rf "$OUT/raw" "$OUT/release"
mkdir -p "$OUT/raw" "$OUT/release"

log "building the training client (cargo build --release -p shardbid-load)"
cargo build --release -p shardbid-load --bin shardbid-load

log "building instrumented servers into $OUT/gen"
build "$ROOT/$OUT/gen" "['-Cprofile-generate=$ROOT/$OUT/raw']"

log "training shardbid and shardbid-floor, ${TRAIN_SECONDS}s per load"
gen=$OUT/gen/$HOST/release
train shardbid "$gen/shardbid" --config config/shardbid.toml \
    --listen 127.0.0.1:18481 --admin-listen 127.0.0.1:19481
train floor "$gen/shardbid-floor" --listen 127.0.0.1:18481

log "merging profiles with $PROFDATA"
"$PROFDATA" merge -o "$OUT/merged.profdata" "$OUT"/raw/*.profraw ||
    die "$PROFDATA cannot read rustc's profiles (LLVM $LLVM_MAJOR): use the llvm-tools component or a newer llvm-profdata"

log "building optimised servers into $OUT/use"
build "$ROOT/$OUT/use" \
    "['-Cprofile-use=$ROOT/$OUT/merged.profdata', '-Cllvm-args=-pgo-warn-missing-function=false']"

cp "$OUT/use/$HOST/release/shardbid" "$OUT/use/$HOST/release/shardbid-floor" \
    target/release/shardbid-load "$OUT/release/"
log "done: $OUT/release/shardbid and $OUT/release/shardbid-floor"
log "compare: NO_BUILD=1 CARGO_TARGET_DIR=$OUT bash loadtest/compare.sh"
