#!/usr/bin/env bash
# Does shardbid-load measure latency right? Drives one shardbid shard at fixed rates with
# `oha -q RATE --latency-correction` and with `shardbid-load run --rate RATE`, alternating,
# and measures each run a third way: on the wire, from a packet capture of the loopback
# interface (request segment in to first response segment out, per connection), which no
# client's own delays can reach.
#
#   bash loadtest/agree.sh                          # 1,000 / 2,000 / 5,000 per second
#   RATES="1000 10000" RUNS=3 bash loadtest/agree.sh
#
# The server runs one shard pinned to CPU 0 and the clients run on CPU 1 (taskset), so
# that neither client waits behind the server for a core. Run with --help for settings.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: [VAR=value ...] bash loadtest/agree.sh [--help]

Settings (environment):
  RATES        offered rates, requests/s                 (default: "1000 2000 5000")
  RUNS         runs per client and rate                  (default: 2)
  DURATION     seconds per run                           (default: 5)
  CONNECTIONS  keep-alive connections, both clients      (default: 32)
  BODY         request body                              (default: tests/fixtures/simple-banner.json)
  WIRE         1 = packet-capture reference with tcpdump (default: 1; 0 = skip)
  NO_BUILD     1 = do not run `cargo build --release --workspace`
  CARGO_TARGET_DIR  where release binaries are looked up (default: ./target)

Needs oha (cargo install oha) and, for WIRE=1, tcpdump (apt-get install tcpdump) and root.
Agreement, per rate, between the clients' medians over the runs: |a - b| <= max(0.2 ms, 20% of oha's).
EOF
}
if [[ ${1:-} == -h || ${1:-} == --help ]]; then
    usage
    exit 0
