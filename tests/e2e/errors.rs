//! 404, 405, 502, 503 and 504, and failover on a refused connect.

use std::time::Duration;

use http::{Method, Request, StatusCode};
use http_body_util::Full;
use switchyard::config::StatusFlags;
use switchyard_tests::client::TestClient;
use switchyard_tests::member::{Member, refusing_port};
use switchyard_tests::proxy::{TestProxy, config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_route_and_excluded_paths_get_404() {
    let m = Member::start("m").await;
    let toml = format!(
        "[[route]]\npath = \"/app/static\"\nexclude = true\n[[route]]\npath = \"/app\"\nbackend = \"{}/\"\n",
        m.url()
    );
    let proxy = TestProxy::start(&config(&toml)).await;
    let client = TestClient::http1();
    assert_eq!(client.get(&proxy.url("/elsewhere")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(client.get(&proxy.url("/appx")).await.status, StatusCode::NOT_FOUND, "prefix matches at a segment boundary");
    assert_eq!(client.get(&proxy.url("/app/static/logo.png")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(client.get(&proxy.url("/app/page")).await.status, StatusCode::OK);
    assert_eq!(m.requests(), 1, "404s never reach the member");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_refused_fails_over_then_503() {
    let live = Member::start("live").await;
    let refusing = refusing_port();
    let dead = refusing.addr;
    let toml = format!(
        "[[route]]\npath = \"/\"\nbalancer = \"b\"\n[balancer.b]\n[[balancer.b.member]]\nurl = \"http://{dead}\"\n[[balancer.b.member]]\nurl = \"{}\"\n",
        live.url()
    );
    let proxy = TestProxy::start(&config(&toml)).await;
    let client = TestClient::http1();
    // The dead member is first in line; every request must still succeed.
    assert_eq!(client.members_of(&proxy.url("/"), 4).await, ["live"; 4]);
    let members = proxy.running.proxy.balancers()[0].members();
    assert!(members[0].status().contains(StatusFlags::IN_ERROR), "the refusing member is put in error");
    assert_eq!(members[0].snapshot().errors, 1, "and not tried again within retry");
    // Stopped and waited for: a pooled connection it still served would answer 200.
    live.stop().await;
    let reply = client.get(&proxy.url("/")).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "no usable member left: {}", reply.text());
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_backend_refusing_gets_503() {
    let refusing = refusing_port();
    let dead = refusing.addr;
    let proxy = TestProxy::start(&config(&format!("[[route]]\npath = \"/\"\nbackend = \"http://{dead}/\"\n"))).await;
    let reply = TestClient::http1().get(&proxy.url("/x")).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_breaking_the_exchange_gets_502() {
    let m = Member::start("m").await;
    let toml = format!("[[route]]\npath = \"/\"\nbackend = \"{}/\"\n", m.url());
    let proxy = TestProxy::start(&config(&toml)).await;
    let post = Request::builder().method(Method::POST).uri(proxy.url("/close")).body(Full::from("data")).expect("request");
    let reply = TestClient::http1().send(post).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.text());
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_request_is_retried_on_another_member_after_a_broken_exchange() {
    let a = Member::start("a").await;
    let b = Member::start("b").await;
    let toml = format!(
        "[[route]]\npath = \"/\"\nbalancer = \"b\"\n[balancer.b]\n[[balancer.b.member]]\nurl = \"{}\"\nretry = 0\n[[balancer.b.member]]\nurl = \"{}\"\nretry = 0\n",
        a.url(),
        b.url()
    );
    let proxy = TestProxy::start(&config(&toml)).await;
    // (retry = 0: a member put in error may be picked again by the next request.)
    // Both members close on /close; a GET without a body may be sent again, so both are tried.
    let reply = TestClient::http1().get(&proxy.url("/close")).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!((a.requests(), b.requests()), (1, 1), "the GET went to each member once");
    // A POST is never sent twice.
    let post = Request::post(proxy.url("/close")).body(Full::from("x")).expect("request");
    let before = a.requests() + b.requests();
    assert_eq!(TestClient::http1().send(post).await.status, StatusCode::BAD_GATEWAY);
    assert_eq!(a.requests() + b.requests(), before + 1);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_timeout_gets_504() {
    let m = Member::start("m").await;
    let toml = format!(
        "[[route]]\npath = \"/\"\nbalancer = \"b\"\n[balancer.b]\n[[balancer.b.member]]\nurl = \"{}\"\ntimeout = \"200ms\"\n",
        m.url()
    );
    let proxy = TestProxy::start(&config(&toml)).await;
    let started = std::time::Instant::now();
    // The member would answer after 10 s: the bound is generous for a 200 ms timeout on a
    // loaded machine and still well short of the member's answer.
    let reply = TestClient::http1().get(&proxy.url("/sleep/10000")).await;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(started.elapsed() < Duration::from_secs(8), "answered at the timeout, not when the member did");
    assert_eq!(TestClient::http1().get(&proxy.url("/sleep/10")).await.status, StatusCode::OK, "fast answers still pass");
    proxy.stop().await;
}

/// A member connection keeps one timer for its answers' heads, re-armed for each request: each
/// answer is timed from its own request, however many came before it on the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_answer_on_a_reused_member_connection_is_timed_afresh() {
    let m = Member::start("m").await;
    let toml = format!(
        "[server]\nworkers = 1\n[[route]]\npath = \"/\"\nbalancer = \"b\"\n[balancer.b]\n[[balancer.b.member]]\nurl = \"{}\"\ntimeout = \"400ms\"\n",
        m.url()
    );
    // One worker: every request goes through the one worker's pool, so they share a member
    // connection.
    let proxy = TestProxy::start(&config(&toml)).await;
    // Six answers of 150 ms each, 900 ms in all: a deadline left from the first would cut one.
    for i in 0..6 {
        assert_eq!(TestClient::http1().get(&proxy.url("/sleep/150")).await.status, StatusCode::OK, "answer {i}");
    }
    // At most two connections for six requests: one of them carried three or more, so a
    // deadline left from its first answer would have cut one.
    assert!(m.connections() <= 2, "member connections reused ({} for 6 requests)", m.connections());
    let started = std::time::Instant::now();
    assert_eq!(TestClient::http1().get(&proxy.url("/sleep/10000")).await.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(started.elapsed() < Duration::from_secs(8), "cut at the timeout, not when the member answered");
    assert_eq!(TestClient::http1().get(&proxy.url("/sleep/10")).await.status, StatusCode::OK);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_is_refused() {
    let m = Member::start("m").await;
    let proxy = TestProxy::start(&config(&format!("[[route]]\npath = \"/\"\nbackend = \"{}/\"\n", m.url()))).await;
    let raw = switchyard_tests::client::raw_exchange(proxy.addr, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nConnection: close\r\n\r\n").await;
    assert!(raw.starts_with("HTTP/1.1 405"), "{raw}");
    assert_eq!(m.requests(), 0);
    proxy.stop().await;
}
