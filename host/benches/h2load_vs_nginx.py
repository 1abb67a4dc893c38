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

import beside_nginx as side

SECONDS = int(os.environ.get("SECONDS_PER_CELL", "5"))
CLIENTS = int(os.environ.get("CLIENTS", "16"))
STREAMS = int(os.environ.get("STREAMS", "10"))
NGINX_PORTS, SWITCHYARD_PORTS = (8451, 8452), (8453, 8454)  # (h2c, h2 over TLS)


def h2load(url, seconds):
    cmd = ["h2load", "-t2", f"-c{CLIENTS}", f"-m{STREAMS}", f"-D{seconds}", url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    done = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
    if not done:
        sys.exit(f"h2load gave no summary:\n{out}")
    return int(done.group(1)), int(done.group(2)) + int(done.group(3))


def measure(run, name, cmd, ports):
    rows = []
    with side.proxy(run, name, cmd, ports) as pid:
        h2load(f"http://127.0.0.1:{ports[0]}/ok", 1)  # warm-up
        for scheme, url_scheme, port in (("h2c", "http", ports[0]), ("h2 (TLS)", "https", ports[1])):
            for path in ("/ok", "/64k.bin"):
                before = side.cpu_seconds(pid)
                requests, bad = h2load(f"{url_scheme}://127.0.0.1:{port}{path}", SECONDS)
                cpu = side.cpu_seconds(pid) - before
                rows.append((scheme, path, requests / SECONDS, requests / cpu if cpu else 0.0, bad))
    return rows


def main():
    side.binary()
    run = side.run_dir("switchyard-h2-")
    side.self_signed_cert(run)
    h2c, tls = NGINX_PORTS
    nginx = side.nginx_conf(run, "h2", f"listen 127.0.0.1:{h2c} http2 backlog=4096; listen 127.0.0.1:{tls} ssl http2 backlog=4096;", tls=True, http="http2_max_requests 1000000;")
    h2c, tls = SWITCHYARD_PORTS
    switchyard = side.switchyard_conf(run, "h2", f'[[listen]]\naddr = "127.0.0.1:{h2c}"\n[[listen]]\naddr = "127.0.0.1:{tls}"\n[listen.tls]\ncert = "{run}/cert.pem"\nkey = "{run}/key.pem"\n')
    with side.origins(run):
        results = {"nginx": measure(run, "nginx", nginx, NGINX_PORTS), "switchyard": measure(run, "switchyard", switchyard, SWITCHYARD_PORTS)}
    print(f"HTTP/2, {CLIENTS} connections x {STREAMS} streams, {SECONDS} s per cell (h2load -t2); req/s and requests per proxy CPU-second")
    print(f"{'protocol':10} {'body':10} {'nginx req/s':>12} {'nginx req/cpu-s':>16} {'switchyard req/s':>17} {'req/cpu-s':>10} {'ratio':>6}")
    for (scheme, path, n_rps, n_eff, n_bad), (_, _, s_rps, s_eff, s_bad) in zip(results["nginx"], results["switchyard"]):
        ratio = s_eff / n_eff if n_eff else 0.0
        flag = "" if n_bad == s_bad == 0 else f"  (failed: nginx {n_bad}, switchyard {s_bad})"
        print(f"{scheme:10} {path:10} {n_rps:12.0f} {n_eff:16.0f} {s_rps:17.0f} {s_eff:10.0f} {ratio:6.2f}{flag}")


if __name__ == "__main__":
    main()
