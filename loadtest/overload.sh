#!/usr/bin/env bash
# Overload: does shardbid answer a fast no-bid rather than a late answer? With realistic
# traffic (a generated corpus and campaign file) and 1,000 keep-alive connections:
#   1. closed loop: the most the server answers, C (with every connection waiting in
#      line: not a rate it sustains in time);
#   2. open loop at 50%, 60% ... 100% of C, the client dropping requests older than
#      DEADLINE: the maximum sustainable rate R is the highest with no late answer, none
#      dropped and a service-time p99 under BUDGET. Goodput there is the reference:
#      200s answered within the deadline, per second;
#   3. open loop at FACTOR x R, the same; the goal is goodput >= 90% of R's, service p99
#      under BUDGET (tmax minus the network margin), flat memory, no errors, no 5xx;
#   4. step 3 again with load shedding off (http.shed_queue_delay_ms = 0), for contrast.
# Service time is the server's share of latency: from the request's last write to its
# response.
#
#   bash loadtest/overload.sh                # DURATION=10 CONNECTIONS=1000 DEADLINE=100ms
#
# Settings (environment): DURATION (s per step), CONNECTIONS, DEADLINE (the client's
# tmax), BUDGET (ms: the service-time p99 allowed, default 80: 100 ms tmax minus the
# sample config's 20 ms network margin), FACTOR (the overload, default 2), BODIES, CAMPAIGNS, SHARDS (default: one per
# CPU; shard i is pinned to CPU i), CLIENT_CPU (pin the load generator to this CPU,
# e.g. SHARDS=1 CLIENT_CPU=1: server and client each on a core of their own, so the
# server's queueing is its own and not the scheduler's), NO_BUILD=1. Ports 18193 and
# 19193 must be free.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-1000}
DEADLINE=${DEADLINE:-100ms}
FACTOR=${FACTOR:-2}
BUDGET=${BUDGET:-80}
BODIES=${BODIES:-2000}
CAMPAIGNS=${CAMPAIGNS:-10000}
SHARDS=${SHARDS:-0}
PIN=()
[[ -n ${CLIENT_CPU:-} ]] && PIN=(taskset -c "$CLIENT_CPU")
WORK=$(mktemp -d /tmp/shardbid-overload.XXXXXX)
source loadtest/lib.sh
SAMPLER=

