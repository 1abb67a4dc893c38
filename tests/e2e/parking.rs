//! Parked connections: a plain HTTP/1 keep-alive connection idle between requests is held as
//! a bare socket, without a task, and served again when its client writes. What must hold
//! across parking: the next request (whole, split, or pipelined) is answered on the same
//! connection as if nothing happened, the keep-alive deadline still closes it, shutdown
//! closes it, and it keeps its slot under `limits.connections` while parked.

use std::time::Duration;

use switchyard_tests::client::{RawConn, status_of};
use switchyard_tests::member::Member;
use switchyard_tests::proxy::{TestProxy, config};

/// Whether the proxy's parked-connection count becomes `n` within about 10 s.
async fn parked_becomes(proxy: &TestProxy, n: usize) -> bool {
    for _ in 0..500 {
        if proxy.running.parked_connections() == n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

async fn setup(extra: &str) -> (TestProxy, Member) {
    let m = Member::start("m").await;
    let toml = format!("{extra}[[route]]\npath = \"/\"\nbackend = \"{}/\"\n", m.url());
    (TestProxy::start(&config(&toml)).await, m)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_parked_and_its_next_requests_are_answered() {
    let (proxy, _m) = setup("[timeouts]\nkeepalive = \"60s\"\n").await;
    // A connection that never sent a request keeps its task (and its head deadline).
    let mut silent = RawConn::connect(proxy.addr).await;
    let mut conn = RawConn::connect(proxy.addr).await;
    assert!(conn.send(b"GET /first HTTP/1.1\r\nHost: t\r\n\r\n").await);
    assert_eq!(conn.response().await.as_deref().map(status_of), Some(200));
    assert!(parked_becomes(&proxy, 1).await, "idle after its answer: parked");

    // Woken by a whole request: answered as from the client it always was.
    assert!(conn.send(b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\n").await);
    let reply = conn.response().await.expect("answered after parking");
    assert_eq!(status_of(&reply), 200, "{reply}");
    assert!(reply.contains("x-forwarded-for\",\"127.0.0.1"), "{reply}");
    assert!(parked_becomes(&proxy, 1).await, "parked again");

    // Woken by part of a head: the rest may follow, within the head deadline.
    assert!(conn.send(b"GET /split HTTP/1.1\r\n").await);
    assert!(conn.quiet_for(Duration::from_millis(100)).await);
    assert!(conn.send(b"Host: t\r\n\r\n").await);
    assert_eq!(conn.response().await.as_deref().map(status_of), Some(200));
    assert!(parked_becomes(&proxy, 1).await, "parked again");

    // Woken by two pipelined requests: both answered, in order.
    assert!(conn.send(b"GET /status/201 HTTP/1.1\r\nHost: t\r\n\r\nGET /status/202 HTTP/1.1\r\nHost: t\r\n\r\n").await);
    assert_eq!(conn.response().await.as_deref().map(status_of), Some(201));
    assert_eq!(conn.response().await.as_deref().map(status_of), Some(202));
    assert!(parked_becomes(&proxy, 1).await, "parked again");
    assert!(silent.quiet_for(Duration::from_millis(50)).await, "the silent connection is still open");
    assert_eq!(proxy.running.parked_connections(), 1, "a connection with no request yet is not parked");

    // A client that closes a parked connection frees it.
    drop(conn);
    assert!(parked_becomes(&proxy, 0).await);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_connection_closes_at_its_keepalive_deadline_and_at_shutdown() {
    let (proxy, _m) = setup("[timeouts]\nkeepalive = \"1s\"\n").await;
    let mut conn = RawConn::connect(proxy.addr).await;
    assert!(conn.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await);
    assert_eq!(conn.response().await.as_deref().map(status_of), Some(200));
    assert!(parked_becomes(&proxy, 1).await);
    assert_eq!(conn.closed_within(Duration::from_secs(10)).await.as_deref(), Some(""), "closed without a word");
    assert!(parked_becomes(&proxy, 0).await);

    let mut conn = RawConn::connect(proxy.addr).await;
    assert!(conn.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await);
    assert_eq!(conn.response().await.as_deref().map(status_of), Some(200));
    assert!(parked_becomes(&proxy, 1).await);
    let stopping = tokio::spawn(proxy.stop());
    assert_eq!(conn.closed_within(Duration::from_secs(10)).await.as_deref(), Some(""), "shutdown closes parked connections");
    tokio::time::timeout(Duration::from_secs(10), stopping).await.expect("shutdown does not wait for parked connections").expect("stopped");
}

/// A keep-alive connection idle between requests but never parked (its `park` time is its
/// keep-alive) is closed by a shutdown at once, not at the drain's end: after its first idle
/// wait as after later ones (the wait for the shutdown is made once per connection).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_that_is_not_parked_closes_at_shutdown() {
    let (proxy, _m) = setup("[server]\nshutdown_timeout = 60\n[timeouts]\nkeepalive = \"60s\"\npark = \"60s\"\n").await;
    let mut conns = Vec::new();
    for requests in 1..=3 {
        let mut conn = RawConn::connect(proxy.addr).await;
        for _ in 0..requests {
            assert!(conn.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await);
            assert_eq!(conn.response().await.as_deref().map(status_of), Some(200));
            assert!(conn.quiet_for(Duration::from_millis(50)).await, "idle between requests");
        }
        conns.push(conn);
    }
    assert_eq!(proxy.running.parked_connections(), 0, "none parked");
    let stopping = tokio::spawn(proxy.stop());
    for conn in &mut conns {
        assert_eq!(conn.closed_within(Duration::from_secs(10)).await.as_deref(), Some(""), "shutdown closes idle connections");
    }
    tokio::time::timeout(Duration::from_secs(10), stopping).await.expect("shutdown does not wait for idle connections").expect("stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_connection_keeps_its_slot_under_the_connection_cap() {
    let (proxy, _m) = setup("[server]\nworkers = 1\n[limits]\nconnections = 1\n[timeouts]\nkeepalive = \"60s\"\n").await;
    let mut first = RawConn::connect(proxy.addr).await;
    assert!(first.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await);
    assert_eq!(first.response().await.as_deref().map(status_of), Some(200));
    assert!(parked_becomes(&proxy, 1).await);
    let mut second = RawConn::connect(proxy.addr).await;
    assert!(second.send(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").await);
    assert!(second.quiet_for(Duration::from_millis(300)).await, "served beyond the cap");
    // The first client leaves while parked: its slot goes to the second.
    drop(first);
    let reply = second.closed_within(Duration::from_secs(10)).await.expect("served once the parked connection closed");
    assert_eq!(status_of(&reply), 200, "{reply}");
    proxy.stop().await;
}

/// Opens `n` connections to `proxy`, each answered once, into `conns`.
async fn open_answered(proxy: &TestProxy, n: usize, conns: &mut Vec<RawConn>) {
    for _ in 0..n {
        let mut conn = RawConn::connect(proxy.addr).await;
        assert!(conn.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await);
        assert_eq!(conn.response().await.as_deref().map(status_of), Some(200));
        conns.push(conn);
    }
}

/// A burst of connections that park ends as many tasks at once: what they freed is handed
/// back to the system (glibc's `malloc_trim`) within a second or two. Fewer than that never
/// trim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_connections_that_park_hands_freed_memory_back() {
    let (proxy, _m) = setup("[timeouts]\nkeepalive = \"60s\"\npark = \"10ms\"\n").await;
    let mut conns = Vec::new();
    open_answered(&proxy, 100, &mut conns).await;
    assert!(parked_becomes(&proxy, 100).await);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(proxy.running.memory_trims(), 0, "100 ended tasks are too few to trim for");
    open_answered(&proxy, 200, &mut conns).await;
    assert!(parked_becomes(&proxy, 300).await);
    let mut trimmed = false;
    for _ in 0..250 {
        if proxy.running.memory_trims() > 0 {
            trimmed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(trimmed, "300 ended tasks: freed memory handed back");
    drop(conns);
    proxy.stop().await;
}
