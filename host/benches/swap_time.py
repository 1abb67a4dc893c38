"""How long a hot swap takes, from the upload answered to the next request served by the new
version, through the release binary's balancer manager (loopback only):

- a version never compiled before (a fresh process, an empty plugins directory);
- a version compiled before in this process (swapped away from and back to);
- a version compiled by an earlier process, loaded from the compiled cache on disk (the
  process restarted over the same plugins directory);

each with `[admin] persist` off and on (on: the state file is written and synced before the
call answers). Prints the medians of REPEATS processes (default 15) per case, ten swaps each
for a version compiled before. The time to the next request is what a client sees; the call
alone is what the manager's answer took (the publish comes before the answer, so the next
request is always on the new version).

    cargo build --release && python3 host/benches/swap_time.py
"""
import http.client
import http.server
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BINARY = REPO / "target" / "release" / "switchyard"
PLUGINS = REPO / "target" / "wasm-plugins" / "wasm32-wasip2" / "wasm-plugin"
REPEATS = int(os.environ.get("REPEATS", "15"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Member(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The head and the body are two writes: without this, the second waits for the proxy's
    # delayed ACK (40 ms), which is not the swap's time.
    disable_nagle_algorithm = True

    def do_GET(self):
        body = self.server.name.encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def start_member(name):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Member)
    server.name = name
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class Proxy:
    def __init__(self, workdir, members, persist):
        self.port, self.admin = free_port(), free_port()
        config = f'[[listen]]\naddr = "127.0.0.1:{self.port}"\n[[route]]\npath = "/"\nbalancer = "web"\n[balancer.web]\n'
        for m in members:
            config += f'[[balancer.web.member]]\nurl = "http://127.0.0.1:{m.server_address[1]}"\n'
        config += f'[admin]\nlisten = "127.0.0.1:{self.admin}"\nplugins = "plugins"\n'
        if persist:
            config += 'persist = "state"\n'
        (workdir / "switchyard.toml").write_text(config)
        self.process = subprocess.Popen(
            [str(BINARY), "--config", str(workdir / "switchyard.toml")],
            stdout=subprocess.DEVNULL,
            stderr=open(workdir / "switchyard.log", "a"),
            env={**os.environ, "RUST_LOG": "warn"},
        )
        for _ in range(200):
            try:
                self.call("GET", "/api/balancers")
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise SystemExit("the proxy did not start: see " + str(workdir / "switchyard.log"))
        self.nonce = json.loads(self.call("GET", "/api/balancers")[1])["nonce"]
        self.traffic = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def call(self, method, path, body=None, content_type="application/json"):
        conn = http.client.HTTPConnection("127.0.0.1", self.admin, timeout=30)
        headers = {"x-nonce": getattr(self, "nonce", ""), "content-type": content_type}
        conn.request(method, path, body=body, headers=headers)
        reply = conn.getresponse()
        data = reply.read()
        conn.close()
        if reply.status >= 300:
            raise SystemExit(f"{method} {path}: {reply.status} {data[:300]!r}")
        return reply.status, data

    def get(self):
        self.traffic.request("GET", "/x")
        reply = self.traffic.getresponse()
        reply.read()
        return reply.status

    def upload(self, path):
        return json.loads(self.call("POST", "/api/plugins", Path(path).read_bytes(), "application/wasm")[1])["sha256"]

    def swap(self, choice):
        """Seconds from the call sent to the next request answered (the upload already
        answered), and the call alone."""
        started = time.perf_counter()
        self.call("PUT", "/api/balancers/web/lbmethod", json.dumps(choice))
        answered = time.perf_counter()
        assert self.get() == 200
        return time.perf_counter() - started, answered - started

    def stop(self):
        self.traffic.close()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)


def ms(values):
    return f"{statistics.median(values) * 1e3:7.2f} ms"


def main():
    if not BINARY.exists():
        raise SystemExit("build the release binary first: cargo build --release")
    versions = [PLUGINS / "lbmethod_rendezvous.wasm", PLUGINS / "lbmethod_peak_ewma.wasm"]
    for v in versions:
        if not v.exists():
            raise SystemExit(f"{v} is missing: `cargo build --release` builds the example plugins")
    members = [start_member(n) for n in "abc"]
    print(f"{'case':58} {'to the next request':>19} {'the call alone':>15}")
    for persist in (False, True):
        fresh, memory, disk, plain = ([], []), ([], []), ([], []), []
        for _ in range(REPEATS):
            with tempfile.TemporaryDirectory(prefix="switchyard-swap-") as tmp:
                workdir = Path(tmp)
                proxy = Proxy(workdir, members, persist)
                shas = [proxy.upload(v) for v in versions]
                total, call = proxy.swap({"sha256": shas[0]})
                fresh[0].append(total), fresh[1].append(call)
                # What a request costs the client with no swap before it, for comparison.
                for _ in range(20):
                    started = time.perf_counter()
                    assert proxy.get() == 200
                    plain.append(time.perf_counter() - started)
                # Back and forth between the two versions, both compiled now.
                for i in range(10):
                    total, call = proxy.swap({"sha256": shas[(i + 1) % 2]})
                    memory[0].append(total), memory[1].append(call)
                proxy.stop()
                proxy = Proxy(workdir, members, persist)
                # A persisted swap comes back at start (shas[0], loaded then): leave it first.
                if persist:
                    proxy.swap({"builtin": "byrequests"})
                total, call = proxy.swap({"sha256": shas[1]})
                disk[0].append(total), disk[1].append(call)
                proxy.stop()
        label = "persist on " if persist else "persist off"
        print(f"{label}: {'one request, no swap (what the client alone costs)':45} {ms(plain):>19}")
        for name, (total, call) in [("never compiled (compiles)", fresh), ("compiled before in this process", memory), ("from the compiled cache on disk (restarted)", disk)]:
            print(f"{label}: {name:45} {ms(total):>19} {ms(call):>15}")
    for m in members:
        m.shutdown()


if __name__ == "__main__":
    sys.exit(main())
