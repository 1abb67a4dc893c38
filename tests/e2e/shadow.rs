//! Shadow mode: a second lbmethod picking beside the active one on live traffic, counted and
//! never enacted — set in the config file or through the admin API — and a shadow that
//! panics or loops costs no request.

use http::{Method, StatusCode};
use http_body_util::Full;
use serde_json::Value;
use switchyard_tests::client::TestClient;
use switchyard_tests::member::Member;
use switchyard_tests::proxy::{ManagedProxy, TestProxy, config, temp_dir};
use switchyard_tests::{GUEST_MISBEHAVE, eventually};

use crate::admin::manager;

/// Balancer `web` at `/` over a and b (byrequests), with `extra` in its table.
fn web(a: &Member, b: &Member, extra: &str, head: &str) -> String {
    config(&format!(
        "{head}[[route]]\npath = \"/\"\nbalancer = \"web\"\n[balancer.web]\n{extra}\n[[balancer.web.member]]\nurl = \"{}\"\n[[balancer.web.member]]\nurl = \"{}\"\n",
        a.url(),
        b.url()
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_set_from_the_manager_that_disagrees_half_the_time_shows_half_agreement() {
    let (a, b) = (Member::start("a").await, Member::start("b").await);
    let dir = temp_dir("shadow-manager");
    let proxy = ManagedProxy::start_in(&dir, &web(&a, &b, "", "[admin]\nplugins = \"plugins\"\n")).await.expect("starts");
    let (admin, _running) = manager(&proxy, None).await;
    let nonce = admin.nonce().await;
    let upload = admin.request(Method::POST, "/api/plugins").header("x-nonce", &nonce).header("content-type", "application/wasm");
    let reply = admin.client.send(upload.body(Full::new(std::fs::read(GUEST_MISBEHAVE).expect("guest").into())).expect("request")).await;
    let sha = serde_json::from_slice::<Value>(&reply.body).expect("json")["sha256"].as_str().expect("sha").to_string();
    // `ok` always picks the first candidate (a); the active byrequests alternates a, b.
    let web = admin.ok(Method::PUT, "/api/balancers/web/shadow", &format!(r#"{{"sha256": "{sha}", "config": {{"mode": "ok"}}}}"#)).await;
    assert_eq!(web["shadow"]["agreed"], 0, "{web}");

    let served = TestClient::http1().members_of(&proxy.proxy.url("/"), 40).await;
    assert_eq!(served.iter().filter(|m| *m == "a").count(), 20, "the shadow enacts nothing: {served:?}");
    let mut web = Value::Null;
    for _ in 0..500 {
        web = admin.balancer().await;
        if web["shadow"]["agreed"].as_u64().unwrap_or(0) + web["shadow"]["disagreed"].as_u64().unwrap_or(0) == 40 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let shadow = &web["shadow"];
    assert_eq!((shadow["agreed"].as_u64(), shadow["disagreed"].as_u64(), shadow["failed"].as_u64()), (Some(20), Some(20), Some(0)), "{web}");
    assert_eq!(shadow["agreement"].as_f64(), Some(0.5));
    assert_eq!((shadow["members"][0]["would_pick"].as_u64(), shadow["members"][1]["would_pick"].as_u64()), (Some(40), Some(0)));
    let metrics = admin.get("/metrics").await.text();
    assert!(metrics.contains("outcome=\"agreed\"} 20") && metrics.contains("outcome=\"disagreed\"} 20"), "{metrics}");

    let page = admin.get("/").await.text();
    assert!(page.contains("Shadow LB method") && page.contains("50.0 %"), "the page shows the agreement");

    let web = admin.ok(Method::DELETE, "/api/balancers/web/shadow", "").await;
    assert!(web["shadow"].is_null(), "{web}");
    proxy.proxy.stop().await;
}

/// Sends `n` requests that make the misbehaving guest act up; all must be answered by the
/// active method, alternating a and b.
async fn misbehaving_loop(proxy: &TestProxy, n: usize) {
    let client = TestClient::http1();
    let mut served = Vec::new();
    for _ in 0..n {
        let request = http::Request::get(proxy.url("/")).header("x-misbehave", "1").body(Full::default()).expect("request");
        let reply = client.send(request).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        served.push(reply.header("x-member"));
    }
    let a = served.iter().filter(|m| *m == "a").count();
    assert_eq!(a, n / 2, "byrequests placed every request: {served:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_that_panics_or_loops_fails_no_request() {
    let (a, b) = (Member::start("a").await, Member::start("b").await);
    for (mode, head) in [("panic", ""), ("loop", "[plugins]\ndeadline = \"20ms\"\n")] {
        let extra = format!("hashkey = \"header:x-misbehave\"\nshadow = {{ path = \"{GUEST_MISBEHAVE}\", config = {{ mode = \"{mode}\" }} }}");
        let proxy = TestProxy::start(&web(&a, &b, &extra, head)).await;
        misbehaving_loop(&proxy, 30).await;
        let balancer = std::sync::Arc::clone(&proxy.running.proxy.balancers()[0]);
        let shadow = balancer.shadow().expect("a shadow");
        let seen = || {
            let s = shadow.stats();
            let relaxed = std::sync::atomic::Ordering::Relaxed;
            s.failed.load(relaxed) + s.dropped.load(relaxed)
        };
        eventually(&format!("the {mode} shadow's 30 picks are counted as failed or dropped"), || seen() == 30).await;
        assert_eq!(shadow.stats().agreed.load(std::sync::atomic::Ordering::Relaxed), 0);
        assert_eq!(balancer.stats().method_failures.load(std::sync::atomic::Ordering::Relaxed), 0, "the active method never failed");
        proxy.stop().await;
    }
}
