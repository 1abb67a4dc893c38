//! TLS both ways, with certificates made in the test: a TLS listener (HTTP/1.1 and HTTP/2 by
//! ALPN, certificates by SNI, plain HTTP refused clearly, certificates re-read on reload
//! without a failed request) and https:// members (verified against a CA, refused when
//! expired or for another name, mutual TLS, health checks over TLS).

use std::time::Duration;

use http::StatusCode;
use switchyard::config::StatusFlags;
use switchyard_tests::client::{TestClient, raw_exchange, status_of};
use switchyard_tests::member::Member;
use switchyard_tests::proxy::{TestProxy, config};
use switchyard_tests::tls::{self, TestCa};

fn tls_listener(cert: &tls::CertPair, extra: &str) -> String {
    format!(
        "[[listen]]\naddr = \"127.0.0.1:0\"\n[listen.tls]\ncert = \"{}\"\nkey = \"{}\"\n{extra}",
        cert.cert.display(),
        cert.key.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_listener_serves_http1_and_h2_by_alpn() {
    let ca = TestCa::new("alpn");
    let cert = ca.issue("localhost", &["localhost", "127.0.0.1"]);
    let m = Member::start("m").await;
    let toml = format!("{}[[route]]\npath = \"/\"\nbackend = \"{}/\"\n", tls_listener(&cert, ""), m.url());
    let proxy = TestProxy::start(&toml).await;

    let h2 = tls::get(proxy.addr, "localhost", "/echo", &ca, &["h2", "http/1.1"]).await.expect("h2 over TLS");
    assert_eq!((h2.status, h2.alpn.as_deref()), (StatusCode::OK, Some("h2")));
    let h1 = tls::get(proxy.addr, "localhost", "/echo", &ca, &["http/1.1"]).await.expect("http/1.1 over TLS");
    assert_eq!((h1.status, h1.alpn.as_deref()), (StatusCode::OK, Some("http/1.1")));
    let none = tls::get(proxy.addr, "127.0.0.1", "/echo", &ca, &[]).await.expect("no ALPN, no SNI (an IP)");
    assert_eq!((none.status, none.alpn.as_deref()), (StatusCode::OK, None));
    for reply in [&h2, &h1] {
        let seen: Vec<(String, String)> = serde_json::from_str(reply.headers["x-seen-headers"].to_str().expect("text")).expect("json");
        assert!(seen.contains(&("x-forwarded-proto".into(), "https".into())), "{seen:?}");
    }
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_picks_the_certificate() {
    let ca = TestCa::new("sni");
    let default = ca.issue("default", &["localhost"]);
    let api = ca.issue("api", &["api.test"]);
    let wild = ca.issue("wild", &["*.apps.test"]);
    let m = Member::start("m").await;
    let sni = format!(
        "[[listen.tls.sni]]\nnames = [\"api.test\"]\ncert = \"{}\"\nkey = \"{}\"\n[[listen.tls.sni]]\nnames = [\"*.apps.test\"]\ncert = \"{}\"\nkey = \"{}\"\n",
        api.cert.display(),
        api.key.display(),
        wild.cert.display(),
        wild.key.display()
    );
    let toml = format!("{}[[route]]\npath = \"/\"\nbackend = \"{}/\"\n", tls_listener(&default, &sni), m.url());
    let proxy = TestProxy::start(&toml).await;
    for (name, want) in [("api.test", &api), ("one.apps.test", &wild), ("localhost", &default)] {
        let reply = tls::get(proxy.addr, name, "/", &ca, &["http/1.1"]).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(reply.status, StatusCode::OK);
        assert!(reply.peer_cert == want.der, "{name} got another certificate");
    }
    // A name with no certificate of its own gets the default one, which the client refuses.
    assert!(tls::get(proxy.addr, "other.test", "/", &ca, &[]).await.is_err());
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_to_a_tls_port_is_told_so_and_a_silent_client_is_cut() {
    let ca = TestCa::new("plain");
    let cert = ca.issue("localhost", &["localhost"]);
    let m = Member::start("m").await;
    let listener = tls_listener(&cert, "handshake_timeout = \"300ms\"\n");
    let proxy = TestProxy::start(&format!("{listener}[[route]]\npath = \"/\"\nbackend = \"{}/\"\n", m.url())).await;
    let answer = raw_exchange(proxy.addr, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert_eq!(status_of(&answer), 400, "{answer}");
    assert!(answer.contains("This port speaks TLS"), "{answer}");
    let mut silent = switchyard_tests::client::RawConn::connect(proxy.addr).await;
    assert!(silent.closed_within(Duration::from_secs(5)).await.is_some(), "the handshake deadline closes a silent client");
    assert_eq!(m.requests(), 0);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_members_are_verified() {
    let ca = TestCa::new("members");
    let good = Member::start_tls("good", ca.server_config(&ca.issue("good", &["localhost"]), false)).await;
    let expired = Member::start_tls("expired", ca.server_config(&ca.expired("expired", &["localhost"]), false)).await;
    let wrong = Member::start_tls("wrong", ca.server_config(&ca.issue("wrong", &["elsewhere.test"]), false)).await;
    let url = |m: &Member| format!("https://localhost:{}", m.addr.port());
    let toml = format!(
        "[[route]]\npath = \"/good\"\nbackend = \"{}/\"\ntls = {{ ca = \"{ca}\" }}\n\
         [[route]]\npath = \"/\"\nbalancer = \"b\"\n[balancer.b]\ntls = {{ ca = \"{ca}\" }}\nmaxattempts = 0\n\
         [[balancer.b.member]]\nurl = \"{}\"\nretry = \"60s\"\n[[balancer.b.member]]\nurl = \"{}\"\nretry = \"60s\"\nstatus = \"+H\"\n",
        url(&good),
        url(&expired),
        url(&wrong),
        ca = ca.ca_file().display()
    );
    let proxy = TestProxy::start(&config(&toml)).await;
    let client = TestClient::http1();
    let reply = client.get(&proxy.url("/good/x")).await;
    assert_eq!((reply.status, reply.text().as_str()), (StatusCode::OK, "good"));
    // Pooled TLS connections are reused like plain ones.
    assert_eq!(client.get(&proxy.url("/good/y")).await.status, StatusCode::OK);
    assert_eq!(good.connections(), 1, "one TLS connection for both requests");

    let reply = client.get(&proxy.url("/x")).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "an expired certificate: {}", reply.text());
    let members = proxy.running.proxy.balancers()[0].members();
    assert!(members[0].status().contains(StatusFlags::IN_ERROR), "the expired member is put in error");
    let reply = client.get(&proxy.url("/x")).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "a certificate for another name: {}", reply.text());
    assert!(members[1].status().contains(StatusFlags::IN_ERROR), "the wrongly named member is put in error");
    assert_eq!(expired.requests() + wrong.requests(), 0, "no request reached an unverified member");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_and_unverified_members() {
    let ca = TestCa::new("mtls");
    let strict = Member::start_tls("strict", ca.server_config(&ca.issue("strict", &["localhost"]), true)).await;
    let client_cert = ca.issue("proxy-client", &["proxy.test"]);
    let other_ca = TestCa::new("other");
    let self_made = Member::start_tls("selfmade", other_ca.server_config(&other_ca.issue("selfmade", &["localhost"]), false)).await;
    let url = |m: &Member| format!("https://localhost:{}/", m.addr.port());
    let toml = format!(
        "[[route]]\npath = \"/with\"\nbackend = \"{}\"\ntls = {{ ca = \"{ca}\", cert = \"{}\", key = \"{}\" }}\n\
         [[route]]\npath = \"/without\"\nbackend = \"{}\"\ntls = {{ ca = \"{ca}\" }}\n\
         [[route]]\npath = \"/unverified\"\nbackend = \"{}\"\ntls = {{ verify = false }}\n",
        url(&strict),
        client_cert.cert.display(),
        client_cert.key.display(),
        url(&strict),
        url(&self_made),
        ca = ca.ca_file().display()
    );
    let proxy = TestProxy::start(&config(&toml)).await;
    let client = TestClient::http1();
    assert_eq!(client.get(&proxy.url("/with/x")).await.status, StatusCode::OK, "with the client certificate");
    assert_eq!(client.get(&proxy.url("/without/x")).await.status, StatusCode::BAD_GATEWAY, "without it the member refuses");
    assert_eq!(strict.requests(), 1);
    assert_eq!(client.get(&proxy.url("/unverified/x")).await.status, StatusCode::OK, "verify = false takes any certificate");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_run_over_tls() {
    let ca = TestCa::new("health");
    let m = Member::start_tls("m", ca.server_config(&ca.issue("m", &["localhost"]), false)).await;
    let toml = format!(
        "[[route]]\npath = \"/\"\nbalancer = \"b\"\n[balancer.b]\ntls = {{ ca = \"{}\" }}\n[[balancer.b.member]]\nurl = \"https://localhost:{}\"\nhcmethod = \"GET\"\nhcuri = \"/health\"\nhcinterval = \"100ms\"\nhcfails = 1\nhcpasses = 1\n",
        ca.ca_file().display(),
        m.addr.port()
    );
    let proxy = TestProxy::start(&config(&toml)).await;
    let before = m.requests();
    let mut probed = false;
    for _ in 0..200 {
        if m.requests() > before + 1 {
            probed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(probed, "probes reach the member over TLS");
    let status = proxy.running.proxy.health_status(0, 0).expect("checked");
    assert!(status.probes > 0 && status.failures == 0, "{status:?}");
    assert!(status.last.is_some_and(|v| v.healthy), "the probe over TLS passed");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_changes_the_certificate_without_a_failed_request() {
    let ca = TestCa::new("reload");
    let first = ca.issue("first", &["localhost"]);
    let second = ca.issue("second", &["localhost"]);
    let m = Member::start("m").await;
    let routes = format!("[[route]]\npath = \"/\"\nbackend = \"{}/\"\n", m.url());
    let proxy = TestProxy::start(&format!("{}{routes}", tls_listener(&first, ""))).await;
    let addr = proxy.addr;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loop_stop = std::sync::Arc::clone(&stop);
    // Requests the loop has finished (answered or not), and those answered with the second
    // certificate.
    let (done, on_second) = (std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0)), std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0)));
    let (loop_done, loop_on_second, second_der) = (std::sync::Arc::clone(&done), std::sync::Arc::clone(&on_second), second.der.clone());
    let ca = std::sync::Arc::new(ca);
    let loop_ca = std::sync::Arc::clone(&ca);
    let clients = tokio::spawn(async move {
        let (mut ok, mut failed, mut seen) = (0, Vec::new(), Vec::new());
        while !loop_stop.load(std::sync::atomic::Ordering::SeqCst) && ok < 5000 {
            let reply = tls::get(addr, "localhost", "/", &loop_ca, &["http/1.1"]).await;
            loop_done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            match reply {
                Ok(r) if r.status == StatusCode::OK => {
                    ok += 1;
                    if r.peer_cert == second_der {
                        loop_on_second.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    if seen.last() != Some(&r.peer_cert) {
                        seen.push(r.peer_cert);
                    }
                }
                Ok(r) => failed.push(format!("status {}", r.status)),
                Err(e) => failed.push(e),
            }
        }
        (ok, failed, seen)
    });
    // Some requests on the first certificate, then the reload, then some on the second.
    switchyard_tests::eventually("requests before the reload", || done.load(std::sync::atomic::Ordering::SeqCst) >= 3).await;
    proxy.reload(&format!("{}{routes}", tls_listener(&second, ""))).await.expect("reload");
    switchyard_tests::eventually("requests on the second certificate", || on_second.load(std::sync::atomic::Ordering::SeqCst) >= 3).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (ok, failed, seen) = clients.await.expect("client loop");
    assert!(failed.is_empty(), "{} failed of {}: {:?}", failed.len(), ok + failed.len(), &failed[..failed.len().min(3)]);
    assert_eq!(seen, [first.der.clone(), second.der.clone()], "the first certificate, then the second ({ok} requests)");

    // A bad certificate is refused with the file named; the running one keeps serving.
    std::fs::write(&second.cert, "not a certificate").expect("spoil");
    let refused = proxy.reload(&format!("{}{routes}", tls_listener(&second, ""))).await.expect_err("a bad certificate");
    assert!(refused.contains(&second.cert.display().to_string()), "{refused}");
    assert_eq!(tls::get(addr, "localhost", "/", &ca, &[]).await.expect("still serving").status, StatusCode::OK);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_with_the_ca_gets_through() {
    let ca = TestCa::new("curl");
    let cert = ca.issue("localhost", &["localhost"]);
    let m = Member::start("m").await;
    let proxy = TestProxy::start(&format!("{}[[route]]\npath = \"/\"\nbackend = \"{}/\"\n", tls_listener(&cert, ""), m.url())).await;
    let url = format!("https://localhost:{}/hello", proxy.addr.port());
    let resolve = format!("localhost:{}:127.0.0.1", proxy.addr.port());
    let ca_file = ca.ca_file();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(["--silent", "--show-error", "--max-time", "10", "--http2", "--resolve", &resolve, "--cacert"])
            .arg(&ca_file)
            .args(["--write-out", " %{http_version}", &url])
            .output()
    })
    .await
    .expect("join")
    .expect("curl runs (Debian's curl package)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout, "m 2", "the member's answer, over HTTP/2");
    proxy.stop().await;
}
