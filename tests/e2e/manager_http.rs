//! The balancer manager as an HTTP server and as a tool for scripts: how the token may come
//! (a browser sends it as Basic), what a wrong method or path gets, a GET that asks for a
//! change, too many idle connections, and health-check settings changed at run time through
//! the JSON API, httpd's fields and the page's form.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::Full;
use serde_json::Value;
use switchyard_tests::client::TestClient;
use switchyard_tests::member::Member;
use switchyard_tests::proxy::{ManagedProxy, config, temp_dir};
use tokio::io::AsyncReadExt;

use crate::admin::{Admin, manager};

fn two_members(a: &Member, b: &Member) -> String {
    config(&format!(
        "[[route]]\npath = \"/\"\nbalancer = \"web\"\n[balancer.web]\n[[balancer.web.member]]\nurl = \"{}\"\n[[balancer.web.member]]\nurl = \"{}\"\n",
        a.url(),
        b.url()
    ))
}

async fn setup(name: &str, token: Option<&str>) -> (ManagedProxy, Member, Member, Admin, switchyard::admin::RunningAdmin) {
    let (a, b) = (Member::start("a").await, Member::start("b").await);
    let proxy = ManagedProxy::start_in(&temp_dir(name), &two_members(&a, &b)).await.expect("starts");
    let (admin, running) = manager(&proxy, token).await;
    (proxy, a, b, admin, running)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_sends_the_token_as_basic_and_is_asked_for_it() {
    let (proxy, _a, _b, admin, _running) = setup("manager-basic", Some("a-long-enough-token-42")).await;
    let get = |authorization: Option<&str>| {
        let mut request = http::Request::builder().uri(format!("{}/", admin.base));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        admin.client.send(request.body(Full::default()).expect("request"))
    };
    // Without it: 401, naming both schemes, so a browser shows its login prompt.
    let refused = get(None).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let schemes: Vec<&str> = refused.headers.get_all("www-authenticate").iter().filter_map(|v| v.to_str().ok()).collect();
    assert!(schemes.iter().any(|s| s.starts_with("Basic realm=")) && schemes.iter().any(|s| s.starts_with("Bearer")), "{schemes:?}");
    // "anyone:a-long-enough-token-42" and "anyone:wrong"; a scheme in any case.
    assert_eq!(get(Some("Basic YW55b25lOmEtbG9uZy1lbm91Z2gtdG9rZW4tNDI=")).await.status, StatusCode::OK);
    assert_eq!(get(Some("Basic YW55b25lOndyb25n")).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(get(Some("bearer a-long-enough-token-42")).await.status, StatusCode::OK);
    assert_eq!(get(Some("Digest a-long-enough-token-42")).await.status, StatusCode::UNAUTHORIZED);
    // With Basic, a change still needs the nonce.
    let nonce = admin.nonce().await;
    let patch = |nonce: Option<&str>| {
        let mut request = http::Request::builder()
            .method(Method::PATCH)
            .uri(format!("{}/api/balancers/web/members/0", admin.base))
            .header("authorization", "Basic YW55b25lOmEtbG9uZy1lbm91Z2gtdG9rZW4tNDI=");
        if let Some(n) = nonce {
            request = request.header("x-nonce", n);
        }
        admin.client.send(request.body(Full::new(Bytes::from_static(br#"{"loadfactor": 3}"#))).expect("request"))
    };
    assert_eq!(patch(None).await.status, StatusCode::FORBIDDEN);
    assert_eq!(patch(Some(&nonce)).await.status, StatusCode::OK);
    assert_eq!(admin.balancer().await["members"][0]["loadfactor"], 3.0);
    proxy.proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_paths_and_a_get_that_asks_for_a_change() {
    let (proxy, a, _b, admin, _running) = setup("manager-methods", None).await;
    let nonce = admin.nonce().await;
    let head = admin.client.send(admin.request(Method::HEAD, "/api/balancers").body(Full::default()).expect("request")).await;
    assert_eq!((head.status, head.body.len()), (StatusCode::OK, 0), "HEAD is GET without the body");
    assert_eq!(head.header("x-content-type-options"), "nosniff");
    let wrong = admin.call(Method::DELETE, "/api/balancers", "", Some(&nonce)).await;
    assert_eq!((wrong.status, wrong.header("allow").as_str()), (StatusCode::METHOD_NOT_ALLOWED, "GET, HEAD"), "{}", wrong.text());
    assert_eq!(admin.get("/api/nothing-here").await.status, StatusCode::NOT_FOUND);

    // httpd 2.4 changes nothing on GET either; a script that tries is told so, not shown the
    // page as if it had worked.
    let url = a.url().replace(':', "%3A").replace('/', "%2F");
    let asks = admin.get(&format!("/balancer-manager?b=web&w={url}&nonce={nonce}&w_lf=7")).await;
    assert_eq!(asks.status, StatusCode::METHOD_NOT_ALLOWED, "{}", asks.text());
    assert!(asks.text().contains("w_lf") && asks.text().contains("POST"), "{}", asks.text());
    assert_eq!(admin.balancer().await["members"][0]["loadfactor"], 1.0, "nothing changed");
    // Looking at one member the way httpd's links do still shows the page, and the page has
    // such links, so a script can find the nonce as it does on httpd.
    let look = admin.get(&format!("/balancer-manager?b=web&w={url}&nonce={nonce}")).await;
    assert_eq!(look.status, StatusCode::OK);
    assert!(look.text().contains(&format!("nonce={nonce}")), "httpd's nonce= links");

    // The listener speaks plain HTTP: an https:// Origin is not this manager's page.
    let host = admin.base.trim_start_matches("http://").to_string();
    for origin in [format!("https://{host}"), "http://evil.example".to_string()] {
        let request = admin
            .request(Method::PATCH, "/api/balancers/web/members/0")
            .header("x-nonce", &nonce)
            .header("origin", &origin)
            .body(Full::new(Bytes::from_static(br#"{"loadfactor": 5}"#)))
            .expect("request");
        assert_eq!(admin.client.send(request).await.status, StatusCode::FORBIDDEN, "{origin}");
    }
    let same = admin
        .request(Method::PATCH, "/api/balancers/web/members/0")
        .header("x-nonce", &nonce)
        .header("origin", format!("http://{host}"))
        .body(Full::new(Bytes::from_static(br#"{"loadfactor": 5}"#)))
        .expect("request");
    assert_eq!(admin.client.send(same).await.status, StatusCode::OK);
    proxy.proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_cannot_take_the_manager_or_the_proxy_down() {
    let (proxy, _a, _b, admin, running) = setup("manager-idle", None).await;
    // Fill every admin connection with a client that sends nothing.
    let mut idle = Vec::new();
    for _ in 0..64 {
        idle.push(tokio::net::TcpStream::connect(running.addr).await.expect("connects"));
    }
    // The next is closed at once (read sees the end), not held.
    let mut extra = tokio::net::TcpStream::connect(running.addr).await.expect("connects");
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(5), extra.read(&mut byte)).await.expect("closed in time");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    // The proxy serves on; and once one idle client goes, the manager answers again.
    assert_eq!(TestClient::http1().get(&proxy.proxy.url("/x")).await.status, StatusCode::OK);
    drop(idle.pop());
    let mut answered = false;
    for _ in 0..100 {
        if TestClient::http1().try_get(&format!("{}/api/balancers", admin.base)).await == Ok(StatusCode::OK) {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(answered, "the manager answers once a connection is free");
    drop(idle);
    proxy.proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_are_changed_at_run_time_from_the_api_httpds_fields_and_the_page() {
    let (proxy, a, _b, admin, _running) = setup("manager-health", None).await;
    let health = |web: &Value, member: usize| web["members"][member]["health"].clone();
    assert!(health(&admin.balancer().await, 0).is_null(), "not checked yet");

    // The JSON API: a member starts being checked, every 100 ms, out after 2 failures.
    let web = admin.ok(Method::PATCH, "/api/balancers/web/members/0", r#"{"hcmethod": "GET", "hcuri": "/health", "hcinterval": "100ms", "hcfails": 2}"#).await;
    let h = health(&web, 0);
    assert_eq!((h["interval_ms"].as_u64(), h["fails"].as_u64(), h["passes"].as_u64()), (Some(100), Some(2), Some(1)), "{h}");
    assert_eq!(h["config"]["uri"], "/health", "{h}");
    assert_eq!(web["members"][0]["changed_from_config"]["health"], true, "{web}");
    let mut probed = false;
    for _ in 0..100 {
        if health(&admin.balancer().await, 0)["probes"].as_u64().unwrap_or(0) >= 2 {
            probed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(probed, "the new check runs");
    // Bad values are refused with the key named, and change nothing.
    let nonce = admin.nonce().await;
    for (body, key) in [(r#"{"hcinterval": "1ms"}"#, "hcinterval"), (r#"{"hcfails": 0}"#, "hcfails"), (r#"{"hcmethod": "POST"}"#, "hcmethod"), (r#"{"hcpasses": "x"}"#, "hcpasses")] {
        let reply = admin.call(Method::PATCH, "/api/balancers/web/members/0", body, Some(&nonce)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}: {}", reply.text());
        assert!(reply.text().contains(key), "{body}: {}", reply.text());
    }
    assert_eq!(health(&admin.balancer().await, 0)["fails"], 2, "nothing changed");

    // httpd's fields: method, URI, expression, interval (seconds), passes, fails.
    let url = a.url().replace(':', "%3A").replace('/', "%2F");
    let reply = admin.form(format!("b=web&w={url}&nonce={nonce}&w_hm=HEAD&w_hu=%2Fready&w_he=&w_hi=0.2&w_hp=3&w_hf=4"), false).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let h = health(&admin.balancer().await, 0);
    assert_eq!((h["interval_ms"].as_u64(), h["passes"].as_u64(), h["fails"].as_u64()), (Some(200), Some(3), Some(4)), "{h}");
    assert_eq!((h["config"]["method"].as_str(), h["config"]["uri"].as_str()), (Some("HEAD"), Some("/ready")), "{h}");

    // The page's health-check form shows what is in service; sending it back unchanged pins
    // nothing more, and a changed field changes only that.
    let html = admin.get("/").await.text();
    assert!(html.contains("name=\"w_hm\" size=\"6\" value=\"HEAD\"") && html.contains("name=\"w_hi\" size=\"5\" value=\"200ms\""), "{html}");
    let kept_before: Value = serde_json::from_slice(&admin.get("/api/overrides").await.body).expect("json");
    let unchanged = format!("b=web&w={url}&nonce={nonce}&w_hm=HEAD&w_hu=%2Fready&w_he=&w_hi=200ms&w_hp=3&w_hf=4");
    assert_eq!(admin.form(unchanged, true).await.status, StatusCode::SEE_OTHER);
    let kept_after: Value = serde_json::from_slice(&admin.get("/api/overrides").await.body).expect("json");
    assert_eq!(kept_before, kept_after, "nothing new is kept");
    // A member checked by TCP (no method written) sends the form back with the method empty
    // or named: neither is a change.
    admin.ok(Method::PATCH, "/api/balancers/web/members/0", r#"{"hcmethod": null, "hcuri": null}"#).await;
    let kept_tcp: Value = serde_json::from_slice(&admin.get("/api/overrides").await.body).expect("json");
    for method in ["", "TCP", "tcp"] {
        let same = format!("b=web&w={url}&nonce={nonce}&w_hm={method}&w_hu=&w_he=&w_hi=200ms&w_hp=3&w_hf=4");
        assert_eq!(admin.form(same, false).await.status, StatusCode::OK);
        assert_eq!(serde_json::from_slice::<Value>(&admin.get("/api/overrides").await.body).expect("json"), kept_tcp, "{method:?}");
    }
    let kept_after = kept_tcp;
    // A member with no check sends the form back empty: nothing is asked of it.
    let b_url = admin.balancer().await["members"][1]["url"].as_str().expect("url").replace(':', "%3A").replace('/', "%2F");
    let empty = format!("b=web&w={b_url}&nonce={nonce}&w_hm=&w_hu=&w_he=&w_hi=&w_hp=&w_hf=");
    assert_eq!(admin.form(empty, false).await.status, StatusCode::OK);
    assert!(health(&admin.balancer().await, 1).is_null(), "still not checked");
    assert_eq!(serde_json::from_slice::<Value>(&admin.get("/api/overrides").await.body).expect("json"), kept_after);
    proxy.proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn httpds_xml_and_a_kept_version_forgotten() {
    let (a, b) = (Member::start("a").await, Member::start("b").await);
    let dir = temp_dir("manager-xml");
    let config = two_members(&a, &b) + "[admin]\nplugins = \"plugins\"\n";
    let proxy = ManagedProxy::start_in(&dir, &config).await.expect("starts");
    let (admin, _running) = manager(&proxy, None).await;
    TestClient::http1().members_of(&proxy.proxy.url("/x"), 4).await;

    // The XML httpd's manager writes for `?xml=1`, which monitoring scripts read.
    let xml = admin.get("/balancer-manager?xml=1").await;
    assert_eq!((xml.status, xml.header("content-type").as_str()), (StatusCode::OK, "text/xml; charset=utf-8"));
    let text = xml.text();
    assert!(text.starts_with("<?xml") && text.contains("<httpd:name>balancer://web</httpd:name>"), "{text}");
    assert!(text.contains(&format!("<httpd:name>{}</httpd:name>", a.url())) && text.contains("<httpd:elected>2</httpd:elected>"), "{text}");
    assert!(text.contains("<httpd:status>Init Ok</httpd:status>") && text.contains("<httpd:lbmethod>byrequests</httpd:lbmethod>"), "{text}");

    // A version kept and in service cannot be forgotten; once out of use it can, by the
    // short name the page shows.
    let nonce = admin.nonce().await;
    let component = std::fs::read(switchyard_tests::GUEST_MISBEHAVE).expect("the test guest");
    let upload = admin.request(Method::POST, "/api/plugins").header("x-nonce", &nonce).header("content-type", "application/wasm");
    let reply = admin.client.send(upload.body(Full::new(Bytes::from(component))).expect("request")).await;
    let sha = serde_json::from_slice::<Value>(&reply.body).expect("json")["sha256"].as_str().expect("sha").to_string();
    admin.ok(Method::PUT, "/api/balancers/web/lbmethod", &format!(r#"{{"sha256": "sha256:{}", "config": {{"mode": "ok"}}}}"#, &sha[..12])).await;
    let in_use = admin.call(Method::DELETE, &format!("/api/plugins/{sha}"), "", Some(&nonce)).await;
    assert_eq!(in_use.status, StatusCode::CONFLICT, "{}", in_use.text());
    admin.ok(Method::PUT, "/api/balancers/web/lbmethod", r#"{"builtin": "byrequests"}"#).await;
    let still = admin.call(Method::DELETE, &format!("/api/plugins/sha256:{}", &sha[..12]), "", Some(&nonce)).await;
    assert_eq!(still.status, StatusCode::CONFLICT, "kept to roll back to: {}", still.text());
    admin.ok(Method::DELETE, "/api/overrides", "").await;
    let gone = admin.call(Method::DELETE, &format!("/api/plugins/sha256:{}", &sha[..12]), "", Some(&nonce)).await;
    assert_eq!(gone.status, StatusCode::OK, "{}", gone.text());
    let versions: Value = serde_json::from_slice(&admin.get("/api/plugins").await.body).expect("json");
    assert_eq!(versions["versions"], serde_json::json!([]), "{versions}");
    assert!(!dir.join("plugins").join(format!("{sha}.wasm")).exists());
    proxy.proxy.stop().await;
}
