//! Reload: a new config swapped in under a client loop with zero failed requests; listeners
//! added and removed; a config that cannot be served refused while the old one keeps
//! serving; members in both configs keep their live state.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use http::StatusCode;
use switchyard::config::StatusFlags;
use switchyard_tests::client::{RawConn, TestClient, status_of};
use switchyard_tests::member::{Member, refusing_port};
use switchyard_tests::proxy::{TestProxy, config};

fn balanced(members: &[&Member]) -> String {
    let mut toml = "[[route]]\npath = \"/\"\nbalancer = \"b\"\n[balancer.b]\n".to_string();
    for m in members {
        toml.push_str(&format!("[[balancer.b.member]]\nurl = \"{}\"\n", m.url()));
    }
    config(&toml)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reload_under_a_client_loop_fails_no_request() {
    let a = Member::start("a").await;
    let b = Member::start("b").await;
    let proxy = TestProxy::start(&balanced(&[&a])).await;
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let served = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    // Two loops on keep-alive connections, two opening a connection per request.
    for fresh in [false, false, true, true] {
        let (stop, failures, served, url) = (Arc::clone(&stop), Arc::clone(&failures), Arc::clone(&served), proxy.url("/"));
        clients.push(tokio::spawn(async move {
            let mut client = TestClient::http1();
            while !stop.load(Ordering::SeqCst) {
                if fresh {
                    client = TestClient::http1();
                }
                match tokio::time::timeout(Duration::from_secs(10), client.try_get(&url)).await {
                    Ok(Ok(status)) if status == StatusCode::OK => served.fetch_add(1, Ordering::SeqCst),
                    _ => failures.fetch_add(1, Ordering::SeqCst),
                };
            }
        }));
    }
    let configs = [balanced(&[&b]), balanced(&[&a, &b]), balanced(&[&a])];
    for round in 0..6 {
        let before = served.load(Ordering::SeqCst);
        proxy.reload(&configs[round % configs.len()]).await.expect("reload");
        // Let the clients make progress on each config (bounded wait).
        for _ in 0..200 {
            if served.load(Ordering::SeqCst) >= before + 20 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.expect("client loop");
    }
    assert_eq!(failures.load(Ordering::SeqCst), 0, "{} served", served.load(Ordering::SeqCst));
    assert!(served.load(Ordering::SeqCst) >= 120, "the loops made progress");
    assert!(a.requests() > 0 && b.requests() > 0, "both configs served requests");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_are_added_and_removed_and_the_kept_one_stays_open() {
    let m = Member::start("m").await;
    let route = format!("[[route]]\npath = \"/\"\nbackend = \"{}/\"\n", m.url());
    let proxy = TestProxy::start(&config(&route)).await;
    // A keep-alive connection made before the reload keeps working after it.
    let mut kept = RawConn::connect(proxy.addr).await;
    assert!(kept.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await);
    assert_eq!(kept.response().await.as_deref().map(status_of), Some(200));

    let two = format!("[[listen]]\naddr = \"127.0.0.1:0\"\n[[listen]]\naddr = \"[::1]:0\"\n{route}");
    let two = if std::net::TcpListener::bind("[::1]:0").is_ok() { two } else { two.replace("[::1]:0", "127.0.0.2:0") };
    let report = proxy.reload(&two).await.expect("reload");
    assert_eq!(report.listeners_added.len(), 1);
    let added = report.listeners_added[0];
    assert_eq!(proxy.running.listening(), [proxy.addr, added]);
    let reply = TestClient::http1().get(&format!("http://{added}/")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(kept.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await);
    assert_eq!(kept.response().await.as_deref().map(status_of), Some(200), "the old connection goes on");

    let report = proxy.reload(&config(&route)).await.expect("reload");
    assert_eq!(report.listeners_removed.len(), 1);
    assert_eq!(proxy.running.listening(), [proxy.addr]);
    let mut refused = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(added).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "the removed listener is closed");
    assert_eq!(TestClient::http1().get(&proxy.url("/")).await.status, StatusCode::OK);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_that_cannot_be_served_is_refused_and_the_old_one_stays() {
    let a = Member::start("a").await;
    let b = Member::start("b").await;
    let proxy = TestProxy::start(&balanced(&[&a])).await;
    // A taken port (bound without SO_REUSEPORT) makes the new listener fail before the swap.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken_addr = taken.local_addr().expect("addr");
    let bad = balanced(&[&b]).replace("[[listen]]", &format!("[[listen]]\naddr = \"{taken_addr}\"\n[[listen]]"));
    let err = proxy.reload(&bad).await.expect_err("refused");
    assert!(err.contains(&format!("cannot listen on {taken_addr}")), "{err}");
    // A plugin that does not load is refused too.
    let missing = balanced(&[&b]).replace("[balancer.b]\n", &format!("[balancer.b]\nlbmethod = {{ path = \"{}\", config = {{ mode = \"refuse-config\" }} }}\n", switchyard_tests::GUEST_MISBEHAVE));
    assert!(proxy.reload(&missing).await.is_err());
    let reply = TestClient::http1().get(&proxy.url("/")).await;
    assert_eq!(reply.header("x-member"), "a", "still the old config");
    drop(taken);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_in_both_configs_keep_their_state() {
    let live = Member::start("live").await;
    let refusing = refusing_port();
    let dead = refusing.addr;
    let toml = |extra: &str| {
        config(&format!(
            "[[route]]\npath = \"/\"\nbalancer = \"b\"\n[balancer.b]\n[[balancer.b.member]]\nurl = \"http://{dead}\"\n[[balancer.b.member]]\nurl = \"{}\"\n{extra}",
            live.url()
        ))
    };
    let proxy = TestProxy::start(&toml("")).await;
    let client = TestClient::http1();
    assert_eq!(client.members_of(&proxy.url("/"), 3).await, ["live"; 3]);
    let report = proxy.reload(&toml("loadfactor = 2\n")).await.expect("reload");
    assert_eq!(report.members_kept, 2);
    let current = proxy.running.current();
    let members = current.balancers()[0].members();
    assert!(members[0].status().contains(StatusFlags::IN_ERROR), "E survives the reload");
    assert_eq!(members[0].snapshot().errors, 1);
    assert_eq!(members[1].snapshot().elected, 3, "counters survive");
    assert_eq!(members[1].lbfactor(), 200, "configured values come from the new config");
    assert_eq!(client.members_of(&proxy.url("/"), 2).await, ["live"; 2], "the member in error is still skipped");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keep_alive_connection_switches_to_the_new_config_at_its_next_request() {
    let a = Member::start("a").await;
    let b = Member::start("b").await;
    let proxy = TestProxy::start(&balanced(&[&a])).await;
    let mut conn = RawConn::connect(proxy.addr).await;
    assert!(conn.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await);
    assert!(conn.response().await.expect("reply").contains("x-member: a"));
    proxy.reload(&balanced(&[&b])).await.expect("reload");
    assert!(conn.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await);
    let reply = conn.response().await.expect("reply on the same connection");
    assert!(reply.contains("x-member: b"), "{reply}");
    proxy.stop().await;
}
