//! The member client: an HTTP/1.1 client that runs inside the request's own task — pools,
//! connects (plain or TLS), writes the request, reads the response head strictly, streams
//! bodies both ways, and joins WebSocket tunnels. It knows nothing of the proxy above it: it
//! takes any request body and returns a [`MemberAnswer`] whose head is visibly the member's
//! raw lines or a map.
//!
//! hyper's client runs every connection as a separate task, so each request crosses task
//! boundaries through channels several times; measured on a 2-core machine that doubled the
//! user CPU a request costs. Here a request checks out a connection from its worker's pool,
//! writes the head it serialises itself, streams the body, parses the response head with
//! [`codec::response`](crate::codec::response), and hands back a body that reads the member
//! socket directly.
//!
//! [`exchange`] is one attempt; its [`AttemptError`] says whether the request reached the
//! member, which decides whether another member may be tried.

mod body;
mod conn;
mod head;
mod pool;
mod pump;
mod request;
mod tunnel;
mod upload;

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body::Body;

pub use body::{MemberBody, MemberBodyError};
pub(crate) use body::SpliceFailure;
pub use conn::connect;
pub use pool::{ConnectError, MemberPool};
pub use tunnel::Tunnel;
pub(crate) use request::{HeadFields, RequestFraming, encode_head};

use crate::balancer::{AttemptOutcome, BusyGuard, Member};
use crate::codec::response::{Fields, ResponseHead};
use crate::spare_box::SpareBox;
use head::{Continue, HeadFailure, await_continue, read_head, read_head_from};
use pool::Lease;
use request::BodyWriteError;
use upload::Upload;

/// A member as the proxy holds it: balancer state plus its connection pool.
pub type ProxyMember = Member<Arc<MemberPool>>;

/// What a request body sent to a member must be: any stream of bytes whose errors say why
/// the client's side failed.
pub trait OutgoingBody: Body<Data = Bytes, Error: std::fmt::Display + Send + 'static> + Send + Unpin + 'static {}
impl<B: Body<Data = Bytes, Error: std::fmt::Display + Send + 'static> + Send + Unpin + 'static> OutgoingBody for B {}

/// A member's answer to one request.
#[derive(Debug)]
pub enum MemberAnswer {
    /// A response, its body still to stream from the member.
    Response(MemberResponse),
    /// `101 Switching Protocols` to the WebSocket the request asked for.
    Switched(SwitchedResponse),
}

/// A member's response: status, head and the body still on the wire.
#[derive(Debug)]
pub struct MemberResponse {
    /// The status.
    pub status: StatusCode,
    /// The member's header lines, hop-by-hop ones left out: raw, as sent (the usual case),
    /// or a map.
    pub head: Fields,
    /// The body, read off the member connection as it is consumed. Boxed: it is a few
    /// hundred bytes, and the answer moves up through every layer of the request's future
    /// (each move of it inline was a copy).
    pub body: SpareBox<MemberBody>,
}

/// A member's 101: its headers (hop-by-hop ones left out) and the connection, ready to be
/// joined to the client's.
#[derive(Debug)]
pub struct SwitchedResponse {
    /// The member's headers.
    pub headers: HeaderMap,
    /// The member side of the tunnel.
    pub tunnel: Tunnel,
}

/// How an attempt failed.
pub enum AttemptError<B: Body> {
    /// The request never reached the member; here it is back.
    NotSent {
        /// The request, untouched.
        request: Box<Request<B>>,
        /// Why it was not sent.
        cause: ConnectError,
    },
    /// The member got (part of) the request and the exchange broke before a usable response
    /// head arrived.
    Broken {
        /// What broke.
        reason: String,
        /// False when a pooled connection was used (the break may be a keep-alive race).
        fresh_connection: bool,
        /// The request head as sent, for sending again when that is safe.
        parts: Box<Parts>,
    },
    /// No response head within the member's `timeout`.
    Timeout {
        /// The member's `timeout`.
        after: Duration,
    },
    /// The client's body failed (too large, too slow, malformed, gone): the member
    /// connection is dropped mid-request and the client gets the client's error.
    Client(B::Error),
}

