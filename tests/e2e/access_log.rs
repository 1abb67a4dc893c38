//! The access log: every line of both formats parsed and checked against the requests sent
//! (HTTP/1.1 on the fast path and through hyper, HTTP/2, a 404, a balancer with a sticky
//! route), the request id: generated for an untrusted peer, kept from a trusted one, and
//! no line lost to a reload that moves the log or to shutdown.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use http::{Method, Request, StatusCode};
use http_body_util::Full;
use switchyard_tests::client::TestClient;
use switchyard_tests::member::Member;
use switchyard_tests::proxy::{TestProxy, config};

fn log_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("switchyard-access-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("access.log");
    let _ = std::fs::remove_file(&file);
    file
}

/// The file's lines once it has `n` (a quiet proxy's lines are written at once; bounded).
async fn read_lines(file: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= n || Instant::now() > deadline {
            assert_eq!(lines.len(), n, "{text}");
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn routes(member: &Member, extra: &str) -> String {
    format!(
        "[[route]]\npath = \"/gone\"\nexclude = true\n[[route]]\npath = \"/\"\nbalancer = \"web\"\n[balancer.web]\nstickysession = \"JSESSIONID\"\n[[balancer.web.member]]\nurl = \"{}\"\nroute = \"r1\"\n{extra}",
        member.url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_carry_every_field() {
    let m = Member::start("m1").await;
    let file = log_path("json");
    let toml = format!("[access_log]\npath = \"{}\"\nformat = \"json\"\n{}", file.display(), routes(&m, ""));
    let proxy = TestProxy::start(&config(&toml)).await;
    let http1 = TestClient::http1();
    assert_eq!(http1.get(&proxy.url("/page?x=1")).await.status, StatusCode::OK);
    assert_eq!(http1.get(&proxy.url("/gone/x")).await.status, StatusCode::NOT_FOUND);
    let post = Request::builder().method(Method::POST).uri(proxy.url("/echo/x;JSESSIONID=abc.r1")).body(Full::from("twelve bytes")).expect("request");
    let echoed = http1.send(post).await;
    assert_eq!(echoed.status, StatusCode::OK);
    assert_eq!(TestClient::http2().get(&proxy.url("/h2")).await.status, StatusCode::OK);

    let lines = read_lines(&file, 4).await;
    let parsed: Vec<serde_json::Value> = lines.iter().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"))).collect();
    let [get, gone, post, h2] = &parsed[..] else { unreachable!() };
    for (line, (method, target, protocol, status, bytes_out)) in parsed.iter().zip([
        ("GET", "/page?x=1", "HTTP/1.1", 200, 2),
        ("GET", "/gone/x", "HTTP/1.1", 404, gone["bytes_out"].as_u64().unwrap_or(0)),
        ("POST", "/echo/x;JSESSIONID=abc.r1", "HTTP/1.1", 200, 12),
        ("GET", "/h2", "HTTP/2.0", 200, 2),
    ]) {
        assert_eq!(line["method"], method, "{line}");
        assert_eq!(line["target"], target, "{line}");
        assert_eq!(line["protocol"], protocol, "{line}");
        assert_eq!(line["status"], status, "{line}");
        assert_eq!(line["bytes_out"], bytes_out, "{line}");
        assert_eq!(line["client"], "127.0.0.1", "{line}");
        assert!(line["time"].as_str().is_some_and(|t| t.len() == 24 && t.ends_with('Z')), "{line}");
        assert!(line["duration_us"].as_u64().is_some(), "{line}");
        let id = line["request_id"].as_str().unwrap_or_default();
        assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{line}");
    }
    assert!(gone["bytes_out"].as_u64().unwrap_or(0) > 0, "the 404 page has a body: {gone}");
    for line in [get, post, h2] {
        assert_eq!(line["route"], "/", "{line}");
        assert_eq!(line["balancer"], "web", "{line}");
        assert_eq!(line["member"], m.url(), "{line}");
        assert_eq!(line["attempts"], 1, "{line}");
        assert!(line["member_us"].as_u64().is_some_and(|us| us <= line["duration_us"].as_u64().unwrap_or(0)), "{line}");
    }
    assert_eq!(gone["route"], "/gone");
    assert_eq!(gone["member"], serde_json::Value::Null);
    assert_eq!(gone["attempts"], 0);
    assert_eq!(post["bytes_in"], 12);
    assert_eq!(post["sticky"], "r1");
    assert_eq!(get["sticky"], serde_json::Value::Null);
    // The id in the log is the one the member got.
    let sent = echoed.seen("x-request-id");
    assert_eq!(sent, [post["request_id"].as_str().unwrap_or_default()]);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn combined_and_custom_formats_follow_httpd() {
    let m = Member::start("m1").await;
    let file = log_path("combined");
    let toml = format!("[access_log]\npath = \"{}\"\n{}", file.display(), routes(&m, ""));
    let proxy = TestProxy::start(&config(&toml)).await;
    let request = Request::get(proxy.url("/a%20b?q=x")).header("referer", "http://ref.example/").header("user-agent", "tester/1.0 \"quoted\"");
    assert_eq!(TestClient::http1().send(request.body(Full::default()).expect("request")).await.status, StatusCode::OK);
    let lines = read_lines(&file, 1).await;
    let line = &lines[0];
    // 127.0.0.1 - - [06/Dec/2026:10:00:00 +0000] "GET /a%20b?q="x" HTTP/1.1" 200 2 "referer" "ua"
    let (head, rest) = line.split_once(" [").expect("a time");
    assert_eq!(head, "127.0.0.1 - -");
    let (time, rest) = rest.split_once("] ").expect("time ends");
    assert!(time.ends_with(" +0000") && time.len() == 26 && time.as_bytes()[2] == b'/', "{time}");
    assert_eq!(rest, r#""GET /a%20b?q=x HTTP/1.1" 200 2 "http://ref.example/" "tester/1.0 \"quoted\"""#);
    proxy.stop().await;

    let file = log_path("custom");
    let format = r#"%m %U%q %>s %b %B %I %{x-member}o %{X-Request-Id}i=%L %{absent}i %H %D"#;
    let toml = format!("[forwarded]\ntrusted = [\"127.0.0.1\"]\n[access_log]\npath = \"{}\"\nformat = '{format}'\n{}", file.display(), routes(&m, ""));
    let proxy = TestProxy::start(&config(&toml)).await;
    let request = Request::head(proxy.url("/x?y")).header("x-request-id", "from-upstream-proxy").body(Full::default()).expect("request");
    assert_eq!(TestClient::http1().send(request).await.status, StatusCode::OK);
    let lines = read_lines(&file, 1).await;
    let fields: Vec<&str> = lines[0].split(' ').collect();
    assert_eq!(fields[..9], ["HEAD", "/x?y", "200", "-", "0", "0", "m1", "from-upstream-proxy=from-upstream-proxy", "-"], "{}", lines[0]);
    assert_eq!(fields[9], "HTTP/1.1");
    assert!(fields[10].parse::<u64>().is_ok(), "{}", lines[0]);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_request_id_is_replaced_and_logging_off_sends_none() {
    let m = Member::start("m1").await;
    let file = log_path("untrusted");
    let toml = format!("[access_log]\npath = \"{}\"\nformat = \"%L\"\n{}", file.display(), routes(&m, ""));
    let proxy = TestProxy::start(&config(&toml)).await;
    let request = Request::get(proxy.url("/echo")).header("x-request-id", "forged").body(Full::default()).expect("request");
    let reply = TestClient::http1().send(request).await;
    let sent = reply.seen("x-request-id");
    assert_eq!(sent.len(), 1);
    assert_ne!(sent[0], "forged");
    assert_eq!(read_lines(&file, 1).await, sent);
    proxy.stop().await;

    let proxy = TestProxy::start(&config(&routes(&m, ""))).await;
    let reply = TestClient::http1().get(&proxy.url("/echo")).await;
    assert!(reply.seen("x-request-id").is_empty(), "no access log, no request id");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_is_written_by_a_reload_to_another_file_and_by_shutdown() {
    let m = Member::start("m1").await;
    let (first, second) = (log_path("reload-a"), log_path("reload-b"));
    // A long flush: past each file's first line, only the reload and the shutdown write.
    let toml = |file: &Path| config(&format!("[access_log]\npath = \"{}\"\nformat = \"%U\"\nflush = \"10s\"\n{}", file.display(), routes(&m, "")));
    let proxy = TestProxy::start(&toml(&first)).await;
    let client = TestClient::http1();
    for i in 0..20 {
        assert_eq!(client.get(&proxy.url(&format!("/a{i}"))).await.status, StatusCode::OK);
    }
    proxy.reload(&toml(&second)).await.expect("reload");
    for i in 0..20 {
        assert_eq!(client.get(&proxy.url(&format!("/b{i}"))).await.status, StatusCode::OK);
    }
    proxy.stop().await;
    // Read at once: every line was written before the proxy stopped.
    let lines = |file: &Path, prefix: &str| {
        let mut found: Vec<String> = std::fs::read_to_string(file).unwrap_or_default().lines().map(str::to_string).collect();
        found.sort();
        let mut sent: Vec<String> = (0..20).map(|i| format!("/{prefix}{i}")).collect();
        sent.sort();
        (found, sent)
    };
    let (found, sent) = lines(&first, "a");
    assert_eq!(found, sent, "the first file has the lines from before the reload");
    let (found, sent) = lines(&second, "b");
    assert_eq!(found, sent, "the second file has the lines from after it");
}
