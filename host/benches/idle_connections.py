#!/usr/bin/env python3
"""Memory per idle client connection: Switchyard beside nginx, both proxying to the shared
harness's nginx origins.

Each proxy is started alone; N client connections are opened, each sends one request and reads
its answer, and then all of them stay open and idle. The figure is how much the proxy's resident
memory (VmRSS summed over its process tree, from /proc) grew, divided by N. nginx runs one
worker per CPU, Switchyard its default workers. The connections are opened in two halves, two
seconds apart; "second half" is what the second half alone added per connection, without what
the first opened once (arenas, pools, tables sized for the peak).

    cargo build --release -p switchyard
    python3 host/benches/idle_connections.py            # N=8000; IDLE_CONNECTIONS=16000 for more
    TLS=1 IDLE_CONNECTIONS=3000 python3 host/benches/idle_connections.py   # both terminating TLS

Needs nginx and the shared bench harness (../shared/bench, or set BENCH_DIR). Everything listens
on 127.0.0.1 (origins 9001-9003, nginx 8447, Switchyard 8448) and is stopped by PID.
"""
import os
import resource
import socket
import ssl
import time
from pathlib import Path

import beside_nginx as side

N = int(os.environ.get("IDLE_CONNECTIONS", "8000"))
NGINX_PORT, SWITCHYARD_PORT = 8447, 8448
# TLS=1: both proxies terminate TLS (a throwaway certificate), and the clients speak HTTP/1.1 over it.
TLS = os.environ.get("TLS") == "1"
CLIENT_TLS = ssl.create_default_context()
CLIENT_TLS.check_hostname = False
CLIENT_TLS.verify_mode = ssl.CERT_NONE
CLIENT_TLS.set_alpn_protocols(["http/1.1"])


def tree_rss_kb(pid):
    """Resident memory of a process and its descendants, in KiB."""
    total = 0
    for p in side.common.proc_tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def one_request(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    if TLS:
        s = CLIENT_TLS.wrap_socket(s, server_hostname="localhost")
    s.sendall(b"GET /ok HTTP/1.1\r\nHost: bench\r\n\r\n")
    got = b""
    while not (b"\r\n\r\n" in got and got.endswith(b"ok")):
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError(f"port {port} closed a connection before answering: {got!r}")
        got += chunk
    return s


def measure(run, name, cmd, port):
    conns = []
    with side.proxy(run, name, cmd, [port]) as pid:
        try:
            for _ in range(200):  # warm up: pools, workers, allocator arenas
                one_request(port).close()
            time.sleep(1)
            before = tree_rss_kb(pid)
            for _ in range(N // 2):
                conns.append(one_request(port))
            time.sleep(2)
            half = tree_rss_kb(pid)
            for _ in range(N - N // 2):
                conns.append(one_request(port))
            time.sleep(2)
            after = tree_rss_kb(pid)
        finally:
            for c in conns:
                c.close()
    return before, half, after


def main():
    side.binary()
    files = N + 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < files + 64:
        raise SystemExit(f"the open-file limit ({hard}) is too low for {N} connections")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    run = side.run_dir("switchyard-idle-")
    tls = ""
    if TLS:
        side.self_signed_cert(run)
        tls = f'[listen.tls]\ncert = "{run}/cert.pem"\nkey = "{run}/key.pem"\n'
    nginx = side.nginx_conf(run, "idle", f"listen 127.0.0.1:{NGINX_PORT}{' ssl' if TLS else ''} backlog=4096;", tls=TLS, connections=files, main=f"worker_rlimit_nofile {files};", http="keepalive_timeout 600s;")
    switchyard = side.switchyard_conf(run, "idle", f'[[listen]]\naddr = "127.0.0.1:{SWITCHYARD_PORT}"\n{tls}[limits]\nconnections = {files}\n[timeouts]\nkeepalive = "600s"\n')
    with side.origins(run):
        results = {"nginx": measure(run, "nginx", nginx, NGINX_PORT), "switchyard": measure(run, "switchyard", switchyard, SWITCHYARD_PORT)}
    print(f"{N} idle keep-alive client connections{' over TLS' if TLS else ''} (one request each); resident memory of the proxy's process tree")
    print(f"{'proxy':12} {'before MiB':>11} {'after MiB':>10} {'per connection':>15} {'second half':>12}")
    for name, (before, half, after) in results.items():
        whole = (after - before) * 1024 / N / 1000
        marginal = (after - half) * 1024 / (N - N // 2) / 1000
        print(f"{name:12} {before / 1024:11.1f} {after / 1024:10.1f} {whole:12.2f} KB {marginal:9.2f} KB")


if __name__ == "__main__":
    main()
