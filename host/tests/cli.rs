//! The `switchyard` binary as an operator runs it: `--check`, exit codes, error messages,
//! SIGTERM draining a request in flight, and SIGHUP reloading the config (or refusing it).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

/// A fresh temporary directory for one test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("switchyard-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn the_example_configs_pass_the_check() {
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
    // rendezvous.toml needs the Python example plugin built: tests/e2e/examples.rs covers it.
    for name in ["quickstart.toml", "bench.toml", "bench-access-log.toml", "production.toml"] {
        let out = Command::new(BIN).arg("--config").arg(examples.join(name)).arg("--check").output().expect("run");
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn check_accepts_a_valid_config() {
    let dir = temp_dir("valid");
    let file = dir.join("ok.toml");
    std::fs::write(
        &file,
        "[[listen]]\naddr = \"127.0.0.1:0\"\n[[route]]\npath = \"/\"\nbalancer = \"b\"\n[balancer.b]\nlbmethod = \"bybusyness\"\n[[balancer.b.member]]\nurl = \"http://127.0.0.1:1\"\n",
    )
    .expect("write");
    let out = Command::new(BIN).arg("--config").arg(&file).arg("--check").output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (1 listeners, 1 routes, 1 balancers)"));
}

#[test]
fn check_rejects_a_bad_config_naming_file_line_and_key() {
    let dir = temp_dir("invalid");
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        "[[listen]]\naddr = \"127.0.0.1:0\"\n[balancer.b]\n[[balancer.b.member]]\nurl = \"http://127.0.0.1:1\"\nloadfactor = 0.5\n",
    )
    .expect("write");
    let out = Command::new(BIN).arg("--config").arg(&file).arg("--check").output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!("{}:6: balancer.b.member[0].loadfactor: must be between 1 and 100", file.display());
    assert!(stderr.contains(&expected), "{stderr}");

    let missing = Command::new(BIN).args(["--config", "/nonexistent/switchyard.toml", "--check"]).output().expect("run");
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/switchyard.toml: cannot read"));
}

#[test]
fn sigterm_lets_a_request_in_flight_finish() {
    // A member that answers 600 ms after it receives a request.
    let member = TcpListener::bind("127.0.0.1:0").expect("bind member");
    let member_addr = member.local_addr().expect("addr");
    let (received_tx, received_rx) = mpsc::channel();
    std::thread::spawn(move || {
        if let Ok((mut stream, _)) = member.accept() {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = received_tx.send(());
            std::thread::sleep(Duration::from_millis(600));
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow");
        }
    });

    let dir = temp_dir("drain");
    let file = dir.join("drain.toml");
    std::fs::write(&file, format!("[[listen]]\naddr = \"127.0.0.1:0\"\n[[route]]\npath = \"/\"\nbackend = \"http://{member_addr}/\"\n"))
        .expect("write");
    let mut child = Command::new(BIN).arg("--config").arg(&file).stderr(Stdio::piped()).spawn().expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let (line_tx, line_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = line_tx.send(line);
        }
    });
    let addr = loop {
        let line = line_rx.recv_timeout(Duration::from_secs(30)).expect("the proxy logs its address");
        if let Some(addr) = line.split("addr=").nth(1) {
            break addr.trim().to_string();
        }
    };

    let client = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(&addr).expect("connect to proxy");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        stream.write_all(b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").expect("write");
        let mut reply = String::new();
        let _ = stream.read_to_string(&mut reply);
        reply
    });
    received_rx.recv_timeout(Duration::from_secs(10)).expect("the request reached the member");
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(killed.success());

    let reply = client.join().expect("client");
    assert!(reply.starts_with("HTTP/1.1 200") && reply.ends_with("slow"), "{reply}");
    let status = wait_with_timeout(&mut child, Duration::from_secs(10));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "exits cleanly after draining");
}

fn wait_with_timeout(child: &mut std::process::Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let step = Duration::from_millis(20);
    let mut waited = Duration::ZERO;
    while waited < limit {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(step);
        waited += step;
    }
    let _ = child.kill();
    None
}

/// A member answering every request with `body` and closing, on a thread of its own.
fn fixed_member(body: &'static str) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind member");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        }
    });
    addr
}

fn get(addr: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect to proxy");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    stream.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").expect("write");
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    reply
}

/// Waits (bounded) for a log line containing `text`.
fn wait_for_line(lines: &mpsc::Receiver<String>, text: &str) -> String {
    loop {
        let line = lines.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| panic!("no log line with {text:?}"));
        if line.contains(text) {
            return line;
        }
    }
}

/// Starts the binary on `file`; its stderr lines arrive on the receiver.
fn spawn_proxy(file: &std::path::Path) -> (std::process::Child, mpsc::Receiver<String>) {
    let mut child = Command::new(BIN).arg("--config").arg(file).stderr(Stdio::piped()).spawn().expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let (line_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = line_tx.send(line);
        }
    });
    (child, lines)
}

