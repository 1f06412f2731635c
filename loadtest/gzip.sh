#!/usr/bin/env bash
# What gzip request bodies cost: one shardbid (release build, the sample config and
# campaigns) takes open-loop bid traffic from shardbid-load at a fixed rate, in
# alternating runs with plain bodies and with the same bodies gzipped (`--gzip`,
# `Content-Encoding: gzip`). Each run, on a fresh server, reports the latency and the
# server's CPU per request.
#
#   bash loadtest/gzip.sh                    # RATE=20000 ROUNDS=3 DURATION=10
#
# Settings (environment): RATE (requests/s), ROUNDS, DURATION (s per run), BODIES
# (generated requests, 1-3 KB), NO_BUILD=1 (use the binaries in target/release as they
# are). Ports 18192 and 19192 must be free.
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${RATE:-20000}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
BODIES=${BODIES:-2000}
WORK=$(mktemp -d /tmp/shardbid-gzip.XXXXXX)
source loadtest/lib.sh

cleanup() {
    [[ -n $SERVER ]] && kill -TERM "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

[[ ${NO_BUILD:-0} == 1 ]] || cargo build --release --bins --quiet

start_server() {
    rm -rf "$WORK/events"
    start_shardbid 18192 19192 SHARDBID_EVENTS_DIR="$WORK/events"
}

echo "== gzip request bodies: $(date -u '+%F %T UTC'), commit $(git rev-parse --short HEAD)"
echo "rate ${RATE}/s, ${DURATION} s per run, ${ROUNDS} rounds, ${BODIES} generated bodies"
printf '%-6s %-6s %10s %8s %8s %10s %10s %14s\n' round bodies responses bids errors p50_ms p99_ms cpu_us/request
for round in $(seq "$ROUNDS"); do
    for mode in plain gzip; do
        extra=()
        [[ $mode == gzip ]] && extra=(--gzip)
        start_server
        before=$(ticks)
        target/release/shardbid-load run --url http://127.0.0.1:18192/openrtb2/bid \
            --generate "$BODIES" --rate "$RATE" -c 64 -d "${DURATION}s" -q --json \
            "${extra[@]}" >"$WORK/run.json"
        after=$(ticks)
        stop_shardbid
        python3 - "$WORK/run.json" "$round" "$mode" "$before" "$after" "$HZ" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
rnd, mode, before, after, hz = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
cpu_us = (after - before) / hz * 1e6 / max(d["responses"], 1)
o = d["outcomes"]
errors = (o["other_2xx"] + o["status_1xx_3xx"] + sum(o["status_4xx"].values())
          + sum(o["status_5xx"].values()) + o["timeout"] + o["conn_error"] + o["bad_response"])
print(f'{rnd:<6} {mode:<6} {d["responses"]:>10} {d["outcomes"]["bid"]:>8} {errors:>8} '
      f'{d["latency_ms"]["p50"]:>10.3f} {d["latency_ms"]["p99"]:>10.3f} {cpu_us:>14.2f}')
PY
    done
done