/// Sends `request` (its header lines from `fields`) to `member` and returns its response, whose
/// body streams from the member.
/// `busy` counts the attempt at the member until the body ends, and reports how it went
/// when the balancer's method asked to hear. `now` is the caller's reading of the clock, just
/// before (see [`MemberPool::checkout`]).
pub(crate) async fn exchange<B: OutgoingBody>(
    member: &Arc<ProxyMember>,
    request: Request<B>,
    fields: HeadFields<'_>,
    mut busy: BusyGuard<Arc<MemberPool>>,
    now: std::time::Instant,
) -> Result<MemberAnswer, AttemptError<B>> {
    let mut lease = match member.conn.checkout(now).await {
        Ok(lease) => lease,
        Err(cause) => return Err(failed(busy, AttemptError::NotSent { request: Box::new(request), cause })),
    };
    let timeout = member.conn.settings().timeout;
    let fresh_connection = !lease.conn.reused;

    let (parts, body) = request.into_parts();
    let framing = request::framing(&parts.method, &body);
    // httpd's `ping`: before sending a body, make sure the member is there to take it.
    let ping = member.config.ping.filter(|_| framing.has_body());
    let mut head = crate::head_buffer::HeadBuffer::take();
    request::encode_head(&parts, fields, framing, ping.is_some(), &mut head);
    member.add_transferred(head.len() as u64);
    if let Err(e) = request::write_within(&mut lease.conn.stream, &head, timeout).await {
        // Nothing of the request was accepted: it may go elsewhere, body untouched.
        let cause = ConnectError::Failed { member: member.config.authority.clone(), source: std::io::Error::other(e.to_string()) };
        return Err(failed(busy, AttemptError::NotSent { request: Box::new(Request::from_parts(parts, body)), cause }));
    }
    // Back to the spares now: the answer's head, written next, takes it again.
    drop(head);
    let broken = |reason: String, parts: Parts| AttemptError::Broken { reason, fresh_connection, parts: Box::new(parts) };
    let mut early_answer = None;
    if let Some(ping) = ping {
        match await_continue(&mut lease, ping, member).await {
            Ok(Continue::Proceed) => {}
            // A final answer instead of 100. An error refuses the body: the member never gets
            // it, and the connection, out of step, is not reused. Any other status means the
            // member answers while it reads (RFC 9110 §10.1.1): the body follows as the
            // answer streams.
            Ok(Continue::Final(head)) => early_answer = Some(head),
            Err(HeadFailure::Timeout) => {
                let cause = ConnectError::PingTimeout { member: member.config.authority.clone(), after: ping };
                return Err(failed(busy, AttemptError::NotSent { request: Box::new(Request::from_parts(parts, body)), cause }));
            }
            Err(HeadFailure::Broken(reason)) => return Err(failed(busy, broken(reason, parts))),
        }
    }
    let upload = Upload::new(body, framing, timeout, Arc::clone(member));
    let upgrading = parts.headers.contains_key(http::header::UPGRADE);
    let (head, upload) = match early_answer {
        Some(head) => (head, Some(upload)),
        None => match send_and_read(&mut lease, upload, &parts.method, upgrading, timeout, member).await {
            Ok(answer) => answer,
            Err(SendFailure::Client(e)) => return Err(AttemptError::Client(e)),
            Err(SendFailure::Timeout) => return Err(failed(busy, AttemptError::Timeout { after: timeout })),
            Err(SendFailure::Broken(reason)) => return Err(failed(busy, broken(reason, parts))),
        },
    };
    busy.answered(head.status.as_u16());
    let ResponseHead { status, fields, framing, mut keep_alive } = head;
    let mut upload = upload.filter(|u| !u.is_done());
    if upload.is_some() && (status.as_u16() >= 400 || status == StatusCode::SWITCHING_PROTOCOLS) {
        // The member refused the request before reading all of it: the rest is not sent, and
        // the connection, out of step, is closed after the answer.
        upload = None;
        keep_alive = false;
    }
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return tunnel::switched(lease, busy, Arc::clone(member), fields.into_map()).map(MemberAnswer::Switched).map_err(|reason| broken(reason, parts));
    }
    let body = SpareBox::new(|| MemberBody::new(lease, framing, keep_alive, Arc::clone(member), busy, upload));
    Ok(MemberAnswer::Response(MemberResponse { status, head: fields, body }))
}

/// Reports a failed attempt to the balancer's method (when it asked to hear) and hands the
/// error on.
fn failed<B: Body>(busy: BusyGuard<Arc<MemberPool>>, e: AttemptError<B>) -> AttemptError<B> {
    if let Some(outcome) = e.outcome() {
        busy.failed(outcome);
    }
    e
}

impl<B: Body> AttemptError<B> {
    /// How the attempt ended, as the lbmethod hears it; `None` when the client, not the
    /// member, ended it.
    fn outcome(&self) -> Option<AttemptOutcome> {
        match self {
            AttemptError::NotSent { .. } => Some(AttemptOutcome::ConnectFailed),
            AttemptError::Broken { .. } => Some(AttemptOutcome::Broken),
            AttemptError::Timeout { .. } => Some(AttemptOutcome::TimedOut),
            AttemptError::Client(_) => None,
        }
    }
}

/// How much of an answer is read and held back while the request body is still being sent.
const HOLD_LIMIT: usize = 64 * 1024;

/// Why no response head came while the body was being sent.
enum SendFailure<E> {
    /// The client's body failed: the member never sees a complete request.
    Client(E),
    /// No head within the member's `timeout` after the body was sent.
    Timeout,
    /// The connection broke.
    Broken(String),
}

