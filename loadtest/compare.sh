#!/usr/bin/env bash
# Compare shardbid with its references in one run: nginx returning a fixed bid-sized response
# (the HTTP ceiling), shardbid-floor (the glommio runtime floor), a conventional tokio + axum
# bidder (loadtest/axum-ref) and shardbid itself, pinned and unpinned. Same client (wrk), same
# bodies, same connection count, runs alternating A B C A B C, medians and ratios.
#
#   bash loadtest/compare.sh              # the five default servers, 3 rounds of 10 s
#   SERVERS="nginx floor" ROUNDS=5 DURATION=5 bash loadtest/compare.sh
#   CORPUS=path/to/requests/ EXCHANGE=example bash loadtest/compare.sh
#
# Run `bash loadtest/compare.sh --help` for every setting.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: [VAR=value ...] bash loadtest/compare.sh [--help]

Settings (environment):
  SERVERS      servers to run, in alternation order
               (default: "nginx floor axum shardbid shardbid-unpinned")
               nginx    = nginx fixed response, loadtest/nginx-static.conf, port 18082
               floor    = shardbid-floor, port 18083, shard i pinned to CPU i, on shardbid's
                          network ring (--io ring)
               floor-hyper = the same answer through hyper on shardbid's connection path
                          (--http hyper: its I/O adapter and hyper settings, the body read
                          as the bid handler reads it), port 18094: floor-hyper minus floor
                          is what hyper costs per request
               floor-poll = the same on glommio's streams (--io poll: readiness, then
                          recv/send syscalls), port 18092
               axum     = axum-ref (loadtest/axum-ref): tokio's multi-threaded runtime, one
                          worker per CPU (SHARDS sets TOKIO_WORKER_THREADS), axum, serde_json
                          and a formatted bid for the first imp; port 18090
               shardbid = shardbid --config config/shardbid.toml, port 18081 (admin 19101), the
                          sample campaigns with their budgets raised 100,000-fold so that no
                          run spends them, and reservations expiring after 10 s (wrk sends
                          no notices); shards pinned (the sample's pin_shards = true)
               shardbid-poll = shardbid with io = "poll" (glommio's streams instead of the
                          network ring; port 18093, admin 19107)
               shardbid-unpinned = the same with pin_shards = false (port 18091, admin
                          19106): with the client on the same CPUs, pinning lowers
                          requests/s (cores sit idle while wrk waits for a pinned shard);
                          CPU per request is the figure that carries over
               floor-pgo, shardbid-pgo = the same from PGO_DIR (ports 18084, 18085; admin
                          19102): the profile-guided builds of `bash loadtest/pgo-build.sh`
               floor-base, shardbid-base = the same from BASE_DIR (ports 18086, 18087;
                          admin 19103): an earlier build, to measure a change before/after
               shardbid-base2 = shardbid from BASE2_DIR, the same way (port 18089, admin
                          19105): a second earlier build in the same run
               shardbid-plain = shardbid (this build) with the sample campaigns' budgets,
                          pacing and frequency caps removed (port 18088, admin 19104): what
                          the money checks cost on the bid path
  ROUNDS       measured runs per server                  (default: 3)
  DURATION     seconds per run                           (default: 10)
  CONNECTIONS  wrk connections                           (default: 64)
  THREADS      wrk threads                               (default: 1)
  WARMUP       seconds of unrecorded load per server before round 1 (default: 1; 0 = none)
  BODY         request body file                         (default: tests/fixtures/simple-banner.json)
  CORPUS       directory of request bodies, rotated per request (overrides BODY)
  EXCHANGE     POST to /openrtb2/bid/EXCHANGE instead of /openrtb2/bid
  SHARDS       shard count for floor (--shards) and shardbid (SHARDBID_SHARDS); default: per CPU
  STATUS       0 = skip wrk's per-status counting (cheaper client; non-2xx still checked)
  NO_BUILD     1 = do not run `cargo build --release --workspace`
  CARGO_TARGET_DIR  where release binaries are looked up (default: ./target)
  PGO_DIR      where floor-pgo and shardbid-pgo are looked up (default: ./target/pgo;
               never built by this script: run loadtest/pgo-build.sh first)
  BASE2_DIR    where shardbid-base2 is looked up, like BASE_DIR
  BASE_DIR     where floor-base and shardbid-base are looked up (BASE_DIR/release/...;
               never built by this script: copy an earlier build's binaries there, and
               its config/ folder to BASE_DIR/config if the config format changed since)
  OPEN_LOOP    1 = after the closed-loop rounds, measure open-loop latency with
               shardbid-load at one offered rate for every server (default: 1)
  OPEN_SHARE   that rate as a share of the slowest server's median req/s (default: 0.5)
  OPEN_DURATION  seconds of the open-loop run per server (default: 5)

Output: header, one line per run, medians per server, ratios, then machine-readable lines
  RESULT server=NAME rps=N cpu_us=N ...   and   RESULT ratio=A/B rps=N cpu_us=N
Server CPU per request is the utime+stime delta of the server's processes during a run
(/proc/PID/stat), divided by the requests wrk completed.
EOF
}

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
    usage
    exit 0
