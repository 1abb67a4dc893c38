//! Handling one client request: route, prepare the outgoing request, try members until one
//! answers or the attempts run out.
//!
//! Retry rules. A request that never reached a member (refused or timed-out connect, full
//! pool, stale pooled connection) goes to the next member, whatever its method, up to the
//! balancer's `maxattempts`. Once a request was sent it is tried again only if its method is
//! idempotent and it had no body (nothing has reached the client yet at that point). A member
//! that does not answer within its `timeout` gets 504, without another attempt, as in httpd.

use std::convert::Infallible;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderMap, HeaderValue, Method, Request, Response, Uri, Version, header, request::Parts};
use hyper::body::{Body, Incoming};

use super::body::{RequestBody, ResponseBody};
use super::limits::ClientBody;
use super::respond::{ProxyError, error_response};
use super::route::forward_path;
use super::upstream::{self, AttemptError, ConnectError};
use super::{Proxy, ProxyBalancer, ProxyMember, SharedProxy, Target, headers, strict, upgrade};
use crate::balancer::NoMember;
use crate::config::{HashKey, Upgrades};
use crate::edge::{ConnShared, Tracked, Violation};

/// The hyper service for one client connection.
#[derive(Clone)]
pub struct ProxyService {
    proxy: SharedProxy,
    peer: SocketAddr,
    /// The client's X-Forwarded-For entry, made once for the connection.
    peer_value: HeaderValue,
    conn: Arc<ConnShared>,
}

impl ProxyService {
    /// Serves requests from `peer` with whatever proxy `proxy` holds when each arrives;
    /// `conn` is shared with the connection's guard.
    pub fn new(proxy: SharedProxy, peer: SocketAddr, conn: Arc<ConnShared>) -> Self {
        Self { proxy, peer, peer_value: headers::peer_value(peer.ip()), conn }
    }
}

impl hyper::service::Service<Request<Incoming>> for ProxyService {
    type Response = Response<Tracked<ResponseBody>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let proxy = self.proxy.load_full();
        let (flight, raw) = self.conn.begin_request();
        let client = Client { addr: self.peer, forwarded_for: self.peer_value.clone(), raw, conn: Arc::clone(&self.conn) };
        Box::pin(async move {
            let response = proxy.handle(request, &client).await;
            Ok(response.map(|body| Tracked::new(body, flight)))
        })
    }
}

/// Who sent a request.
pub struct Client {
    /// The peer address of the client connection.
    pub addr: SocketAddr,
    /// Its X-Forwarded-For entry.
    pub forwarded_for: HeaderValue,
    /// What the raw-head scanner found wrong with this request's head, if anything.
    pub raw: Option<Violation>,
    /// The connection's state shared with its guard.
    pub conn: Arc<ConnShared>,
}

impl Proxy {
    /// Relays one request; errors are answered here.
    pub async fn handle(&self, request: Request<Incoming>, client: &Client) -> Response<ResponseBody> {
        match self.relay(request, client).await {
            Ok(response) => response,
            Err(e) => error_response(&e),
        }
    }

    async fn relay(&self, mut request: Request<Incoming>, client: &Client) -> Result<Response<ResponseBody>, ProxyError> {
        strict::check(&request, &self.limits, client.raw)?;
        if request.method() == Method::CONNECT {
            return Err(ProxyError::MethodNotAllowed { method: Method::CONNECT });
        }
        let path = request.uri().path();
        let Some((route, rest)) = self.routes.find(path) else {
            return Err(ProxyError::NoRoute { path: path.to_string() });
        };
        let upstream = match &route.target.target {
            Target::Exclude => return Err(ProxyError::NoRoute { path: path.to_string() }),
            Target::Backend(member) => Upstream::Single(member),
            Target::Balancer(balancer) => Upstream::Balancer(balancer),
        };
        let key = match &upstream {
            Upstream::Balancer(b) => request_key(b.hashkey(), &request, client.addr),
            Upstream::Single(_) => 0,
        };
        let rest = rest.to_string();
        let upgrade = upgrade::wants_websocket(&request).then(|| route.target.upgrade);
        let on_upgrade = upgrade.map(|_| hyper::upgrade::on(&mut request));
        let trusted = self.forwarded.trusts(client.addr.ip());
        let (parts, body) = request.into_parts();
        let (mut outgoing, parts) = Outgoing::prepare(parts, rest, &body, &client.forwarded_for, route.target.preserve_host, trusted);
        outgoing.upgrade = upgrade;
        let mut body = ClientBody::new(body, &self.limits, &self.timeouts);
        body.prefetch().await?;
        let body = RequestBody::Client { inner: body, member: None };
        let mut response = relay_with_failover(upstream, outgoing, (parts, body), key).await?;
        upgrade::start_tunnel(&mut response, on_upgrade, &client.conn);
        Ok(response)
    }
}

