//! The plugin contract across versions: components built against 0.1.0 keep loading and
//! working unchanged beside 0.2.0 ones, and 0.2.0's completion feedback lets a latency-aware
//! method (the peak-EWMA example) move traffic off a slow member.

use std::sync::Arc;

use switchyard::config::StatusFlags;
use switchyard_tests::client::TestClient;
use switchyard_tests::member::Member;
use switchyard_tests::proxy::{TestProxy, config};

use crate::lbmethods::balancer;
use switchyard_tests::{FIXTURES_WIT_0_1_0, GUEST_PEAK_EWMA, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_0_1_0_lbmethod_picks_exactly_as_before() {
    let fixture = format!("{{ path = \"{FIXTURES_WIT_0_1_0}/lbmethod_byrequests.wasm\" }}");
    let (proxy, _m) = balancer(&fixture, &[70.0, 30.0]).await;
    let seq = TestClient::http1().members_of(&proxy.url("/"), 10).await;
    assert_eq!(seq, ["a", "b", "a", "a", "a", "b", "a", "a", "b", "a"], "httpd's documented 70/30 example");
    let method = proxy.running.proxy.balancers()[0].lbmethod();
    assert!(!method.wants_completions(), "a 0.1.0 method gets no feedback");
    proxy.stop().await;

    let (proxy, _m) = balancer(&fixture, &[1.0, 2.0, 3.0]).await;
    let seq = TestClient::http1().members_of(&proxy.url("/"), 12).await;
    assert_eq!(seq, ["c", "b", "a", "c", "b", "c", "c", "b", "a", "c", "b", "c"]);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_0_1_0_health_check_and_header_rewrite_keep_working() {
    let a = Member::start("a").await;
    let b = Member::start("b").await;
    let toml = format!(
        "[[route]]\npath = \"/images/\"\nbalancer = \"b\"\n\
         rewrite = [{{ path = \"{dir}/rewrite_proxypassreverse.wasm\", config = {{ reverse = true }} }}]\n\
         [balancer.b]\n\
         [[balancer.b.member]]\nurl = \"{}\"\n\
         healthcheck = {{ path = \"{dir}/healthcheck_hcheck.wasm\", config = {{ method = \"GET\", uri = \"/health\" }} }}\n\
         hcinterval = \"100ms\"\nhcfails = 1\nhcpasses = 1\n\
         [[balancer.b.member]]\nurl = \"{}\"\n",
        a.url(),
        b.url(),
        dir = FIXTURES_WIT_0_1_0,
    );
    let proxy = TestProxy::start(&config(&toml)).await;
    let checked = Arc::clone(&proxy.running.proxy.balancers()[0].members()[0]);

    let request = http::Request::get(proxy.url("/images/location/x.png"))
        .header("host", "www.example.com")
        .body(http_body_util::Full::default())
        .expect("request");
    let reply = TestClient::http1().send(request).await;
    assert_eq!(reply.status, 302);
    assert_eq!(reply.header("location"), "http://www.example.com/images/x.png", "the 0.1.0 rewrite plugin ran");

    a.set_health(503, "DOWN");
    eventually("the 0.1.0 health check fails the member", || checked.status().contains(StatusFlags::HEALTH_FAILED)).await;
    a.set_health(200, "UP");
    eventually("the 0.1.0 health check passes it again", || !checked.status().contains(StatusFlags::HEALTH_FAILED)).await;
    proxy.stop().await;
}

/// How many of `n` sequential requests member `name` got.
async fn share(proxy: &TestProxy, name: &str, n: usize) -> usize {
    TestClient::http1().members_of(&proxy.url("/"), n).await.iter().filter(|m| *m == name).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peak_ewma_moves_traffic_off_a_slow_member_and_byrequests_does_not() {
    // The same method in Rust and in JavaScript (when its build tool is installed).
    let mut components = vec![("rust", GUEST_PEAK_EWMA.to_string())];
    if let Some(js) = switchyard_tests::js::peak_ewma_js() {
        components.push(("javascript", js.display().to_string()));
    }
    for (language, path) in components {
        let (proxy, members) = balancer(&format!("{{ path = \"{path}\" }}"), &[1.0, 1.0]).await;
        assert!(proxy.running.proxy.balancers()[0].lbmethod().wants_completions(), "{language}");
        members[0].set_delay(40);
        // Until both members answered once, the choice is random; after that the slow one
        // loses every comparison (its 40 ms against ~1 ms) for far longer than this test runs.
        let slow = share(&proxy, "a", 40).await;
        assert!(slow <= 5, "{language} peak-ewma sent {slow} of 40 requests to the slow member");
        proxy.stop().await;
    }

    let (proxy, members) = balancer("\"byrequests\"", &[1.0, 1.0]).await;
    members[0].set_delay(40);
    assert_eq!(share(&proxy, "a", 40).await, 20, "byrequests ignores latency");
    proxy.stop().await;
}
