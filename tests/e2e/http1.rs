//! The HTTP/1.1 fast path (plain requests served without hyper's server) and its hand-off to
//! hyper: answers in order across the hand-off, and what the fast path writes itself.

use switchyard_tests::client::{RawConn, raw_exchange, status_of};
use switchyard_tests::member::Member;
use switchyard_tests::proxy::{TestProxy, config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_plain_requests_then_one_with_a_body_are_answered_in_order() {
    let m = Member::start("m").await;
    let proxy = TestProxy::start(&config(&format!("[[route]]\npath = \"/\"\nbackend = \"{}/\"\n", m.url()))).await;
    let mut conn = RawConn::connect(proxy.addr).await;
    // Two plain GETs (the fast path), a POST with a body (handed to hyper with the bytes
    // behind it), then another GET (hyper's now): one write, four answers in order.
    let pipelined = "GET /a HTTP/1.1\r\nHost: t\r\n\r\n\
                     GET /b HTTP/1.1\r\nHost: t\r\n\r\n\
                     POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello\
                     GET /c HTTP/1.1\r\nHost: t\r\n\r\n";
    assert!(conn.send(pipelined.as_bytes()).await);
    let mut bodies = Vec::new();
    for _ in 0..4 {
        let reply = conn.response().await.expect("an answer");
        assert_eq!(status_of(&reply), 200, "{reply}");
        bodies.push(reply.split("\r\n\r\n").nth(1).unwrap_or_default().to_string());
    }
    assert_eq!(bodies, ["m", "m", "hello", "m"]);
    assert_eq!(m.requests(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_delimited_answer_is_sent_chunked_with_a_date_and_the_member_spelling_kept() {
    // A member answering without a length, without a Date, and ending the body by closing.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let member = tokio::spawn(async move {
        for _ in 0..2 {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nX-Spelled-Thus: Kept\r\nConnection: close\r\n\r\nhello").await;
        }
    });
    let proxy = TestProxy::start(&config(&format!("[[route]]\npath = \"/\"\nbackend = \"http://{addr}/\"\n"))).await;
    let reply = raw_exchange(proxy.addr, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").await;
    let (head, body) = reply.split_once("\r\n\r\n").expect("a head");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("\r\nX-Spelled-Thus: Kept\r\n"), "the member's lines pass as it wrote them: {head}");
    assert!(head.contains("\r\ntransfer-encoding: chunked\r\n"), "{head}");
    assert!(head.contains("\r\ndate: "), "a Date is added when the member sent none: {head}");
    assert!(head.contains("\r\nconnection: close"), "{head}");
    assert!(!head.contains("Connection: close"), "the member's Connection is hop-by-hop: {head}");
    assert_eq!(body, "5\r\nhello\r\n0\r\n\r\n");
    // HEAD: the same head, no body at all.
    let reply = raw_exchange(proxy.addr, b"HEAD / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").await;
    assert!(reply.ends_with("\r\n\r\n") && status_of(&reply) == 200, "{reply:?}");
    member.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_gives_up_its_request() {
    let m = Member::start("m").await;
    let toml = format!("[[route]]\npath = \"/\"\nbalancer = \"b\"\n\n[balancer.b]\n[[balancer.b.member]]\nurl = \"{}\"\n", m.url());
    let proxy = TestProxy::start(&config(&toml)).await;
    let member = &proxy.running.proxy.balancers()[0].members()[0];
    let busy_becomes = |n: u64| async move {
        for _ in 0..500 {
            if member.busy() == n {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        false
    };
    let mut conn = RawConn::connect(proxy.addr).await;
    assert!(conn.send(b"GET /sleep/60000 HTTP/1.1\r\nHost: t\r\n\r\n").await);
    assert!(busy_becomes(1).await, "the request reached the member");
    drop(conn);
    // The member would answer after a minute; the request is given up within the (at least)
    // 10 s looked at.
    assert!(busy_becomes(0).await, "the member exchange ends when the client goes away");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_httparse_takes_but_http_refuses_reaches_hyper_whole() {
    let m = Member::start("m").await;
    let proxy = TestProxy::start(&config(&format!("[[route]]\npath = \"/\"\nbackend = \"{}/\"\n", m.url()))).await;
    // httparse accepts the backtick in the target; `http::Uri` does not. The fast path must
    // give the whole head back for hyper to refuse (found by the request_head fuzz target).
    let reply = raw_exchange(proxy.addr, b"GET /a`b HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(status_of(&reply), 400, "{reply:?}");
    assert_eq!(m.requests(), 0);
}
