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
    NotSent { request: Box<Request<RequestBody>>, cause: ConnectError },
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
        Err(cause) => return Err(AttemptError::NotSent { request: Box::new(request), cause }),
    };
    let timeout = member.conn.settings().timeout;
    let fresh_connection = !lease.conn.reused;

    let (parts, mut body) = request.into_parts();
    body.count_for(member);
    let framing = request::framing(&parts.method, &body);
    // httpd's `ping`: before sending a body, make sure the member is there to take it.
    let ping = member.config.ping.filter(|_| framing.has_body());
    let mut head = Vec::with_capacity(512);
    request::encode_head(&parts, framing, ping.is_some(), &mut head);
    member.add_transferred(head.len() as u64);
    if let Err(e) = request::write_within(&mut lease.conn.stream, &head, timeout).await {
        // Nothing of the request was accepted: it may go elsewhere, body untouched.
        let cause = ConnectError::Failed { member: member.config.authority.clone(), source: std::io::Error::other(e.to_string()) };
        return Err(AttemptError::NotSent { request: Box::new(Request::from_parts(parts, body)), cause });
    }
    let broken = |reason: String, parts: Parts| AttemptError::Broken { reason, fresh_connection, parts: Box::new(parts) };
    let mut early_answer = None;
    if let Some(ping) = ping {
        match await_continue(&mut lease, ping, member).await {
            Ok(Continue::Proceed) => {}
            // A final answer instead of 100. An error refuses the body: the member never gets
            // it, and the connection, out of step, is not reused. Any other status means the
            // member answers while it reads (RFC 9110 §10.1.1): send the body, then relay.
            Ok(Continue::Final(mut head)) if head.status.as_u16() >= 400 => {
                head.keep_alive = false;
                early_answer = Some(head);
            }
            Ok(Continue::Final(head)) => {
                match request::write_body(&mut lease.conn.stream, &mut body, framing, timeout).await {
                    Ok(()) => {}
                    Err(BodyWriteError::Client(e)) => return Err(AttemptError::Client(e)),
                    Err(e) => return Err(broken(e.to_string(), parts)),
                }
                early_answer = Some(head);
            }
            Err(HeadFailure::Timeout) => {
                let cause = ConnectError::PingTimeout { member: member.config.authority.clone(), after: ping };
                return Err(AttemptError::NotSent { request: Box::new(Request::from_parts(parts, body)), cause });
            }
            Err(HeadFailure::Broken(reason)) => return Err(broken(reason, parts)),
        }
    }
    let head = match early_answer {
        Some(head) => head,
        None => {
            let written = request::write_body(&mut lease.conn.stream, &mut body, framing, timeout).await;
            if let Err(BodyWriteError::Client(e)) = written {
                // Dropping the lease closes the connection: the member never sees a complete request.
                return Err(AttemptError::Client(e));
            }
            let upgrading = parts.headers.contains_key(http::header::UPGRADE);
            let read = read_head(&mut lease, &parts.method, upgrading, timeout, member).await;
            match (written, read) {
                (_, Ok(head)) => head,
                (Err(BodyWriteError::Client(e)), _) => return Err(AttemptError::Client(e)),
                (_, Err(HeadFailure::Timeout)) => return Err(AttemptError::Timeout { after: timeout }),
                (Err(e), Err(_)) => return Err(broken(e.to_string(), parts)),
                (Ok(()), Err(HeadFailure::Broken(reason))) => return Err(broken(reason, parts)),
            }
        }
    };
    let response::ResponseHead { status, mut headers, framing, keep_alive } = head;
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return tunnel::switched(lease, busy, Arc::clone(member), headers).map_err(|reason| broken(reason, parts));
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

/// The member's answer to `Expect: 100-continue`.
enum Continue {
    /// 100 Continue: send the body.
    Proceed,
    /// A final response instead: the body is not sent.
    Final(response::ResponseHead),
}

/// Waits up to `ping` for the member to answer `Expect: 100-continue`.
async fn await_continue(lease: &mut Lease, ping: Duration, member: &ProxyMember) -> Result<Continue, HeadFailure> {
    let conn = &mut lease.conn;
    let wait = async {
        loop {
            // A HEAD-less method: interim answers carry no body either way.
            match response::parse(&mut conn.buf, &Method::POST) {
                Ok(Some(head)) if head.status == StatusCode::CONTINUE => return Ok(Continue::Proceed),
                Ok(Some(head)) if head.status == StatusCode::SWITCHING_PROTOCOLS => {
                    return Err(HeadFailure::Broken("the member switched protocols, which this route does not allow".into()));
                }
                Ok(Some(head)) if head.status.is_informational() => continue,
                Ok(Some(head)) => return Ok(Continue::Final(head)),
                Ok(None) => {}
                Err(e) => return Err(HeadFailure::Broken(e.to_string())),
            }
            conn.buf.reserve(READ_CHUNK);
            match tokio::io::AsyncReadExt::read_buf(&mut conn.stream, &mut conn.buf).await {
                Ok(0) => return Err(HeadFailure::Broken("connection closed before answering Expect: 100-continue".into())),
                Ok(n) => member.add_read(n as u64),
                Err(e) => return Err(HeadFailure::Broken(format!("reading the response: {e}"))),
            }
        }
    };
    crate::deadline::within(ping, wait).await.unwrap_or(Err(HeadFailure::Timeout))
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
            // Nothing read yet (the usual case on a pooled connection): nothing to parse.
            let parsed = if conn.buf.is_empty() { Ok(None) } else { response::parse(&mut conn.buf, method) };
            match parsed {
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