#[test]
fn a_second_proxy_on_a_busy_address_refuses_to_start() {
    let a = fixed_member("from-a");
    let b = fixed_member("from-b");
    let dir = temp_dir("busy");
    let first_file = dir.join("first.toml");
    std::fs::write(&first_file, format!("[[listen]]\naddr = \"127.0.0.1:0\"\n[[route]]\npath = \"/\"\nbackend = \"http://{a}/\"\n")).expect("write");
    let (mut first, lines) = spawn_proxy(&first_file);
    let addr = wait_for_line(&lines, "addr=").split("addr=").nth(1).expect("addr").trim().to_string();

    // The same address, another member: were it let in, it would take some connections.
    let second_file = dir.join("second.toml");
    std::fs::write(&second_file, format!("[[listen]]\naddr = \"{addr}\"\n[[route]]\npath = \"/\"\nbackend = \"http://{b}/\"\n")).expect("write");
    let (mut second, second_lines) = spawn_proxy(&second_file);
    let status = wait_with_timeout(&mut second, Duration::from_secs(30));
    assert!(status.is_some_and(|s| !s.success()), "the second proxy must exit non-zero, got {status:?}");
    let said: Vec<String> = second_lines.iter().collect(); // ends with its stderr, which ended with it
    assert!(said.iter().any(|l| l.contains(&addr) && l.contains("address already in use")), "{said:?}");

    for _ in 0..50 {
        assert!(get(&addr).ends_with("from-a"), "every request is served by the first proxy");
    }
    assert!(Command::new("kill").args(["-TERM", &first.id().to_string()]).status().expect("kill").success());
    assert_eq!(wait_with_timeout(&mut first, Duration::from_secs(10)).and_then(|s| s.code()), Some(0));
}

/// Waits (bounded) until `file` holds `n` lines; returns them.
fn wait_for_lines(file: &std::path::Path, n: usize) -> Vec<String> {
    for _ in 0..500 {
        let lines: Vec<String> = std::fs::read_to_string(file).unwrap_or_default().lines().map(str::to_string).collect();
        if lines.len() >= n {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{} never held {n} lines", file.display());
}

#[test]
fn sigusr1_reopens_the_access_log_after_logrotate_moved_it() {
    let a = fixed_member("from-a");
    let dir = temp_dir("logrotate");
    let log = dir.join("access.log");
    let rotated = dir.join("access.log.1");
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_file(&rotated);
    let file = dir.join("proxy.toml");
    std::fs::write(&file, format!("[[listen]]\naddr = \"127.0.0.1:0\"\n[access_log]\npath = \"access.log\"\nformat = \"%U %>s\"\n[[route]]\npath = \"/\"\nbackend = \"http://{a}/\"\n")).expect("write");
    let (mut child, lines) = spawn_proxy(&file);
    let addr = wait_for_line(&lines, "addr=").split("addr=").nth(1).expect("addr").trim().to_string();
    assert!(get(&addr).ends_with("from-a"));
    assert_eq!(wait_for_lines(&log, 1), ["/ 200"], "a path relative to the config file's folder");

    std::fs::rename(&log, &rotated).expect("rotate");
    assert!(Command::new("kill").args(["-USR1", &child.id().to_string()]).status().expect("kill").success());
    wait_for_line(&lines, "reopening the access log");
    // The reopen is queued ahead of the next line, so that line goes to the new file.
    assert!(get(&addr).ends_with("from-a"));
    assert_eq!(wait_for_lines(&log, 1), ["/ 200"], "a new file after SIGUSR1");
    assert_eq!(std::fs::read_to_string(&rotated).expect("rotated").lines().count(), 1, "the moved file keeps its line");

    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill").success());
    assert_eq!(wait_with_timeout(&mut child, Duration::from_secs(10)).and_then(|s| s.code()), Some(0));
}

#[test]
fn import_httpd_writes_a_config_that_passes_the_check_and_says_whether_it_is_complete() {
    let dir = temp_dir("import");
    let out = dir.join("failover.toml");
    let run = Command::new(BIN).args(["import-httpd", "tests/import/guide-failover.conf", "-o"]).arg(&out).output().expect("run");
    assert_eq!(run.status.code(), Some(0), "complete: {}", String::from_utf8_lossy(&run.stderr));
    let check = Command::new(BIN).arg("--config").arg(&out).arg("--check").output().expect("run");
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));

    let partial = Command::new(BIN).args(["import-httpd", "tests/import/guide-manager.conf"]).output().expect("run");
    assert_eq!(partial.status.code(), Some(2), "incomplete");
    assert!(String::from_utf8_lossy(&partial.stdout).starts_with("# Switchyard configuration"), "the result goes to stdout");
    let report = String::from_utf8_lossy(&partial.stderr);
    assert!(report.contains("tests/import/guide-manager.conf:1") && report.contains("different"), "{report}");

    let missing = Command::new(BIN).args(["import-httpd", "/nonexistent/httpd.conf"]).output().expect("run");
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/httpd.conf: cannot read"));
}

