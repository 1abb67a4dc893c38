//! Each default lbmethod's exact sequence, through the proxy and the Wasm plugin.

use switchyard_tests::client::TestClient;
use switchyard_tests::member::Member;
use switchyard_tests::proxy::{TestProxy, config};

/// Members named a, b, c… with the given loadfactors, behind the default `lbmethod`, routed
/// at `/`.
async fn setup(lbmethod: &str, loadfactors: &[f64]) -> (TestProxy, Vec<Member>) {
    balancer(&format!("\"{lbmethod}\""), loadfactors).await
}

/// Members named a, b, c… with the given loadfactors, behind `lbmethod` (a TOML value: a name
/// in quotes, or a `{ path = … }` table), routed at `/`.
pub(crate) async fn balancer(lbmethod: &str, loadfactors: &[f64]) -> (TestProxy, Vec<Member>) {
    let mut members = Vec::new();
    let mut toml = format!("[[route]]\npath = \"/\"\nbalancer = \"b\"\n\n[balancer.b]\nlbmethod = {lbmethod}\n");
    for (i, lf) in loadfactors.iter().enumerate() {
        let m = Member::start(&((b'a' + i as u8) as char).to_string()).await;
        toml.push_str(&format!("[[balancer.b.member]]\nurl = \"{}\"\nloadfactor = {lf}\n", m.url()));
        members.push(m);
    }
    (TestProxy::start(&config(&toml)).await, members)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byrequests_sequences() {
    let (proxy, _m) = setup("byrequests", &[70.0, 30.0]).await;
    let seq = TestClient::http1().members_of(&proxy.url("/"), 10).await;
    assert_eq!(seq, ["a", "b", "a", "a", "a", "b", "a", "a", "b", "a"], "httpd's documented 70/30 example");
    proxy.stop().await;

    let (proxy, _m) = setup("byrequests", &[1.0, 2.0, 3.0]).await;
    let seq = TestClient::http1().members_of(&proxy.url("/"), 12).await;
    assert_eq!(seq, ["c", "b", "a", "c", "b", "c", "c", "b", "a", "c", "b", "c"]);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bybusyness_sequences() {
    // Sequential requests are never busy at the same time: the byrequests tie-break decides.
    let (proxy, _m) = setup("bybusyness", &[70.0, 30.0]).await;
    let seq = TestClient::http1().members_of(&proxy.url("/"), 10).await;
    assert_eq!(seq, ["a", "b", "a", "a", "a", "b", "a", "a", "b", "a"]);
    proxy.stop().await;

    let (proxy, _m) = setup("bybusyness", &[1.0, 2.0, 3.0]).await;
    let seq = TestClient::http1().members_of(&proxy.url("/"), 6).await;
    assert_eq!(seq, ["c", "b", "a", "c", "b", "c"]);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bybusyness_avoids_a_member_with_requests_in_flight() {
    let (proxy, _m) = setup("bybusyness", &[1.0, 1.0]).await;
    // Long enough for the four quick requests below, even on a loaded machine.
    let slow_url = proxy.url("/sleep/4000");
    let slow = tokio::spawn(async move { TestClient::http1().get(&slow_url).await.header("x-member") });
    // Wait (bounded) until the proxy counts the slow request as busy on some member.
    let balancer = &proxy.running.proxy.balancers()[0];
    let mut busy_member = None;
    for _ in 0..1000 {
        busy_member = balancer.members().iter().position(|m| m.busy() == 1);
        if busy_member.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let busy = busy_member.expect("the slow request is counted busy");
    let other = ["a", "b"][1 - busy];
    let seq = TestClient::http1().members_of(&proxy.url("/"), 4).await;
    assert_eq!(seq, [other; 4], "every quick request avoids the busy member");
    assert_eq!(slow.await.expect("slow request"), ["a", "b"][busy]);
    // The client may have the whole answer a moment before the proxy lets go of the exchange.
    switchyard_tests::eventually("busy drops when the response ends", || balancer.members()[busy].busy() == 0).await;
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytraffic_sequences() {
    // Equal 60 KB answers: the sequence follows traffic / lbfactor, ties to the first.
    let (proxy, _m) = setup("bytraffic", &[1.0, 2.0, 3.0]).await;
    let seq = TestClient::http1().members_of(&proxy.url("/bytes/60000"), 6).await;
    assert_eq!(seq, ["a", "b", "c", "c", "b", "c"]);
    proxy.stop().await;

    let (proxy, _m) = setup("bytraffic", &[70.0, 30.0]).await;
    let seq = TestClient::http1().members_of(&proxy.url("/bytes/60000"), 10).await;
    assert_eq!(seq, ["a", "b", "a", "a", "b", "a", "a", "b", "a", "a"]);
    let counters: Vec<_> = proxy.running.proxy.balancers()[0].members().iter().map(|m| m.snapshot()).collect();
    assert!(counters[0].read > 7 * 60_000 && counters[1].read > 3 * 60_000, "read counts response bytes: {counters:?}");
    assert!(counters[0].transferred > 0, "transferred counts request bytes");
    proxy.stop().await;
}