cleanup() {
    [[ -n $SAMPLER ]] && kill "$SAMPLER" 2>/dev/null
    [[ -n $SERVER ]] && kill -TERM "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

[[ ${NO_BUILD:-0} == 1 ]] || cargo build --release --workspace --quiet
LOAD=target/release/shardbid-load
$LOAD corpus --count "$BODIES" --out "$WORK/corpus" --seed 1 >/dev/null
$LOAD campaigns --count "$CAMPAIGNS" --out "$WORK/campaigns.json" --seed 1 >/dev/null
# The event log on tmpfs where there is one: a disk's fsync stalls are not the subject.
EVENTS=$WORK/events
[[ -d /dev/shm ]] && EVENTS=$(mktemp -d /dev/shm/shardbid-overload.XXXXXX)

start_server() {
    rm -rf "$EVENTS"/*
    start_shardbid 18193 19193 "$@" SHARDBID_SHARDS="$SHARDS" SHARDBID_EVENTS_DIR="$EVENTS" \
        -- --campaigns "$WORK/campaigns.json"
    # Resident memory once a second, for the flat-memory check.
    (while kill -0 "$SERVER" 2>/dev/null; do
        awk '/VmRSS/ {print $2}' "/proc/$SERVER/status" 2>/dev/null
        sleep 1
    done) >"$WORK/rss" &
    SAMPLER=$!
}
stop_server() {
    kill "$SAMPLER" 2>/dev/null || true
    SAMPLER=
    stop_shardbid
}
shed() { curl -s http://127.0.0.1:19193/metrics | awk '/^shardbid_nobid_total\{reason="overload"\}/ {print $2}'; }

URL=http://127.0.0.1:18193/openrtb2/bid/example
run() { # name, then shardbid-load arguments (step names hold no spaces)
    local name=$1
    shift
    local before from
    before=$(shed)
    from=$(wc -l <"$WORK/rss")
    "${PIN[@]}" $LOAD run --url "$URL" --corpus "$WORK/corpus" -c "$CONNECTIONS" -d "${DURATION}s" \
        --warmup 2s -q --json "$@" >"$WORK/$name.json"
    echo "$before $(shed)" >"$WORK/$name.shed"
    # This step's memory samples.
    tail -n "+$((from + 1))" "$WORK/rss" >"$WORK/$name.rss"
}
report() { # name
    python3 - "$WORK/$1.json" "$1" "$(cat "$WORK/$1.shed")" "$WORK/$1.rss" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
name, (b, a), rss = sys.argv[2], sys.argv[3].split(), [int(x) for x in open(sys.argv[4]).read().split()]
o = d["outcomes"]
errors = (o["other_2xx"] + o["status_1xx_3xx"] + sum(o["status_4xx"].values())
          + o["timeout"] + o["conn_error"] + o["bad_response"])
five = sum(o["status_5xx"].values())
kinds = {**{str(k): v for k, v in o["status_4xx"].items()}, "other 2xx": o["other_2xx"],
         "1xx/3xx": o["status_1xx_3xx"], "timeout": o["timeout"],
         "connection": o["conn_error"], "bad response": o["bad_response"]}
shed = float(a or 0) - float(b or 0)
rss_mb = f'{min(rss) / 1024:.0f}-{max(rss) / 1024:.0f}' if rss else '-'
print(f'{name:<14} {d["offered_per_s"]:>9.0f} {d["achieved_per_s"]:>9.0f} {d["goodput_per_s"]:>8.0f} '
      f'{d["late"]:>6} {d["client"]["expired"]:>8} {shed:>8.0f} {errors:>6} {five:>4} '
      f'{d["service_ms"]["p99"]:>8.2f} {d["service_ms"]["p999"]:>8.2f} {d["latency_ms"]["p99"]:>8.2f} {rss_mb:>9}'
      + (f'  errors: {", ".join(f"{k} {v}" for k, v in kinds.items() if v)}' if errors else ''))
PY
}

echo "== overload: $(date -u '+%F %T UTC'), commit $(git rev-parse --short HEAD)"
echo "$CONNECTIONS connections, $DURATION s per step (after 2 s of warm-up), deadline $DEADLINE, corpus of $BODIES, $CAMPAIGNS campaigns, shards ${SHARDS/#0/per CPU}, client CPU ${CLIENT_CPU:-any}"
start_server
run closed
closed=$(python3 -c "import json; print(int(json.load(open('$WORK/closed.json'))['achieved_per_s']))")
rate=0
steps=(closed)
for pct in 50 60 70 80 90 100; do
    r=$((closed * pct / 100))
    run "open-$pct%" --rate "$r" --deadline "$DEADLINE"
    steps+=("open-$pct%")
    ok=$(python3 -c "
import json; d = json.load(open('$WORK/open-$pct%.json'))
print(int(d['late'] == 0 and d['client']['expired'] == 0 and d['service_ms']['p99'] < $BUDGET))")
    [[ $ok == 1 ]] || break
    rate=$r
    cp "$WORK/open-$pct%.json" "$WORK/at-max.json"
    cp "$WORK/open-$pct%.shed" "$WORK/at-max.shed"
    cp "$WORK/open-$pct%.rss" "$WORK/at-max.rss"
done
((rate > 0)) || { echo "no sustainable rate found at 50% of the closed-loop rate or above"; exit 1; }
over=$((rate * FACTOR))
run "at-${FACTOR}x" --rate "$over" --deadline "$DEADLINE"
stop_server
echo "closed-loop answers $closed/s; maximum sustainable rate $rate/s; overload $over/s"
printf '%-14s %9s %9s %8s %6s %8s %8s %6s %4s %8s %8s %8s %9s\n' step offered/s answered/s goodput/s late expired shed errors 5xx svc_p99 svc_p999 p99_ms rss_MiB
for s in "${steps[@]}"; do report "$s"; done
report "at-${FACTOR}x"
start_server SHARDBID_SHED_QUEUE_DELAY_MS=0
run "${FACTOR}x-no-shed" --rate "$over" --deadline "$DEADLINE"
stop_server
report "${FACTOR}x-no-shed"
python3 - "$WORK/at-max.json" "$WORK/at-${FACTOR}x.json" <<'PY'
import json, sys
g1, g2 = (json.load(open(p))["goodput_per_s"] for p in sys.argv[1:])
print(f"goodput at {sys.argv[2].split('at-')[-1][:-5]} / at max: {g2 / g1:.3f}" if g1 else "no goodput at max")
PY
rm -rf "$EVENTS"
