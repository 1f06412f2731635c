#!/usr/bin/env bash
# Do notices slow bids down? One shardbid (release build, the sample config, the sample
# campaigns with their budgets raised 100,000-fold so that no run spends them) takes
# open-loop bid traffic from shardbid-load at a fixed rate, in alternating runs without
# and with the exchange's notices (win and billing for WIN_SHARE of the bids, a loss
# notice for every other bid, plus duplicates, forgeries and over-price notices). Each
# run (on a fresh server) reports the bid requests' latency and the server's CPU per bid request (notices
# included: what they cost shows there).
#
#   bash loadtest/notices.sh                 # RATE=20000 ROUNDS=3 DURATION=10 WIN_SHARE=0.1
#
# Settings (environment): RATE (bid requests/s), ROUNDS, DURATION (s per run), WIN_SHARE,
# BODIES (generated requests, 1-3 KB, a quarter built to bid), NO_BUILD=1 (use the
# binaries in target/release as they are). Ports 18191 and 19191 must be free.
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${RATE:-20000}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
WIN_SHARE=${WIN_SHARE:-0.1}
BODIES=${BODIES:-2000}
WORK=$(mktemp -d /tmp/shardbid-notices.XXXXXX)
source loadtest/lib.sh

cleanup() {
    [[ -n $SERVER ]] && kill -TERM "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

[[ ${NO_BUILD:-0} == 1 ]] || cargo build --release --bins --quiet
python3 - config/campaigns.json "$WORK/campaigns.json" <<'PY'
import json, sys
from decimal import Decimal
doc = json.load(open(sys.argv[1]))
for c in doc["campaigns"]:
    for k, v in c.get("budget", {}).items():
        c["budget"][k] = str(Decimal(v) * 100000)
json.dump(doc, open(sys.argv[2], "w"))
PY

# A fresh server for every run, so that frequency caps and reservations from one run
# do not shape the next.
start_server() {
    rm -rf "$WORK/events"
    start_shardbid 18191 19191 SHARDBID_EVENTS_DIR="$WORK/events" -- --campaigns "$WORK/campaigns.json"
}

echo "== notices and the bid path: $(date -u '+%F %T UTC'), commit $(git rev-parse --short HEAD)"
echo "rate ${RATE}/s, ${DURATION} s per run, ${ROUNDS} rounds, win share ${WIN_SHARE}, ${BODIES} generated bodies"
printf '%-6s %-9s %12s %10s %10s %10s %10s %13s\n' round notices bid_requests bids notices p50_ms p99_ms cpu_us/request
for round in $(seq "$ROUNDS"); do
    for mode in off on; do
        extra=()
        [[ $mode == on ]] && extra=(--notices --win-share "$WIN_SHARE")
        start_server
        before=$(ticks)
        target/release/shardbid-load run --url http://127.0.0.1:18191/openrtb2/bid \
            --generate "$BODIES" --rate "$RATE" -c 64 -d "${DURATION}s" -q --json \
            "${extra[@]}" >"$WORK/run.json"
        after=$(ticks)
        stop_shardbid
        python3 - "$WORK/run.json" "$round" "$mode" "$before" "$after" "$HZ" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
rnd, mode, before, after, hz = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
sent = d.get("notices") or {}
notices = sum(n for by in (sent.get("sent") or {}).values() for n in by.values())
cpu_us = (after - before) / hz * 1e6 / max(d["responses"], 1)
print(f'{rnd:<6} {mode:<9} {d["responses"]:>12} {d["outcomes"]["bid"]:>10} {notices:>10} '
      f'{d["latency_ms"]["p50"]:>10.3f} {d["latency_ms"]["p99"]:>10.3f} {cpu_us:>13.2f}')
PY
    done
done
