//! The balancer manager changing the running proxy: members added and removed with requests
//! in flight, the lbmethod hot-swapped and rolled back under a client loop that never sees a
//! failure, uploads kept inside their directory, and runtime changes kept across a restart
//! (httpd's BalancerPersist) until they are dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::Full;
use serde_json::Value;
use switchyard_tests::{GUEST_BADREWRITE, GUEST_MISBEHAVE};
use switchyard_tests::client::TestClient;
use switchyard_tests::member::Member;
use switchyard_tests::proxy::{ManagedProxy, config, temp_dir};

use crate::admin::manager;

fn web(members: &[&Member], extra: &str) -> String {
    let mut toml = format!("{extra}[[route]]\npath = \"/\"\nbalancer = \"web\"\n[balancer.web]\n");
    for m in members {
        toml.push_str(&format!("[[balancer.web.member]]\nurl = \"{}\"\n", m.url()));
    }
    config(&toml)
}

fn elected(balancer: &Value, member: usize) -> u64 {
    balancer["members"][member]["elected"].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_come_and_go_while_requests_finish() {
    let (a, b, c) = (Member::start("a").await, Member::start("b").await, Member::start("c").await);
    let proxy = ManagedProxy::start_in(&temp_dir("manager-members"), &web(&[&a, &b], "")).await.expect("starts");
    let (admin, _running) = manager(&proxy, None).await;
    let client = TestClient::http1();
    let url = proxy.proxy.url("/x");
    assert_eq!(client.members_of(&url, 4).await, ["a", "b", "a", "b"]);

    admin.ok(Method::PATCH, "/api/balancers/web/members/1", r#"{"status": "+D"}"#).await;
    let slow = tokio::spawn({
        // Long enough for the removal, the addition and four requests, even on a loaded machine.
        let url = proxy.proxy.url("/sleep/3000");
        async move { TestClient::http1().get(&url).await }
    });
    let started = Instant::now();
    while a.requests() < 3 && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(a.requests(), 3, "the slow request reached a");
    let after = admin.ok(Method::DELETE, "/api/balancers/web/members/0", "").await;
    assert_eq!(after["members"].as_array().map(Vec::len), Some(1), "{after}");
    let added = admin.ok(Method::POST, "/api/balancers/web/members", &format!(r#"{{"url": "{}", "route": "rc"}}"#, c.url())).await;
    assert_eq!(added["members"][1]["route"], "rc");
    assert_eq!(added["members"][1]["changed_from_config"]["added"], true);
    assert_eq!(client.members_of(&url, 4).await, ["c", "c", "c", "c"], "b is disabled, a is gone");
    let slow = slow.await.expect("the slow request's task");
    assert_eq!((slow.status, slow.header("x-member").as_str()), (StatusCode::OK, "a"), "the removed member's request finished");

    let web = admin.ok(Method::PATCH, "/api/balancers/web/members/0", r#"{"status": "-D"}"#).await;
    assert_eq!(elected(&web, 0), 2, "b's counters went through every rebuild");
    let seen = client.members_of(&url, 4).await;
    assert!(seen.contains(&"b".to_string()) && seen.contains(&"c".to_string()), "{seen:?}");
    proxy.proxy.stop().await;
}

/// Requests in a loop until told to stop: (answered, failed).
fn client_loop(url: String, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<(usize, Vec<String>)> {
    tokio::spawn(async move {
        let client = TestClient::http1();
        let (mut answered, mut failed) = (0, Vec::new());
        for _ in 0..200_000 {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            match client.try_get(&url).await {
                Ok(StatusCode::OK) => answered += 1,
                other => failed.push(format!("{other:?}")),
            }
        }
        (answered, failed)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lbmethod_is_hot_swapped_under_load_without_a_failed_request() {
    let (a, b) = (Member::start("a").await, Member::start("b").await);
    let dir = temp_dir("manager-swap");
    let proxy = ManagedProxy::start_in(&dir, &web(&[&a, &b], "[admin]\nplugins = \"plugins\"\n")).await.expect("starts");
    let (admin, _running) = manager(&proxy, None).await;
    let url = proxy.proxy.url("/x");
    let stop = Arc::new(AtomicBool::new(false));
    let looping = client_loop(url.clone(), Arc::clone(&stop));
    let client = TestClient::http1();
    let component = std::fs::read(GUEST_MISBEHAVE).expect("the test guest");

    // Upload, then swap to it: `ok` sends every request to the first candidate.
    let nonce = admin.nonce().await;
    let upload = admin.request(Method::POST, "/api/plugins").header("x-nonce", &nonce).header("content-type", "application/wasm");
    let reply = admin.client.send(upload.body(Full::new(Bytes::from(component.clone()))).expect("request")).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    let sha = serde_json::from_slice::<Value>(&reply.body).expect("json")["sha256"].as_str().expect("sha").to_string();
    let swap = format!(r#"{{"sha256": "{sha}", "config": {{"mode": "ok"}}}}"#);
    let timer = Instant::now();
    let web = admin.ok(Method::PUT, "/api/balancers/web/lbmethod", &swap).await;
    let first_swap = timer.elapsed();
    assert_eq!(web["lbmethod_version"], format!("sha256:{}", &sha[..12]));
    assert_eq!(client.members_of(&url, 1).await, ["a"]);
    let b_before = elected(&admin.balancer().await, 1);
    assert_eq!(client.members_of(&url, 10).await, vec!["a"; 10], "every request after the answer is on the new version");
    assert_eq!(elected(&admin.balancer().await, 1), b_before, "the loop's requests too");

    // Roll back: byrequests again, b gets its turns.
    let web = admin.ok(Method::POST, "/api/balancers/web/lbmethod/rollback", "").await;
    assert_eq!(web["lbmethod"], "byrequests");
    let before = elected(&admin.balancer().await, 1);
    client.members_of(&url, 20).await;
    assert!(elected(&admin.balancer().await, 1) >= before + 9, "byrequests alternates from the next request on");

    // Forward again (compiled already), then versions that must be refused, each leaving
    // byrequests… or the version in service, serving.
    let timer = Instant::now();
    admin.ok(Method::POST, "/api/balancers/web/lbmethod/rollback", "").await;
    let cached_swap = timer.elapsed();
    assert_eq!(client.members_of(&url, 3).await, ["a", "a", "a"]);
    admin.ok(Method::PUT, "/api/balancers/web/lbmethod", r#"{"builtin": "byrequests"}"#).await;
    let nonce = admin.nonce().await;
    for (body, content_type, reason) in [
        (format!(r#"{{"sha256": "{sha}", "config": {{"mode": "refuse-config"}}}}"#).into_bytes(), "application/json", "refused its config"),
        (format!(r#"{{"sha256": "{sha}", "config": {{"mode": "panic", "at": "configure"}}}}"#).into_bytes(), "application/json", "trapped"),
        (b"MZ not wasm at all".to_vec(), "application/wasm", "bad magic number"),
        (component[..component.len() / 2].to_vec(), "application/wasm", "does not compile"),
        (format!(r#"{{"sha256": "{}"}}"#, "0".repeat(64)).into_bytes(), "application/json", "no plugin version"),
        (std::fs::read(GUEST_BADREWRITE).expect("a header-rewrite guest"), "application/wasm", "does not fit the lbmethod"),
    ] {
        let put = admin.request(Method::PUT, "/api/balancers/web/lbmethod").header("x-nonce", &nonce).header("content-type", content_type);
        let reply = admin.client.send(put.body(Full::new(Bytes::from(body))).expect("request")).await;
        assert!(reply.status.is_client_error(), "{reason}: {} {}", reply.status, reply.text());
        assert!(reply.text().contains(reason), "{reason}: {}", reply.text());
        let seen = client.members_of(&url, 2).await;
        assert_eq!(seen.len(), 2);
        assert_eq!(admin.balancer().await["lbmethod"], "byrequests", "the old version keeps serving");
    }
    stop.store(true, Ordering::Relaxed);
    let (answered, failed) = looping.await.expect("the loop");
    assert!(failed.is_empty(), "{} of {} requests failed: {failed:?}", failed.len(), answered + failed.len());
    assert!(answered > 50, "the loop ran throughout ({answered} requests)");
    eprintln!("hot swap: {first_swap:?} answering a swap to a new version (compiled), {cached_swap:?} to one compiled before; {answered} requests in the loop, none failed");
    let metrics = admin.get("/metrics").await.text();
    assert!(metrics.contains("switchyard_plugin_swaps_total{outcome=\"applied\"} 4"), "{metrics}");
    assert!(metrics.contains("switchyard_plugin_swaps_total{outcome=\"refused\"} 5"), "{metrics}");
    proxy.proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_stay_inside_the_plugins_directory() {
    let a = Member::start("a").await;
    let dir = temp_dir("manager-paths");
    let proxy = ManagedProxy::start_in(&dir, &web(&[&a], "[admin]\nplugins = \"plugins\"\n")).await.expect("starts");
    let (admin, _running) = manager(&proxy, None).await;
    let outside = dir.join("outside.wasm");
    std::fs::copy(GUEST_MISBEHAVE, &outside).expect("copy");
    std::os::unix::fs::symlink(&outside, dir.join("plugins/link.wasm")).expect("symlink");
    std::fs::copy(GUEST_MISBEHAVE, dir.join("plugins/mine.wasm")).expect("copy");
    let nonce = admin.nonce().await;
    for file in ["../outside.wasm", outside.to_str().expect("utf-8"), "link.wasm", "sub/x.wasm"] {
        let body = serde_json::json!({ "file": file, "config": { "mode": "ok" } }).to_string();
        let reply = admin.call(Method::PUT, "/api/balancers/web/lbmethod", &body, Some(&nonce)).await;
        assert!(reply.status.is_client_error(), "{file}: {} {}", reply.status, reply.text());
    }
    let web = admin.ok(Method::PUT, "/api/balancers/web/lbmethod", r#"{"file": "mine.wasm", "config": {"mode": "ok"}}"#).await;
    assert!(web["lbmethod_version"].as_str().is_some_and(|v| v.starts_with("sha256:")), "{web}");
    proxy.proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_changes_survive_a_restart_until_dropped() {
    let (a, b, c) = (Member::start("a").await, Member::start("b").await, Member::start("c").await);
    let dir = temp_dir("manager-persist");
    let toml = web(&[&a, &b], "[admin]\npersist = \"state\"\nplugins = \"plugins\"\n");
    let proxy = ManagedProxy::start_in(&dir, &toml).await.expect("starts");
    let (admin, running) = manager(&proxy, None).await;
    admin.ok(Method::PATCH, "/api/balancers/web/members/1", r#"{"loadfactor": 2.5, "lbset": 1, "route": "rb"}"#).await;
    admin.ok(Method::POST, "/api/balancers/web/members", &format!(r#"{{"url": "{}"}}"#, c.url())).await;
    admin.ok(Method::DELETE, "/api/balancers/web/members/0", "").await;
    admin.ok(Method::PUT, "/api/balancers/web/lbmethod", r#"{"builtin": "bytraffic"}"#).await;
    admin.ok(Method::PATCH, "/api/balancers/web", r#"{"maxattempts": 0}"#).await;
    let before = admin.balancer().await;
    drop((admin, running));
    proxy.proxy.stop().await;

    let proxy = ManagedProxy::start_in(&dir, &toml).await.expect("starts again");
    let compiled = std::fs::read_dir(dir.join("plugins/compiled")).expect("the compiled cache").count();
    assert!(compiled >= 2, "byrequests and bytraffic were kept compiled ({compiled})");
    let (admin, _running) = manager(&proxy, None).await;
    let after = admin.balancer().await;
    let shape = |b: &Value| {
        let members: Vec<(Value, Value, Value, Value)> = b["members"]
            .as_array()
            .expect("members")
            .iter()
            .map(|m| (m["url"].clone(), m["loadfactor"].clone(), m["lbset"].clone(), m["route"].clone()))
            .collect();
        (b["lbmethod"].clone(), b["maxattempts"].clone(), members)
    };
    assert_eq!(shape(&after), shape(&before), "every change is still there after the restart");
    assert_eq!(after["changed_from_config"]["removed_members"][0], a.url());
    let page = admin.get("/").await.text();
    assert!(page.contains("class=\"changed\""), "the page marks what differs from the file");

    admin.ok(Method::DELETE, "/api/overrides", "").await;
    let file = admin.balancer().await;
    assert_eq!(file["lbmethod"], "byrequests");
    assert_eq!(file["members"].as_array().map(Vec::len), Some(2));
    assert_eq!(file["members"][0]["url"], a.url());
    proxy.proxy.stop().await;

    // A state file from a newer version is refused whole, naming the file.
    std::fs::write(dir.join("state/state.json"), r#"{"version": 7, "balancers": {}}"#).expect("write");
    let refused = ManagedProxy::start_in(&dir, &toml).await.err().expect("refused");
    assert!(refused.contains("state/state.json") && refused.contains("newer"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_that_cannot_be_kept_changes_nothing() {
    let (a, b) = (Member::start("a").await, Member::start("b").await);
    let dir = temp_dir("manager-unkept");
    let proxy = ManagedProxy::start_in(&dir, &web(&[&a, &b], "[admin]\npersist = \"state\"\n")).await.expect("starts");
    let (admin, running) = manager(&proxy, None).await;
    let client = TestClient::http1();
    let url = proxy.proxy.url("/x");
    // The state file cannot be replaced: a directory (not empty) sits where it goes.
    std::fs::create_dir_all(dir.join("state/state.json/blocked")).expect("dir");
    let nonce = admin.nonce().await;
    let reply = admin.call(Method::PATCH, "/api/balancers/web/members/1", r#"{"loadfactor": 5, "status": "+N"}"#, Some(&nonce)).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", reply.text());
    assert!(reply.text().contains("could not be kept"), "{}", reply.text());
    let web = admin.balancer().await;
    assert_eq!((web["members"][1]["loadfactor"].as_f64(), web["members"][1]["status"].as_str()), (Some(1.0), Some("Ok")), "{web}");
    assert_eq!(client.members_of(&url, 4).await, ["a", "b", "a", "b"], "traffic as before");

    std::fs::remove_dir_all(dir.join("state/state.json")).expect("unblock");
    // By URL, not by position: stable while members come and go.
    let member = format!("/api/balancers/web/members/{}", b.url().replace(':', "%3A").replace('/', "%2F"));
    admin.ok(Method::PATCH, &member, r#"{"loadfactor": 5, "lbset": 0, "route": ""}"#).await;
    let kept: Value = serde_json::from_slice(&admin.get("/api/overrides").await.body).expect("json");
    assert_eq!(kept["overlay"]["balancers"]["web"]["members"][b.url()], serde_json::json!({ "loadfactor": 5 }), "only what changed is kept: {kept}");
    admin.ok(Method::DELETE, &member, "").await;
    assert_eq!(admin.balancer().await["members"].as_array().map(Vec::len), Some(1));

    // Another site's name for this address (DNS rebinding) gets nothing, not even a GET.
    let rebound = admin.request(Method::GET, "/api/balancers").header("host", format!("evil.example:{}", running.addr.port()));
    assert_eq!(admin.client.send(rebound.body(Full::default()).expect("request")).await.status, StatusCode::FORBIDDEN);
    // Without the nonce in a header or the query, a body is read only up to the small limit.
    let big = admin.request(Method::POST, "/api/plugins").header("content-type", "application/wasm");
    let reply = admin.client.send(big.body(Full::new(Bytes::from(vec![0u8; 200_000]))).expect("request")).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", reply.text());
    proxy.proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swapped_in_method_that_fails_falls_back_to_the_one_before() {
    let (a, b) = (Member::start("a").await, Member::start("b").await);
    let dir = temp_dir("manager-fallback");
    let toml = web(&[&a, &b], "[admin]\nplugins = \"plugins\"\n").replacen("[balancer.web]\n", "[balancer.web]\nhashkey = \"header:x-misbehave\"\n", 1);
    let proxy = ManagedProxy::start_in(&dir, &toml).await.expect("starts");
    let (admin, _running) = manager(&proxy, None).await;
    let nonce = admin.nonce().await;
    let upload = admin.request(Method::POST, "/api/plugins").header("x-nonce", &nonce).header("content-type", "application/wasm");
    let component = std::fs::read(GUEST_MISBEHAVE).expect("the test guest");
    let reply = admin.client.send(upload.body(Full::new(Bytes::from(component))).expect("request")).await;
    let sha = serde_json::from_slice::<Value>(&reply.body).expect("json")["sha256"].as_str().expect("sha").to_string();
    // First `ok` (every request to the first candidate), then a version that panics on the
    // requests carrying x-misbehave: those go to the `ok` one, not to byrequests.
    admin.ok(Method::PUT, "/api/balancers/web/lbmethod", &format!(r#"{{"sha256": "{sha}", "config": {{"mode": "ok"}}}}"#)).await;
    let web = admin.ok(Method::PUT, "/api/balancers/web/lbmethod", &format!(r#"{{"sha256": "{sha}", "config": {{"mode": "panic"}}}}"#)).await;
    assert!(web["previous_lbmethod"].is_string(), "{web}");
    let client = TestClient::http1();
    let mut served = Vec::new();
    for _ in 0..4 {
        let request = http::Request::get(proxy.proxy.url("/x")).header("x-misbehave", "1").body(Full::default()).expect("request");
        let reply = client.send(request).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        served.push(reply.header("x-member"));
    }
    assert_eq!(served, ["a"; 4], "the previous version placed them");
    let web = admin.balancer().await;
    assert_eq!((web["fallbacks"].as_u64(), web["fallbacks_to_previous"].as_u64()), (Some(4), Some(4)), "{web}");
    let metrics = admin.get("/metrics").await;
    assert!(metrics.text().contains("to=\"previous\"} 4"), "{}", metrics.text());
    proxy.proxy.stop().await;
}
