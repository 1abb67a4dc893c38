//! A member server with behaviours chosen by path:
//!
//! - any path not below: 200, body = the member's name, header `x-member: NAME`, and the
//!   request target as it arrived in `x-seen-target`
//! - `/echo…`: 200, the request body streamed back; what arrived in `x-seen-*` headers
//! - `/bytes/N`: N bytes of a fixed pattern
//! - `/status/N`: status N
//! - `/sleep/MS`: waits MS milliseconds, then answers like the default
//! - `/close`: reads the request, then drops the connection without answering
//! - `/health`: what [`Member::set_health`] last set (200 `UP` at first)
//! - `/location/REST`: 302 with `Location` and `Content-Location` `http://ADDR/REST?QUERY`
//! - `/cookie`: two `Set-Cookie`s with `Domain` and `Path` attributes
//! - `/ws`: a WebSocket echo (answers 101 to an upgrade, then echoes each text frame back);
//!   without an upgrade, 426 with `x-seen-upgrade` telling what Upgrade header arrived
//!
//! On any path but `/ws` and `/close`, each `x-respond-header: NAME: VALUE` request header
//! adds `NAME: VALUE` to the answer as it is (hop-by-hop ones included), for tests of what the
//! proxy does with a member's response headers.
//!
//! and a [`Blackhole`] that takes connections and bytes but never answers (a recording member
//! is in [`crate::recorder`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;

type Body = BoxBody<Bytes, hyper::Error>;

/// A running member server; stopped on drop.
pub struct Member {
    /// Its name (body and `x-member` header of default answers).
    pub name: String,
    /// Where it listens.
    pub addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    shared: Arc<Shared>,
    connections: Arc<AtomicUsize>,
    stop: watch::Sender<bool>,
    accepting: Option<tokio::task::JoinHandle<()>>,
    /// Connections still being served.
    open: Arc<AtomicUsize>,
}

/// Counts one connection being served until dropped.
struct OpenConn(Arc<AtomicUsize>);

impl OpenConn {
    fn new(open: &Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(open))
    }
}

impl Drop for OpenConn {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What a member's request handler knows.
struct Shared {
    name: String,
    addr: SocketAddr,
    /// The status and body `/health` answers with.
    health: std::sync::Mutex<(u16, String)>,
    /// Milliseconds every request waits before it is answered (a slow member).
    delay_ms: std::sync::atomic::AtomicU64,
}

impl Member {
    /// Starts a member on a free loopback port.
    pub async fn start(name: &str) -> Member {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind member");
        Self::serve(name, listener, None)
    }

    /// Starts a member that speaks TLS with `config` (an https:// member).
    pub async fn start_tls(name: &str, config: Arc<rustls::ServerConfig>) -> Member {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind member");
        Self::serve(name, listener, Some(tokio_rustls::TlsAcceptor::from(config)))
    }

