//! The request path's side of the access log: what is taken from a request as it arrives
//! (and the request id it is given), and the entry made once it is answered.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderValue, Method, Request, Response, Version};

use super::body::ResponseBody;
use super::headers::X_REQUEST_ID;
use super::outcome::Outcome;
use super::service::ClientBodySource;
use super::{Proxy, Target};
use crate::codec::lines::HeaderView;
use crate::observe::{AccessLog, Entry, PendingEntry, new_request_id};

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
    /// Notes `request`, with its header fields `headers`, as it arrives and, when the log
    /// asks for request ids, picks its id: a trusted peer's `X-Request-Id` is kept, anyone
    /// else's replaced (the header is set on the way to the member, see
    /// [`headers`](super::headers); the strict checks judge the request as the client sent it).
    pub(crate) fn new(log: &Arc<AccessLog>, request: &Request<ClientBodySource>, headers: HeaderView<'_>, arrived: Instant, client: SocketAddr, trusted: bool) -> Self {
        let request_id = log.settings().request_id.then(|| match headers.value(&X_REQUEST_ID) {
            Some(id) if trusted => id,
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
            request_headers: log.request_headers().iter().map(|name| headers.value(name)).collect(),
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
