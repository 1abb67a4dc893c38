//! HTTP clients for the tests: a pooled HTTP/1.1 client, an HTTP/2 prior-knowledge client, and
//! a raw TCP exchange for exact bytes.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long any single test request may take before the test fails.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(20);

/// A whole response.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl Reply {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value as text ("" when absent).
    pub fn header(&self, name: &str) -> String {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
    }

    /// The headers the echo member saw, as (name, value) pairs.
    pub fn seen_headers(&self) -> Vec<(String, String)> {
        serde_json::from_str(&self.header("x-seen-headers")).expect("x-seen-headers is JSON")
    }

    /// Values the echo member saw for header `name`.
    pub fn seen(&self, name: &str) -> Vec<String> {
        self.seen_headers().into_iter().filter(|(k, _)| k == name).map(|(_, v)| v).collect()
    }
}

/// An HTTP client (HTTP/1.1, or HTTP/2 with prior knowledge).
pub struct TestClient {
    inner: Client<HttpConnector, Full<Bytes>>,
}

impl TestClient {
    /// A pooled HTTP/1.1 client.
    pub fn http1() -> Self {
        Self { inner: Client::builder(TokioExecutor::new()).build_http() }
    }

    /// An HTTP/2 client with prior knowledge (no upgrade, no TLS).
    pub fn http2() -> Self {
        Self { inner: Client::builder(TokioExecutor::new()).http2_only(true).build_http() }
    }

    /// GET `url`.
    pub async fn get(&self, url: &str) -> Reply {
        self.send(Request::get(url).body(Full::default()).expect("request")).await
    }

    /// Sends `request` and reads the whole response.
    pub async fn send(&self, request: Request<Full<Bytes>>) -> Reply {
        let exchange = async {
            let response = self.inner.request(request).await.expect("request failed");
            let (parts, body) = response.into_parts();
            let body = body.collect().await.expect("response body").to_bytes();
            Reply { status: parts.status, headers: parts.headers, body }
        };
        tokio::time::timeout(REQUEST_DEADLINE, exchange).await.expect("request took too long")
    }

    /// The `x-member` of `n` sequential GETs of `url`.
    pub async fn members_of(&self, url: &str, n: usize) -> Vec<String> {
        let mut seen = Vec::with_capacity(n);
        for _ in 0..n {
            let reply = self.get(url).await;
            assert_eq!(reply.status, StatusCode::OK, "{url}: {}", reply.text());
            seen.push(reply.header("x-member"));
        }
        seen
    }
}

/// Writes `request` bytes on a fresh connection to `addr` and reads until the peer closes or
/// `Connection: close` semantics end the exchange; returns everything read.
pub async fn raw_exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream.write_all(request).await.expect("write");
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    };
    tokio::time::timeout(REQUEST_DEADLINE, exchange).await.expect("raw exchange took too long")
}
