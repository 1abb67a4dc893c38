//! The request path's side of the access log: what is taken from a request as it arrives
//! (and the request id it is given), and the entry made once it is answered.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderName, HeaderValue, Method, Request, Response, Version};

use super::body::ResponseBody;
use super::outcome::Outcome;
use super::service::ClientBodySource;
use super::{Proxy, Target};
use crate::observe::{AccessLog, Entry, PendingEntry, new_request_id};

/// `X-Request-Id`.
static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Sets the request's `X-Request-Id` (once the strict checks passed).
pub(crate) fn set_request_id<B>(request: &mut Request<B>, id: &HeaderValue) {
    request.headers_mut().insert(X_REQUEST_ID.clone(), id.clone());
}

/// What the log keeps of a request from its arrival.
pub(crate) struct Began {
    log: Arc<AccessLog>,
    arrived: Instant,
    client: IpAddr,
    method: Method,
    target: http::Uri,
    version: Version,
    request_id: Option<HeaderValue>,
    request_headers: Vec<Option<HeaderValue>>,
}

impl Began {
    /// Notes `request` as it arrives and, when the log asks for request ids, picks its id: a
    /// trusted peer's `X-Request-Id` is kept, anyone else's replaced (the header is set after
    /// the strict checks, which judge the request as the client sent it; see
    /// [`set_request_id`]).
    pub(crate) fn new(log: &Arc<AccessLog>, request: &Request<ClientBodySource>, arrived: Instant, client: SocketAddr, trusted: bool) -> Self {
        let request_id = log.settings().request_id.then(|| match request.headers().get(&X_REQUEST_ID) {
            Some(id) if trusted => id.clone(),
            _ => new_request_id(),
        });
        Self {
            log: Arc::clone(log),
            arrived,
            client: client.ip().to_canonical(),
            method: request.method().clone(),
            target: request.uri().clone(),
            version: request.version(),
            request_id,
            request_headers: log.request_headers().iter().map(|name| request.headers().get(name).cloned()).collect(),
        }
    }

    /// The id the request goes to members with, if it is given one.
    pub(crate) fn request_id(&self) -> Option<HeaderValue> {
        self.request_id.clone()
    }

    /// The entry for the answer `response`, waiting for its body to end.
    pub(crate) fn answered(self, proxy: &Proxy, outcome: &Outcome, response: &Response<ResponseBody>) -> Box<PendingEntry> {
        let route = outcome.route.and_then(|i| proxy.routes.iter().nth(i));
        let member = match (route.map(|r| &r.target.target), &outcome.member) {
            (_, Some(m)) => Some(Arc::clone(m.conn.url())),
            (Some(Target::Backend(m)), None) => Some(Arc::clone(m.conn.url())),
            _ => None,
        };
        let entry = Entry {
            arrived: self.arrived,
            client: self.client,
            method: self.method,
            target: self.target,
            version: self.version,
            status: response.status().as_u16(),
            bytes_in: 0,
            bytes_out: 0,
            duration: Default::default(),
            member_time: outcome.head_at.map(|at| at.saturating_duration_since(self.arrived)),
            route: route.map(|r| Arc::clone(&r.target.labels.prefix)),
            balancer: route.and_then(|r| r.target.labels.balancer.clone()),
            member,
            attempts: outcome.attempts,
            sticky: outcome.sticky.clone(),
            request_id: self.request_id,
            request_headers: self.request_headers,
            response_headers: self.log.response_headers().iter().map(|name| response.body().header(response.headers(), name)).collect(),
        };
        PendingEntry::new(self.log, entry, outcome.body_in.clone())
    }
}
