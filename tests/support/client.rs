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

    /// GET `url`; the status, or why there was none (for loops that count failures).
    pub async fn try_get(&self, url: &str) -> Result<StatusCode, String> {
        let request = Request::get(url).body(Full::default()).map_err(|e| e.to_string())?;
        let response = self.inner.request(request).await.map_err(|e| e.to_string())?;
        let (parts, body) = response.into_parts();
        body.collect().await.map_err(|e| e.to_string())?;
        Ok(parts.status)
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

/// A raw TCP connection for exact bytes, with bounded reads.
pub struct RawConn {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl RawConn {
    /// Connects to `addr`.
    pub async fn connect(addr: std::net::SocketAddr) -> RawConn {
        let stream = tokio::time::timeout(REQUEST_DEADLINE, tokio::net::TcpStream::connect(addr))
            .await
            .expect("connect took too long")
            .expect("connect");
        RawConn { stream, buf: Vec::new() }
    }

    /// Writes `bytes`; `false` if the proxy already closed the connection.
    pub async fn send(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).await.is_ok()
    }

    /// The underlying stream (to hand over to a protocol after an upgrade).
    pub fn into_parts(self) -> (tokio::net::TcpStream, Vec<u8>) {
        (self.stream, self.buf)
    }

    /// Reads one response (head, and a Content-Length body); `None` if the connection ended
    /// first. Fails the test if nothing complete comes within `limit`.
    pub async fn response_within(&mut self, limit: Duration) -> Option<String> {
        let read = async {
            loop {
                if let Some(whole) = complete_response(&self.buf) {
                    let whole: Vec<u8> = self.buf.drain(..whole).collect();
                    return Some(decode_chunked(&whole));
                }
                let mut chunk = [0u8; 16 * 1024];
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                }
            }
        };
        tokio::time::timeout(limit, read).await.expect("no response in time")
    }

    /// Reads one response within the test deadline.
    pub async fn response(&mut self) -> Option<String> {
        self.response_within(REQUEST_DEADLINE).await
    }

    /// Whether the proxy closes the connection (EOF or reset) within `limit` without sending
    /// anything more; returns what it sent before closing.
    pub async fn closed_within(&mut self, limit: Duration) -> Option<String> {
        let read = async {
            let mut rest = std::mem::take(&mut self.buf);
            let mut chunk = [0u8; 4096];
            loop {
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return String::from_utf8_lossy(&rest).into_owned(),
                    Ok(n) => rest.extend_from_slice(&chunk[..n]),
                }
            }
        };
        tokio::time::timeout(limit, read).await.ok()
    }

    /// Reads whatever arrives for `period`, keeping it; `false` if the connection ended
    /// (EOF or reset) meanwhile.
    pub async fn open_after(&mut self, period: Duration) -> bool {
        let read = async {
            let mut chunk = [0u8; 4096];
            loop {
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                }
            }
        };
        tokio::time::timeout(period, read).await.is_err()
    }

    /// Whether nothing arrives (and the connection stays open) for `period`.
    pub async fn quiet_for(&mut self, period: Duration) -> bool {
        let mut chunk = [0u8; 1];
        tokio::time::timeout(period, self.stream.peek(&mut chunk)).await.is_err()
    }
}

/// The status code of a raw response ("HTTP/1.1 400 Bad Request…" → 400); 0 if none.
pub fn status_of(raw: &str) -> u16 {
    raw.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// The length of the first complete response in `buf` (Content-Length or chunked), if any.
fn complete_response(buf: &[u8]) -> Option<usize> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    if head.contains("\r\ntransfer-encoding: chunked") {
        let mut at = end;
        loop {
            let line_end = buf[at..].windows(2).position(|w| w == b"\r\n")? + at;
            let size = usize::from_str_radix(std::str::from_utf8(&buf[at..line_end]).ok()?.trim(), 16).ok()?;
            at = line_end + 2 + size + 2;
            if buf.len() < at {
                return None;
            }
            if size == 0 {
                return Some(at);
            }
        }
    }
    let length = head.lines().find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0))).unwrap_or(0);
    (buf.len() >= end + length).then_some(end + length)
}

/// A response as text with a chunked body joined (the head is kept as it was).
fn decode_chunked(whole: &[u8]) -> String {
    let Some(end) = whole.windows(4).position(|w| w == b"\r\n\r\n").map(|e| e + 4) else {
        return String::from_utf8_lossy(whole).into_owned();
    };
    let head = String::from_utf8_lossy(&whole[..end]).into_owned();
    if !head.to_ascii_lowercase().contains("\r\ntransfer-encoding: chunked") {
        return String::from_utf8_lossy(whole).into_owned();
    }
    let mut body = Vec::new();
    let mut at = end;
    while let Some(line_end) = whole[at..].windows(2).position(|w| w == b"\r\n").map(|p| p + at) {
        let size = std::str::from_utf8(&whole[at..line_end]).ok().and_then(|t| usize::from_str_radix(t.trim(), 16).ok()).unwrap_or(0);
        if size == 0 {
            break;
        }
        body.extend_from_slice(&whole[line_end + 2..line_end + 2 + size]);
        at = line_end + 2 + size + 2;
    }
    head + &String::from_utf8_lossy(&body)
}
