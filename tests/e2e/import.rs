//! The guide's failover example, converted by `import-httpd`, behaves as the guide says as
//! members are stopped: regular members first (1:3 by loadfactor), a hot spare in place of
//! each unusable regular member, the hot standby when the set has nothing else, then lbset 1.

use switchyard_tests::client::TestClient;
use switchyard_tests::member::Member;
use switchyard_tests::proxy::TestProxy;

/// The names of the members that answered `n` requests, sorted and deduplicated.
async fn answering(client: &TestClient, url: &str, n: usize) -> Vec<String> {
    let mut seen = client.members_of(url, n).await;
    seen.sort();
    seen.dedup();
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_converted_failover_example_fails_over_like_the_guide() {
    let names = ["www2", "www3", "spare1", "spare2", "hstandby", "bkup1", "bkup2"];
    let mut members = Vec::new();
    for n in names {
        members.push(Some(Member::start(n).await));
    }
    let addr = |i: usize| members[i].as_ref().map(|m| m.url()).unwrap_or_default();
    // The guide's example, with the members on this machine and retry short enough for a test.
    let httpd = format!(
        "Listen 127.0.0.1:0\n<Proxy balancer://myset>\n    BalancerMember {} retry=60\n    BalancerMember {} loadfactor=3 timeout=1 retry=60\n    BalancerMember {} status=+R retry=60\n    BalancerMember {} status=+R retry=60\n    BalancerMember {} status=+H retry=60\n    BalancerMember {} lbset=1 retry=60\n    BalancerMember {} lbset=1 retry=60\n    ProxySet lbmethod=byrequests\n</Proxy>\nProxyPass \"/images/\"  \"balancer://myset/\"\nProxyPassReverse \"/images/\"  \"balancer://myset/\"\n",
        addr(0), addr(1), addr(2), addr(3), addr(4), addr(5), addr(6)
    );
    let dir = std::env::temp_dir().join(format!("switchyard-import-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let conf = dir.join("httpd.conf");
    std::fs::write(&conf, httpd).expect("write");
    let import = switchyard::import::import_httpd(&conf, &dir.join("switchyard.toml")).expect("import");
    assert!(import.findings.iter().all(|f| f.severity == switchyard::import::Severity::Ignored), "{}", import.report());
    let proxy = TestProxy::start(&import.toml).await;
    let client = TestClient::http1();
    let url = proxy.url("/images/x");

    // All up: the two regular members, 1:3.
    let seen = client.members_of(&url, 8).await;
    assert_eq!(seen.iter().filter(|n| *n == "www3").count(), 6, "loadfactor 3 against 1: {seen:?}");
    assert_eq!(seen.iter().filter(|n| *n == "www2").count(), 2, "{seen:?}");

    let mut stop = |i: usize| members[i].take();
    // One regular member down: a hot spare takes its place.
    if let Some(m) = stop(0) {
        m.stop().await;
    }
    assert_eq!(answering(&client, &url, 12).await, ["spare1", "www3"]);
    // Both regular members down: both spares.
    if let Some(m) = stop(1) {
        m.stop().await;
    }
    assert_eq!(answering(&client, &url, 12).await, ["spare1", "spare2"]);
    // The spares down too: the hot standby.
    for i in [2, 3] {
        if let Some(m) = stop(i) {
            m.stop().await;
        }
    }
    assert_eq!(answering(&client, &url, 6).await, ["hstandby"]);
    // Nothing left in lbset 0: lbset 1.
    if let Some(m) = stop(4) {
        m.stop().await;
    }
    assert_eq!(answering(&client, &url, 8).await, ["bkup1", "bkup2"]);
    proxy.stop().await;
}
