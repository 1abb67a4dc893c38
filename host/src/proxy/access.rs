//! The request path's side of the access log: what is taken from a request as it arrives
//! (and the request id it is given), and the entry made once it is answered.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http::{HeaderName, HeaderValue, Method, Request, Response, Version};

use super::body::ResponseBody;
use super::outcome::Outcome;
use super::service::ClientBodySource;
use super::{Proxy, Target};
use crate::observe::{AccessLog, Entry, PendingEntry, new_request_id};

/// `X-Request-Id`.
static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What the log keeps of a request from its arrival.
pub(crate) struct Began {
    log: Arc<AccessLog>,
    time: SystemTime,
    started: Instant,
    client: IpAddr,
    method: Method,
    target: String,
    version: Version,
    request_id: Option<HeaderValue>,
    request_headers: Vec<Option<HeaderValue>>,
}

impl Began {
    /// Notes `request` as it arrives and, when the log asks for request ids, gives it one: a
    /// trusted peer's `X-Request-Id` is kept, anyone else's replaced.
    pub(crate) fn new(log: &Arc<AccessLog>, request: &mut Request<ClientBodySource>, client: SocketAddr, trusted: bool) -> Self {
        let request_id = log.settings().request_id.then(|| {
            let id = match request.headers().get(&X_REQUEST_ID) {
                Some(id) if trusted => id.clone(),
                _ => new_request_id(),
            };
            request.headers_mut().insert(X_REQUEST_ID.clone(), id.clone());
            id
        });
        Self {
            log: Arc::clone(log),
            time: SystemTime::now(),
            started: Instant::now(),
            client: client.ip().to_canonical(),
            method: request.method().clone(),
            target: request.uri().path_and_query().map_or("/", |p| p.as_str()).to_string(),
            version: request.version(),
            request_id,
            request_headers: log.request_headers().iter().map(|name| request.headers().get(name).cloned()).collect(),
        }
    }

    /// The entry for the answer `response`, waiting for its body to end.
    pub(crate) fn answered(self, proxy: &Proxy, outcome: &Outcome, response: &Response<ResponseBody>) -> Box<PendingEntry> {
        let route = outcome.route.and_then(|i| proxy.routes.iter().nth(i));
        let member = match (route.map(|r| &r.target.target), &outcome.member) {
            (_, Some(m)) => Some(m.config.url.clone()),
            (Some(Target::Backend(m)), None) => Some(m.config.url.clone()),
            _ => None,
        };
        let entry = Entry {
            time: self.time,
            client: self.client,
            method: self.method,
            target: self.target,
            version: self.version,
            status: response.status().as_u16(),
            bytes_in: 0,
            bytes_out: 0,
            duration: Default::default(),
            member_time: outcome.head_at.map(|at| at.saturating_duration_since(self.started)),
            route: route.map(|r| r.prefix.clone()),
            balancer: match route.map(|r| &r.target.target) {
                Some(Target::Balancer(b)) => Some(b.name().to_string()),
                _ => None,
            },
            member,
            attempts: outcome.attempts,
            sticky: outcome.sticky.clone(),
            request_id: self.request_id,
            request_headers: self.request_headers,
            response_headers: self.log.response_headers().iter().map(|name| response.body().header(response.headers(), name)).collect(),
        };
        Box::new(PendingEntry::new(self.log, Box::new(entry), self.started, outcome.body_in.clone()))
    }
}