fi
[[ $# -eq 0 ]] || { echo "agree.sh: unknown argument '$1' (see --help)" >&2; exit 64; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
RATES=${RATES:-"1000 2000 5000"}
RUNS=${RUNS:-2}
DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-32}
BODY=${BODY:-tests/fixtures/simple-banner.json}
WIRE=${WIRE:-1}
NO_BUILD=${NO_BUILD:-0}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
[[ $TARGET_DIR == /* ]] || TARGET_DIR=$ROOT/$TARGET_DIR
PORT=18081
URL=http://127.0.0.1:$PORT/openrtb2/bid

log() { echo "agree.sh: $*" >&2; }
command -v oha >/dev/null || { log "oha not found: cargo install oha"; exit 69; }
if [[ $WIRE == 1 ]] && ! command -v tcpdump >/dev/null; then
    log "tcpdump not found (apt-get install tcpdump), or set WIRE=0"
    exit 69
fi
[[ -f $BODY ]] || { log "BODY=$BODY is not a file"; exit 66; }
PIN=""
[[ $(nproc) -ge 2 ]] && PIN="taskset -c 1"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/shardbid-agree.XXXXXX")
SERVER_PID= CAPTURE_PID=
cleanup() {
    [[ -z $CAPTURE_PID ]] || kill "$CAPTURE_PID" 2>/dev/null || true
    [[ -z $SERVER_PID ]] || { kill -TERM "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null || true; }
    rm -rf "$WORK"
}
trap cleanup EXIT

if [[ $NO_BUILD != 1 ]]; then
    log "building release binaries (NO_BUILD=1 skips)"
    CARGO_TARGET_DIR=$TARGET_DIR cargo build --release --workspace >"$WORK/build.log" 2>&1 ||
        { tail -n 20 "$WORK/build.log" >&2; exit 1; }
fi
mkdir -p "$WORK/body" && cp "$BODY" "$WORK/body/"

SHARDBID_SHARDS=1 "$TARGET_DIR/release/shardbid" --config config/shardbid.toml \
    --listen 127.0.0.1:$PORT --admin-listen 127.0.0.1:19102 >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
    sleep 0.1
done

# wire FILE: "p50 p99" in ms of request-in to response-out on the captured connections.
# A request's first segment starts the clock (a segment that continues the previous one,
# by sequence number, does not); the connection's next response segment stops it.
wire() {
    tcpdump -r "$1" -tt -n -S --nano 2>/dev/null | python3 -c '
import re, sys
pat = re.compile(r"^(\d+\.\d+) IP (\S+) > (\S+): .*?seq (\d+):(\d+).* length (\d+)")
port, pending, lat = ".'$PORT'", {}, []
for line in sys.stdin:
    m = pat.match(line)
    if not m or m.group(6) == "0":
        continue
    ts, src, dst = float(m.group(1)), m.group(2), m.group(3).rstrip(":")
    first, end = int(m.group(4)), int(m.group(5))
    if dst.endswith(port):
        prev = pending.get(src)
        pending[src] = (prev[0] if prev and prev[1] == first else ts, end)
    elif src.endswith(port) and dst in pending:
        lat.append(ts - pending.pop(dst)[0])
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(len(lat) * p))] * 1e3 if lat else float("nan")
print(f"{q(0.5):.3f} {q(0.99):.3f}")'
}

# run CLIENT RATE: prints "p50 p99" (ms) as the client reports them.
run() {
    local client=$1 rate=$2
    case $client in
    oha)
        $PIN oha -z "${DURATION}s" -c "$CONNECTIONS" -q "$rate" --latency-correction --no-tui \
            --output-format json -m POST -D "$BODY" -T application/json "$URL" 2>/dev/null |
            python3 -c 'import json,sys; p=json.load(sys.stdin)["latencyPercentiles"]; print("%.3f %.3f" % (p["p50"] * 1e3, p["p99"] * 1e3))'
        ;;
    shardbid-load)
        $PIN "$TARGET_DIR/release/shardbid-load" run --url "$URL" --corpus "$WORK/body" \
            --rate "$rate" -c "$CONNECTIONS" -d "${DURATION}s" -q --json |
            python3 -c 'import json,sys; p=json.load(sys.stdin)["latency_ms"]; print("%.3f %.3f" % (p["p50"], p["p99"]))'
        ;;
    esac
}

echo "== agree.sh  commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')  $(date -u +%FT%TZ)"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; server: 1 shard on CPU 0; clients: ${PIN:-unpinned}"
echo "body: $BODY; $CONNECTIONS connections; $DURATION s per run; oha $(oha --version | awk '{print $2}')"
echo
printf '%-7s %-14s %-4s %9s %9s %10s %10s\n' rate client run p50_ms p99_ms wire_p50 wire_p99
declare -A P50 P99
for rate in $RATES; do
    for i in $(seq "$RUNS"); do
        for client in oha shardbid-load; do
            w="-        -"
            if [[ $WIRE == 1 ]]; then
                tcpdump -i lo -s 128 -B 65536 --time-stamp-precision=nano -w "$WORK/cap.pcap" \
                    "tcp port $PORT" >"$WORK/capture.log" 2>&1 &
                CAPTURE_PID=$!
                sleep 0.5
            fi
            read -r p50 p99 < <(run "$client" "$rate")
            if [[ $WIRE == 1 ]]; then
                sleep 0.2
                kill "$CAPTURE_PID" 2>/dev/null
                wait "$CAPTURE_PID" 2>/dev/null || true
                CAPTURE_PID=
                w=$(wire "$WORK/cap.pcap")
                dropped=$(sed -n 's/^\([0-9]*\) packets dropped by kernel.*/\1/p' "$WORK/capture.log")
                [[ ${dropped:-0} == 0 ]] || log "the capture of $client at $rate/s dropped $dropped packets"
            fi
            read -r w50 w99 <<<"$w"
            printf '%-7s %-14s %-4s %9s %9s %10s %10s\n' "$rate" "$client" "$i" "$p50" "$p99" "$w50" "$w99"
            P50[$rate,$client]+="$p50 "
            P99[$rate,$client]+="$p99 "
        done
    done
done

echo
echo "== medians over the runs; agree = |shardbid-load - oha| <= max(0.2 ms, 20% of oha)"
printf '%-7s %-10s %9s %9s %9s %s\n' rate percentile oha load diff agree
for rate in $RATES; do
    for pct in p50 p99; do
        declare -n V=${pct^^}
        python3 - "$rate" "$pct" "${V[$rate,oha]}" "${V[$rate,shardbid-load]}" <<'EOF'
import statistics, sys
rate, pct, a, b = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4].split()
oha, load = statistics.median(map(float, a)), statistics.median(map(float, b))
diff = load - oha
ok = abs(diff) <= max(0.2, 0.2 * oha)
print(f"{rate:<7} {pct:<10} {oha:9.3f} {load:9.3f} {diff:+9.3f} {'yes' if ok else 'no'}")
print(f"RESULT rate={rate} percentile={pct} oha={oha:.3f} load={load:.3f} agree={int(ok)}", file=sys.stderr)
EOF
        unset -n V
    done
done
