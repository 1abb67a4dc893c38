//! Attempts of one request: pick a member, send, and on failure decide whether another member
//! may be tried — httpd's failover, with its balancer settings.
//!
//! Retry rules. A request that never reached a member (refused or timed-out connect, full
//! pool, no answer to a `ping`) goes to the next member, whatever its method, up to the
//! balancer's `maxattempts`. Once a request was sent it is tried again only if its method is
//! idempotent and it had no body (nothing has reached the client yet at that point). A member
//! that does not answer within its `timeout` gets 504, without another attempt, as in httpd.
//!
//! Members are put in error (E) when a connect fails, when an exchange on a fresh connection
//! breaks, on a `failonstatus` status and, with `failontimeout`, on a timeout. A single
//! backend route is never put in error: every request tries it (httpd would answer 503 for
//! `retry` seconds).

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::Response;

use super::body::{RequestBody, ResponseBody, materialize_headers};
use super::outcome::Outcome;
use super::respond::ProxyError;
use super::outgoing::Outgoing;
use super::upgrade;
use super::{ProxyBalancer, ProxyMember, RouteRewrite};
use crate::codec::response::Fields;
use crate::upstream::{self, AttemptError, ConnectError, MemberAnswer};
use crate::balancer::{NoMember, PickRequest, sticky};
use crate::rewrite::Context;

/// How often a request waiting for a usable member (balancer `timeout`) looks again, besides
/// waking when a member's retry time passes.
const WAIT_POLL: Duration = Duration::from_millis(50);

