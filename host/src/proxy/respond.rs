//! The one place where a failed request becomes a response: 400, 404, 405, 408, 413, 414,
//! 431, 502, 503 or 504 — including the few pages the connection guard writes itself
//! ([`raw_page`]).
//!
//! Every error carries where it came from (the client, a member, the proxy) so the status and
//! the log line say the same thing.

use std::time::Duration;

use http::{Response, StatusCode, header};

use super::body::ResponseBody;
use crate::upstream::ConnectError;

/// Why the proxy could not relay a request.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProxyError {
    /// No route matches, or the matching route excludes the path.
    #[error("no route for {path}")]
    NoRoute { path: String },
    /// CONNECT (and other methods a reverse proxy does not relay).
    #[error("method {method} is not relayed")]
    MethodNotAllowed { method: http::Method },
    /// The request cannot be expressed to a member (e.g. a path that does not form a URI).
    #[error("bad request: {reason}")]
    BadRequest { reason: String },
    /// No member could be had: all unusable, the method refused, or connects failed.
    #[error("no member of {target} is available: {reason}")]
    Unavailable { target: String, reason: String },
    /// The member was reached but the exchange broke before a response head arrived.
    #[error("member {member} broke the exchange: {reason}")]
    MemberBroke { member: String, reason: String },
    /// The member sent no response head within its `timeout`.
    #[error("member {member} sent no response within {after:?}")]
    MemberTimeout { member: String, after: Duration },
    /// No connection to the member within its `connectiontimeout` (after any failover).
    #[error("connecting to a member of {target} timed out: {reason}")]
    ConnectTimeout { target: String, reason: String },
    /// The client's request breaks HTTP's framing or syntax rules; the connection is closed.
    #[error("malformed request: {reason}")]
    Malformed { reason: String },
    /// The request line is longer than `limits.request_line`.
    #[error("request line of {len} bytes exceeds {limit}")]
    UriTooLong { len: usize, limit: usize },
    /// Too many header fields, or too many bytes of them.
    #[error("request header fields too large: {reason}")]
    HeaderTooLarge { reason: String },
    /// The body is larger than `limits.body` (declared, or found while streaming).
    #[error("request body exceeds {limit} bytes")]
    BodyTooLarge { limit: u64 },
    /// The client was too slow sending its body.
    #[error("client too slow: {reason}")]
    ClientTimeout { reason: String },
    /// The client's body broke off or was malformed mid-way.
    #[error("client body failed: {reason}")]
    ClientBody { reason: String },
}

impl ProxyError {
    pub(crate) fn unavailable(target: &str, reason: impl ToString) -> Self {
        ProxyError::Unavailable { target: target.to_string(), reason: reason.to_string() }
    }

    pub(crate) fn from_connect(target: &str, e: &ConnectError) -> Self {
        match e {
            ConnectError::Timeout { .. } => ProxyError::ConnectTimeout { target: target.to_string(), reason: e.to_string() },
            // The member is there but cannot be trusted (or spoken to): a gateway error.
            ConnectError::Tls { member, .. } => ProxyError::MemberBroke { member: member.to_string(), reason: e.to_string() },
            _ => Self::unavailable(target, e),
        }
    }

    /// Whether the client connection must be closed after this answer: the request was
    /// refused before (all of) its body was read, or its framing cannot be trusted.
    fn closes(&self) -> bool {
        matches!(
            self,
            ProxyError::Malformed { .. }
                | ProxyError::MethodNotAllowed { .. }
                | ProxyError::UriTooLong { .. }
                | ProxyError::HeaderTooLarge { .. }
                | ProxyError::BodyTooLarge { .. }
                | ProxyError::ClientTimeout { .. }
                | ProxyError::ClientBody { .. }
        )
    }

    fn status(&self) -> StatusCode {
        match self {
            ProxyError::NoRoute { .. } => StatusCode::NOT_FOUND,
            ProxyError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ProxyError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::MemberBroke { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::MemberTimeout { .. } | ProxyError::ConnectTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Malformed { .. } | ProxyError::ClientBody { .. } => StatusCode::BAD_REQUEST,
            ProxyError::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            ProxyError::HeaderTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ProxyError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::ClientTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
        }
    }
}

/// The response a client gets for `error`; the error is logged here, once.
pub(crate) fn error_response(error: &ProxyError) -> Response<ResponseBody> {
    let status = error.status();
    if status.is_client_error() {
        tracing::debug!(status = status.as_u16(), error = %error, "request refused");
    } else {
        tracing::warn!(status = status.as_u16(), error = %error, "request failed");
    }
    let mut response = Response::new(ResponseBody::local(page_text(status)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain; charset=utf-8"));
    if error.closes() {
        headers.insert(header::CONNECTION, header::HeaderValue::from_static("close"));
    }
    if status == StatusCode::METHOD_NOT_ALLOWED {
        headers.insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, TRACE"));
    }
    response
}

fn page_text(status: StatusCode) -> String {
    format!("{} {}\n", status.as_u16(), status.canonical_reason().unwrap_or(""))
}

/// A complete HTTP/1.1 error response with `Connection: close`, for the connection guard to
/// write itself (408 for a head that took too long, 414 and 431 for heads over a limit).
pub fn raw_page(status: StatusCode) -> bytes::Bytes {
    let text = page_text(status);
    format!(
        "HTTP/1.1 {} {}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        text.len()
    )
    .into()
}
