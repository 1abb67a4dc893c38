//! `[timeouts]` and the member timeouts: slowloris (408), idle keep-alive (closed), a slow
//! and a stalled POST (408), member connect and response timeouts (504). Every test uses
//! short configured timeouts and finishes in seconds; no assertion is about how long
//! anything took, only about what happened.

use std::time::Duration;

use switchyard_tests::client::{RawConn, status_of};
use switchyard_tests::member::Member;
use switchyard_tests::proxy::{TestProxy, config};

const TIMEOUTS: &str = "[timeouts]\nheader = \"500ms\"\nkeepalive = \"300ms\"\nbody = \"500ms\"\nbody_min_rate = 1000\n";

async fn setup() -> (TestProxy, Member) {
    let m = Member::start("m").await;
    let toml = format!("{TIMEOUTS}[[route]]\npath = \"/\"\nbackend = \"{}/\"\n", m.url());
    (TestProxy::start(&config(&toml)).await, m)
}

/// Sends `bytes` one at a time every `every` until the proxy closes the connection, for at
/// most `cap` bytes; returns what the proxy sent.
async fn trickle(conn: &mut RawConn, bytes: &[u8], every: Duration) -> Option<String> {
    for b in bytes {
        if !conn.send(std::slice::from_ref(b)).await {
            break;
        }
        if !conn.quiet_for(every).await {
            break;
        }
    }
    conn.closed_within(Duration::from_secs(10)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_gets_408_and_the_connection_closed() {
    let (proxy, m) = setup().await;
    let mut conn = RawConn::connect(proxy.addr).await;
    assert!(conn.send(b"GET / HTTP/1.1\r\nHost: t\r\n").await);
    // One header byte every 100 ms: the head would take minutes; the limit is 500 ms.
    let endless = "X-Slow: ".to_string() + &"s".repeat(600);
    let reply = trickle(&mut conn, endless.as_bytes(), Duration::from_millis(100)).await.expect("closed by the proxy");
    assert_eq!(status_of(&reply), 408, "{reply}");
    assert_eq!(m.connections(), 0);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_quietly() {
    let (proxy, _m) = setup().await;
    // Connected, nothing sent: closed without a word.
    let mut silent = RawConn::connect(proxy.addr).await;
    assert_eq!(silent.closed_within(Duration::from_secs(10)).await.as_deref(), Some(""));
    // After a response, idle past keepalive: closed without a word.
    let mut conn = RawConn::connect(proxy.addr).await;
    assert!(conn.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await);
    assert_eq!(conn.response().await.as_deref().map(status_of), Some(200));
    assert_eq!(conn.closed_within(Duration::from_secs(10)).await.as_deref(), Some(""));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_member_does_not_trip_the_client_deadlines() {
    let (proxy, _m) = setup().await;
    let mut conn = RawConn::connect(proxy.addr).await;
    // The member takes 1.2 s, longer than header (500 ms) and keepalive (300 ms).
    assert!(conn.send(b"GET /sleep/1200 HTTP/1.1\r\nHost: t\r\n\r\n").await);
    assert_eq!(conn.response().await.as_deref().map(status_of), Some(200));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_byte_per_100ms_post_gets_408() {
    let (proxy, m) = setup().await;
    let mut conn = RawConn::connect(proxy.addr).await;
    assert!(conn.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n").await);
    // 10 bytes/s against a minimum of 1000 bytes/s after 500 ms: never a stall, still cut.
    let reply = trickle(&mut conn, &[b'x'; 1000], Duration::from_millis(100)).await.expect("closed by the proxy");
    assert_eq!(status_of(&reply), 408, "{reply}");
    assert!(m.requests() <= 1, "at most the cut-off request started at the member");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_post_gets_408_and_never_reaches_the_member() {
    let (proxy, m) = setup().await;
    let mut conn = RawConn::connect(proxy.addr).await;
    assert!(conn.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n").await);
    let reply = conn.closed_within(Duration::from_secs(10)).await.expect("closed by the proxy");
    assert_eq!(status_of(&reply), 408, "{reply}");
    assert_eq!(m.connections(), 0, "no byte of the body came, so no member was bothered");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_connect_timeout_gets_504() {
    // A listener whose backlog is full: further connects are never answered.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
    let addr = socket.local_addr().expect("addr");
    let listener = socket.listen(0).expect("listen");
    let mut fillers = Vec::new();
    for _ in 0..8 {
        match tokio::time::timeout(Duration::from_millis(200), tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(s)) => fillers.push(s),
            _ => break,
        }
    }
    let toml = format!("[[route]]\npath = \"/\"\nbackend = \"http://{addr}/\"\nconnectiontimeout = \"300ms\"\n");
    let proxy = TestProxy::start(&config(&toml)).await;
    let mut conn = RawConn::connect(proxy.addr).await;
    assert!(conn.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await);
    let reply = conn.response().await.expect("a response");
    assert_eq!(status_of(&reply), 504, "{reply}");
    drop(listener);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_after_a_broken_rule_still_times_out() {
    let (proxy, m) = setup().await;
    let mut conn = RawConn::connect(proxy.addr).await;
    // A bare LF stops the raw-head scanner; the head deadline must still apply.
    assert!(conn.send(b"GET / HTTP/1.1\r\nHost: t\nX-Slow: ").await);
    let reply = trickle(&mut conn, &[b's'; 600], Duration::from_millis(100)).await.expect("closed by the proxy");
    assert_eq!(status_of(&reply), 408, "{reply}");
    assert_eq!(m.connections(), 0);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http2_connections_are_closed() {
    let (proxy, _m) = setup().await;
    let mut conn = RawConn::connect(proxy.addr).await;
    // The HTTP/2 preface and an empty SETTINGS frame, then nothing.
    assert!(conn.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00").await);
    let sent = conn.closed_within(Duration::from_secs(10)).await.expect("the proxy closes an idle h2 connection");
    assert!(!sent.is_empty(), "the proxy spoke HTTP/2 first (its SETTINGS)");
    proxy.stop().await;
}
