//! Bodies of 64 KiB and 10 MiB reach the member and the client intact, both ways, with
//! Content-Length and with chunked framing, over HTTP/1.1 and HTTP/2.

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use switchyard_tests::client::TestClient;
use switchyard_tests::member::{Member, pattern};
use switchyard_tests::proxy::{TestProxy, config};

async fn setup() -> (TestProxy, Member) {
    let m = Member::start("m").await;
    let toml = format!("[[route]]\npath = \"/\"\nbalancer = \"b\"\n[balancer.b]\n[[balancer.b.member]]\nurl = \"{}\"\n", m.url());
    (TestProxy::start(&config(&toml)).await, m)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_and_downloads_are_intact() {
    let (proxy, _m) = setup().await;
    for client in [TestClient::http1(), TestClient::http2()] {
        for size in [64 * 1024, 10 * 1024 * 1024] {
            let down = client.get(&proxy.url(&format!("/bytes/{size}"))).await;
            assert_eq!(down.status, StatusCode::OK);
            assert_eq!(down.body.len(), size);
            assert!(down.body == pattern(size), "download of {size} bytes differs");

            let body = Bytes::from(pattern(size));
            let up = client.send(Request::post(proxy.url("/echo")).body(Full::new(body.clone())).expect("request")).await;
            assert_eq!(up.status, StatusCode::OK);
            assert_eq!(up.body.len(), size);
            assert!(up.body == body, "echo of {size} bytes differs");
        }
    }
    let m = proxy.running.proxy.balancers()[0].members()[0].snapshot();
    assert!(m.transferred >= 2 * (64 * 1024 + 10 * 1024 * 1024), "upload bytes counted: {}", m.transferred);
    assert!(m.read >= 4 * (64 * 1024 + 10 * 1024 * 1024), "download bytes counted: {}", m.read);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_upload_streams_through() {
    let (proxy, _m) = setup().await;
    let chunk = "x".repeat(1000);
    let mut raw = "POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_string();
    for _ in 0..70 {
        raw.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    raw.push_str("0\r\n\r\n");
    let reply = switchyard_tests::client::raw_exchange(proxy.addr, raw.as_bytes()).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{}", &reply[..reply.len().min(200)]);
    let body = reply.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    assert_eq!(body.matches('x').count(), 70_000, "all 70 chunks echoed");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_answering_while_it_reads_gets_the_whole_body() {
    // An echo that streams its answer while the upload is still arriving: more than the
    // socket buffers hold, so the proxy must read the answer while it sends the body.
    let (proxy, _m) = setup().await;
    let size = 48 * 1024 * 1024;
    let body = Bytes::from(pattern(size));
    let up = TestClient::http1().send(Request::post(proxy.url("/echo")).body(Full::new(body.clone())).expect("request")).await;
    assert_eq!(up.status, StatusCode::OK);
    assert_eq!(up.body.len(), size);
    assert!(up.body == body, "echo of {size} bytes differs");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_refusing_a_large_upload_early_is_answered_at_once() {
    // The member answers 413 without reading the body: the proxy stops sending it and relays
    // the answer instead of waiting for socket buffers that never drain.
    let (proxy, m) = setup().await;
    let mut conn = switchyard_tests::client::RawConn::connect(proxy.addr).await;
    assert!(conn.send(b"POST /status/413 HTTP/1.1\r\nHost: t\r\nContent-Length: 52428800\r\n\r\n").await);
    let megabyte = vec![b'u'; 1024 * 1024];
    for _ in 0..4 {
        conn.send(&megabyte).await;
    }
    let reply = conn.response_within(std::time::Duration::from_secs(10)).await.expect("an answer before the body is sent");
    assert_eq!(switchyard_tests::client::status_of(&reply), 413, "{reply}");
    assert_eq!(m.requests(), 1);
    proxy.stop().await;
}
