#!/usr/bin/env python3
"""HTTP/2 clients: requests per proxy CPU-second, Switchyard beside nginx, both balancing over
the shared harness's three nginx origins (HTTP/1.1 to the origins), driven by h2load.

Cells: cleartext HTTP/2 with prior knowledge (h2c) and HTTP/2 over TLS (ALPN h2), each for a
2-byte and a 64 KiB answer; 16 connections with 10 concurrent streams each (h2load -c16
-m10). Each proxy runs alone while it is measured; CPU is the proxy's whole process tree
(from /proc), so the figure is fair on a shared 2-core machine. Quote ratios from one run.

    cargo build --release -p switchyard
    python3 host/benches/h2load_vs_nginx.py          # ~1 min; SECONDS_PER_CELL=10 for longer cells

Needs nginx, h2load and openssl (the command, only to make a throwaway certificate; Debian:
apt-get install -y nginx nghttp2-client openssl) and the shared bench harness (../shared/bench,
or set BENCH_DIR). Everything listens on 127.0.0.1 (origins 9001-9003, nginx 8451/8452,
Switchyard 8453/8454) and is stopped by PID.
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
import common  # noqa: E402  (the shared harness: origins, process-tree CPU)

SECONDS = int(os.environ.get("SECONDS_PER_CELL", "5"))
CLIENTS = int(os.environ.get("CLIENTS", "16"))
STREAMS = int(os.environ.get("STREAMS", "10"))
HZ = os.sysconf("SC_CLK_TCK")
NGINX_PORTS, SWITCHYARD_PORTS = (8451, 8452), (8453, 8454)  # (h2c, h2 over TLS)

NGINX_CONF = """
worker_processes {workers};
daemon off;
master_process on;
pid {run}/nginx-h2.pid;
error_log {run}/logs/nginx-h2.error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    http2_max_requests 1000000;
    client_body_temp_path {run}/tmp/h2-body;
    proxy_temp_path {run}/tmp/h2-proxy;
    fastcgi_temp_path {run}/tmp/h2-fastcgi;
    uwsgi_temp_path {run}/tmp/h2-uwsgi;
    scgi_temp_path {run}/tmp/h2-scgi;
    upstream set {{
        server 127.0.0.1:9001; server 127.0.0.1:9002; server 127.0.0.1:9003;
        keepalive 128;
    }}
    server {{
        listen 127.0.0.1:{h2c} http2 backlog=4096;
        listen 127.0.0.1:{tls} ssl http2 backlog=4096;
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
addr = "127.0.0.1:{h2c}"
[[listen]]
addr = "127.0.0.1:{tls}"
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


def h2load(url, seconds):
    cmd = ["h2load", "-t2", f"-c{CLIENTS}", f"-m{STREAMS}", f"-D{seconds}", url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    done = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
    if not done:
        sys.exit(f"h2load gave no summary:\n{out}")
    return int(done.group(1)), int(done.group(2)) + int(done.group(3))


def wait_for_port(port, proc, what):
    for _ in range(600):
        if common.port_open(port):
            return
        if proc.poll() is not None:
            sys.exit(f"{what} exited early")
        time.sleep(0.1)
    sys.exit(f"{what} did not listen on {port}")


def measure(name, ports, cmd, run):
    log = open(run / "logs" / f"{name}.out", "ab")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    rows = []
    try:
        for port in ports:
            wait_for_port(port, proc, name)
        h2load(f"http://127.0.0.1:{ports[0]}/ok", 1)  # warm-up
        for scheme, port in (("h2c", ports[0]), ("h2 (TLS)", ports[1])):
            for path in ("/ok", "/64k.bin"):
                url = f"{'https' if port == ports[1] else 'http'}://127.0.0.1:{port}{path}"
                before = common.tree_cpu_ticks(proc.pid)
                requests, bad = h2load(url, SECONDS)
                cpu = (common.tree_cpu_ticks(proc.pid) - before) / HZ
                rows.append((scheme, path, requests / SECONDS, requests / cpu if cpu else 0.0, bad))
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
    run = common.prepare_run_dir(Path(tempfile.mkdtemp(prefix="switchyard-h2-")))
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(run / "key.pem"), "-out", str(run / "cert.pem"), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    common.make_backend_files(run, 3)
    origins = [common.backend_server(run, i) for i in (1, 2, 3)]
    workers = os.cpu_count() or 2
    (run / "conf" / "nginx-h2.conf").write_text(NGINX_CONF.format(run=run, h2c=NGINX_PORTS[0], tls=NGINX_PORTS[1], workers=workers))
    (run / "conf" / "switchyard-h2.toml").write_text(SWITCHYARD_CONF.format(run=run, h2c=SWITCHYARD_PORTS[0], tls=SWITCHYARD_PORTS[1]))
    started = []
    try:
        for origin in origins:
            origin.start()
            started.append(origin)
        results = {
            "nginx": measure("nginx", NGINX_PORTS, ["nginx", "-e", str(run / "logs" / "nginx-h2.error.log"), "-c", str(run / "conf" / "nginx-h2.conf")], run),
            "switchyard": measure("switchyard", SWITCHYARD_PORTS, [str(binary), "--config", str(run / "conf" / "switchyard-h2.toml")], run),
        }
    finally:
        for server in reversed(started):
            server.stop()
    print(f"HTTP/2, {CLIENTS} connections x {STREAMS} streams, {SECONDS} s per cell (h2load -t2); req/s and requests per proxy CPU-second")
    print(f"{'protocol':10} {'body':10} {'nginx req/s':>12} {'nginx req/cpu-s':>16} {'switchyard req/s':>17} {'req/cpu-s':>10} {'ratio':>6}")
    for (scheme, path, n_rps, n_eff, n_bad), (_, _, s_rps, s_eff, s_bad) in zip(results["nginx"], results["switchyard"]):
        ratio = s_eff / n_eff if n_eff else 0.0
        flag = "" if n_bad == s_bad == 0 else f"  (failed: nginx {n_bad}, switchyard {s_bad})"
        print(f"{scheme:10} {path:10} {n_rps:12.0f} {n_eff:16.0f} {s_rps:17.0f} {s_eff:10.0f} {ratio:6.2f}{flag}")


if __name__ == "__main__":
    main()