fi
if [[ $# -gt 0 ]]; then
    echo "compare.sh: unknown argument '$1' (settings are environment variables; see --help)" >&2
    exit 64
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

SERVERS=${SERVERS:-"nginx floor axum shardbid shardbid-unpinned"}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
DURATION=${DURATION%s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-1}
WARMUP=${WARMUP:-1}
WARMUP=${WARMUP%s}
BODY=${BODY:-tests/fixtures/simple-banner.json}
CORPUS=${CORPUS:-}
EXCHANGE=${EXCHANGE:-}
SHARDS=${SHARDS:-}
STATUS=${STATUS:-1}
NO_BUILD=${NO_BUILD:-0}
OPEN_LOOP=${OPEN_LOOP:-1}
OPEN_SHARE=${OPEN_SHARE:-0.5}
OPEN_DURATION=${OPEN_DURATION:-5}
OPEN_DURATION=${OPEN_DURATION%s}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
[[ $TARGET_DIR == /* ]] || TARGET_DIR=$ROOT/$TARGET_DIR
PGO_DIR=${PGO_DIR:-$ROOT/target/pgo}
[[ $PGO_DIR == /* ]] || PGO_DIR=$ROOT/$PGO_DIR
BASE_DIR=${BASE_DIR:-$ROOT/target/base}
[[ $BASE_DIR == /* ]] || BASE_DIR=$ROOT/$BASE_DIR
BASE2_DIR=${BASE2_DIR:-$ROOT/target/base2}
[[ $BASE2_DIR == /* ]] || BASE2_DIR=$ROOT/$BASE2_DIR

for n in ROUNDS DURATION CONNECTIONS THREADS WARMUP; do
    [[ ${!n} =~ ^[0-9]+$ ]] || { echo "compare.sh: $n must be a whole number, got '${!n}'" >&2; exit 64; }
done
[[ -z $SHARDS || $SHARDS =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: SHARDS must be a positive number" >&2; exit 64; }
for s in $SERVERS; do
    case $s in nginx | floor | floor-hyper | floor-poll | axum | shardbid | shardbid-poll | shardbid-unpinned | floor-pgo | shardbid-pgo | floor-base | shardbid-base | shardbid-base2 | shardbid-plain) ;; *) echo "compare.sh: unknown server '$s' in SERVERS (nginx, floor, floor-hyper, floor-poll, axum, shardbid, shardbid-poll, shardbid-unpinned, floor-pgo, shardbid-pgo, floor-base, shardbid-base, shardbid-base2, shardbid-plain)" >&2; exit 64 ;; esac
done

declare -A PORT=([nginx]=18082 [floor]=18083 [shardbid]=18081 [floor-pgo]=18084 [shardbid-pgo]=18085
    [floor-base]=18086 [shardbid-base]=18087 [shardbid-plain]=18088 [shardbid-base2]=18089
    [axum]=18090 [shardbid-unpinned]=18091 [floor-poll]=18092 [shardbid-poll]=18093 [floor-hyper]=18094)
declare -A PID=()        # main PID of each running server
WRK_PID=                 # the running client, if any
declare -A FAILED=()     # server -> reason it was dropped
declare -A RPS_RUNS=() CPU_RUNS=() OTHER_RUNS=() NON2XX=()
WORK=$(mktemp -d "${TMPDIR:-/tmp}/shardbid-compare.XXXXXX")
CLK_TCK=$(getconf CLK_TCK)

log() { echo "compare.sh: $*" >&2; }

# ---------------------------------------------------------------- cleanup

stop_server() {
    local name=$1 pid=${PID[$1]:-}
    [[ -n $pid ]] || return 0
    unset "PID[$name]"
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    log "$name (pid $pid) ignored SIGTERM for 5 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local name
    [[ -z ${WRK_PID:-} ]] || kill -TERM "$WRK_PID" 2>/dev/null || true
    for name in "${!PID[@]}"; do stop_server "$name"; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

# ---------------------------------------------------------------- tools and build

# need_tool COMMAND PACKAGE: installs PACKAGE with apt-get when COMMAND is missing and we are root.
need_tool() {
    local cmd=$1 pkg=$2
    command -v "$cmd" >/dev/null 2>&1 && return 0
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        log "$cmd not found; installing Debian package $pkg"
        apt-get install -y -qq "$pkg" >/dev/null 2>&1 ||
            { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq "$pkg" >/dev/null 2>&1; } || true
    fi
    command -v "$cmd" >/dev/null 2>&1 && return 0
    log "$cmd not found; install it (apt-get install $pkg)"
    return 1
}

PATH=$PATH:/usr/sbin:/sbin   # nginx lives in sbin, which a non-root PATH may lack

selected() { [[ " $SERVERS " == *" $1 "* ]]; }

need_tool wrk wrk || exit 69
if selected nginx && ! need_tool nginx nginx-light; then
    FAILED[nginx]="nginx is not installed"
fi

if [[ $NO_BUILD != 1 ]] && { selected floor || selected floor-hyper || selected floor-poll || selected axum || selected shardbid ||
    selected shardbid-unpinned || selected shardbid-poll || selected shardbid-plain; }; then
    log "building release binaries (cargo build --release --workspace; NO_BUILD=1 skips)"
    if ! CARGO_TARGET_DIR=$TARGET_DIR cargo build --release --workspace >"$WORK/build.log" 2>&1; then
        tail -n 20 "$WORK/build.log" >&2
        log "workspace build failed; shardbid is skipped so that no stale binary is measured"
        FAILED[shardbid]="release build failed"
        FAILED[shardbid-unpinned]="release build failed"
        FAILED[shardbid-poll]="release build failed"
        FAILED[shardbid-plain]="release build failed"
        FAILED[axum]="release build failed"
        if selected floor && ! CARGO_TARGET_DIR=$TARGET_DIR cargo build --release -p shardbid-load \
            --bin shardbid-floor >"$WORK/build-floor.log" 2>&1; then
            tail -n 20 "$WORK/build-floor.log" >&2
            FAILED[floor]="release build failed"
        fi
    fi
fi

if [[ -n $CORPUS ]]; then
    [[ -d $CORPUS ]] || { log "CORPUS=$CORPUS is not a directory"; exit 66; }
    CORPUS=$(cd "$CORPUS" && pwd)
    BODY_DESC="corpus $CORPUS ($(find "$CORPUS" -maxdepth 1 -type f | wc -l) files, $(du -sh "$CORPUS" | cut -f1))"
else
    [[ -f $BODY ]] || { log "BODY=$BODY is not a file"; exit 66; }
    BODY=$(cd "$(dirname "$BODY")" && pwd)/$(basename "$BODY")
    BODY_DESC="$BODY ($(wc -c <"$BODY") bytes)"
fi
BID_PATH=/openrtb2/bid${EXCHANGE:+/$EXCHANGE}

# ---------------------------------------------------------------- servers

start_nginx() {
    mkdir -p "$WORK/nginx/logs" "$WORK/nginx/tmp"
    nginx -p "$WORK/nginx" -c "$ROOT/loadtest/nginx-static.conf" -g 'daemon off;' \
        >"$WORK/nginx.log" 2>&1 &
    PID[nginx]=$!
}

# run_floor NAME BINARY [HINT [ARGS...]], run_shardbid NAME BINARY ADMIN_PORT: start one build.
run_floor() {
    local name=$1 bin=$2
    [[ -x $bin ]] || { FAILED[$name]="$bin not found (${3:-build it or unset NO_BUILD})"; return 1; }
    "$bin" --listen 127.0.0.1:${PORT[$name]} ${SHARDS:+--shards "$SHARDS"} "${@:4}" >"$WORK/$name.log" 2>&1 &
    PID[$name]=$!
}

# run_shardbid NAME BINARY ADMIN_PORT [HINT [CAMPAIGNS [CONFIG_DIR]]]: a build of shardbid with
# CONFIG_DIR's shardbid.toml and campaigns (default: config/); its event log goes to the
# work folder.
run_shardbid() {
    local name=$1 bin=$2 admin=$3 campaigns=${5:-} dir=${6:-config}
    [[ -x $bin ]] || { FAILED[$name]="$bin not found (${4:-build it or unset NO_BUILD})"; return 1; }
    mkdir -p "$WORK/events-$name"
    local events=()
    grep -q '^\[events\]' "$dir/shardbid.toml" && events=(SHARDBID_EVENTS_DIR="$WORK/events-$name")
    env ${SHARDS:+SHARDBID_SHARDS="$SHARDS"} "${events[@]}" \
        "$bin" --config "$dir/shardbid.toml" --campaigns "${campaigns:-$dir/campaigns.json}" \
        --listen 127.0.0.1:${PORT[$name]} --admin-listen 127.0.0.1:$admin \
        >"$WORK/$name.log" 2>&1 &
    PID[$name]=$!
}

# The sample campaigns for a benchmark: with their budgets, pacing and frequency caps,
# budgets raised so that no run spends them (wrk sends no notices, so every bid's
# reservation stands for the win timeout), or (plain) without any of these. From
# SOURCE_DIR (default: config/, or an earlier build's config folder) into OUT_DIR
# (default: the work folder): money-campaigns.json, plain-campaigns.json, config/.
bench_campaigns() {
    local src=${1:-config} out=${2:-$WORK}
    mkdir -p "$out"
    python3 - "$src/campaigns.json" "$out/money-campaigns.json" "$out/plain-campaigns.json" <<'PY'
import json, sys
from decimal import Decimal
doc = json.load(open(sys.argv[1]))
for c in doc["campaigns"]:
    for k, v in c.get("budget", {}).items():
        c["budget"][k] = str(Decimal(v) * 100000)
json.dump(doc, open(sys.argv[2], "w"))
for c in doc["campaigns"]:
    for k in ("budget", "pacing", "frequency_cap"):
        c.pop(k, None)
json.dump(doc, open(sys.argv[3], "w"))
PY
    # wrk sends no notices, so every bid's reservation would stand for the sample's
    # 300 s win timeout: at tens of thousands of bids a second that fills a shard's
    # ledger (money.reservations_per_shard) and stops the bids. 10 s keeps it well
    # inside.
    mkdir -p "$out/config"
    sed 's/^win_timeout_ms = .*/win_timeout_ms = 10000/' "$src/shardbid.toml" >"$out/config/shardbid.toml"
    grep -q '^win_timeout_ms = 10000$' "$out/config/shardbid.toml" \
        || { echo "compare.sh: $src/shardbid.toml has no win_timeout_ms line to set" >&2; return 1; }
}

PGO_HINT="run bash loadtest/pgo-build.sh first"
start_floor() { run_floor floor "$TARGET_DIR/release/shardbid-floor"; }
start_floor-hyper() { run_floor floor-hyper "$TARGET_DIR/release/shardbid-floor" "" --http hyper; }
start_floor-poll() { run_floor floor-poll "$TARGET_DIR/release/shardbid-floor" "" --io poll; }
start_shardbid() {
    bench_campaigns || { FAILED[shardbid]="cannot write the benchmark campaigns (python3)"; return 1; }
    run_shardbid shardbid "$TARGET_DIR/release/shardbid" 19101 "" "$WORK/money-campaigns.json" "$WORK/config"
}
start_axum() {
    local bin=$TARGET_DIR/release/axum-ref
    [[ -x $bin ]] || { FAILED[axum]="$bin not found (build it or unset NO_BUILD)"; return 1; }
    env ${SHARDS:+TOKIO_WORKER_THREADS="$SHARDS"} "$bin" --listen 127.0.0.1:${PORT[axum]} \
        >"$WORK/axum.log" 2>&1 &
    PID[axum]=$!
}
# run_variant NAME ADMIN_PORT KEY VALUE: this build of shardbid with one key of the
# sample config changed (the key's line must exist in config/shardbid.toml).
run_variant() {
    local name=$1 admin=$2 key=$3 value=$4
    bench_campaigns || { FAILED[$name]="cannot write the benchmark campaigns (python3)"; return 1; }
    mkdir -p "$WORK/config-$name"
    sed "s/^$key = .*/$key = $value/" "$WORK/config/shardbid.toml" >"$WORK/config-$name/shardbid.toml"
    grep -qx "$key = $value" "$WORK/config-$name/shardbid.toml" \
        || { FAILED[$name]="config/shardbid.toml has no $key line to set"; return 1; }
    run_shardbid "$name" "$TARGET_DIR/release/shardbid" "$admin" "" "$WORK/money-campaigns.json" "$WORK/config-$name"
}
start_shardbid-unpinned() { run_variant shardbid-unpinned 19106 pin_shards false; }
start_shardbid-poll() { run_variant shardbid-poll 19107 io '"poll"'; }
start_floor-pgo() { run_floor floor-pgo "$PGO_DIR/release/shardbid-floor" "$PGO_HINT"; }
start_shardbid-pgo() {
    bench_campaigns || { FAILED[shardbid-pgo]="cannot write the benchmark campaigns (python3)"; return 1; }
    run_shardbid shardbid-pgo "$PGO_DIR/release/shardbid" 19102 "$PGO_HINT" "$WORK/money-campaigns.json" "$WORK/config"
}
BASE_HINT="copy an earlier build's binaries to BASE_DIR/release"
start_floor-base() { run_floor floor-base "$BASE_DIR/release/shardbid-floor" "$BASE_HINT"; }
# An earlier build runs with its own configuration when BASE_DIR/config has one (the
# config format may have changed since), its campaigns prepared as this build's are.
start_shardbid-base() {
    local dir=config
    [[ -f $BASE_DIR/config/shardbid.toml ]] && dir=$BASE_DIR/config
    bench_campaigns "$dir" "$WORK/base" || { FAILED[shardbid-base]="cannot write the benchmark campaigns for $dir"; return 1; }
    run_shardbid shardbid-base "$BASE_DIR/release/shardbid" 19103 "$BASE_HINT" "$WORK/base/money-campaigns.json" "$WORK/base/config"
}
start_shardbid-base2() {
    local dir=config
    [[ -f $BASE2_DIR/config/shardbid.toml ]] && dir=$BASE2_DIR/config
    bench_campaigns "$dir" "$WORK/base2" || { FAILED[shardbid-base2]="cannot write the benchmark campaigns for $dir"; return 1; }
    run_shardbid shardbid-base2 "$BASE2_DIR/release/shardbid" 19105 "$BASE_HINT" "$WORK/base2/money-campaigns.json" "$WORK/base2/config"
}
start_shardbid-plain() {
    bench_campaigns || { FAILED[shardbid-plain]="cannot write the campaigns without money terms (python3)"; return 1; }
    run_shardbid shardbid-plain "$TARGET_DIR/release/shardbid" 19104 "" "$WORK/plain-campaigns.json" "$WORK/config"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_server NAME: starts it and waits up to 15 s for its port; on failure records why.
start_server() {
    local name=$1 port=${PORT[$1]}
    if port_busy "$port"; then
        FAILED[$name]="port $port is already in use by another process"
        return 1
    fi
    "start_$name" || return 1
    for _ in $(seq 150); do
        if ! kill -0 "${PID[$name]}" 2>/dev/null; then
            local status=0
            wait "${PID[$name]}" 2>/dev/null || status=$?
            unset "PID[$name]"
            local output
            output=$(tail -n 3 "$WORK/$name.log" | tr '\n' ' ')
            FAILED[$name]="exited with status $status during start-up; its output: ${output:-(none)}"
            return 1
        fi
        port_busy "$port" && return 0
        sleep 0.1
    done
    FAILED[$name]="did not listen on port $port within 15 s"
    stop_server "$name"
    return 1
}

# server_pids NAME: the server's main PID and its direct children (nginx workers).
server_pids() {
    local pid=${PID[$1]}
    echo "$pid"
    pgrep -P "$pid" || true
}

# cpu_ticks PID...: sum of utime+stime (fields 14 and 15 of /proc/PID/stat) in clock ticks.
cpu_ticks() {
    local total=0 pid stat rest
    local -a f
    for pid in "$@"; do
        { stat=$(<"/proc/$pid/stat"); } 2>/dev/null || continue
        rest=${stat##*) }   # fields from 3 on; the command name may hold spaces
        read -r -a f <<<"$rest"
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

# machine_busy_ticks: CPU ticks spent by the whole machine (all CPUs) outside idle and iowait,
# steal included: time the hypervisor gave to someone else is noise too.
machine_busy_ticks() {
    local _cpu user nice system _idle _iowait irq softirq steal _rest
    read -r _cpu user nice system _idle _iowait irq softirq steal _rest </proc/stat
    echo $((user + nice + system + irq + softirq + steal))
}

# client_ticks: CPU ticks of this shell's finished children (wrk runs under `timeout`).
# `times` must run in this shell, not in a command substitution's subshell.
client_ticks() {
    times >"$WORK/times"
    awk -v hz="$CLK_TCK" 'NR == 2 {
        split($1, u, /[ms]/); split($2, s, /[ms]/)
        printf "%d", ((u[1] + s[1]) * 60 + u[2] + s[2]) * hz + 0.5 }' "$WORK/times"
}

now_ns() { date +%s%N; }

# run_wrk NAME SECONDS OUTFILE
run_wrk() {
    local name=$1 seconds=$2 out=$3
    # In the background so that a signal to this script is handled at once, not after the run.
    env BODY="$BODY" CORPUS="$CORPUS" EXCHANGE="$EXCHANGE" STATUS="$STATUS" \
        timeout $((seconds + 30)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${seconds}s" --timeout 2s \
        -s "$ROOT/loadtest/wrk/bid.lua" "http://127.0.0.1:${PORT[$name]}$BID_PATH" >"$out" 2>&1 &
    WRK_PID=$!
    local status=0
    wait "$WRK_PID" || status=$?
    WRK_PID=
    return "$status"
}

# Open-loop latency step: a fixed offered rate (e.g. 50% and 90% of the server's median
# requests/s) with an HDR histogram, p50/p99/p99.9/max. Closed-loop wrk latencies hide queueing
# delay, so this is where shardbid's own open-loop client (shardbid-load) will be called.
# Arguments: NAME PORT MEDIAN_RPS.
# Open loop: shardbid-load at a constant arrival rate, latency from each request's
# intended send time (no coordinated omission). Every server gets the same offered
# rate: OPEN_SHARE (default 0.5) of the slowest server's closed-loop median.
open_loop_step() {
    local name=$1 port=$2 rate=$3
    local load="$TARGET_DIR/release/shardbid-load"
    if [[ ! -x $load ]]; then
        printf '  %-17s skipped: %s not built\n' "$name" "$load"
        return
    fi
    local bodies=$CORPUS
    if [[ -z $bodies ]]; then
        bodies="$WORK/open-loop-body"
        mkdir -p "$bodies"
        cp "$BODY" "$bodies/"
    fi
    local out="$WORK/open-$name.json"
    if ! timeout $((OPEN_DURATION + 30)) "$load" run --url "http://127.0.0.1:$port$BID_PATH" \
        --corpus "$bodies" --rate "$rate" -c "$CONNECTIONS" -d "${OPEN_DURATION}s" --warmup 1s \
        --json -q >"$out" 2>"$WORK/open-$name.err"; then
        printf '  %-17s open-loop run failed: %s\n' "$name" "$(tail -1 "$WORK/open-$name.err")"
        return
    fi
    python3 - "$name" "$rate" "$out" <<'PY'
import json, sys
name, rate, path = sys.argv[1], sys.argv[2], sys.argv[3]
d = json.load(open(path))
l = d["latency_ms"]
o = d["outcomes"]
bad = sum(v for k, v in o.items() if isinstance(v, int) and k not in ("bid", "no_bid", "other_2xx"))
bad += sum(sum(v.values()) for v in o.values() if isinstance(v, dict))
print(f"  {name:<17} offered {float(rate):>9.0f}/s  achieved {d['achieved_per_s']:>9.0f}/s  "
      f"p50 {l['p50']:.3f}  p99 {l['p99']:.3f}  p99.9 {l['p999']:.3f}  max {l['max']:.3f} ms  errors {bad}")
print(f"RESULT open_loop server={name} rate={float(rate):.0f} p50_ms={l['p50']} p99_ms={l['p99']} "
      f"p999_ms={l['p999']} max_ms={l['max']}")
PY
}

# ---------------------------------------------------------------- header

ACTIVE=()
for s in $SERVERS; do
    if [[ -n ${FAILED[$s]:-} ]]; then
        log "skipping $s: ${FAILED[$s]}"
        continue
    fi
    if start_server "$s"; then
        ACTIVE+=("$s")
    else
        log "skipping $s: ${FAILED[$s]}"
    fi
done

# One unrecorded warm-up run per server; a server that answers nothing is dropped.
if [[ $WARMUP -gt 0 ]]; then
    for s in "${ACTIVE[@]}"; do
        run_wrk "$s" "$WARMUP" "$WORK/warmup-$s.txt" || true
        if ! grep -q 'requests in' "$WORK/warmup-$s.txt" ||
            [[ $(awk '/requests in/ {print $1}' "$WORK/warmup-$s.txt") == 0 ]]; then
            FAILED[$s]="answered no request during warm-up: $(tail -n 2 "$WORK/warmup-$s.txt" | tr '\n' ' ')"
            log "skipping $s: ${FAILED[$s]}"
            stop_server "$s"
        fi
    done
    kept=()
    for s in "${ACTIVE[@]}"; do [[ -z ${FAILED[$s]:-} ]] && kept+=("$s"); done
    ACTIVE=("${kept[@]}")
fi

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || commit="$commit-dirty"
cpu_model=$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)
echo "== shardbid comparison"
echo "date:        $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "commit:      $commit"
echo "cpu:         $cpu_model, $(nproc) CPUs online ($(lscpu | sed -n 's/^CPU(s): *//p') total)"
echo "kernel:      $(uname -r)"
idle_before=$(machine_busy_ticks)
sleep 1
busy_pct=$(awk -v t=$(($(machine_busy_ticks) - idle_before)) -v hz="$CLK_TCK" -v cpus="$(nproc)" \
    'BEGIN {printf "%.0f", t / (hz * cpus) * 100}')
echo "machine:     ${busy_pct}% busy in the second before the runs, load avg $(cut -d' ' -f1-3 /proc/loadavg)"
echo "client:      $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2), -t$THREADS -c$CONNECTIONS -d${DURATION}s, POST $BID_PATH, status counts $([[ $STATUS == 0 ]] && echo off || echo on)"
echo "body:        $BODY_DESC"
echo "shards:      floor=${SHARDS:-$(nproc)} pinned, shardbid=${SHARDS:-config}, axum=${SHARDS:-$(nproc)} tokio workers, nginx=2 workers"
if selected floor-pgo || selected shardbid-pgo; then
    echo "binaries:    $TARGET_DIR/release, and $PGO_DIR/release for the -pgo servers"
fi
if selected floor-base || selected shardbid-base || selected shardbid-base2; then
    echo "baseline:    $BASE_DIR/release for the -base servers, $BASE2_DIR/release for shardbid-base2"
fi
echo "rounds:      $ROUNDS, alternating: ${ACTIVE[*]:-none}"
echo "other%:      CPU used by anything but the server and wrk during a run (incl. steal), % of all CPUs"
for s in $SERVERS; do [[ -n ${FAILED[$s]:-} ]] && echo "not run:     $s: ${FAILED[$s]}"; done
[[ ${#ACTIVE[@]} -gt 0 ]] || { log "no server could be started"; exit 1; }

# ---------------------------------------------------------------- rounds

echo
printf '%-5s %-17s %12s %12s %11s %8s %8s %6s  %s\n' round server 'requests/s' 'cpu_us/req' requests non2xx errors other% statuses
for round in $(seq "$ROUNDS"); do
    for s in "${ACTIVE[@]}"; do
        [[ -z ${FAILED[$s]:-} ]] || continue
        out=$WORK/run-$round-$s.txt
        read -r -a pids <<<"$(server_pids "$s" | tr '\n' ' ')"
        before=$(cpu_ticks "${pids[@]}")
        client_ticks >"$WORK/client-before"
        machine_before=$(machine_busy_ticks) start_ns=$(now_ns)
        run_wrk "$s" "$DURATION" "$out" || true
        after=$(cpu_ticks "${pids[@]}")
        machine_after=$(machine_busy_ticks) end_ns=$(now_ns)
        client_ticks >"$WORK/client-after"
        client_before=$(<"$WORK/client-before") client_after=$(<"$WORK/client-after")
        if ! kill -0 "${PID[$s]}" 2>/dev/null; then
            FAILED[$s]="died during round $round: $(tail -n 3 "$WORK/$s.log" | tr '\n' ' ')"
            log "dropping $s: ${FAILED[$s]}"
            unset "PID[$s]"
            continue
        fi
        requests=$(awk '/requests in/ {print $1}' "$out")
        rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
        if [[ -z $requests || -z $rps || $requests == 0 ]]; then
            log "$s round $round: wrk reported no requests: $(tail -n 3 "$out" | tr '\n' ' ')"
            continue
        fi
        non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$out")
        errors=$(awk '/Socket errors:/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$out")
        statuses=$(sed -n 's/^status //p' "$out")
        cpu_us=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="$requests" \
            'BEGIN {printf "%.2f", t * 1e6 / hz / n}')
        other=$(awk -v m=$((machine_after - machine_before)) -v srv=$((after - before)) \
            -v cli=$((client_after - client_before)) -v ns=$((end_ns - start_ns)) \
            -v hz="$CLK_TCK" -v cpus="$(nproc)" 'BEGIN {
                o = (m - srv - cli) / (ns / 1e9 * hz * cpus) * 100; printf "%.0f", (o < 0 ? 0 : o) }')
        printf '%-5s %-17s %12.0f %12s %11s %8s %8s %6s  %s\n' "$round" "$s" "$rps" "$cpu_us" \
            "$requests" "${non2xx:-0}" "${errors:-0}" "$other" "$statuses"
        OTHER_RUNS[$s]+="$other "
        RPS_RUNS[$s]+="$rps "
        CPU_RUNS[$s]+="$cpu_us "
        NON2XX[$s]=$((${NON2XX[$s]:-0} + ${non2xx:-0}))
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR] = $1} END {
    if (NR == 0) exit; if (NR % 2) printf "%.2f", v[(NR + 1) / 2]; else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

declare -A RPS_MED=() CPU_MED=()
echo
echo "== medians"
printf '%-17s %12s %12s %6s %8s\n' server 'requests/s' 'cpu_us/req' runs non2xx
for s in "${ACTIVE[@]}"; do
    [[ -n ${RPS_RUNS[$s]:-} ]] || continue
    RPS_MED[$s]=$(median <<<"${RPS_RUNS[$s]}")
    CPU_MED[$s]=$(median <<<"${CPU_RUNS[$s]}")
    runs=$(wc -w <<<"${RPS_RUNS[$s]}")
    printf '%-17s %12.0f %12s %6s %8s\n' "$s" "${RPS_MED[$s]}" "${CPU_MED[$s]}" "$runs" "${NON2XX[$s]}"
    [[ ${NON2XX[$s]} -eq 0 ]] || log "warning: $s answered ${NON2XX[$s]} non-2xx responses"
    other_med=$(median <<<"${OTHER_RUNS[$s]}")
    if awk -v o="$other_med" 'BEGIN {exit !(o > 10)}'; then
        log "warning: other load took ${other_med}% of the machine during $s's runs; figures are disturbed"
    fi
done

echo
echo "== ratios (requests/s: higher is better; cpu_us/req: lower is better)"
RATIO_LINES=()
for pair in shardbid/axum shardbid-unpinned/axum floor/nginx floor-hyper/floor floor-hyper/axum shardbid/floor-hyper floor-poll/nginx floor/floor-poll shardbid/shardbid-poll shardbid-poll/axum shardbid/floor shardbid/nginx axum/nginx \
    shardbid-unpinned/shardbid shardbid-pgo/axum shardbid-pgo/floor-pgo shardbid-pgo/nginx \
    floor-pgo/nginx shardbid-pgo/shardbid floor-pgo/floor shardbid/shardbid-base floor/floor-base \
    shardbid/shardbid-plain shardbid-base2/shardbid-base shardbid/shardbid-base2; do
    a=${pair%/*} b=${pair#*/}
    [[ -n ${RPS_MED[$a]:-} && -n ${RPS_MED[$b]:-} ]] || continue
    r=$(awk -v x="${RPS_MED[$a]}" -v y="${RPS_MED[$b]}" 'BEGIN {printf "%.3f", x / y}')
    c=$(awk -v x="${CPU_MED[$a]}" -v y="${CPU_MED[$b]}" 'BEGIN {printf "%.3f", x / y}')
    printf '%-28s requests/s %6sx   cpu_us/req %6sx\n' "$pair" "$r" "$c"
    RATIO_LINES+=("RESULT ratio=$pair rps=$r cpu_us=$c")
done

if [[ $OPEN_LOOP == 1 ]]; then
    echo
    slowest=$(for s in "${ACTIVE[@]}"; do [[ -n ${RPS_MED[$s]:-} ]] && echo "${RPS_MED[$s]}"; done | sort -g | head -1)
    if [[ -n $slowest ]]; then
        rate=$(awk -v r="$slowest" -v f="$OPEN_SHARE" 'BEGIN { printf "%d", r * f }')
        echo "== open-loop latency at $rate req/s (${OPEN_SHARE} x the slowest median), shardbid-load -c$CONNECTIONS, ${OPEN_DURATION}s"
        for s in "${ACTIVE[@]}"; do
            [[ -n ${RPS_MED[$s]:-} ]] && open_loop_step "$s" "${PORT[$s]}" "$rate"
        done
    fi
fi

echo
for s in "${ACTIVE[@]}"; do
    [[ -n ${RPS_MED[$s]:-} ]] || continue
    echo "RESULT server=$s rps=${RPS_MED[$s]} cpu_us=${CPU_MED[$s]} non2xx=${NON2XX[$s]}" \
        "runs=$(wc -w <<<"${RPS_RUNS[$s]}") connections=$CONNECTIONS threads=$THREADS" \
        "duration=$DURATION commit=$commit"
done
for line in "${RATIO_LINES[@]}"; do echo "$line"; done
for s in $SERVERS; do
    [[ -n ${FAILED[$s]:-} ]] && echo "RESULT server=$s failed=\"${FAILED[$s]//\"/\'}\""
done
exit 0
