//! httpd's BalancerPersist, crash-tested: the real `switchyard` binary is killed with SIGKILL
//! while balancer-manager changes are being made, again and again; every start finds a state
//! file that loads, holding every change the API acknowledged.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ROUNDS: usize = 6;

/// One HTTP/1.1 exchange on a fresh connection: (status, body).
fn exchange(addr: SocketAddr, method: &str, path: &str, headers: &str, body: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n{headers}\r\n{body}", body.len());
    stream.write_all(request.as_bytes())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let status = answer.get(9..12).and_then(|s| s.parse().ok()).ok_or_else(|| std::io::Error::other(format!("no status in {answer:?}")))?;
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// The running binary, killed (SIGKILL) and reaped when dropped.
struct Proxy(Child);

impl Proxy {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts the binary and waits (bounded) until its manager answers; returns it and the nonce.
fn start(config: &Path, admin: SocketAddr) -> (Proxy, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Proxy)
        .expect("the binary starts");
    let started = Instant::now();
    loop {
        if let Ok((200, body)) = exchange(admin, "GET", "/api/balancers", "", "") {
            let list: serde_json::Value = serde_json::from_str(&body).expect("json");
            return (child, list["nonce"].as_str().expect("nonce").to_string());
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the manager did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn members(admin: SocketAddr) -> Vec<String> {
    let (status, body) = exchange(admin, "GET", "/api/balancers/web", "", "").expect("the manager answers");
    assert_eq!(status, 200, "{body}");
    let web: serde_json::Value = serde_json::from_str(&body).expect("json");
    web["members"].as_array().expect("members").iter().filter_map(|m| m["url"].as_str().map(str::to_string)).collect()
}

#[test]
fn every_acknowledged_change_survives_sigkill() {
    let dir = std::env::temp_dir().join(format!("switchyard-persist-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let config = dir.join("switchyard.toml");
    std::fs::write(
        &config,
        format!(
            "[[listen]]\naddr = \"127.0.0.1:0\"\n[admin]\nlisten = \"{admin}\"\npersist = \"state\"\n\
             [[route]]\npath = \"/\"\nbalancer = \"web\"\n[balancer.web]\n[[balancer.web.member]]\nurl = \"http://127.0.0.1:9\"\n"
        ),
    )
    .expect("config");
    let mut acknowledged: Vec<String> = Vec::new();
    for round in 0..ROUNDS {
        let (mut child, nonce) = start(&config, admin);
        let found = members(admin);
        for url in &acknowledged {
            assert!(found.contains(url), "round {round}: {url} was acknowledged but is gone after SIGKILL; found {found:?}");
        }
        // Changes as fast as the manager takes them, until the process is killed under them.
        let done = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let writer = std::thread::spawn({
            let (done, acked) = (Arc::clone(&done), Arc::clone(&acked));
            move || {
                for k in 0..500 {
                    if done.load(Ordering::Relaxed) {
                        break;
                    }
                    let url = format!("http://127.0.0.1:{}", 20000 + round * 500 + k);
                    let body = format!("{{\"url\": \"{url}\"}}");
                    match exchange(admin, "POST", "/api/balancers/web/members", &format!("X-Nonce: {nonce}\r\nContent-Type: application/json\r\n"), &body) {
                        Ok((200, _)) => acked.lock().expect("lock").push(url),
                        Ok((status, body)) => panic!("a change was refused: {status} {body}"),
                        Err(_) => break,
                    }
                }
            }
        });
        std::thread::sleep(Duration::from_millis(60 + 70 * round as u64));
        child.kill();
        done.store(true, Ordering::Relaxed);
        writer.join().expect("the writer");
        let new = acked.lock().expect("lock").clone();
        assert!(!new.is_empty() || round > 0, "some changes were made before the kill");
        acknowledged.extend(new);
    }
    let (_last, _) = start(&config, admin);
    let found = members(admin);
    for url in &acknowledged {
        assert!(found.contains(url), "{url} was acknowledged but is gone; found {found:?}");
    }
    assert!(acknowledged.len() >= ROUNDS, "changes were made in the rounds ({} in all)", acknowledged.len());
    eprintln!("{} changes acknowledged over {ROUNDS} kills; all were there after each restart", acknowledged.len());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_state_file_that_does_not_fit_is_refused_at_start_naming_it() {
    let dir = std::env::temp_dir().join(format!("switchyard-persist-misfit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("state")).expect("dir");
    let config = dir.join("switchyard.toml");
    let admin = format!("127.0.0.1:{}", free_port());
    std::fs::write(
        &config,
        format!("[[listen]]\naddr = \"127.0.0.1:0\"\n[admin]\nlisten = \"{admin}\"\npersist = \"state\"\n[[route]]\npath = \"/\"\nbalancer = \"web\"\n[balancer.web]\n[[balancer.web.member]]\nurl = \"http://127.0.0.1:9\"\n"),
    )
    .expect("config");
    // Well-formed, from this version, but holding a load factor the file could never have.
    std::fs::write(dir.join("state/state.json"), r#"{"version": 1, "balancers": {"web": {"members": {"http://127.0.0.1:9": {"loadfactor": 0}}}}}"#).expect("state");
    // And a temporary file a crash left behind, which a start clears away.
    std::fs::write(dir.join("state/.state.json.999999999.0.tmp"), "{").expect("leftover");
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard")).arg("--config").arg(&config).stdin(Stdio::null()).output().expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "refused: {stderr}");
    assert!(stderr.contains("state.json") && stderr.contains("loadfactor"), "names the state file and the key: {stderr}");
    assert!(!dir.join("state/.state.json.999999999.0.tmp").exists(), "the leftover is gone");
    let _ = std::fs::remove_dir_all(&dir);
}
