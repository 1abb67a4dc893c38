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

/// The HTTP/2 connection preface and an empty SETTINGS frame.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// An HTTP/2 frame header: payload length, type, flags, stream 1.
fn h2_frame_header(len: u32, frame_type: u8, flags: u8) -> Vec<u8> {
    let l = len.to_be_bytes();
    vec![l[1], l[2], l[3], frame_type, flags, 0, 0, 0, 1]
}

/// Sends `pieces` one every `every`, reading what the proxy sends meanwhile, until the proxy
/// closes the connection (`true`) or `limit` passes (`false`).
async fn h2_send_until_closed(conn: &mut RawConn, pieces: impl Iterator<Item = Vec<u8>>, every: Duration, limit: Duration) -> bool {
    let run = async {
        for piece in pieces {
            if !conn.send(&piece).await || !conn.open_after(every).await {
                return;
            }
        }
        // Everything sent: wait for the close.
        while conn.open_after(every).await {}
    };
    tokio::time::timeout(limit, run).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_http2_request_head_closes_the_connection() {
    let m = Member::start("m").await;
    // A long keepalive: only the head deadline can close this connection.
    let toml = format!("[timeouts]\nheader = \"500ms\"\nkeepalive = \"60s\"\n[[route]]\npath = \"/\"\nbackend = \"{}/\"\n", m.url());
    let proxy = TestProxy::start(&config(&toml)).await;
    let mut conn = RawConn::connect(proxy.addr).await;
    assert!(conn.send(H2_PREFACE).await);
    // A HEADERS frame of 16,000 bytes, one byte every 50 ms: it would take over 13 minutes.
    let header = h2_frame_header(16_000, 0x1, 0x4 | 0x1);
    let pieces = std::iter::once(header).chain(std::iter::repeat_n(vec![0u8], 16_000));
    let closed = h2_send_until_closed(&mut conn, pieces, Duration::from_millis(50), Duration::from_secs(10)).await;
    assert!(closed, "the proxy closes a connection whose request head trickles in");
    assert_eq!(m.connections(), 0);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_pings_do_not_keep_an_idle_connection_open() {
    let m = Member::start("m").await;
    let toml = format!("[timeouts]\nheader = \"60s\"\nkeepalive = \"300ms\"\n[[route]]\npath = \"/\"\nbackend = \"{}/\"\n", m.url());
    let proxy = TestProxy::start(&config(&toml)).await;
    let mut conn = RawConn::connect(proxy.addr).await;
    assert!(conn.send(H2_PREFACE).await);
    // A PING every 100 ms, for up to a minute.
    let ping = [h2_frame_header(8, 0x6, 0), vec![0u8; 8]].concat();
    let pieces = std::iter::repeat_n(ping, 600);
    let closed = h2_send_until_closed(&mut conn, pieces, Duration::from_millis(100), Duration::from_secs(10)).await;
    assert!(closed, "an HTTP/2 connection with no request is closed after keepalive, PINGs or not");
    proxy.stop().await;
}
