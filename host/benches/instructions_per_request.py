#!/usr/bin/env python3
"""Instructions per proxied request, counted by callgrind: a figure that does not drift with
the machine's load the way wrk's requests per CPU-second does (its run-to-run spread on the
2-core VM is 10-40 %), so a change of 2 % shows.

Runs the release proxy on examples/bench.toml under valgrind's callgrind over the shared
harness's three nginx origins, warms it up with wrk, zeroes the counters, drives
`GET /ok` for a fixed time at low concurrency, dumps, and prints the user-space
instructions per request (and how many of them the runtime's waits took), then the functions
costing the most per request (inclusive).

    cargo build --release -p switchyard
    python3 host/benches/instructions_per_request.py          # ~1 min; TOP=60 for more rows
    CONFIG=examples/bench-access-log.toml python3 host/benches/instructions_per_request.py
                                                              # the same with the access log on
    HTTP2=1 python3 host/benches/instructions_per_request.py  # HTTP/2 clients (h2load, h2c)

Needs valgrind, nginx and wrk (Debian: apt-get install -y valgrind nginx wrk; h2load for HTTP2=1: nghttp2-client) and the shared
bench harness (../shared/bench, or set BENCH_DIR). Everything listens on 127.0.0.1 (origins
9001-9003, the proxy on 8090) and is stopped by PID. The profile is kept (its path is
printed) for `callgrind_annotate --inclusive=yes --tree=calling`.
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
import beside_nginx as side  # noqa: E402  (wrk's request count)

PROXY_PORT = 8090
SECONDS = int(os.environ.get("SECONDS_UNDER_LOAD", "10"))
CONNECTIONS = 4
TOP = int(os.environ.get("TOP", "30"))
# HTTP2=1: the same requests from HTTP/2 clients (h2load, cleartext with prior knowledge, as
# many streams at once on each connection as there are connections), which hyper serves.
HTTP2 = os.environ.get("HTTP2") == "1"


def wrk(seconds):
    if HTTP2:
        return h2load(seconds)
    return side.wrk_requests(f"http://127.0.0.1:{PROXY_PORT}/ok", threads=1, connections=CONNECTIONS, seconds=seconds)


def h2load(seconds):
    out = subprocess.run(
        ["h2load", "-t1", f"-c{CONNECTIONS}", f"-m{CONNECTIONS}", f"-D{seconds}", f"http://127.0.0.1:{PROXY_PORT}/ok"],
        capture_output=True, text=True, timeout=seconds + 30, check=True,
    ).stdout
    return int(re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", out).group(1))


def main():
    binary = REPO / "target" / "release" / "switchyard"
    if not binary.exists():
        sys.exit(f"{binary} is missing: cargo build --release -p switchyard")
    run = common.prepare_run_dir(Path(tempfile.mkdtemp(prefix="switchyard-cg-")))
    common.make_backend_files(run, 3)
    origins = [common.backend_server(run, i) for i in (1, 2, 3)]
    profile = run / "callgrind.out"
    started, proxy = [], None
    try:
        for origin in origins:
            origin.start()
            started.append(origin)
        proxy = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={profile}", str(binary),
             "--config", str(REPO / os.environ.get("CONFIG", "examples/bench.toml"))],
            stdout=subprocess.DEVNULL, stderr=open(run / "valgrind.log", "w"), start_new_session=True,
        )
        for _ in range(600):  # the embedded plugins compile slowly under valgrind
            if common.port_open(PROXY_PORT):
                break
            time.sleep(0.5)
        else:
            sys.exit(f"the proxy did not start under valgrind; see {run / 'valgrind.log'}")
        wrk(2)
        subprocess.run(["callgrind_control", "-z", str(proxy.pid)], capture_output=True, check=True)
        requests = wrk(SECONDS)
        subprocess.run(["callgrind_control", "-d", str(proxy.pid)], capture_output=True, check=True)
    finally:
        if proxy is not None:
            os.killpg(proxy.pid, signal.SIGTERM)
            proxy.wait(60)
        for server in reversed(started):
            server.stop()
    # The dump made under load is the first numbered part (the last is the shutdown's).
    dumps = sorted(run.glob("callgrind.out.*"), key=lambda p: int(p.suffix[1:]))
    if not dumps:
        sys.exit(f"no callgrind dump in {run}")
    report = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", str(dumps[0])], capture_output=True, text=True, check=True
    ).stdout
    rows = re.findall(r"^\s*([\d,]+) \(\s*[\d.]+%\)\s+(\S.*)$", report, re.MULTILINE)
    total = int(rows[0][0].replace(",", ""))
    print(f"{requests} requests, {total / requests:,.0f} user-space instructions per request ({dumps[0]})")
    # The runtime's waits (epoll, then its timers) are counted apart too: how many a worker
    # makes per request depends on how the proxy's threads and wrk interleave under valgrind
    # (from about 0.5 to 1.5, some 800 instructions each), which moves the total by a few
    # hundred from run to run with no change to the proxy. What is left is steadier.
    waits = max((int(c.replace(",", "")) for c, where in rows if re.search(r"current_thread::Context::park \[", where)), default=0)
    print(f"{waits / requests:9,.0f}  of them in the runtime's waits; {(total - waits) / requests:,.0f} outside them")
    shown = 0
    seen = set()
    for count, where in rows[1:]:
        count = int(count.replace(",", ""))
        if count > 0.9 * total:
            continue  # the runtime and connection drivers every request runs under
        name = re.sub(r"\s*\[[^]]*\]$", "", re.sub(r"^\S*?/(src|library)/[^:]*:", "", where))
        if name in seen:
            continue  # the same function, attributed to an inlining site
        seen.add(name)
        print(f"{count / requests:9,.0f}  {name[:150]}")
        shown += 1
        if shown >= TOP:
            break


if __name__ == "__main__":
    main()