    /// Starts a member on a given address (to bring a stopped member back on its port).
    pub async fn start_on(name: &str, addr: SocketAddr) -> Member {
        // The old socket may linger for a moment after a stop; retry briefly (bounded).
        for _ in 0..50 {
            if let Ok(listener) = TcpListener::bind(addr).await {
                return Self::serve(name, listener, None);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("cannot rebind member {name} on {addr}");
    }

    fn serve(name: &str, listener: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>) -> Member {
        let addr = listener.local_addr().expect("member addr");
        let requests = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::clone(&connections);
        let (stop, mut stopped) = watch::channel(false);
        let shared = Arc::new(Shared { name: name.to_string(), addr, health: std::sync::Mutex::new((200, "UP".to_string())), delay_ms: Default::default() });
        let shared_owned = Arc::clone(&shared);
        let counter = Arc::clone(&requests);
        let open = Arc::new(AtomicUsize::new(0));
        let live = Arc::clone(&open);
        let accepting = tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => continue },
                    _ = stopped.wait_for(|s| *s) => return,
                };
                accepted.fetch_add(1, Ordering::SeqCst);
                let shared = Arc::clone(&shared_owned);
                let counter = Arc::clone(&counter);
                let mut stopped = stopped.clone();
                let open = OpenConn::new(&live);
                let tls = tls.clone();
                tokio::spawn(async move {
                    let _open = open;
                    let service = hyper::service::service_fn(move |req| {
                        counter.fetch_add(1, Ordering::SeqCst);
                        handle(Arc::clone(&shared), req)
                    });
                    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match tls {
                        None => {
                            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                            tokio::select! {
                                _ = conn => {}
                                _ = stopped.wait_for(|s| *s) => {}
                            }
                        }
                        Some(tls) => {
                            // A failed handshake (a client without the certificate asked for)
                            // just ends the connection.
                            let Ok(stream) = tls.accept(stream).await else { return };
                            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                            tokio::select! {
                                _ = conn => {}
                                _ = stopped.wait_for(|s| *s) => {}
                            }
                        }
                    }
                });
            }
        });
        Member { name: name.to_string(), addr, requests, connections, shared, stop, accepting: Some(accepting), open }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Makes `/health` answer `status` with `body` from now on (200 `UP` at first).
    pub fn set_health(&self, status: u16, body: &str) {
        *self.shared.health.lock().expect("lock") = (status, body.to_string());
    }

    /// Makes every request wait `ms` milliseconds before its answer from now on (0: none).
    pub fn set_delay(&self, ms: u64) {
        self.shared.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Requests served so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Stops listening and closes every connection; returns once the port refuses connects
    /// and no connection is served any more (a pooled keep-alive connection of the proxy's
    /// must not reach the member after it "died").
    pub async fn stop(mut self) -> SocketAddr {
        let _ = self.stop.send(true);
        if let Some(accepting) = self.accepting.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), accepting).await;
        }
        for _ in 0..1000 {
            if self.open.load(Ordering::SeqCst) == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.addr
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// A port that refuses connections: bound (so no other test can take it) but not listening.
pub struct RefusingPort {
    /// The address to connect to.
    pub addr: SocketAddr,
    _socket: tokio::net::TcpSocket,
}

/// Reserves a loopback port on which every connect is refused, for as long as it lives.
pub fn refusing_port() -> RefusingPort {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
    RefusingPort { addr: socket.local_addr().expect("addr"), _socket: socket }
}

/// A member that accepts connections and reads whatever arrives, but never answers: for
/// `ping` and timeouts. Stopped on drop.
pub struct Blackhole {
    /// Where it listens.
    pub addr: SocketAddr,
    received: Arc<std::sync::Mutex<Vec<u8>>>,
    stop: watch::Sender<bool>,
}

impl Blackhole {
    /// Starts one on a free loopback port.
    pub async fn start() -> Blackhole {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind blackhole");
        let addr = listener.local_addr().expect("addr");
        let received = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (stop, stopped) = watch::channel(false);
        let sink = Arc::clone(&received);
        tokio::spawn(async move {
            loop {
                let mut stopped = stopped.clone();
                let (mut stream, _) = tokio::select! {
                    accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => continue },
                    _ = stopped.wait_for(|s| *s) => return,
                };
                let sink = Arc::clone(&sink);
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    loop {
                        let n = tokio::select! {
                            n = tokio::io::AsyncReadExt::read(&mut stream, &mut buf) => n,
                            _ = stopped.wait_for(|s| *s) => return,
                        };
                        match n {
                            Ok(0) | Err(_) => return,
                            Ok(n) => sink.lock().expect("lock").extend_from_slice(&buf[..n]),
                        }
                    }
                });
            }
        });
        Blackhole { addr, received, stop }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything received so far, as text.
    pub fn received(&self) -> String {
        String::from_utf8_lossy(&self.received.lock().expect("lock")).into_owned()
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

/// The pattern `/bytes/N` sends: byte i is `i % 251`.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// Returned by the handler to make hyper drop the connection without answering.
#[derive(Debug)]
struct CloseOnPurpose;

impl std::fmt::Display for CloseOnPurpose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("member closes the connection on purpose")
    }
}

