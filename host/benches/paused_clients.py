#!/usr/bin/env python3
"""What parking costs: proxy CPU per request for keep-alive clients that pause between requests.

Two loads at the same request rate, alternated: CONNECTIONS clients pausing 400 ms between
requests (each pause parks the connection, here after 250 ms, see the README's Performance
section, and each request wakes it), and half as many pausing 200 ms (never parked). The difference between the
two per-request figures is what a park and a wake cost. CPU is the proxy's process tree's
(/proc), over RUN_SECONDS per run; five runs of each, medians printed.

    cargo build --release -p switchyard
    python3 host/benches/paused_clients.py       # CONNECTIONS=300 RUNS=5 RUN_SECONDS=5

Needs the shared bench harness (../shared/bench, or set BENCH_DIR) for its nginx origins.
Everything listens on 127.0.0.1 (origins 9001-9003, Switchyard 8449) and is stopped by PID.
"""
import os
import selectors
import socket
import statistics
import time

import beside_nginx as side

PORT = 8449
CONNECTIONS = int(os.environ.get("CONNECTIONS", "300"))
RUNS = int(os.environ.get("RUNS", "5"))
RUN_SECONDS = float(os.environ.get("RUN_SECONDS", "5"))
REQUEST = b"GET /ok HTTP/1.1\r\nHost: bench\r\n\r\n"


def load(connections, pause):
    """`connections` clients, each sending a request `pause` seconds after its last answer,
    for RUN_SECONDS; returns the number of answers."""
    conns = [socket.create_connection(("127.0.0.1", PORT), timeout=10) for _ in range(connections)]
    sel = selectors.DefaultSelector()
    start = time.monotonic()
    due, got = {}, {}
    for i, c in enumerate(conns):
        c.setblocking(False)
        sel.register(c, selectors.EVENT_READ)
        due[c] = start + pause * i / connections  # spread evenly over one pause
        got[c] = b""
    answers = 0
    end = start + RUN_SECONDS
    while (now := time.monotonic()) < end:
        for c in conns:
            if due[c] is not None and now >= due[c]:
                c.sendall(REQUEST)
                due[c] = None
        for key, _ in sel.select(timeout=0.002):
            c = key.fileobj
            chunk = c.recv(65536)
            if not chunk:
                raise RuntimeError("the proxy closed a client connection")
            got[c] += chunk
            if b"\r\n\r\n" in got[c] and got[c].endswith(b"ok"):
                got[c] = b""
                due[c] = time.monotonic() + pause
                answers += 1
    for c in conns:
        c.close()
    return answers


def main():
    side.binary()
    run = side.run_dir("switchyard-paused-")
    conf = side.switchyard_conf(run, "paused", f'[[listen]]\naddr = "127.0.0.1:{PORT}"\n[timeouts]\nkeepalive = "600s"\npark = "250ms"\n')
    cost = {"parked (400 ms pauses)": [], "never parked (200 ms pauses)": []}
    with side.origins(run), side.proxy(run, "switchyard", conf, [PORT]) as pid:
        for _ in range(RUNS):
            for name, connections, pause in (("parked (400 ms pauses)", CONNECTIONS, 0.4), ("never parked (200 ms pauses)", CONNECTIONS // 2, 0.2)):
                before = side.cpu_seconds(pid)
                answers = load(connections, pause)
                cost[name].append((side.cpu_seconds(pid) - before) / answers * 1e6)
    print(f"{CONNECTIONS} and {CONNECTIONS // 2} keep-alive clients, same request rate; proxy CPU per request, median of {RUNS}")
    for name, runs in cost.items():
        print(f"{name:30} {statistics.median(runs):6.1f} µs   (runs: {', '.join(f'{r:.1f}' for r in runs)})")


if __name__ == "__main__":
    main()