#[test]
fn sighup_reloads_the_config_and_refuses_a_bad_one() {
    let a = fixed_member("from-a");
    let b = fixed_member("from-b");
    let dir = temp_dir("reload");
    let file = dir.join("proxy.toml");
    let write = |member: std::net::SocketAddr, extra: &str| {
        std::fs::write(&file, format!("[[listen]]\naddr = \"127.0.0.1:0\"\n[[route]]\npath = \"/\"\nbackend = \"http://{member}/\"\n{extra}")).expect("write");
    };
    write(a, "");
    let mut child = Command::new(BIN).arg("--config").arg(&file).stderr(Stdio::piped()).spawn().expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let (line_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = line_tx.send(line);
        }
    });
    let addr = wait_for_line(&lines, "addr=").split("addr=").nth(1).expect("addr").trim().to_string();
    assert!(get(&addr).ends_with("from-a"));
    let hup = |pid: u32| assert!(Command::new("kill").args(["-HUP", &pid.to_string()]).status().expect("kill").success());

    write(b, "[limits]\nbodysize = 1\n");
    hup(child.id());
    let refused = wait_for_line(&lines, "config refused");
    assert!(refused.contains("limits.bodysize: unknown field"), "{refused}");
    assert!(get(&addr).ends_with("from-a"), "the old config keeps serving");

    write(b, "");
    hup(child.id());
    wait_for_line(&lines, "config reloaded");
    assert!(get(&addr).ends_with("from-b"), "the same listener now serves the new config");

    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill").success());
    let status = wait_with_timeout(&mut child, Duration::from_secs(10));
    assert_eq!(status.and_then(|s| s.code()), Some(0));
}

#[test]
fn plugin_replay_prints_what_a_method_would_have_chosen() {
    let dir = temp_dir("replay");
    let trace = dir.join("t.jsonl");
    let header = r#"{"switchyard_trace":1,"balancer":"web","members":[{"url":"http://a:1","loadfactor":1.0},{"url":"http://b:1","loadfactor":1.0}]}"#;
    let pick = |t: u64, chosen: usize| format!(r#"{{"t":{t},"pick":{{"key":0,"chosen":{chosen},"busy":[0,0],"transferred":[0,0],"read":[0,0]}}}}"#);
    std::fs::write(&trace, format!("{header}\n{}\n{}\n{}\n", pick(10, 0), pick(2_000_000, 1), pick(2_000_100, 1))).expect("write");
    let out = Command::new(BIN).args(["plugin", "replay", "byrequests", "--trace"]).arg(&trace).output().expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("same member as the live proxy: 2 of 3"), "byrequests alternates a, b, a: {text}");
    let csv = Command::new(BIN).args(["plugin", "replay", "byrequests", "--format", "csv", "--interval", "1s", "--trace"]).arg(&trace).output().expect("run");
    assert_eq!(String::from_utf8_lossy(&csv.stdout), "segment,t_us,\"http://a:1\",\"http://b:1\"\n1,0,1,0\n1,2000000,1,1\n");

    std::fs::write(&trace, format!("{header}\n{{\"t\":1,\"pick\":{{\"key\":0}}}}\n")).expect("write");
    let bad = Command::new(BIN).args(["plugin", "replay", "byrequests", "--trace"]).arg(&trace).output().expect("run");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("trace line 2"), "{}", String::from_utf8_lossy(&bad.stderr));
}

#[test]
fn a_manager_beyond_loopback_needs_a_token() {
    let dir = temp_dir("admin-token");
    let file = dir.join("admin.toml");
    let base = "[[listen]]\naddr = \"127.0.0.1:0\"\n[[route]]\npath = \"/\"\nbalancer = \"b\"\n[balancer.b]\n[[balancer.b.member]]\nurl = \"http://127.0.0.1:1\"\n";
    for (admin, refused) in [
        ("[admin]\nlisten = \"0.0.0.0:0\"\n", true),
        ("[admin]\nlisten = \"[::]:0\"\n", true),
        ("[admin]\nlisten = \"192.0.2.7:8081\"\n", true),
        ("[admin]\nlisten = \"127.0.0.1:0\"\n", false),
        ("[admin]\nlisten = \"0.0.0.0:0\"\ntoken = \"env:SWITCHYARD_TEST_ADMIN_TOKEN\"\n", false),
    ] {
        std::fs::write(&file, format!("{base}{admin}")).expect("write");
        let out = Command::new(BIN).arg("--config").arg(&file).arg("--check").output().expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(!out.status.success(), refused, "{admin}: {stderr}");
        if refused {
            assert!(stderr.contains("admin.toml:") && stderr.contains("admin.listen") && stderr.contains("set a token"), "{stderr}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
