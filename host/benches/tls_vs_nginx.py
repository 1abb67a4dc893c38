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

import beside_nginx as side

SECONDS = int(os.environ.get("SECONDS_PER_CELL", "5"))
CONNECTIONS = int(os.environ.get("CONNECTIONS", "16"))
NGINX_PORT, SWITCHYARD_PORT = 8443, 8444


def wrk(port, path, close):
    cmd = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{SECONDS}s"]
    if close:
        cmd += ["-H", "Connection: close"]
    out = subprocess.run(cmd + [f"https://127.0.0.1:{port}{path}"], capture_output=True, text=True, timeout=SECONDS + 60, check=True).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return requests, int(errors.group(1)) if errors else 0


def measure(run, name, cmd, port):
    rows = []
    with side.proxy(run, name, cmd, [port]) as pid:
        wrk(port, "/ok", False)  # warm-up
        for path in ("/ok", "/64k.bin"):
            for close in (False, True):
                before = side.cpu_seconds(pid)
                requests, bad = wrk(port, path, close)
                cpu = side.cpu_seconds(pid) - before
                rows.append((path, "new conn" if close else "reused", requests / SECONDS, requests / cpu if cpu else 0.0, bad))
    return rows


def main():
    side.binary()
    run = side.run_dir("switchyard-tls-")
    side.self_signed_cert(run)
    nginx = side.nginx_conf(run, "tls", f"listen 127.0.0.1:{NGINX_PORT} ssl http2 backlog=4096;", tls=True)
    switchyard = side.switchyard_conf(run, "tls", f'[[listen]]\naddr = "127.0.0.1:{SWITCHYARD_PORT}"\n[listen.tls]\ncert = "{run}/cert.pem"\nkey = "{run}/key.pem"\n')
    with side.origins(run):
        results = {"nginx": measure(run, "nginx", nginx, NGINX_PORT), "switchyard": measure(run, "switchyard", switchyard, SWITCHYARD_PORT)}
    print(f"TLS, {CONNECTIONS} connections, {SECONDS} s per cell (wrk -t2); req/s and requests per proxy CPU-second")
    print(f"{'body':10} {'connections':12} {'nginx req/s':>12} {'nginx req/cpu-s':>16} {'switchyard req/s':>17} {'req/cpu-s':>10} {'ratio':>6}")
    for (path, mode, n_rps, n_eff, n_bad), (_, _, s_rps, s_eff, s_bad) in zip(results["nginx"], results["switchyard"]):
        ratio = s_eff / n_eff if n_eff else 0.0
        flag = "" if n_bad == s_bad == 0 else f"  (non-2xx: nginx {n_bad}, switchyard {s_bad})"
        print(f"{path:10} {mode:12} {n_rps:12.0f} {n_eff:16.0f} {s_rps:17.0f} {s_eff:10.0f} {ratio:6.2f}{flag}")


if __name__ == "__main__":
    main()
