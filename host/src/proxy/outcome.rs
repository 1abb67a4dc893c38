//! What became of a request on its way through the proxy, for the access log and the
//! metrics: the route (and so the balancer), the member, the attempts, the sticky route, when
//! the member's head came and when the client's was ready, and how many body bytes the client
//! sent. Filled as the request goes; read once it is answered.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use super::ProxyMember;

/// What became of one request.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Index of the matched route.
    pub(crate) route: Option<usize>,
    /// The member last tried (the one that answered, when one did).
    pub(crate) member: Option<Arc<ProxyMember>>,
    /// Members tried.
    pub(crate) attempts: u32,
    /// The sticky route the request asked for.
    pub(crate) sticky: Option<String>,
    /// When the member's response head arrived.
    pub(crate) head_at: Option<Instant>,
    /// When the client's response head was ready: `head_at`, or later when header rewriters
    /// ran. The request's latency in the metrics ends here, without reading the clock again.
    pub(crate) ready_at: Option<Instant>,
    /// Request body bytes received so far, when they are counted.
    pub(crate) body_in: Option<Arc<AtomicU64>>,
    /// The request id to forward, when the access log gives ids.
    pub(crate) request_id: Option<http::HeaderValue>,
    /// Whether the access log is on: only then are the member and the body's bytes noted
    /// (the rest costs nothing to keep).
    pub(crate) logged: bool,
}