/// Where attempts go: one backend, or a balancer's picks.
enum Upstream<'a> {
    Single(&'a Arc<ProxyMember>),
    Balancer(&'a ProxyBalancer),
}

impl Upstream<'_> {
    fn name(&self) -> &str {
        match self {
            Upstream::Single(m) => &m.config.url,
            Upstream::Balancer(b) => b.name(),
        }
    }

    /// How many members a request may try in all.
    fn attempts(&self) -> u32 {
        match self {
            Upstream::Single(_) => 1,
            Upstream::Balancer(b) => b.maxattempts().saturating_add(1),
        }
    }

    fn next(&self, key: u64, tried: &[usize]) -> Result<(Arc<ProxyMember>, usize), NoMember> {
        match self {
            Upstream::Single(m) if tried.is_empty() => Ok((Arc::clone(m), 0)),
            Upstream::Single(_) => Err(NoMember::NoneUsable),
            Upstream::Balancer(b) => b.pick(key, tried, Instant::now()).map(|p| (p.member, p.index)),
        }
    }

    /// Puts a balancer member in error (E); a single backend is never put in error, so every
    /// request tries it (httpd would answer 503 for `retry` seconds).
    fn mark_error(&self, member: &ProxyMember) {
        if let Upstream::Balancer(b) = self {
            if member.mark_error(Instant::now()) {
                tracing::warn!(balancer = b.name(), member = %member.config.url, retry = ?member.config.retry, "member put in error");
            }
        }
    }
}

/// The request as it goes to members, minus what depends on the member (URI, Host).
struct Outgoing {
    rest: String,
    query: Option<String>,
    client_host: Option<HeaderValue>,
    preserve_host: bool,
    /// Whether the request may be sent again after an exchange broke: an idempotent method
    /// and no body (the parts come back with the failure; there is no body to replay).
    replayable: bool,
    /// The client asked for a WebSocket upgrade; what the route allows (a member may allow
    /// it too).
    upgrade: Option<Upgrades>,
}

impl Outgoing {
    /// Applies the header rules to `parts`; returns them with what each attempt needs.
    fn prepare(mut parts: Parts, rest: String, body: &Incoming, forwarded_for: &HeaderValue, preserve_host: bool, trusted: bool) -> (Self, Parts) {
        // An absolute-form target's authority wins over Host (RFC 9112 §3.2.2).
        let client_host = match parts.uri.authority() {
            Some(a) => HeaderValue::from_str(a.as_str()).ok(),
            None => parts.headers.get(header::HOST).cloned(),
        };
        let query = parts.uri.query().map(str::to_string);
        headers::strip_hop_by_hop(&mut parts.headers);
        // The proxy answered any 100-continue itself by reading the body.
        parts.headers.remove(header::EXPECT);
        headers::add_forwarded(&mut parts.headers, forwarded_for, client_host.as_ref(), "http", trusted);
        parts.version = Version::HTTP_11;
        let replayable = is_idempotent(&parts.method) && body.is_end_stream();
        (Self { rest, query, client_host, preserve_host, replayable, upgrade: None }, parts)
    }

