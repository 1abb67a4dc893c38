"""What the scripts that run Switchyard beside nginx share: the shared bench harness, the
release binary, the three nginx origins, an nginx config balancing over them, the matching
Switchyard members, a throwaway certificate, and starting and stopping a proxy by its
process group, counting wrk's requests. Not a benchmark itself; imported by tls_vs_nginx.py,
h2load_vs_nginx.py, idle_connections.py, paused_clients.py, access_log_vs_nginx.py and
instructions_per_request.py.
"""
import contextlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BENCH_DIR = Path(os.environ.get("BENCH_DIR", REPO.parent / "shared" / "bench"))
sys.path.insert(0, str(BENCH_DIR))
import common  # noqa: E402  (the shared harness: origins, process trees, run dirs)

HZ = os.sysconf("SC_CLK_TCK")

# The origins, as nginx balances over them (keep-alive to each, as Switchyard's pools do).
NGINX_CONF = """
worker_processes {workers};
{main}
daemon off;
master_process on;
pid {run}/nginx-{name}.pid;
error_log {run}/logs/nginx-{name}.error.log warn;
events {{ worker_connections {connections}; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    {http}
    client_body_temp_path {run}/tmp/{name}-body;
    proxy_temp_path {run}/tmp/{name}-proxy;
    fastcgi_temp_path {run}/tmp/{name}-fastcgi;
    uwsgi_temp_path {run}/tmp/{name}-uwsgi;
    scgi_temp_path {run}/tmp/{name}-scgi;
    upstream set {{
        server 127.0.0.1:9001; server 127.0.0.1:9002; server 127.0.0.1:9003;
        keepalive 128;
    }}
    server {{
        {listen}
        {ssl}
        location / {{
            proxy_pass http://set;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffers 16 8k;
        }}
    }}
}}
"""

# The same origins as one Switchyard balancer (append to the listeners and settings).
SWITCHYARD_BALANCER = """
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


def binary():
    """The release build, or exit saying how to make it."""
    path = REPO / "target" / "release" / "switchyard"
    if not path.exists():
        sys.exit(f"{path} is missing: cargo build --release -p switchyard")
    return path


def run_dir(prefix):
    """A fresh run directory laid out as the harness expects, with the origins' files."""
    import tempfile
    run = common.prepare_run_dir(Path(tempfile.mkdtemp(prefix=prefix)))
    common.make_backend_files(run, 3)
    return run


def nginx_conf(run, name, listen, *, tls=False, connections=8192, main="", http=""):
    """Writes the nginx config for `name` (its `listen` lines given; `tls`: with the
    certificate of `self_signed_cert`) and returns its command."""
    ssl = f"ssl_certificate {run}/cert.pem; ssl_certificate_key {run}/key.pem; ssl_protocols TLSv1.2 TLSv1.3;" if tls else ""
    conf = run / "conf" / f"nginx-{name}.conf"
    conf.write_text(NGINX_CONF.format(run=run, name=name, workers=os.cpu_count() or 2, listen=listen, ssl=ssl, connections=connections, main=main, http=http))
    return ["nginx", "-e", str(run / "logs" / f"nginx-{name}.error.log"), "-c", str(conf)]


def switchyard_conf(run, name, listeners):
    """Writes Switchyard's config (`listeners` and settings, then the balancer) and returns its command."""
    conf = run / "conf" / f"switchyard-{name}.toml"
    conf.write_text(listeners + SWITCHYARD_BALANCER)
    return [str(binary()), "--config", str(conf)]


def self_signed_cert(run):
    """A throwaway certificate for localhost and 127.0.0.1 (cert.pem, key.pem in `run`)."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(run / "key.pem"), "-out", str(run / "cert.pem"), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )


@contextlib.contextmanager
def origins(run):
    """The three nginx origins on 9001-9003, stopped on the way out."""
    started = []
    try:
        for i in (1, 2, 3):
            server = common.backend_server(run, i)
            server.start()
            started.append(server)
        yield
    finally:
        for server in reversed(started):
            server.stop()


@contextlib.contextmanager
def proxy(run, name, cmd, ports):
    """Runs `cmd` in a process group of its own until every port listens; yields its PID and
    stops the group on the way out."""
    log = open(run / "logs" / f"{name}.out", "ab")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        for port in ports:
            for _ in range(600):
                if common.port_open(port):
                    break
                if proc.poll() is not None:
                    sys.exit(f"{name} exited early (see {run / 'logs' / (name + '.out')})")
                time.sleep(0.1)
            else:
                sys.exit(f"{name} did not listen on {port}")
        yield proc.pid
    finally:
        try:
            os.killpg(proc.pid, 15)
        except ProcessLookupError:
            pass
        proc.wait(30)


def wrk_requests(url, *, threads, connections, seconds):
    """How many requests `wrk` made to `url` in `seconds`."""
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", url],
        capture_output=True, text=True, timeout=seconds + 30, check=True,
    ).stdout
    return int(re.search(r"(\d+) requests in", out).group(1))


def cpu_seconds(pid):
    """CPU seconds used so far by the process tree under `pid`."""
    return common.tree_cpu_ticks(pid) / HZ
