//! What the member receives: hop-by-hop headers removed, X-Forwarded-* added, Host and path
//! rewritten (or Host preserved), query kept.

use http::Request;
use http_body_util::Full;
use switchyard_tests::client::TestClient;
use switchyard_tests::member::Member;
use switchyard_tests::proxy::{TestProxy, config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_removed_and_forwarded_headers_added() {
    let m = Member::start("m").await;
    let toml = format!(
        "[[route]]\npath = \"/api/\"\nbackend = \"{}/echo/\"\n[[route]]\npath = \"/keep/\"\nbackend = \"{}/\"\npreserve_host = true\n",
        m.url(),
        m.url()
    );
    let proxy = TestProxy::start(&config(&toml)).await;
    let request = Request::get(proxy.url("/api/v1?x=1&y=2"))
        .header("host", "public.example:8443")
        .header("connection", "keep-alive, x-drop-me, x-forwarded-proto")
        .header("x-drop-me", "secret")
        .header("keep-alive", "timeout=5")
        .header("te", "trailers")
        .header("proxy-connection", "keep-alive")
        .header("upgrade", "websocket")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-proto", "https")
        .header("x-kept", "yes")
        .body(Full::default())
        .expect("request");
    let reply = TestClient::http1().send(request).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-seen-uri"), "/echo/v1?x=1&y=2", "prefix replaced, query kept");
    for gone in ["x-drop-me", "keep-alive", "te", "proxy-connection", "upgrade", "transfer-encoding"] {
        assert!(reply.seen(gone).is_empty(), "{gone} reached the member: {:?}", reply.seen_headers());
    }
    // Only the connection the proxy itself opened may carry Connection (hyper's keep-alive).
    assert!(reply.seen("connection").iter().all(|v| v != "keep-alive, x-drop-me, x-forwarded-proto"));
    assert_eq!(reply.seen("x-kept"), ["yes"]);
    assert_eq!(reply.seen("x-forwarded-for"), ["127.0.0.1"], "an untrusted client's chain is replaced");
    assert_eq!(reply.seen("x-forwarded-host"), ["public.example:8443"]);
    assert_eq!(reply.seen("x-forwarded-proto"), ["http"], "ours replaces the client's");
    assert_eq!(reply.seen("host"), [m.addr.to_string()], "the member's own Host by default");

    let kept = TestClient::http1()
        .send(Request::get(proxy.url("/keep/echo")).header("host", "public.example").body(Full::default()).expect("request"))
        .await;
    assert_eq!(kept.seen("host"), ["public.example"], "preserve_host keeps the client's Host");
    assert_eq!(kept.header("x-seen-uri"), "/echo");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_response_headers_removed() {
    let m = Member::start("m").await;
    let toml = format!("[[route]]\npath = \"/\"\nbackend = \"{}/\"\n", m.url());
    let proxy = TestProxy::start(&config(&toml)).await;
    // The member answers with hop-by-hop headers of its own: Keep-Alive, and a Connection
    // naming one more (X-Member-Hop); beside them an end-to-end header.
    let asking = |url: String| -> Request<Full<bytes::Bytes>> {
        Request::get(url)
            .header("x-respond-header", "Keep-Alive: timeout=5, max=100")
            .header("x-respond-header", "Connection: keep-alive, X-Member-Hop")
            .header("x-respond-header", "X-Member-Hop: 1")
            .header("x-respond-header", "X-End-To-End: kept")
            .body(Full::default())
            .expect("request")
    };
    let names_member_hop = |reply: &switchyard_tests::client::Reply| {
        reply.headers.get_all("connection").iter().any(|v| String::from_utf8_lossy(v.as_bytes()).to_ascii_lowercase().contains("x-member-hop"))
    };
    // Straight from the member they are all there, so the checks below can fail.
    let direct = TestClient::http1().send(asking(format!("{}/anything", m.url()))).await;
    assert_eq!(direct.header("keep-alive"), "timeout=5, max=100", "{:?}", direct.headers);
    assert_eq!(direct.header("x-member-hop"), "1", "{:?}", direct.headers);
    assert!(names_member_hop(&direct), "{:?}", direct.headers);

    let reply = TestClient::http1().send(asking(proxy.url("/anything"))).await;
    assert_eq!(reply.header("x-member"), "m");
    assert_eq!(reply.header("x-end-to-end"), "kept", "end-to-end headers pass: {:?}", reply.headers);
    for gone in ["keep-alive", "x-member-hop"] {
        assert!(reply.headers.get(gone).is_none(), "{gone} reached the client: {:?}", reply.headers);
    }
    assert!(!names_member_hop(&reply), "the member's Connection reached the client: {:?}", reply.headers);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_from_a_trusted_peer_are_appended_to() {
    let m = Member::start("m").await;
    let toml = format!("[forwarded]\ntrusted = [\"127.0.0.0/8\"]\n[[route]]\npath = \"/\"\nbackend = \"{}/\"\n", m.url());
    let proxy = TestProxy::start(&config(&toml)).await;
    let request = Request::get(proxy.url("/echo"))
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "public.example")
        .header("forwarded", "for=203.0.113.9;proto=https")
        .body(Full::default())
        .expect("request");
    let reply = TestClient::http1().send(request).await;
    assert_eq!(reply.seen("x-forwarded-for"), ["203.0.113.9, 127.0.0.1"]);
    assert_eq!(reply.seen("x-forwarded-proto"), ["https"]);
    assert_eq!(reply.seen("x-forwarded-host"), ["public.example"]);
    assert_eq!(reply.seen("forwarded"), ["for=203.0.113.9;proto=https, for=127.0.0.1"]);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_from_an_untrusted_client_are_replaced() {
    let m = Member::start("m").await;
    let toml = format!("[[route]]\npath = \"/\"\nbackend = \"{}/\"\n", m.url());
    let proxy = TestProxy::start(&config(&toml)).await;
    let request = Request::get(proxy.url("/echo"))
        .header("host", "site.example")
        .header("x-forwarded-for", "10.0.0.1")
        .header("x-forwarded-host", "admin.internal")
        .header("x-forwarded-prefix", "/admin")
        .header("forwarded", "for=10.0.0.1")
        .body(Full::default())
        .expect("request");
    let reply = TestClient::http1().send(request).await;
    assert_eq!(reply.seen("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(reply.seen("x-forwarded-host"), ["site.example"]);
    assert!(reply.seen("x-forwarded-prefix").is_empty());
    assert!(reply.seen("forwarded").is_empty());
    proxy.stop().await;
}

/// The same head, in capitals, repeated and spoofed as a client that normalises nothing would
/// send it, to both HTTP/1 parsers: the fast path relays its lines as they came, hyper's path
/// a map of them, and the member sees the same headers either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_heads_reach_the_member_alike_on_both_http1_parsers() {
    let m = Member::start("m").await;
    let toml = format!("[[route]]\npath = \"/api/\"\nbackend = \"{}/echo/\"\n", m.url());
    let proxy = TestProxy::start(&config(&toml)).await;
    let head = "HOST: public.example:8443\r\nX-FORWARDED-FOR: 203.0.113.9\r\nx-Forwarded-Proto: https\r\nX-Forwarded-Prefix: /admin\r\n\
                Forwarded: for=203.0.113.9\r\nTE: trailers\r\nKeep-Alive: timeout=5\r\nX-Kept: one\r\nx-kept: two\r\nConnection: close\r\n";
    let mut seen_by_parser = Vec::new();
    for (request, parser) in [
        (format!("GET /api/v1 HTTP/1.1\r\n{head}Content-Length: 0\r\n\r\n"), "fast path"),
        (format!("POST /api/v1 HTTP/1.1\r\n{head}Content-Length: 2\r\n\r\nhi"), "hyper"),
    ] {
        let answer = switchyard_tests::client::raw_exchange(proxy.addr, request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{parser}: {answer}");
        let json = answer.lines().find_map(|l| l.strip_prefix("x-seen-headers: ")).unwrap_or_else(|| panic!("{parser}: {answer}"));
        let mut seen: Vec<(String, String)> = serde_json::from_str(json).expect("x-seen-headers is JSON");
        seen.retain(|(name, _)| name != "content-length");
        let values = |name: &str| seen.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect::<Vec<_>>();
        assert_eq!(values("host"), [m.addr.to_string()], "{parser}");
        assert_eq!(values("x-forwarded-for"), ["127.0.0.1"], "{parser}: an untrusted client's chain is replaced");
        assert_eq!(values("x-forwarded-proto"), ["http"], "{parser}");
        assert_eq!(values("x-forwarded-host"), ["public.example:8443"], "{parser}");
        assert_eq!(values("x-kept"), ["one", "two"], "{parser}: repeated lines kept in order");
        for gone in ["x-forwarded-prefix", "forwarded", "te", "keep-alive"] {
            assert!(values(gone).is_empty(), "{parser}: {gone} reached the member: {seen:?}");
        }
        seen.retain(|(name, _)| name != "connection");
        seen.sort();
        seen_by_parser.push(seen);
    }
    assert_eq!(seen_by_parser[0], seen_by_parser[1], "the member sees the same headers from both parsers");
    assert_eq!(m.requests(), 2);
    proxy.stop().await;
}
