#!/usr/bin/env python3
"""Failover under load: wrk at fixed concurrency against a 3-member balancer while one
member is killed (SIGKILL, its whole process group) and restarted twice.

Counts what wrk saw (requests, non-2xx answers, socket errors) and how many requests the
killed member served after each restart (nginx stub_status), i.e. whether it takes traffic
again after its `retry` time.

    cargo build --release -p switchyard
    python3 host/benches/failover_under_load.py            # ~40 s

Needs nginx and wrk (Debian: apt-get install -y nginx wrk) and the shared bench harness
(../shared/bench, or set BENCH_DIR) for its nginx origin servers. Everything listens on
127.0.0.1 (origins 9001-9003, the proxy on 8090) and is stopped by PID.
"""
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BENCH_DIR = Path(os.environ.get("BENCH_DIR", REPO.parent / "shared" / "bench"))
sys.path.insert(0, str(BENCH_DIR))
import common  # noqa: E402  (the shared harness: origins, Server, process-group stops)

PROXY_PORT = 8090
RETRY = "2s"
CONNECTIONS = 16
PHASE = 4.0  # seconds between kill and restart, and restart and the next kill


def status_requests(port):
    """Requests an nginx origin has served (stub_status), or None when it is down."""
    try:
        _, _, body = common.http_get(port, "/_status", timeout=2)
    except Exception:  # noqa: BLE001 - down, refusing, or half-started: no count
        return None
    m = re.search(rb"\n\s*(\d+)\s+(\d+)\s+(\d+)", body)
    return int(m.group(3)) if m else None


def main():
    run = common.prepare_run_dir(Path(tempfile.mkdtemp(prefix="switchyard-failover-")))
    common.make_backend_files(run, 3)
    origins = [common.backend_server(run, i) for i in (1, 2, 3)]
    members = "".join(
        '[[balancer.b.member]]\nurl = "http://127.0.0.1:%d"\nretry = "%s"\n' % (o.port, RETRY) for o in origins
    )
    config = run / "conf" / "switchyard.toml"
    config.write_text(
        '[[listen]]\naddr = "127.0.0.1:%d"\n[[route]]\npath = "/"\nbalancer = "b"\n[balancer.b]\n%s' % (PROXY_PORT, members)
    )
    binary = REPO / "target" / "release" / "switchyard"
    proxy = common.Server("switchyard", [str(binary), "--config", str(config)], PROXY_PORT, str(run / "logs" / "switchyard.out"))
    started = []
    try:
        for s in origins + [proxy]:
            s.start()
            started.append(s)
        duration = int(5 * PHASE + 4)
        wrk = subprocess.Popen(
            ["wrk", "-t2", "-c%d" % CONNECTIONS, "-d%ds" % duration, "http://127.0.0.1:%d/ok" % PROXY_PORT],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        victim = origins[1]
        after_restart = []
        time.sleep(PHASE)
        for _ in range(2):
            os.killpg(victim.pid, signal.SIGKILL)
            victim.proc.wait(5)
            victim.proc = None
            time.sleep(PHASE)
            victim.start()
            baseline = status_requests(victim.port) or 0
            time.sleep(PHASE)
            served = (status_requests(victim.port) or 0) - baseline
            after_restart.append(served)
        out, _ = wrk.communicate(timeout=duration + 30)
        total = re.search(r"(\d+) requests in", out)
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        sockets = re.search(r"Socket errors: (.*)", out)
        print(out)
        print("requests: %s" % (total.group(1) if total else "?"))
        print("non-2xx answers: %s" % (non2xx.group(1) if non2xx else "0"))
        print("socket errors: %s" % (sockets.group(1) if sockets else "none"))
        print("requests served by the restarted member in the %.0f s after each restart "
              "(retry %s): %s" % (PHASE, RETRY, after_restart))
    finally:
        for s in reversed(started):
            s.stop()


if __name__ == "__main__":
    main()
