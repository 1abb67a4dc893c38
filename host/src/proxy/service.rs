//! Handling one client request: route it, find its sticky route and request key, prepare the
//! outgoing request, and hand it to [`failover`](super::failover) for the attempts.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use http::{HeaderValue, Method, Request, Response, header};
use hyper::body::{Body, Incoming};

use super::body::{RequestBody, ResponseBody, materialize_headers};
use crate::codec::lines::{HeaderLines, HeaderView};
use super::failover::{self, Upstream};
use super::access;
use super::limits::ClientBody;
use super::outcome::Outcome;
use super::respond::{ProxyError, error_response};
use super::outgoing::{Outgoing, Rest, Way};
use super::route;
use super::{Proxy, SharedProxy, Target, headers, strict, upgrade};
use crate::balancer::sticky;
use crate::canon::{self, CanonPath};
use crate::config::HashKey;
use crate::edge::{ConnShared, Tracked, Violation};
use crate::spare_box::SpareBox;

/// The hyper service for one client connection.
#[derive(Clone)]
pub struct ProxyService {
    proxy: SharedProxy,
    peer: SocketAddr,
    /// The client's X-Forwarded-For entry, made once for the connection.
    peer_value: HeaderValue,
    conn: Arc<ConnShared>,
    /// Whether the client connection is TLS (the public scheme is then https).
    secure: bool,
}

impl ProxyService {
    /// Serves requests from `peer` with whatever proxy `proxy` holds when each arrives;
    /// `conn` is shared with the connection's guard.
    pub fn new(proxy: SharedProxy, peer: SocketAddr, conn: Arc<ConnShared>, secure: bool) -> Self {
        Self { proxy, peer, peer_value: headers::peer_value(peer.ip()), conn, secure }
    }

    /// Answers one request (hyper's, or the HTTP/1 fast path's) with whatever proxy is current.
    /// A fast-path request comes with its header `lines` as the client sent them and its map
    /// left empty; the request path reads either through a [`HeaderView`].
    pub(crate) fn respond(&self, request: SpareBox<Request<ClientBodySource>>, lines: Option<HeaderLines>) -> impl Future<Output = Response<Tracked<ResponseBody>>> + Send + 'static {
        let proxy = self.proxy.load_full();
        let (flight, raw) = self.conn.begin_request();
        let client = Client { addr: self.peer, forwarded_for: self.peer_value.clone(), raw, conn: Arc::clone(&self.conn), secure: self.secure };
        // At debug level only: a span per request costs more than the rest of the request's
        // logging, and the connection's span already names the client.
        let span = tracing::debug_span!("request", method = %request.method(), target = %request.uri(), route = tracing::field::Empty, member = tracing::field::Empty);
        tracing::Instrument::instrument(async move {
            let started = std::time::Instant::now();
            let began = proxy.access_log.as_ref().map(|log| {
                let headers = HeaderView::of(request.headers(), lines.as_ref());
                access::Began::new(log, &request, headers, started, client.addr, proxy.forwarded.trusts(client.addr.ip()))
            });
            let mut outcome = Outcome { logged: began.is_some(), request_id: began.as_ref().and_then(access::Began::request_id), ..Outcome::default() };
            // Errors are answered here. (Not a method of its own: each `async fn` layer moves
            // the request into a future of its own.)
            let response = match proxy.relay(request, lines, &client, &mut outcome).await {
                Ok(response) => response,
                Err(e) => error_response(&e),
            };
            // A member's answer is timed to when its head was ready (noted on the way); the
            // proxy's own answers (errors) to now.
            let answered = outcome.ready_at.unwrap_or_else(std::time::Instant::now);
            proxy.count(outcome.route, response.status().as_u16(), answered.saturating_duration_since(started));
            let entry = began.map(|b| b.answered(&proxy, &outcome, &response));
            response.map(|body| {
                let body = Tracked::new(body, flight);
                match entry {
                    Some(entry) => body.with_log(entry),
                    None => body,
                }
            })
        }, span)
    }
}

impl hyper::service::Service<Request<Incoming>> for ProxyService {
    type Response = Response<Tracked<ResponseBody>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        // The answering is made straight into a block the worker keeps (see `spare_box`):
        // held by an async block instead, it was copied (about 7 KB) into the block and again
        // into the box. The box hyper wants holds only the pointer to it.
        Box::pin(SpareBox::new(|| HyperAnswer { answering: self.respond(SpareBox::new(|| request.map(ClientBodySource::Stream)), None) }))
    }
}

