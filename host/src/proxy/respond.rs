//! The one place where a failed request becomes a response: 404, 405, 502, 503 or 504.
//!
//! Every error carries where it came from (the client, a member, the proxy) so the status and
//! the log line say the same thing.

use std::time::Duration;

use http::{Response, StatusCode, header};

use super::body::ResponseBody;
use super::upstream::ConnectError;

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
}

impl ProxyError {
    pub(crate) fn unavailable(target: &str, reason: impl ToString) -> Self {
        ProxyError::Unavailable { target: target.to_string(), reason: reason.to_string() }
    }

    pub(crate) fn from_connect(target: &str, e: &ConnectError) -> Self {
        Self::unavailable(target, e)
    }

    fn status(&self) -> StatusCode {
        match self {
            ProxyError::NoRoute { .. } => StatusCode::NOT_FOUND,
            ProxyError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ProxyError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::MemberBroke { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::MemberTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        }
    }
}

/// The response a client gets for `error`; the error is logged here, once.
pub(crate) fn error_response(error: &ProxyError) -> Response<ResponseBody> {
    let status = error.status();
    match status {
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED | StatusCode::BAD_REQUEST => {
            tracing::debug!(status = status.as_u16(), error = %error, "request refused");
        }
        _ => tracing::warn!(status = status.as_u16(), error = %error, "request failed"),
    }
    let text = format!("{} {}\n", status.as_u16(), status.canonical_reason().unwrap_or(""));
    let mut response = Response::new(ResponseBody::local(text));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain; charset=utf-8"));
    if status == StatusCode::METHOD_NOT_ALLOWED {
        headers.insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, TRACE"));
    }
    response
}
