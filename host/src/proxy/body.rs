//! Bodies that stream through the proxy without being buffered.
//!
//! [`RequestBody`] carries the client's body to a member (the member client counts its
//! bytes). [`ResponseBody`] is what the client gets: a member's body (see
//! [`MemberBody`]) with the member's header lines as they came, or a page the proxy made
//! itself.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use http_body::{Body, Frame, SizeHint};

use super::limits::{ClientBody, ClientBodyError};
use crate::codec::response::RawHeaders;
use crate::spare_box::SpareBox;
use crate::upstream::MemberBody;

/// Errors a body can end with.
pub(crate) type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// The body of a request on its way to a member.
#[derive(Debug)]
pub(crate) enum RequestBody {
    /// The client's body, streamed. Boxed: most requests have none, and a request is moved
    /// through several layers of async state on its way to a member (each move copies the
    /// whole value).
    Client(Box<ClientBody>),
    /// No body (used when a bodiless idempotent request is sent again).
    Empty,
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        match self.get_mut() {
            RequestBody::Client(inner) => Pin::new(inner.as_mut()).poll_frame(cx),
            RequestBody::Empty => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Client(inner) => inner.is_end_stream(),
            RequestBody::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Client(inner) => inner.size_hint(),
            RequestBody::Empty => SizeHint::with_exact(0),
        }
    }
}

/// The body of a response on its way to the client.
#[derive(Debug)]
// The large variant is the common one: boxing it would allocate on every response.
#[allow(clippy::large_enum_variant)]
pub enum ResponseBody {
    /// A member's body, and its header lines as the member sent them until something needs
    /// them as a map ([`materialize_headers`]); meanwhile the response's own map holds only
    /// what the proxy added. Most answers go to an HTTP/1 client as they came, and building a
    /// map of them would cost more than the rest of reading the head.
    Member {
        /// The member's header lines, while they are kept raw.
        head: Option<RawHeaders>,
        /// The body (boxed as the member's answer brought it).
        body: SpareBox<MemberBody>,
    },
    /// A body the proxy made itself (error pages).
    Local(Option<Bytes>),
}

impl ResponseBody {
    /// A body of fixed bytes.
    pub(crate) fn local(bytes: impl Into<Bytes>) -> Self {
        ResponseBody::Local(Some(bytes.into()))
    }

    /// The first value of response header `name`: among the member's lines kept with the
    /// body, else in `headers` (what the proxy added, or everything once materialised).
    pub(crate) fn header(&self, headers: &HeaderMap, name: &http::HeaderName) -> Option<HeaderValue> {
        let raw = match self {
            ResponseBody::Member { head, .. } => head.as_ref().and_then(|raw| raw.get(name)),
            ResponseBody::Local(_) => None,
        };
        raw.or_else(|| headers.get(name).cloned())
    }

    /// The member's body, when this is one.
    pub(crate) fn member_mut(&mut self) -> Option<&mut MemberBody> {
        match self {
            ResponseBody::Member { body, .. } => Some(&mut **body),
            ResponseBody::Local(_) => None,
        }
    }

    /// Takes the member's header lines when they are still kept with its body: they come
    /// before the response's own map (which then holds only what the proxy added).
    pub(crate) fn take_member_headers(&mut self) -> Option<RawHeaders> {
        match self {
            ResponseBody::Member { head, .. } => head.take(),
            ResponseBody::Local(_) => None,
        }
    }
}

/// Gives `response` all its headers as a map: the member's lines kept with the body, then
/// what the proxy added. Whatever reads or edits an answer's headers as a map calls this
/// first (hyper's writer, header rewriting).
pub(crate) fn materialize_headers(headers: &mut HeaderMap, body: &mut ResponseBody) {
    let Some(raw) = body.take_member_headers() else { return };
    let added = std::mem::replace(headers, raw.into_map());
    for (name, value) in &added {
        headers.append(name.clone(), value.clone());
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            ResponseBody::Local(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            ResponseBody::Member { body, .. } => Pin::new(&mut **body).poll_frame(cx).map_err(|e| Box::new(e) as BodyError),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Local(bytes) => bytes.is_none(),
            ResponseBody::Member { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Local(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            ResponseBody::Member { body, .. } => body.size_hint(),
        }
    }
}
