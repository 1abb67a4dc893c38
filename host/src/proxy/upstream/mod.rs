//! The member side of the proxy: an HTTP/1.1 client that runs inside the request's own task.
//!
//! hyper's client runs every connection as a separate task, so each request crosses task
//! boundaries through channels several times; measured on a 2-core machine that doubled the
//! user CPU a request costs. Here a request checks out a connection from its worker's pool,
//! writes the head the proxy serialised itself, streams the body, parses the response head
//! strictly, and hands back a body that reads the member socket directly.
//!
//! [`exchange`] is one attempt; its [`AttemptError`] says whether the request reached the
//! member, which decides whether another member may be tried.

mod body;
mod conn;
mod pool;
mod request;
mod response;
mod tunnel;

use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use http::{Method, Request, Response, StatusCode};

pub use body::{MemberBody, MemberBodyError};
pub(crate) use pool::ConnectError;
pub use pool::MemberPool;
pub(crate) use tunnel::SwitchedSlot;

use super::body::{RequestBody, ResponseBody};
use super::limits::ClientBodyError;
use super::{ProxyMember, headers};
use crate::balancer::BusyGuard;
use conn::READ_CHUNK;
use pool::Lease;
use request::BodyWriteError;

/// How an attempt failed.
#[derive(Debug)]
pub(crate) enum AttemptError {
    /// The request never reached the member; here it is back.
    NotSent { request: Request<RequestBody>, cause: ConnectError },
    /// The member got (part of) the request and the exchange broke before a usable response
    /// head arrived. `fresh_connection` is false when a pooled connection was used; `parts` is
    /// the request head as sent, for sending again when that is safe.
    Broken { reason: String, fresh_connection: bool, parts: Box<Parts> },
    /// No response head within the member's `timeout`.
    Timeout { after: Duration },
    /// The client's body failed (too large, too slow, malformed, gone): the member
    /// connection is dropped mid-request and the client gets the client error.
    Client(ClientBodyError),
}

/// Sends `request` to `member` and returns its response, whose body streams from the member.
pub(crate) async fn exchange(
    member: &Arc<ProxyMember>,
    request: Request<RequestBody>,
    busy: BusyGuard<Arc<MemberPool>>,
) -> Result<Response<ResponseBody>, AttemptError> {
    let mut lease = match member.conn.checkout().await {
        Ok(lease) => lease,
        Err(cause) => return Err(AttemptError::NotSent { request, cause }),
    };
    let timeout = member.conn.settings().timeout;
    let fresh_connection = !lease.conn.reused;

    let (parts, mut body) = request.into_parts();
    body.count_for(member);
    let framing = request::framing(&parts.method, &body);
    let mut head = Vec::with_capacity(512);
    request::encode_head(&parts, framing, &mut head);
    member.add_transferred(head.len() as u64);
    if let Err(e) = request::write_within(&mut lease.conn.stream, &head, timeout).await {
        // Nothing of the request was accepted: it may go elsewhere, body untouched.
        let cause = ConnectError::Failed { member: member.config.authority.clone(), source: std::io::Error::other(e.to_string()) };
        return Err(AttemptError::NotSent { request: Request::from_parts(parts, body), cause });
    }
    let written = request::write_body(&mut lease.conn.stream, &mut body, framing, timeout).await;
    if let Err(BodyWriteError::Client(e)) = written {
        // Dropping the lease closes the connection: the member never sees a complete request.
        return Err(AttemptError::Client(e));
    }
    let upgrading = parts.headers.contains_key(http::header::UPGRADE);
    let read = read_head(&mut lease, &parts.method, upgrading, timeout, member).await;
    let broken = |reason: String| AttemptError::Broken { reason, fresh_connection, parts: Box::new(parts) };
    let head = match (written, read) {
        (_, Ok(head)) => head,
        (Err(BodyWriteError::Client(e)), _) => return Err(AttemptError::Client(e)),
        (_, Err(HeadFailure::Timeout)) => return Err(AttemptError::Timeout { after: timeout }),
        (Err(e), Err(_)) => return Err(broken(e.to_string())),
        (Ok(()), Err(HeadFailure::Broken(reason))) => return Err(broken(reason)),
    };
    let response::ResponseHead { status, mut headers, framing, keep_alive } = head;
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return tunnel::switched(lease, busy, Arc::clone(member), headers).map_err(broken);
    }
    headers::strip_hop_by_hop(&mut headers);
    let body = MemberBody::new(lease, framing, keep_alive, Arc::clone(member), busy);
    let mut response = Response::new(ResponseBody::Member(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

enum HeadFailure {
    Timeout,
    Broken(String),
}

/// Reads the response head (skipping 100 Continue and other interim responses) within
/// `timeout`.
async fn read_head(
    lease: &mut Lease,
    method: &Method,
    upgrading: bool,
    timeout: Duration,
    member: &ProxyMember,
) -> Result<response::ResponseHead, HeadFailure> {
    let conn = &mut lease.conn;
    let read = async {
        loop {
            match response::parse(&mut conn.buf, method) {
                Ok(Some(head)) => {
                    if head.status == StatusCode::SWITCHING_PROTOCOLS && upgrading {
                        return Ok(head);
                    }
                    if head.status == StatusCode::SWITCHING_PROTOCOLS {
                        return Err(HeadFailure::Broken("the member switched protocols, which this route does not allow".into()));
                    }
                    if head.status.is_informational() {
                        continue;
                    }
                    return Ok(head);
                }
                Ok(None) => {}
                Err(e) => return Err(HeadFailure::Broken(e.to_string())),
            }
            conn.buf.reserve(READ_CHUNK);
            match tokio::io::AsyncReadExt::read_buf(&mut conn.stream, &mut conn.buf).await {
                Ok(0) if conn.buf.is_empty() => return Err(HeadFailure::Broken("connection closed before any response".into())),
                Ok(0) => return Err(HeadFailure::Broken("connection closed in the middle of the response head".into())),
                Ok(n) => member.add_read(n as u64),
                Err(e) => return Err(HeadFailure::Broken(format!("reading the response: {e}"))),
            }
        }
    };
    crate::deadline::within(timeout, read).await.unwrap_or(Err(HeadFailure::Timeout))
}