/// Where attempts go: one backend, or a balancer's picks.
pub(crate) enum Upstream<'a> {
    Single(&'a Arc<ProxyMember>),
    Balancer(&'a ProxyBalancer),
}

/// A member chosen for one attempt.
struct Chosen {
    member: Arc<ProxyMember>,
    index: usize,
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

    fn next(&self, request: &PickRequest<'_>, now: Instant) -> Result<Chosen, NoMember> {
        match self {
            Upstream::Single(m) if request.tried.is_empty() => Ok(Chosen { member: Arc::clone(m), index: 0 }),
            Upstream::Single(_) => Err(NoMember::NoneUsable),
            Upstream::Balancer(b) => b.pick(request, now).map(|p| Chosen { member: p.member, index: p.index }),
        }
    }

    /// Puts a balancer member in error (E), unless it ignores errors.
    fn mark_error(&self, member: &ProxyMember, why: &str) {
        if let Upstream::Balancer(b) = self
            && member.mark_error(Instant::now()) {
                tracing::warn!(balancer = b.name(), member = %member.config.url, retry = ?member.config.retry, why, "member put in error");
            }
    }

    /// How long to wait before looking for a usable member again, or `None` when the request
    /// must not wait (no balancer `timeout`, it has passed, or every member was tried).
    fn wait_for_member(&self, tried: &[usize], waiting_since: Instant) -> Option<Duration> {
        let Upstream::Balancer(b) = self else { return None };
        let deadline = waiting_since + b.failover().timeout;
        let now = Instant::now();
        if now >= deadline || tried.len() >= b.members().len() {
            return None;
        }
        let wake = b.next_retry_at().filter(|&at| at > now).map_or(WAIT_POLL, |at| at - now);
        Some(wake.min(WAIT_POLL).min(deadline - now))
    }

    /// What a response means for the member that sent it (`failonstatus`), and the route
    /// cookie the client gets when the balancer inserts one and the session moved.
    fn after_response(&self, member: &ProxyMember, route: Option<&str>, response: &mut Response<ResponseBody>) {
        let Upstream::Balancer(b) = self else { return };
        let status = response.status().as_u16();
        if b.failover().failonstatus.contains(&status) {
            self.mark_error(member, "failonstatus");
        }
        let Some(sticky) = b.sticky() else { return };
        let member_route = member.config.route.as_str();
        if member_route.is_empty() || route == Some(member_route) {
            return;
        }
        if let Some(cookie) = sticky::route_cookie(sticky, member_route).and_then(|c| HeaderValue::try_from(c).ok()) {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
    }
}

/// One request's way to a member: where it may go and how it is prepared.
pub(crate) struct Attempts<'a> {
    pub(crate) upstream: Upstream<'a>,
    pub(crate) outgoing: Outgoing,
    /// The hash of the balancer's `hashkey` source.
    pub(crate) key: u64,
    /// The sticky session's route, if the request carries one.
    pub(crate) route: Option<&'a str>,
    /// The route's header rewriting, if it has any.
    pub(crate) rewrite: Option<&'a RouteRewrite>,
}

impl Attempts<'_> {
    /// The rewrite context for a message to or from `member`.
    fn context<'c>(&'c self, rewrite: &'c RouteRewrite, member: &'c ProxyMember) -> Context<'c> {
        Context {
            public_prefix: &rewrite.prefix,
            public_scheme: self.outgoing.scheme(),
            public_host: self.outgoing.client_host(),
            targets: &rewrite.targets,
            member: &member.config.url,
            position: 0,
        }
    }

    /// Sends the request to members until one answers or the attempts run out.
    pub(crate) async fn relay(self, request: (Parts, RequestBody), outcome: &mut Outcome) -> Result<Response<ResponseBody>, ProxyError> {
        let Attempts { ref upstream, ref outgoing, key, route, rewrite } = self;
        let mut pending = Some(request);
        let mut tried: Vec<usize> = Vec::new();
        let mut attempts_left = upstream.attempts();
        // One extra attempt for a pooled connection the member closed just as we sent on it.
        let mut keepalive_race_allowance = 1u32;
        let mut last_error: Option<ProxyError> = None;
        let mut waiting_since: Option<Instant> = None;
        while attempts_left > 0 {
            // One reading of the clock for the pick (members' retry times), the member pool
            // (idle connections' ages) and the member's timeout: they follow within
            // microseconds, unless a header rewriter runs between (then read again below).
            let now = Instant::now();
            let chosen = match upstream.next(&PickRequest { key, route, tried: &tried }, now) {
                Ok(chosen) => chosen,
                Err(NoMember::NoneUsable) => {
                    let since = *waiting_since.get_or_insert(now);
                    if let Some(pause) = upstream.wait_for_member(&tried, since) {
                        tokio::time::sleep(pause).await;
                        continue;
                    }
                    return Err(last_error.unwrap_or_else(|| ProxyError::unavailable(upstream.name(), NoMember::NoneUsable)));
                }
                Err(no) => return Err(last_error.unwrap_or_else(|| ProxyError::unavailable(upstream.name(), no))),
            };
            let Chosen { member, index } = chosen;
            outcome.attempts += 1;
            if outcome.logged {
                outcome.member = Some(Arc::clone(&member));
            }
            if tracing::enabled!(tracing::Level::DEBUG) {
                tracing::Span::current().record("member", member.config.url.as_str());
            }
            let Some((parts, body)) = pending.take() else { break };
            let mut request = outgoing.for_member(parts, body, &member)?;
            // Edits are for this member: a retry starts again from the headers as they were.
            let unedited = rewrite.map(|rw| {
                let original = request.headers().clone();
                let (method, path) = (request.method().clone(), request.uri().to_string());
                rw.chain.on_request(&self.context(rw, &member), method.as_str(), &path, request.headers_mut());
                original
            });
            let restore = |mut parts: Parts| {
                if let Some(original) = &unedited {
                    parts.headers = original.clone();
                }
                parts
            };
            let busy = member.busy_guard();
            let sent_at = if unedited.is_some() { Instant::now() } else { now };
            match upstream::exchange(&member, request, outgoing.head_fields(&member), busy, sent_at).await {
                Ok(answer) => {
                    let mut response = client_response(answer);
                    let head_at = Instant::now();
                    member.record_response(head_at.saturating_duration_since(sent_at));
                    outcome.head_at = Some(head_at);
                    outcome.ready_at = Some(head_at);
                    if let Some(rw) = rewrite {
                        let (mut parts, mut body) = response.into_parts();
                        materialize_headers(&mut parts.headers, &mut body);
                        response = Response::from_parts(parts, body);
                        let status = response.status().as_u16();
                        rw.chain.on_response(&self.context(rw, &member), status, response.headers_mut());
                        outcome.ready_at = Some(Instant::now());
                    }
                    upstream.after_response(&member, route, &mut response);
                    return Ok(response);
                }
                Err(AttemptError::NotSent { request, cause }) => {
                    if !matches!(cause, ConnectError::Exhausted { .. }) {
                        upstream.mark_error(&member, "connect failed");
                    }
                    tracing::debug!(target_name = upstream.name(), member = %member.config.url, error = %cause, "attempt failed before sending");
                    last_error = Some(ProxyError::from_connect(upstream.name(), &cause));
                    tried.push(index);
                    attempts_left -= 1;
                    let (parts, body) = request.into_parts();
                    pending = Some((restore(parts), body));
                }
                Err(AttemptError::Broken { reason, fresh_connection, parts }) => {
                    // On a reused connection the first break may be the member closing an idle
                    // connection just as we sent: that says nothing about the member's health.
                    if fresh_connection {
                        upstream.mark_error(&member, "exchange broke");
                    }
                    let broke = ProxyError::MemberBroke { member: member.config.url.clone(), reason };
                    if !outgoing.replayable() {
                        return Err(broke);
                    }
                    if fresh_connection {
                        tried.push(index);
                        attempts_left -= 1;
                    } else if keepalive_race_allowance > 0 {
                        keepalive_race_allowance -= 1;
                    } else {
                        attempts_left -= 1;
                    }
                    tracing::debug!(target_name = upstream.name(), error = %broke, "idempotent request sent again");
                    last_error = Some(broke);
                    pending = Some((restore(*parts), RequestBody::Empty));
                }
                Err(AttemptError::Timeout { after }) => {
                    if matches!(upstream, Upstream::Balancer(b) if b.failover().failontimeout) {
                        upstream.mark_error(&member, "failontimeout");
                    }
                    return Err(ProxyError::MemberTimeout { member: member.config.url.clone(), after });
                }
                Err(AttemptError::Client(e)) => return Err(e.into()),
            }
        }
        Err(last_error.unwrap_or_else(|| ProxyError::unavailable(upstream.name(), NoMember::NoneUsable)))
    }
}

/// The client's response for a member's answer: the member's lines kept raw ride with the
/// body (see [`ResponseBody::Member`]); a 101 carries the tunnel's member side.
fn client_response(answer: MemberAnswer) -> Response<ResponseBody> {
    match answer {
        MemberAnswer::Response(member) => {
            let (head, headers) = match member.head {
                Fields::Raw(raw) => (Some(raw), http::HeaderMap::new()),
                Fields::Map(map) => (None, map),
            };
            let mut response = Response::new(ResponseBody::Member { head, body: member.body });
            *response.status_mut() = member.status;
            *response.headers_mut() = headers;
            response
        }
        MemberAnswer::Switched(switched) => upgrade::switched_response(switched),
    }
}
