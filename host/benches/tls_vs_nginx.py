#!/usr/bin/env python3
"""TLS termination: requests per proxy CPU-second, Switchyard beside nginx, both balancing over
the shared harness's three nginx origins, driven by wrk over https.

Two cells per body size: reused keep-alive connections (the steady state of a busy site), and
a new connection (a full handshake) for every request (`Connection: close`). Each proxy runs
alone while it is measured; CPU is the proxy's whole process tree (from /proc), so the figure
is fair on a shared 2-core machine. Quote ratios from one run.

    cargo build --release -p switchyard
    python3 host/benches/tls_vs_nginx.py             # ~2 min; SECONDS_PER_CELL=10 for longer cells

Needs nginx, wrk and openssl (the command, only to make a throwaway certificate for the
peers; Debian: apt-get install -y nginx wrk openssl) and the shared bench harness
(../shared/bench, or set BENCH_DIR). Everything listens on 127.0.0.1 (origins 9001-9003,
nginx 8443, Switchyard 8444) and is stopped by PID.
"""
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BENCH_DIR = Path(os.environ.get("BENCH_DIR", REPO.parent / "shared" / "bench"))
sys.path.insert(0, str(BENCH_DIR))
import common  # noqa: E402  (the shared harness: origins, Server, process-tree CPU)

SECONDS = int(os.environ.get("SECONDS_PER_CELL", "5"))
CONNECTIONS = int(os.environ.get("CONNECTIONS", "16"))
HZ = os.sysconf("SC_CLK_TCK")
NGINX_PORT, SWITCHYARD_PORT = 8443, 8444

NGINX_CONF = """
worker_processes {workers};
daemon off;
master_process on;
pid {run}/nginx-tls.pid;
error_log {run}/logs/nginx-tls.error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {run}/tmp/tls-body;
    proxy_temp_path {run}/tmp/tls-proxy;
    fastcgi_temp_path {run}/tmp/tls-fastcgi;
    uwsgi_temp_path {run}/tmp/tls-uwsgi;
    scgi_temp_path {run}/tmp/tls-scgi;
    upstream set {{
        server 127.0.0.1:9001; server 127.0.0.1:9002; server 127.0.0.1:9003;
        keepalive 128;
    }}
    server {{
        listen 127.0.0.1:{port} ssl http2 backlog=4096;
        ssl_certificate {run}/cert.pem;
        ssl_certificate_key {run}/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {{
            proxy_pass http://set;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffers 16 8k;
        }}
    }}
}}
"""

SWITCHYARD_CONF = """
[[listen]]
addr = "127.0.0.1:{port}"
[listen.tls]
cert = "{run}/cert.pem"
key = "{run}/key.pem"
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


def wrk(port, path, close):
    cmd = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{SECONDS}s"]
    if close:
        cmd += ["-H", "Connection: close"]
    out = subprocess.run(cmd + [f"https://127.0.0.1:{port}{path}"], capture_output=True, text=True, timeout=SECONDS + 60, check=True).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return requests, int(errors.group(1)) if errors else 0


def wait_for_port(port, proc, what):
    for _ in range(600):
        if common.port_open(port):
            return
        if proc.poll() is not None:
            sys.exit(f"{what} exited early")
        time.sleep(0.1)
    sys.exit(f"{what} did not listen on {port}")


def measure(name, port, cmd, run):
    log = open(run / "logs" / f"{name}.out", "ab")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    rows = []
    try:
        wait_for_port(port, proc, name)
        wrk(port, "/ok", False)  # warm-up
        for path in ("/ok", "/64k.bin"):
            for close in (False, True):
                before = common.tree_cpu_ticks(proc.pid)
                requests, bad = wrk(port, path, close)
                cpu = (common.tree_cpu_ticks(proc.pid) - before) / HZ
                rows.append((path, "new conn" if close else "reused", requests / SECONDS, requests / cpu if cpu else 0.0, bad))
    finally:
        try:
            os.killpg(proc.pid, 15)
        except ProcessLookupError:
            pass
        proc.wait(30)
    return rows


def main():
    binary = REPO / "target" / "release" / "switchyard"
    if not binary.exists():
        sys.exit(f"{binary} is missing: cargo build --release -p switchyard")
    run = common.prepare_run_dir(Path(tempfile.mkdtemp(prefix="switchyard-tls-")))
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(run / "key.pem"), "-out", str(run / "cert.pem"), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    common.make_backend_files(run, 3)
    origins = [common.backend_server(run, i) for i in (1, 2, 3)]
    workers = os.cpu_count() or 2
    (run / "conf" / "nginx-tls.conf").write_text(NGINX_CONF.format(run=run, port=NGINX_PORT, workers=workers))
    (run / "conf" / "switchyard-tls.toml").write_text(SWITCHYARD_CONF.format(run=run, port=SWITCHYARD_PORT))
    started = []
    try:
        for origin in origins:
            origin.start()
            started.append(origin)
        results = {
            "nginx": measure("nginx", NGINX_PORT, ["nginx", "-e", str(run / "logs" / "nginx-tls.error.log"), "-c", str(run / "conf" / "nginx-tls.conf")], run),
            "switchyard": measure("switchyard", SWITCHYARD_PORT, [str(binary), "--config", str(run / "conf" / "switchyard-tls.toml")], run),
        }
    finally:
        for server in reversed(started):
            server.stop()
    print(f"TLS, {CONNECTIONS} connections, {SECONDS} s per cell (wrk -t2); req/s and requests per proxy CPU-second")
    print(f"{'body':10} {'connections':12} {'nginx req/s':>12} {'nginx req/cpu-s':>16} {'switchyard req/s':>17} {'req/cpu-s':>10} {'ratio':>6}")
    for (path, mode, n_rps, n_eff, n_bad), (_, _, s_rps, s_eff, s_bad) in zip(results["nginx"], results["switchyard"]):
        ratio = s_eff / n_eff if n_eff else 0.0
        flag = "" if n_bad == s_bad == 0 else f"  (non-2xx: nginx {n_bad}, switchyard {s_bad})"
        print(f"{path:10} {mode:12} {n_rps:12.0f} {n_eff:16.0f} {s_rps:17.0f} {s_eff:10.0f} {ratio:6.2f}{flag}")


if __name__ == "__main__":
    main()