impl std::error::Error for CloseOnPurpose {}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, CloseOnPurpose> {
    let delay = shared.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let name = shared.name.clone();
    let extra: Vec<(HeaderName, HeaderValue)> = req
        .headers()
        .get_all("x-respond-header")
        .iter()
        .map(|v| {
            let line = v.to_str().expect("x-respond-header is text");
            let (field, value) = line.split_once(':').expect("x-respond-header is `NAME: VALUE`");
            let field = HeaderName::from_bytes(field.trim().as_bytes()).expect("x-respond-header names a header");
            (field, HeaderValue::from_str(value.trim()).expect("x-respond-header has a header value"))
        })
        .collect();
    let query = req.uri().query().map(str::to_string);
    let path = req.uri().path().to_string();
    let target = req.uri().path_and_query().map_or("", |p| p.as_str()).to_string();
    let mut segments = path.trim_start_matches('/').splitn(2, '/');
    let first = segments.next().unwrap_or("");
    let arg = segments.next().unwrap_or("");
    let named = |status: StatusCode| {
        let mut r = Response::new(full(name.clone()));
        *r.status_mut() = status;
        r.headers_mut().insert("x-member", name.parse().expect("name is a header value"));
        r.headers_mut().insert("x-seen-target", target.parse().expect("a request target is a header value"));
        r
    };
    let mut response = match first {
        "echo" => {
            let seen: Vec<(String, String)> = req
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                .collect();
            let seen = serde_json::to_string(&seen).expect("json");
            let method = req.method().to_string();
            let uri = req.uri().to_string();
            let mut response = Response::new(req.into_body().boxed());
            let h = response.headers_mut();
            h.insert("x-member", name.parse().expect("header"));
            h.insert("x-seen-method", method.parse().expect("header"));
            h.insert("x-seen-uri", uri.parse().expect("header"));
            h.insert("x-seen-headers", seen.parse().expect("header"));
            response
        }
        "bytes" => {
            let mut r = Response::new(full(pattern(arg.parse().unwrap_or(0))));
            r.headers_mut().insert("x-member", name.parse().expect("header"));
            r
        }
        "health" => {
            let (status, body) = shared.health.lock().expect("lock").clone();
            let mut r = Response::new(full(body));
            *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            r
        }
        "location" => {
            let mut r = named(StatusCode::FOUND);
            let query = query.as_deref().map(|q| format!("?{q}")).unwrap_or_default();
            let own = format!("http://{}/{arg}{query}", shared.addr);
            r.headers_mut().insert("location", own.parse().expect("header"));
            r.headers_mut().insert("content-location", own.parse().expect("header"));
            r.headers_mut().insert("x-untouched", own.parse().expect("header"));
            r
        }
        "cookie" => {
            let mut r = named(StatusCode::OK);
            for cookie in ["sid=abc.1; Domain=backend.internal; Path=/app/x; HttpOnly", "theme=dark;path=/;domain=other.example"] {
                r.headers_mut().append("set-cookie", cookie.parse().expect("header"));
            }
            r
        }
        "status" => named(StatusCode::from_u16(arg.parse().unwrap_or(500)).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)),
        "sleep" => {
            tokio::time::sleep(Duration::from_millis(arg.parse().unwrap_or(0))).await;
            named(StatusCode::OK)
        }
        "ws" => return Ok(crate::websocket::member_answer(req, name)),
        "close" => {
            let _ = req.into_body().collect().await;
            return Err(CloseOnPurpose);
        }
        _ => named(StatusCode::OK),
    };
    for (field, value) in extra {
        response.headers_mut().append(field, value);
    }
    Ok(response)
}