pin_project_lite::pin_project! {
    /// A request's answering for hyper: the answer with the member's header lines in its map
    /// (hyper writes heads from maps).
    struct HyperAnswer<F> {
        #[pin]
        answering: F,
    }
}

impl<F: Future<Output = Response<Tracked<ResponseBody>>>> Future for HyperAnswer<F> {
    type Output = Result<Response<Tracked<ResponseBody>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        let (mut parts, mut body) = std::task::ready!(self.project().answering.poll(cx)).into_parts();
        materialize_headers(&mut parts.headers, body.inner_mut());
        std::task::Poll::Ready(Ok(Response::from_parts(parts, body)))
    }
}

/// A client request's body as it arrives.
#[derive(Debug)]
pub enum ClientBodySource {
    /// hyper's stream of it.
    Stream(Incoming),
    /// None: the HTTP/1 fast path takes only requests without one.
    None,
}

impl ClientBodySource {
    fn is_end_stream(&self) -> bool {
        match self {
            ClientBodySource::Stream(body) => body.is_end_stream(),
            ClientBodySource::None => true,
        }
    }
}

/// Who sent a request.
pub(crate) struct Client {
    /// The peer address of the client connection.
    pub(crate) addr: SocketAddr,
    /// Its X-Forwarded-For entry.
    pub(crate) forwarded_for: HeaderValue,
    /// What the raw-head scanner found wrong with this request's head, if anything.
    pub(crate) raw: Option<Violation>,
    /// The connection's state shared with its guard.
    pub(crate) conn: Arc<ConnShared>,
    /// Whether it came over TLS.
    pub(crate) secure: bool,
}

impl Proxy {
    /// Relays one request (with its header `lines`, see [`ProxyService::respond`]), or says
    /// why it cannot; what became of it is left in `outcome`.
    async fn relay(
        &self,
        mut request: SpareBox<Request<ClientBodySource>>,
        lines: Option<HeaderLines>,
        client: &Client,
        outcome: &mut Outcome,
    ) -> Result<Response<ResponseBody>, ProxyError> {
        strict::check(&request, HeaderView::of(request.headers(), lines.as_ref()), &client.conn.limits, client.raw)?;
        if request.method() == Method::CONNECT {
            return Err(ProxyError::MethodNotAllowed { method: Method::CONNECT });
        }
        // Everything below sees the canonical path only (a raw spelling could walk around a
        // route); `nocanon` routes still forward the client's own spelling.
        let raw_path = request.uri().path();
        let path = canon::canonicalize(raw_path).map_err(|e| ProxyError::BadRequest { reason: e.to_string() })?;
        let Some((index, route, rest)) = self.routes.find(path.as_str()) else {
            return Err(ProxyError::NoRoute { path: path.as_str().to_string() });
        };
        outcome.route = Some(index);
        if tracing::enabled!(tracing::Level::DEBUG) {
            tracing::Span::current().record("route", route.prefix.as_str());
        }
        let upstream = match &route.target.target {
            Target::Exclude => return Err(ProxyError::NoRoute { path: path.as_str().to_string() }),
            Target::Backend(member) => Upstream::Single(member),
            Target::Balancer(balancer) => Upstream::Balancer(balancer),
        };
        if path.has_encoded_separator() && !route.target.allow_encoded_slashes {
            return Err(ProxyError::BadRequest { reason: "the path holds an encoded `/` or `\\` and its route does not allow encoded slashes".into() });
        }
        let headers = HeaderView::of(request.headers(), lines.as_ref());
        let (key, sticky_route) = match &upstream {
            Upstream::Balancer(b) => {
                let route = b.sticky().and_then(|s| sticky_route(s, &path, &request, headers));
                (request_key(b.hashkey(), &path, headers, outcome.request_id.as_ref(), client.addr), route)
            }
            Upstream::Single(_) => (0, None),
        };
        let rest = match route.target.nocanon {
            true => route::raw_rest(&route.prefix, raw_path).unwrap_or(rest),
            false => rest,
        };
        let rest = Rest::of(request.uri(), rest);
        let upgrade = upgrade::wants_websocket(&request, headers).then_some(route.target.upgrade);
        let on_upgrade = upgrade.map(|_| hyper::upgrade::on(&mut *request));
        let trusted = self.forwarded.trusts(client.addr.ip());
        let (mut parts, body) = request.into_inner().into_parts();
        let scheme = if client.secure { "https" } else { "http" };
        let way = Way { forwarded_for: &client.forwarded_for, trusted, scheme, request_id: outcome.request_id.as_ref() };
        // Header rewriters edit a map: a route whose rewriters edit requests gets one.
        let map_wanted = route.target.rewrite.as_ref().is_some_and(|rw| rw.chain.edits_requests());
        let mut outgoing = Outgoing::prepare(&mut parts, lines, map_wanted, rest, body.is_end_stream(), route.target.preserve_host, &way);
        outgoing.upgrade = upgrade;
        let body = match body {
            ClientBodySource::Stream(body) => {
                let mut body = ClientBody::new(body, &client.conn.limits, &client.conn.timeouts);
                if outcome.logged {
                    body.count_into(Arc::clone(outcome.body_in.get_or_insert_default()));
                }
                body.prefetch().await?;
                RequestBody::Client(Box::new(body))
            }
            ClientBodySource::None => RequestBody::Empty,
        };
        let attempts = failover::Attempts { upstream, outgoing, key, route: sticky_route.as_deref(), rewrite: route.target.rewrite.as_ref() };
        let sticky = outcome.logged.then(|| sticky_route.clone()).flatten();
        let response = attempts.relay((parts, body), outcome).await;
        outcome.sticky = sticky;
        let mut response = response?;
        upgrade::start_tunnel(&mut response, on_upgrade, &client.conn);
        Ok(response)
    }
}

