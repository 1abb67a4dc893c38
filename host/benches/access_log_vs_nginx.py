#!/usr/bin/env python3
"""The access log's cost: requests per proxy CPU-second with a combined-format log written to a
file, Switchyard beside nginx, both balancing over the shared harness's three nginx origins.

Targets: Switchyard without a log and with one (`[access_log]`, `flush` from FLUSH, default
its own default), nginx with `access_log … combined` (a write per line) and with `buffer=64k
flush=1s`. Small answers (`GET /ok`) from wrk, 16 and 128 connections; every target runs while
the others idle, and CPU is each proxy's whole process tree, user and system apart (from /proc).

    cargo build --release -p switchyard
    python3 host/benches/access_log_vs_nginx.py          # ~2 min; REPEATS=1 for one pass

Needs nginx and wrk (Debian: apt-get install -y nginx wrk) and the shared bench harness
(../shared/bench, or set BENCH_DIR). Everything listens on 127.0.0.1 (origins 9001-9003,
Switchyard 8463/8464, nginx 8465/8466) and is stopped by PID; the logs go to a temporary run
directory.
"""
import os

import beside_nginx as side

SECONDS = int(os.environ.get("SECONDS_PER_CELL", "5"))
REPEATS = int(os.environ.get("REPEATS", "2"))
FLUSH = os.environ.get("FLUSH")


def wrk(port, connections, seconds):
    return side.wrk_requests(f"http://127.0.0.1:{port}/ok", threads=2, connections=connections, seconds=seconds)


def user_system(pid):
    """User and system CPU seconds of the process tree under `pid`."""
    snap = side.common.proc_snapshot()
    user = system = 0
    for p in side.common.snap_tree(snap, pid):
        fields = side.common._stat_fields(p)
        user += int(fields[11]) + int(fields[13])
        system += int(fields[12]) + int(fields[14])
    return user / side.HZ, system / side.HZ


def main():
    side.binary()
    run = side.run_dir("switchyard-access-log-")
    flush = f'flush = "{FLUSH}"\n' if FLUSH else ""
    targets = [
        ("switchyard, no log", side.switchyard_conf(run, "nolog", '[[listen]]\naddr = "127.0.0.1:8463"\n'), 8463),
        ("switchyard, log", side.switchyard_conf(run, "log", f'[[listen]]\naddr = "127.0.0.1:8464"\n[access_log]\npath = "{run}/logs/switchyard-access.log"\nformat = "combined"\n{flush}'), 8464),
        ("nginx, log", side.nginx_conf(run, "log", f"listen 127.0.0.1:8465 backlog=4096; access_log {run}/logs/nginx-access.log combined;"), 8465),
        ("nginx, log buffer=64k", side.nginx_conf(run, "logbuf", f"listen 127.0.0.1:8466 backlog=4096; access_log {run}/logs/nginx-access-buffered.log combined buffer=64k flush=1s;"), 8466),
    ]
    rows = {}
    with side.origins(run):
        with side.proxy(run, targets[0][0], targets[0][1], (8463,)) as a, side.proxy(run, targets[1][0], targets[1][1], (8464,)) as b, \
                side.proxy(run, targets[2][0], targets[2][1], (8465,)) as c, side.proxy(run, targets[3][0], targets[3][1], (8466,)) as d:
            pids = [a, b, c, d]
            for (_, _, port) in targets:
                wrk(port, 16, 1)  # warm-up
            for _ in range(REPEATS):
                for connections in (16, 128):
                    for (name, _, port), pid in zip(targets, pids):
                        u0, s0 = user_system(pid)
                        requests = wrk(port, connections, SECONDS)
                        u1, s1 = user_system(pid)
                        rows.setdefault((connections, name), []).append((requests, u1 - u0, s1 - s0))
    print(f"Access log (combined, to a file), small answers, wrk -t2, {SECONDS} s per cell, {REPEATS} repeat(s) summed")
    print(f"{'conns':>5}  {'target':24} {'req/cpu-s':>10} {'user µs/req':>12} {'sys µs/req':>11} {'vs nginx, log':>14}")
    for connections in (16, 128):
        def efficiency(name):
            runs = rows[(connections, name)]
            requests = sum(r for r, _, _ in runs)
            return requests, sum(u for _, u, _ in runs), sum(s for _, _, s in runs)
        n_req, n_u, n_s = efficiency("nginx, log")
        base = n_req / (n_u + n_s)
        for name, _, _ in targets:
            requests, user, system = efficiency(name)
            rate = requests / (user + system)
            print(f"{connections:>5}  {name:24} {rate:10.0f} {user / requests * 1e6:12.2f} {system / requests * 1e6:11.2f} {rate / base:14.2f}")


if __name__ == "__main__":
    main()
