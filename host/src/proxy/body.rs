//! Bodies that stream through the proxy without being buffered, and count as they go.
//!
//! [`RequestBody`] carries the client's body to a member and adds its bytes to the member's
//! `transferred`. [`ResponseBody`] carries a member's body to the client, adds to `read`, keeps
//! the member's busy count raised until it ends, stops a member that stalls longer than its
//! `timeout` between chunks, and puts the connection back in the pool once the member's body
//! has been read to the end (a body dropped half-read closes its connection instead).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::Sleep;

use super::ProxyMember;
use super::pool::PooledConn;
use crate::balancer::BusyGuard;

/// Errors a body can end with.
pub(crate) type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// The body of a request on its way to a member.
#[derive(Debug)]
pub(crate) enum RequestBody {
    /// The client's body, streamed; bytes are counted against `member` once one is chosen.
    Client { inner: Incoming, member: Option<Arc<ProxyMember>> },
    /// No body (used when a bodiless idempotent request is sent again).
    Empty,
}

impl RequestBody {
    /// Counts the bytes still to come against `member` (the one this attempt goes to).
    pub(crate) fn count_for(&mut self, target: &Arc<ProxyMember>) {
        if let RequestBody::Client { member, .. } = self {
            *member = Some(Arc::clone(target));
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            RequestBody::Client { inner, member } => {
                let frame = ready!(Pin::new(inner).poll_frame(cx));
                if let (Some(Ok(f)), Some(m)) = (&frame, member) {
                    if let Some(data) = f.data_ref() {
                        m.add_transferred(data.len() as u64);
                    }
                }
                Poll::Ready(frame)
            }
            RequestBody::Empty => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Client { inner, .. } => inner.is_end_stream(),
            RequestBody::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Client { inner, .. } => inner.size_hint(),
            RequestBody::Empty => SizeHint::with_exact(0),
        }
    }
}

/// The body of a response on its way to the client.
#[derive(Debug)]
pub enum ResponseBody {
    /// A member's body.
    Member(MemberBody),
    /// A body the proxy made itself (error pages).
    Local(Option<Bytes>),
}

impl ResponseBody {
    /// A body of fixed bytes.
    pub(crate) fn local(bytes: impl Into<Bytes>) -> Self {
        ResponseBody::Local(Some(bytes.into()))
    }
}

/// A member's response body, counted and timed.
#[derive(Debug)]
pub struct MemberBody {
    inner: Incoming,
    member: Arc<ProxyMember>,
    /// Returned to the pool at the end of the body; `None` once returned.
    conn: Option<PooledConn>,
    _busy: BusyGuard<Arc<super::MemberPool>>,
    timeout: Duration,
    stall: Option<Pin<Box<Sleep>>>,
}

impl MemberBody {
    pub(crate) fn new(inner: Incoming, member: Arc<ProxyMember>, conn: PooledConn, busy: BusyGuard<Arc<super::MemberPool>>) -> Self {
        let timeout = member.conn.settings().timeout;
        let mut body = Self { inner, member, conn: Some(conn), _busy: busy, timeout, stall: None };
        // An empty body (HEAD, 204, 304, Content-Length: 0) may never be polled: release now.
        if body.inner.is_end_stream() {
            body.release();
        }
        body
    }

    fn release(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.member.conn.checkin(conn);
        }
    }
}

/// The member sent nothing for longer than its `timeout` in the middle of a body.
#[derive(Debug, thiserror::Error)]
#[error("member {member} stalled for {timeout:?} in the middle of a response body")]
struct BodyStalled {
    member: String,
    timeout: Duration,
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let body = match self.get_mut() {
            ResponseBody::Local(bytes) => return Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            ResponseBody::Member(body) => body,
        };
        match Pin::new(&mut body.inner).poll_frame(cx) {
            Poll::Pending => {
                // Arm the stall timer only when the member makes us wait.
                let timeout = body.timeout;
                let stall = body.stall.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if stall.as_mut().poll(cx).is_ready() {
                    body.conn = None;
                    let err = BodyStalled { member: body.member.config.url.clone(), timeout };
                    return Poll::Ready(Some(Err(Box::new(err))));
                }
                Poll::Pending
            }
            Poll::Ready(Some(Ok(frame))) => {
                body.stall = None;
                if let Some(data) = frame.data_ref() {
                    body.member.add_read(data.len() as u64);
                }
                if body.inner.is_end_stream() {
                    body.release();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                body.conn = None;
                Poll::Ready(Some(Err(Box::new(e))))
            }
            Poll::Ready(None) => {
                body.release();
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Local(bytes) => bytes.is_none(),
            ResponseBody::Member(body) => body.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Local(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            ResponseBody::Member(body) => body.inner.size_hint(),
        }
    }
}