/// The route of the request's sticky session, from its URL (canonical path and query) or
/// its cookies.
fn sticky_route<B>(sticky: &crate::config::StickySession, path: &CanonPath<'_>, request: &Request<B>, headers: HeaderView<'_>) -> Option<String> {
    let cookies = headers.get_all(&header::COOKIE);
    if path.is_as_sent() {
        let path_and_query = request.uri().path_and_query().map_or("/", |p| p.as_str());
        return sticky::route_of(sticky, path_and_query, cookies).map(str::to_string);
    }
    let path_and_query = match request.uri().query() {
        Some(q) => format!("{}?{q}", path.as_str()),
        None => path.as_str().to_string(),
    };
    sticky::route_of(sticky, &path_and_query, cookies).map(str::to_string)
}

/// The 64-bit request key `pick` gets: the FNV-1a hash of the balancer's `hashkey` source
/// (the client IP's 4 or 16 address bytes, the canonical path, or the header's or cookie's value bytes),
/// 0 when there is no source or it is absent. FNV-1a is fixed by its definition, so a key
/// never changes with a Rust release and plugins can rely on it.
/// A header source reads the request's `X-Request-Id` as members get it (`request_id`, when
/// the access log gives requests one).
fn request_key(source: &HashKey, path: &CanonPath<'_>, headers: HeaderView<'_>, request_id: Option<&HeaderValue>, peer: SocketAddr) -> u64 {
    match source {
        HashKey::None => 0,
        HashKey::ClientIp => match peer.ip() {
            std::net::IpAddr::V4(ip) => fnv1a(&ip.octets()),
            std::net::IpAddr::V6(ip) => fnv1a(&ip.octets()),
        },
        HashKey::Path => fnv1a(path.as_str().as_bytes()),
        HashKey::Header(name) if *name == headers::X_REQUEST_ID && request_id.is_some() => request_id.map_or(0, |id| fnv1a(id.as_bytes())),
        HashKey::Header(name) => headers.get(name).map_or(0, fnv1a),
        HashKey::Cookie(name) => sticky::cookie(headers.get_all(&header::COOKIE), name).map_or(0, |v| fnv1a(v.as_bytes())),
    }
}

/// The 64-bit FNV-1a hash of `bytes`.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}


#[cfg(test)]
mod tests {
    use super::fnv1a;

    #[test]
    fn request_keys_are_fnv1a() {
        // The published FNV-1a 64 test vectors: plugins may rely on these values.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x85944171f73967e8);
    }
}
