#!/usr/bin/env python3
"""Side-by-side CPU cost of several servers (for instance two builds of shardbid).

    python3 loadtest/side-by-side.py ROUNDS SECONDS 'NAME=COMMAND' ...

Every server starts at once, each on its own port: in COMMAND, {port} is the traffic
port and {admin} an admin port to use. Then wrk (-t1 -c64, loadtest/wrk/bid.lua, BODY or
tests/fixtures/simple-banner.json) runs against one server after the other, ROUNDS
times, the order reversed every other round. Around each run the server's utime+stime
is read from /proc/PID/stat (COMMAND must `exec` the server so that the PID is its).
Prints the medians of user, system and total CPU µs per request, and of requests/s.

Running everything at once and alternating short runs keeps the host's drift, which on
a shared VM moves absolute figures by tens of percent within an hour, out of the
comparison. Example, the floor and two builds of shardbid at 2 shards:

    SB='--config config/shardbid.toml --listen 127.0.0.1:{port} --admin-listen 127.0.0.1:{admin} --shards 2'
    python3 loadtest/side-by-side.py 10 3 \\
      "floor=exec target/release/shardbid-floor --listen 127.0.0.1:{port} --shards 2" \\
      "old=exec /tmp/old/shardbid $SB" "new=exec target/release/shardbid $SB"

Loopback only; each run stops after SECONDS. WRKCPU (e.g. 1) pins wrk with taskset.
"""

import os
import re
import signal
import statistics
import subprocess
import sys
import time

BASE_PORT = 18100
BASE_ADMIN = 19200


def cpu_ticks(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])  # utime, stime


def wrk(port, seconds, body, cpu):
    cmd = ["wrk", "-t1", "-c64", f"-d{seconds}", "-s", "loadtest/wrk/bid.lua",
           f"http://127.0.0.1:{port}/openrtb2/bid"]
    if cpu:
        cmd = ["taskset", "-c", cpu] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True,
                         env=dict(os.environ, BODY=body)).stdout
    m = re.search(r"(\d+) requests in", out)
    return int(m.group(1)) if m else 0


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    rounds, seconds, specs = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    body = os.environ.get("BODY", "tests/fixtures/simple-banner.json")
    cpu = os.environ.get("WRKCPU")
    hz = os.sysconf("SC_CLK_TCK")
    servers = []
    try:
        for i, spec in enumerate(specs):
            name, cmd = spec.split("=", 1)
            cmd = cmd.format(port=BASE_PORT + i, admin=BASE_ADMIN + i)
            proc = subprocess.Popen(cmd, shell=True, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
            servers.append((name, BASE_PORT + i, proc))
        time.sleep(1.5)
        for _, port, _ in servers:
            wrk(port, "1s", body, cpu)  # warm-up
        runs = {name: [] for name, _, _ in servers}
        for r in range(rounds):
            for name, port, proc in (servers if r % 2 == 0 else servers[::-1]):
                u0, s0 = cpu_ticks(proc.pid)
                t0 = time.time()
                done = wrk(port, f"{seconds}s", body, cpu)
                t1 = time.time()
                u1, s1 = cpu_ticks(proc.pid)
                if done:
                    us = 1e6 / hz / done
                    runs[name].append(((u1 - u0) * us, (s1 - s0) * us, done / (t1 - t0)))
    finally:
        for _, _, proc in servers:
            os.killpg(proc.pid, signal.SIGTERM)
    print(f"{'server':16} {'runs':>4} {'user µs':>8} {'sys µs':>8} {'cpu µs':>8} {'req/s':>8}  (medians)")
    for name, _, _ in servers:
        v = runs[name]
        if not v:
            print(f"{name:16} no completed run")
            continue
        med = lambda f: statistics.median(f(x) for x in v)
        print(f"{name:16} {len(v):4} {med(lambda x: x[0]):8.2f} {med(lambda x: x[1]):8.2f} "
              f"{med(lambda x: x[0] + x[1]):8.2f} {med(lambda x: x[2]):8.0f}")


if __name__ == "__main__":
    main()
