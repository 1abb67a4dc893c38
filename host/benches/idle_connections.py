#!/usr/bin/env python3
"""Memory per idle client connection: Switchyard beside nginx, both proxying to the shared
harness's nginx origins.

Each proxy is started alone; N client connections are opened, each sends one request and reads
its answer, and then all of them stay open and idle. The figure is how much the proxy's resident
memory (VmRSS summed over its process tree, from /proc) grew, divided by N. nginx runs one
worker per CPU, Switchyard its default workers.

    cargo build --release -p switchyard
    python3 host/benches/idle_connections.py            # N=8000; IDLE_CONNECTIONS=20000 for more

Needs nginx and the shared bench harness (../shared/bench, or set BENCH_DIR). Everything listens
on 127.0.0.1 (origins 9001-9003, nginx 8447, Switchyard 8448) and is stopped by PID.
"""
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BENCH_DIR = Path(os.environ.get("BENCH_DIR", REPO.parent / "shared" / "bench"))
sys.path.insert(0, str(BENCH_DIR))
import common  # noqa: E402  (the shared harness: origins, process trees)

N = int(os.environ.get("IDLE_CONNECTIONS", "8000"))
NGINX_PORT, SWITCHYARD_PORT = 8447, 8448

NGINX_CONF = """
worker_processes {workers};
worker_rlimit_nofile {files};
daemon off;
master_process on;
pid {run}/nginx-idle.pid;
error_log {run}/logs/nginx-idle.error.log warn;
events {{ worker_connections {files}; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 600s;
    client_body_temp_path {run}/tmp/idle-body;
    proxy_temp_path {run}/tmp/idle-proxy;
    fastcgi_temp_path {run}/tmp/idle-fastcgi;
    uwsgi_temp_path {run}/tmp/idle-uwsgi;
    scgi_temp_path {run}/tmp/idle-scgi;
    upstream set {{
        server 127.0.0.1:9001; server 127.0.0.1:9002; server 127.0.0.1:9003;
        keepalive 128;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://set;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""

SWITCHYARD_CONF = """
[[listen]]
addr = "127.0.0.1:{port}"
[limits]
connections = {files}
[timeouts]
keepalive = "600s"
[[route]]
path = "/"
balancer = "bench"
[balancer.bench]
lbmethod = "byrequests"
[[balancer.bench.member]]
url = "http://127.0.0.1:9001"
[[balancer.bench.member]]
url = "http://127.0.0.1:9002"
[[balancer.bench.member]]
url = "http://127.0.0.1:9003"
"""


def tree_rss_kb(pid):
    """Resident memory of a process and its descendants, in KiB."""
    total = 0
    for p in common.proc_tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def one_request(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /ok HTTP/1.1\r\nHost: bench\r\n\r\n")
    got = b""
    while not (b"\r\n\r\n" in got and got.endswith(b"ok")):
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError(f"port {port} closed a connection before answering: {got!r}")
        got += chunk
    return s


def measure(name, port, cmd, run):
    log = open(run / "logs" / f"{name}.out", "ab")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    conns = []
    try:
        for _ in range(600):
            if common.port_open(port):
                break
            if proc.poll() is not None:
                sys.exit(f"{name} exited early")
            time.sleep(0.1)
        for _ in range(200):  # warm up: pools, workers, allocator arenas
            one_request(port).close()
        time.sleep(1)
        before = tree_rss_kb(proc.pid)
        for _ in range(N):
            conns.append(one_request(port))
        time.sleep(2)
        after = tree_rss_kb(proc.pid)
    finally:
        for c in conns:
            c.close()
        try:
            os.killpg(proc.pid, 15)
        except ProcessLookupError:
            pass
        proc.wait(30)
    return before, after


def main():
    binary = REPO / "target" / "release" / "switchyard"
    if not binary.exists():
        sys.exit(f"{binary} is missing: cargo build --release -p switchyard")
    files = N + 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < files + 64:
        sys.exit(f"the open-file limit ({hard}) is too low for {N} connections")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    run = common.prepare_run_dir(Path(tempfile.mkdtemp(prefix="switchyard-idle-")))
    common.make_backend_files(run, 3)
    origins = [common.backend_server(run, i) for i in (1, 2, 3)]
    workers = os.cpu_count() or 2
    (run / "conf" / "nginx-idle.conf").write_text(NGINX_CONF.format(run=run, port=NGINX_PORT, workers=workers, files=files))
    (run / "conf" / "switchyard-idle.toml").write_text(SWITCHYARD_CONF.format(port=SWITCHYARD_PORT, files=files))
    started = []
    try:
        for origin in origins:
            origin.start()
            started.append(origin)
        results = {
            "nginx": measure("nginx", NGINX_PORT, ["nginx", "-e", str(run / "logs" / "nginx-idle.error.log"), "-c", str(run / "conf" / "nginx-idle.conf")], run),
            "switchyard": measure("switchyard", SWITCHYARD_PORT, [str(binary), "--config", str(run / "conf" / "switchyard-idle.toml")], run),
        }
    finally:
        for server in reversed(started):
            server.stop()
    print(f"{N} idle keep-alive client connections (one request each); resident memory of the proxy's process tree")
    print(f"{'proxy':12} {'before MiB':>11} {'after MiB':>10} {'per connection':>15}")
    for name, (before, after) in results.items():
        print(f"{name:12} {before / 1024:11.1f} {after / 1024:10.1f} {(after - before) * 1024 / N / 1000:12.2f} KB")


if __name__ == "__main__":
    main()