    /// The request for `member`, with its path and Host.
    fn for_member(&self, mut parts: Parts, body: RequestBody, member: &ProxyMember) -> Result<Request<RequestBody>, ProxyError> {
        let path = forward_path(&member.config.base_path, &self.rest, self.query.as_deref());
        parts.uri = path.parse::<Uri>().map_err(|e| ProxyError::BadRequest { reason: format!("path `{path}`: {e}") })?;
        let host = if self.preserve_host { self.client_host.clone() } else { member.conn.host_header().cloned() };
        match host {
            Some(h) => parts.headers.insert(header::HOST, h),
            None => parts.headers.remove(header::HOST),
        };
        if let Some(route) = self.upgrade {
            if route.union(member.config.upgrade).websocket {
                upgrade::ask_member(&mut parts.headers);
            } else {
                // A member tried earlier may have been allowed the upgrade; this one is not.
                parts.headers.remove(header::UPGRADE);
                parts.headers.remove(header::CONNECTION);
            }
        }
        Ok(Request::from_parts(parts, body))
    }
}

async fn relay_with_failover(
    upstream: Upstream<'_>,
    outgoing: Outgoing,
    request: (Parts, RequestBody),
    key: u64,
) -> Result<Response<ResponseBody>, ProxyError> {
    let mut pending = Some(request);
    let mut tried: Vec<usize> = Vec::new();
    let mut attempts_left = upstream.attempts();
    // One extra attempt for a pooled connection the member closed just as we sent on it.
    let mut keepalive_race_allowance = 1u32;
    let mut last_error: Option<ProxyError> = None;
    while attempts_left > 0 {
        let (member, index) = match upstream.next(key, &tried) {
            Ok(picked) => picked,
            Err(no) => return Err(last_error.unwrap_or_else(|| ProxyError::unavailable(upstream.name(), no))),
        };
        let Some((parts, body)) = pending.take() else { break };
        let request = outgoing.for_member(parts, body, &member)?;
        let busy = member.busy_guard();
        match upstream::exchange(&member, request, busy).await {
            Ok(response) => return Ok(response),
            Err(AttemptError::NotSent { request, cause }) => {
                if !matches!(cause, ConnectError::Exhausted { .. }) {
                    upstream.mark_error(&member);
                }
                tracing::debug!(target_name = upstream.name(), member = %member.config.url, error = %cause, "attempt failed before sending");
                last_error = Some(ProxyError::from_connect(upstream.name(), &cause));
                tried.push(index);
                attempts_left -= 1;
                pending = Some(request.into_parts());
            }
            Err(AttemptError::Broken { reason, fresh_connection, parts }) => {
                let broke = ProxyError::MemberBroke { member: member.config.url.clone(), reason };
                if !outgoing.replayable {
                    return Err(broke);
                }
                if fresh_connection {
                    upstream.mark_error(&member);
                    tried.push(index);
                    attempts_left -= 1;
                } else if keepalive_race_allowance > 0 {
                    keepalive_race_allowance -= 1;
                } else {
                    attempts_left -= 1;
                }
                tracing::debug!(target_name = upstream.name(), error = %broke, "idempotent request sent again");
                last_error = Some(broke);
                pending = Some((*parts, RequestBody::Empty));
            }
            Err(AttemptError::Timeout { after }) => {
                return Err(ProxyError::MemberTimeout { member: member.config.url.clone(), after });
            }
            Err(AttemptError::Client(e)) => return Err(e.into()),
        }
    }
    Err(last_error.unwrap_or_else(|| ProxyError::unavailable(upstream.name(), NoMember::NoneUsable)))
}

fn is_idempotent(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE)
}

/// The 64-bit request key `pick` gets, hashed from the balancer's `hashkey` source.
fn request_key(source: &HashKey, request: &Request<Incoming>, peer: SocketAddr) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    match source {
        HashKey::None => return 0,
        HashKey::ClientIp => peer.ip().hash(&mut hasher),
        HashKey::Path => request.uri().path().hash(&mut hasher),
        HashKey::Header(name) => match request.headers().get(name) {
            Some(v) => v.as_bytes().hash(&mut hasher),
            None => return 0,
        },
        HashKey::Cookie(name) => match cookie(request.headers(), name) {
            Some(v) => v.hash(&mut hasher),
            None => return 0,
        },
    }
    hasher.finish()
}

/// The value of cookie `name` in the request's Cookie headers.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}
