//! One attempt to relay a request to one member, and what its failure means for a retry.
//!
//! Failures are told apart by whether the request left the proxy: a refused or timed-out
//! connect, a full pool, or a pooled connection the member had closed all give the request
//! back untouched ([`AttemptError::NotSent`]), so it can go to another member whatever its
//! method. Once sent, only the caller can decide (idempotent method, body still replayable).

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};

use super::ProxyMember;
use super::body::{MemberBody, RequestBody, ResponseBody};
use super::headers;
use super::pool::ConnectError;
use crate::balancer::BusyGuard;

/// How an attempt failed.
#[derive(Debug)]
pub(crate) enum AttemptError {
    /// The request never reached the member; here it is back.
    NotSent { request: Request<RequestBody>, cause: ConnectError },
    /// The member got (part of) the request and the exchange broke before a response head.
    Broken { reason: String, fresh_connection: bool },
    /// No response head within the member's `timeout`.
    Timeout { after: Duration },
}

/// Sends `request` to `member` and returns its response with a counting, pooled body.
pub(crate) async fn attempt(
    member: &Arc<ProxyMember>,
    mut request: Request<RequestBody>,
    busy: BusyGuard<Arc<super::MemberPool>>,
) -> Result<Response<ResponseBody>, AttemptError> {
    let pool = &member.conn;
    let timeout = pool.settings().timeout;
    request.body_mut().count_for(member);
    member.add_transferred(headers::wire_size(request.headers()) + request.uri().to_string().len() as u64 + 14);
    // A pooled connection the member closed in the meantime gives the request back unsent;
    // try the next one (or a new connection). Bounded: each round drops a connection.
    loop {
        let mut conn = match pool.checkout().await {
            Ok(conn) => conn,
            Err(cause) => return Err(AttemptError::NotSent { request, cause }),
        };
        let sent = tokio::time::timeout(timeout, conn.sender.try_send_request(request)).await;
        let response = match sent {
            Err(_) => return Err(AttemptError::Timeout { after: timeout }),
            Ok(Ok(response)) => response,
            Ok(Err(mut e)) => match e.take_message() {
                Some(unsent) if conn.reused => {
                    request = unsent;
                    continue;
                }
                Some(unsent) => {
                    let cause = ConnectError::Failed { member: member.config.authority.clone(), source: std::io::Error::other(e.into_error()) };
                    return Err(AttemptError::NotSent { request: unsent, cause });
                }
                None => return Err(AttemptError::Broken { reason: e.into_error().to_string(), fresh_connection: !conn.reused }),
            },
        };
        let (mut parts, body) = response.into_parts();
        headers::strip_hop_by_hop(&mut parts.headers);
        member.add_read(headers::wire_size(&parts.headers) + 17);
        let body = MemberBody::new(body, Arc::clone(member), conn, busy);
        return Ok(Response::from_parts(parts, ResponseBody::Member(body)));
    }
}