/// Sends the body while waiting for the response head; returns the head and, when the member
/// answered before the body was all sent, the rest of the upload.
async fn send_and_read<B: OutgoingBody>(
    lease: &mut Lease,
    upload: Upload<B>,
    method: &Method,
    upgrading: bool,
    timeout: Duration,
    member: &ProxyMember,
) -> Result<(ResponseHead, Option<Upload<B>>), SendFailure<B::Error>> {
    if upload.is_done() {
        // No body (most requests): only the head to wait for.
        return match read_head(lease, method, upgrading, timeout, member).await {
            Ok(head) => Ok((head, None)),
            Err(HeadFailure::Timeout) => Err(SendFailure::Timeout),
            Err(HeadFailure::Broken(reason)) => Err(SendFailure::Broken(reason)),
        };
    }
    // Boxed: every exchange's future has room for its largest path, and each layer of the
    // request path above holds (and moves) that future; most requests have no body.
    Box::pin(send_body_and_read(lease, upload, method, upgrading, timeout, member)).await
}

/// [`send_and_read`] for a request with a body.
async fn send_body_and_read<B: OutgoingBody>(
    lease: &mut Lease,
    mut upload: Upload<B>,
    method: &Method,
    upgrading: bool,
    timeout: Duration,
    member: &ProxyMember,
) -> Result<(ResponseHead, Option<Upload<B>>), SendFailure<B::Error>> {
    let conn = &mut lease.conn;
    // Reads and writes go on side by side (a TLS stream cannot be split without a lock;
    // the lock is only ever taken by this one task).
    let (mut reader, mut writer) = tokio::io::split(&mut conn.stream);
    let buf = &mut conn.buf;
    let mut uploading = true;
    let mut upload_failed: Option<String> = None;
    let head = {
        let mut read = std::pin::pin!(read_head_from(&mut reader, buf, method, upgrading, member));
        // The head's deadline runs once the body is sent (while sending, a member that stops
        // reading fails the upload after `timeout` instead).
        let mut head_deadline: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
        std::future::poll_fn(|cx| {
            if uploading {
                match upload.poll_send(cx, &mut writer) {
                    Poll::Ready(Ok(())) => uploading = false,
                    Poll::Ready(Err(BodyWriteError::Client(e))) => return Poll::Ready(Err(SendFailure::Client(e))),
                    // The member may have answered and stopped reading: keep reading its answer.
                    Poll::Ready(Err(BodyWriteError::Member(e))) => {
                        uploading = false;
                        upload_failed = Some(format!("writing the request body: {e}"));
                    }
                    Poll::Pending => {}
                }
            }
            if let Poll::Ready(head) = read.as_mut().poll(cx) {
                return Poll::Ready(head.map_err(SendFailure::Broken));
            }
            if !uploading {
                let deadline = head_deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if deadline.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(SendFailure::Timeout));
                }
            }
            Poll::Pending
        })
        .await
    };
    let mut head = match (head, upload_failed) {
        // The answer came, but the connection cannot carry another request.
        (Ok(mut head), Some(_)) => {
            head.keep_alive = false;
            return Ok((head, None));
        }
        (Ok(head), None) => head,
        (Err(SendFailure::Broken(reason)), Some(write)) => return Err(SendFailure::Broken(format!("{write}; {reason}"))),
        (Err(e), _) => return Err(e),
    };
    if !uploading || head.status.as_u16() >= 400 {
        return Ok((head, uploading.then_some(upload)));
    }
    // The member answers while it reads. Hold the answer back while the body is still being
    // sent, reading up to HOLD_LIMIT bytes of it, so a client body that then fails (too
    // large, too slow) still gets its 413 or 408 rather than a cut answer; an answer that
    // outgrows the limit streams at once, with the upload sent by a task of its own (`pump`).
    let held = std::future::poll_fn(|cx| {
        loop {
            match upload.poll_send(cx, &mut writer) {
                Poll::Ready(Ok(())) => return Poll::Ready(Ok(true)),
                Poll::Ready(Err(BodyWriteError::Client(e))) => return Poll::Ready(Err(SendFailure::Client(e))),
                Poll::Ready(Err(BodyWriteError::Member(_))) => return Poll::Ready(Ok(false)),
                Poll::Pending => {}
            }
            if buf.len() >= HOLD_LIMIT {
                return Poll::Ready(Ok(true));
            }
            let mut chunk = [0u8; 8192];
            let mut read = tokio::io::ReadBuf::new(&mut chunk);
            match tokio::io::AsyncRead::poll_read(std::pin::Pin::new(&mut reader), cx, &mut read) {
                // The member closed: what it sent is the answer.
                Poll::Ready(Ok(())) if read.filled().is_empty() => return Poll::Ready(Ok(true)),
                Poll::Ready(Ok(())) => {
                    member.add_read(read.filled().len() as u64);
                    buf.extend_from_slice(read.filled());
                }
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(true)),
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await?;
    if !held {
        // The member stopped reading the body: the connection is out of step.
        head.keep_alive = false;
        return Ok((head, None));
    }
    Ok((head, (!upload.is_done()).then_some(upload)))
}
