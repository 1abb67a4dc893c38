//! Strict HTTP/1 framing (RFC 9112): exact bytes in, the status out, the connection closed,
//! and nothing at all reaching the member — including the classic CL.TE and TE.CL
//! request-smuggling probes and their obfuscated variants.

use std::time::Duration;

use switchyard_tests::client::{RawConn, raw_exchange, status_of};
use switchyard_tests::member::Member;
use switchyard_tests::proxy::{TestProxy, config};

async fn setup() -> (TestProxy, Member) {
    let m = Member::start("m").await;
    let toml = format!("[[route]]\npath = \"/\"\nbackend = \"{}/\"\n", m.url());
    (TestProxy::start(&config(&toml)).await, m)
}

/// Sends `request` on a fresh connection; the proxy must answer `status` exactly once and
/// close the connection.
async fn refused(proxy: &TestProxy, request: &str, status: u16) {
    let reply = raw_exchange(proxy.addr, request.as_bytes()).await;
    assert_eq!(status_of(&reply), status, "{request:?} got {reply:?}");
    assert_eq!(reply.matches("HTTP/1.1 ").count(), 1, "exactly one response to {request:?}: {reply:?}");
}

const POST: &str = "POST /echo HTTP/1.1\r\nHost: test\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_smuggling_probes_are_refused_and_never_reach_the_member() {
    let (proxy, m) = setup().await;
    let smuggled = "GET /admin HTTP/1.1\r\nHost: test\r\n\r\n";
    let probes: Vec<(String, &str)> = vec![
        // CL.TE: a front end using Content-Length would pass the smuggled request in the body.
        (format!("{POST}Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG"), "CL.TE"),
        // TE.CL: a front end using Transfer-Encoding, a back end using Content-Length.
        (format!("{POST}Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n"), "TE.CL"),
        (format!("{POST}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n5c\r\n{smuggled}\r\n0\r\n\r\n"), "TE.CL with a whole request"),
        // Obfuscated Transfer-Encoding, each alone (no Content-Length) and each with one.
        (format!("{POST}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"), "TE xchunked"),
        (format!("{POST}Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"), "TE chunked, chunked"),
        (format!("{POST}Transfer-Encoding: ,chunked\r\n\r\n0\r\n\r\n"), "TE ,chunked"),
        (format!("{POST}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"), "TE gzip, chunked"),
        (format!("{POST}Transfer-Encoding: identity\r\nContent-Length: 5\r\n\r\nhello"), "TE identity"),
        (format!("{POST}Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n"), "two TE lines"),
        (format!("{POST}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), "TE chunked twice"),
        (format!("{POST}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n"), "space before colon"),
        (format!("{POST}Transfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n"), "vertical tab"),
        (format!("{POST}X: 1\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), "TE in an obs-fold"),
        (format!("{POST}Content-Length: 5\r\nX: 1\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), "bare LF before TE"),
        (format!("{POST}Transfer_Encoding: chunked\r\n\r\n0\r\n\r\n"), "underscore TE"),
        (format!("{POST}Content_Length: 5\r\n\r\nhello"), "underscore CL"),
        ("POST /echo HTTP/1.0\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_string(), "TE on HTTP/1.0"),
        // Content-Length that is not one plain number.
        (format!("{POST}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"), "two lengths"),
        (format!("{POST}Content-Length: +5\r\n\r\nhello"), "signed length"),
        (format!("{POST}Content-Length: 5, 6\r\n\r\nhello!"), "length list"),
        (format!("{POST}Content-Length: 0x5\r\n\r\nhello"), "hex length"),
        (format!("{POST}Content-Length: 99999999999999999999999\r\n\r\nhello"), "overflowing length"),
        (format!("{POST}Content-Length: 5 5\r\n\r\nhello"), "spaced length"),
        // Invalid chunk size in the first chunk.
        (format!("{POST}Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"), "bad chunk size"),
        (format!("{POST}Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n"), "negative chunk size"),
        (format!("{POST}Transfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\nhello\r\n0\r\n\r\n"), "overflowing chunk size"),
        (format!("{POST}Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n"), "chunk size ended by bare LF"),
    ];
    for (probe, name) in &probes {
        let reply = raw_exchange(proxy.addr, probe.as_bytes()).await;
        assert_eq!(status_of(&reply), 400, "{name}: {probe:?} got {reply:?}");
        assert_eq!(reply.matches("HTTP/1.1 ").count(), 1, "{name}: one response only: {reply:?}");
    }
    assert_eq!((m.connections(), m.requests()), (0, 0), "no probe reached the member");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_heads_get_400_and_close() {
    let (proxy, m) = setup().await;
    for (request, what) in [
        ("GET / HTTP/1.1\r\nHost: test\r\nX: a\r\n\tb\r\n\r\n", "obs-fold"),
        ("GET / HTTP/1.1\r\nHost : test\r\n\r\n", "whitespace before the colon"),
        ("GET / HTTP/1.1\r\nHost: test\r\nX: a\rb\r\n\r\n", "CR in a value"),
        ("GET / HTTP/1.1\r\nHost: test\r\nX: a\0b\r\n\r\n", "NUL in a value"),
        ("GET / HTTP/1.1\r\nHost: test\nX: a\r\n\r\n", "bare LF ending a line"),
        ("GET / HTTP/1.1\r\nHost: te st\r\n\r\n", "space in the Host"),
        ("GET / HTTP/1.1\r\nHost: user@test\r\n\r\n", "userinfo in the Host"),
        ("GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 without Host"),
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "two Hosts"),
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", "the same Host twice"),
        ("GET / HTTP/1.2\r\nHost: a\r\n\r\n", "HTTP/1.2"),
        ("GET /\r\n\r\n", "HTTP/0.9"),
    ] {
        let mut conn = RawConn::connect(proxy.addr).await;
        assert!(conn.send(request.as_bytes()).await);
        let reply = conn.closed_within(Duration::from_secs(5)).await;
        assert_eq!(reply.as_deref().map(status_of), Some(400), "{what}: {request:?} got {reply:?}");
    }
    refused(&proxy, "CONNECT test:443 HTTP/1.1\r\nHost: test:443\r\n\r\n", 405).await;
    assert_eq!((m.connections(), m.requests()), (0, 0), "nothing reached the member");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_framing_passes_and_the_member_gets_the_proxys_own_framing() {
    let (proxy, m) = setup().await;
    let mut conn = RawConn::connect(proxy.addr).await;
    // Pipelined: a chunked POST (lowercase, extension, OWS), a GET, a Content-Length POST
    // whose body looks like a request head, and identical repeated lengths.
    let body = "GET /admin HTTP/1.1\r\nHost: test\r\n\r\n";
    let pipeline = format!(
        "POST /echo HTTP/1.1\r\nHost: test\r\ntransfer-encoding: Chunked\r\n\r\n5;ext=1\r\nhello\r\n6 \r\n world\r\n0\r\n\r\n\
         GET /echo HTTP/1.1\r\nHost: test\r\n\r\n\
         POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: {len}\r\nContent-Length: {len}\r\n\r\n{body}",
        len = body.len()
    );
    assert!(conn.send(pipeline.as_bytes()).await);
    let first = conn.response().await.expect("first response");
    assert_eq!(status_of(&first), 200, "{first}");
    assert!(first.ends_with("hello world"), "{first}");
    assert!(first.contains(r#"["transfer-encoding","chunked"]"#), "the member gets the proxy's own chunked framing: {first}");
    let second = conn.response().await.expect("second response");
    assert_eq!(status_of(&second), 200);
    let third = conn.response().await.expect("third response");
    assert!(third.ends_with(body), "the body is data, not a request: {third}");
    assert_eq!(m.requests(), 3, "three requests, no smuggled fourth: {third}");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_chunk_mid_body_closes_both_sides() {
    let (proxy, m) = setup().await;
    let mut conn = RawConn::connect(proxy.addr).await;
    assert!(conn.send(format!("{POST}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n").as_bytes()).await);
    // The first chunk is on its way to the member; then garbage.
    assert!(conn.send(b"zz\r\nGET /smuggled HTTP/1.1\r\nHost: test\r\n\r\n").await);
    let reply = conn.closed_within(Duration::from_secs(10)).await.expect("the proxy closes the connection");
    assert_eq!(status_of(&reply), 400, "{reply}");
    assert_eq!(reply.matches("HTTP/1.1 ").count(), 1, "the bytes after the bad chunk are not a request: {reply}");
    assert!(m.requests() <= 1, "only the cut-off request may have started at the member");
    proxy.stop().await;
}

/// Member responses the proxy must not relay, by path index.
const BAD_RESPONSES: [&str; 7] = [
    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Folded: a\r\n b\r\n\r\nok",
    "HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
    "HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\nok",
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
];

/// A member answering `GET /N` with `BAD_RESPONSES[N]`, byte for byte, then closing.
async fn raw_member() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).into_owned();
                let index: usize = head.split(' ').nth(1).and_then(|p| p.trim_start_matches('/').parse().ok()).unwrap_or(0);
                let _ = stream.write_all(BAD_RESPONSES[index % BAD_RESPONSES.len()].as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_member_responses_get_502() {
    let member = raw_member().await;
    let proxy = TestProxy::start(&config(&format!("[[route]]\npath = \"/\"\nbackend = \"http://{member}/\"\n"))).await;
    for (i, bad) in BAD_RESPONSES.iter().enumerate() {
        let reply = raw_exchange(proxy.addr, format!("GET /{i} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes()).await;
        assert_eq!(status_of(&reply), 502, "member sent {bad:?}; client got {reply:?}");
    }
    proxy.stop().await;
}
