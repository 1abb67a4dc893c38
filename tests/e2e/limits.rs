//! `[limits]`: request line (414), header block size and count (431), body size (413, on the
//! declared length before reading and while a chunked body streams), and the cap on client
//! connections.

use std::time::Duration;

use switchyard_tests::client::{RawConn, raw_exchange, status_of};
use switchyard_tests::member::Member;
use switchyard_tests::proxy::{TestProxy, config};

const LIMITS: &str = "[limits]\nrequest_line = 200\nheader_fields = 10\nheader_size = 1024\nbody = 1000\n";

async fn setup(limits: &str) -> (TestProxy, Member) {
    let m = Member::start("m").await;
    let toml = format!("{limits}[[route]]\npath = \"/\"\nbackend = \"{}/\"\n", m.url());
    (TestProxy::start(&config(&toml)).await, m)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_request_lines_get_414() {
    let (proxy, m) = setup(LIMITS).await;
    // Just over the limit: the whole head arrives, the service answers.
    let target = format!("/{}", "a".repeat(190));
    let reply = raw_exchange(proxy.addr, format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes()).await;
    assert_eq!(status_of(&reply), 414, "{reply}");
    // Far over it, in a head that never ends: the guard answers before the head is complete.
    let mut conn = RawConn::connect(proxy.addr).await;
    assert!(conn.send(format!("GET /{} ", "a".repeat(100_000)).as_bytes()).await);
    let reply = conn.closed_within(Duration::from_secs(10)).await.expect("closed");
    assert_eq!(status_of(&reply), 414, "{reply}");
    // At the limit it passes.
    let ok = format!("/{}", "a".repeat(200 - 15 - 1));
    let reply = raw_exchange(proxy.addr, format!("GET {ok} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes()).await;
    assert_eq!(status_of(&reply), 200, "{reply}");
    assert_eq!(m.requests(), 1, "only the request within the limit reached the member");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_request_line_behind_pipelined_requests_gets_414_after_them() {
    let (proxy, m) = setup(LIMITS).await;
    let mut conn = RawConn::connect(proxy.addr).await;
    // A slow first response (long enough for the proxy to take in everything behind it, even
    // on a loaded machine); behind it a valid request and then a request line far over the
    // limit — and over the HTTP parser's own buffer, which would answer 431 for it.
    let pipeline = format!("GET /sleep/1000 HTTP/1.1\r\nHost: t\r\n\r\nGET /second HTTP/1.1\r\nHost: t\r\n\r\nGET /{} ", "a".repeat(100_000));
    assert!(conn.send(pipeline.as_bytes()).await);
    for n in 1..=2 {
        let reply = conn.response().await.unwrap_or_else(|| panic!("response {n}"));
        assert_eq!(status_of(&reply), 200, "response {n}: {reply}");
    }
    let reply = conn.closed_within(Duration::from_secs(10)).await.expect("closed");
    assert_eq!(status_of(&reply), 414, "{reply}");
    assert_eq!(m.requests(), 2, "the two valid requests, nothing of the third");
    // The same line arriving on its own while the first response is being made: sent once the
    // member has the first request, on which it then sleeps far longer than sending takes.
    let mut conn = RawConn::connect(proxy.addr).await;
    assert!(conn.send(b"GET /sleep/2000 HTTP/1.1\r\nHost: t\r\n\r\n").await);
    switchyard_tests::eventually("the first request reached the member", || m.requests() == 3).await;
    assert!(conn.send(format!("GET /{} ", "a".repeat(100_000)).as_bytes()).await);
    let reply = conn.response().await.expect("the first response");
    assert_eq!(status_of(&reply), 200, "{reply}");
    let reply = conn.closed_within(Duration::from_secs(10)).await.expect("closed");
    assert_eq!(status_of(&reply), 414, "{reply}");
    assert_eq!(m.requests(), 3);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_or_numerous_headers_get_431() {
    let (proxy, m) = setup(LIMITS).await;
    let many: String = (0..11).map(|i| format!("X-{i}: 1\r\n")).collect();
    let reply = raw_exchange(proxy.addr, format!("GET / HTTP/1.1\r\nHost: t\r\n{many}\r\n").as_bytes()).await;
    assert_eq!(status_of(&reply), 431, "11 fields > 10: {reply}");
    let big = format!("GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n", "b".repeat(1100));
    assert_eq!(status_of(&raw_exchange(proxy.addr, big.as_bytes()).await), 431, "1 KiB of fields");
    // A header block that never ends is cut off at the limit.
    let mut conn = RawConn::connect(proxy.addr).await;
    assert!(conn.send(format!("GET / HTTP/1.1\r\nHost: t\r\nX-Endless: {}", "e".repeat(50_000)).as_bytes()).await);
    let reply = conn.closed_within(Duration::from_secs(10)).await.expect("closed");
    assert_eq!(status_of(&reply), 431, "{reply}");
    assert_eq!((m.connections(), m.requests()), (0, 0));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_get_413() {
    let (proxy, m) = setup(LIMITS).await;
    // Declared: refused before reading, without 100 Continue.
    let mut conn = RawConn::connect(proxy.addr).await;
    assert!(conn.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\nExpect: 100-continue\r\n\r\n").await);
    let reply = conn.closed_within(Duration::from_secs(10)).await.expect("closed");
    assert_eq!(status_of(&reply), 413, "{reply}");
    assert!(!reply.contains("100 Continue"), "{reply}");
    assert_eq!((m.connections(), m.requests()), (0, 0), "a declared excess never reaches the member");
    // Chunked, all at once: the first read already exceeds it.
    let chunk = "c".repeat(600);
    let two = format!("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n");
    let reply = raw_exchange(proxy.addr, two.as_bytes()).await;
    assert_eq!(status_of(&reply), 413, "{reply}");
    // Chunked, streaming: within the limit at first — the request is on its way to the member
    // (the echo's answer held back) — and over it with the next chunk.
    let before = m.requests();
    let mut conn = RawConn::connect(proxy.addr).await;
    assert!(conn.send(format!("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n{chunk}\r\n").as_bytes()).await);
    switchyard_tests::eventually("the streaming request reached the member", || m.requests() > before).await;
    conn.send(format!("258\r\n{chunk}\r\n0\r\n\r\n").as_bytes()).await;
    let reply = conn.closed_within(Duration::from_secs(10)).await.expect("closed");
    assert_eq!(status_of(&reply), 413, "{reply}");
    // Within the limit it passes.
    let ok = format!("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n{}", "o".repeat(1000));
    assert_eq!(status_of(&raw_exchange(proxy.addr, ok.as_bytes()).await), 200);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_holds_new_clients_in_the_backlog() {
    let (proxy, _m) = setup("[server]\nworkers = 1\n[limits]\nconnections = 1\n").await;
    let mut first = RawConn::connect(proxy.addr).await;
    assert!(first.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await);
    assert_eq!(first.response().await.as_deref().map(status_of), Some(200));
    // The kernel completes the second handshake, but the proxy does not take it yet.
    let mut second = RawConn::connect(proxy.addr).await;
    assert!(second.send(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").await);
    assert!(second.quiet_for(Duration::from_millis(300)).await, "served beyond the cap");
    drop(first);
    let reply = second.closed_within(Duration::from_secs(10)).await.expect("served once a slot is free");
    assert_eq!(status_of(&reply), 200, "{reply}");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_requests_meet_the_same_limits() {
    use http::Request;
    use http_body_util::Full;
    use switchyard_tests::client::TestClient;
    let (proxy, m) = setup(LIMITS).await;
    let client = TestClient::http2();
    let big = Request::post(proxy.url("/echo")).body(Full::from(vec![b'x'; 1001])).expect("request");
    assert_eq!(client.send(big).await.status, 413);
    let mut many = Request::get(proxy.url("/"));
    for i in 0..11 {
        many = many.header(format!("x-{i}"), "1");
    }
    assert_eq!(client.send(many.body(Full::default()).expect("request")).await.status, 431);
    let long = format!("/{}", "a".repeat(250));
    assert_eq!(client.get(&proxy.url(&long)).await.status, 414);
    assert_eq!(m.requests(), 0);
    assert_eq!(client.get(&proxy.url("/")).await.status, 200, "and within them it passes");
    proxy.stop().await;
}
