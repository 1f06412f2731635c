# Shared by the load scripts (notices.sh, gzip.sh, overload.sh): one release shardbid at
# a time, its pid in SERVER and its output in $WORK/server.log. Source it after setting
# WORK, from the repository root.

SERVER=

# start_shardbid PORT ADMIN_PORT [VAR=value ...] [-- shardbid arguments ...]: starts
# shardbid with the sample config on 127.0.0.1:PORT (admin ADMIN_PORT), the variables
# in its environment, and waits up to 20 s until it is ready. Exits with its log if it
# stops first, as it does when another process holds a port: a ready answer from that
# other process must not pass for this one's.
start_shardbid() {
    local port=$1 admin=$2 env=()
    shift 2
    while [[ $# -gt 0 && $1 != -- ]]; do
        env+=("$1")
        shift
    done
    [[ ${1:-} == -- ]] && shift
    env "${env[@]}" target/release/shardbid --config config/shardbid.toml \
        --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" "$@" \
        >"$WORK/server.log" 2>&1 &
    SERVER=$!
    for _ in $(seq 200); do
        kill -0 "$SERVER" 2>/dev/null || break
        # Ready, and this process is the one serving (it says so in its log).
        curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 \
            && grep -q "Listening" "$WORK/server.log" && return
        sleep 0.1
    done
    cat "$WORK/server.log"
    exit 1
}

# Stops it (SIGTERM, a drain) and waits for it.
stop_shardbid() {
    kill -TERM "$SERVER"
    wait "$SERVER" || true
    SERVER=
}

# Its CPU time so far (user + system), in clock ticks of HZ per second.
ticks() { awk '{print $14 + $15}' "/proc/$SERVER/stat"; }
HZ=$(getconf CLK_TCK)
