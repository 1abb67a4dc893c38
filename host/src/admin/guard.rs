//! Who may use the balancer manager, and which requests may change state: the bearer token,
//! the per-process nonce, and the Origin/Referer check.

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;

use super::AdminState;
use super::api::error;
use super::httpd::form;

/// Why a request is refused before it is routed.
pub(super) struct Refusal(pub StatusCode, pub String);

impl Refusal {
    /// The JSON answer.
    pub(super) fn response(self) -> Response<Full<Bytes>> {
        error(self.0, self.1)
    }
}

/// A fresh nonce: 32 hex digits, different in every process.
pub(super) fn new_nonce() -> String {
    crate::observe::new_request_id().to_str().map(str::to_string).unwrap_or_default()
}

/// Whether the request carries the token, when one is set (every request, GET included).
pub(super) fn authorised(state: &AdminState, req: &Request<Incoming>) -> Result<(), Refusal> {
    let Some(token) = &state.token else { return Ok(()) };
    let given = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).unwrap_or("");
    if constant_time_eq(given.as_bytes(), token.as_bytes()) {
        Ok(())
    } else {
        Err(Refusal(StatusCode::UNAUTHORIZED, "a bearer token is required (Authorization: Bearer …)".into()))
    }
}

/// Whether a state-changing request may go ahead: it names this process's nonce (header
/// `X-Nonce`, or `nonce` in the query or form body), and any Origin or Referer a browser sent
/// names this listener (the Host it was asked for).
pub(super) fn may_change(state: &AdminState, parts: &Parts, body: &Bytes) -> Result<(), Refusal> {
    let from_header = parts.headers.get("x-nonce").and_then(|v| v.to_str().ok()).map(str::to_string);
    let from_query = parts.uri.query().and_then(|q| form(q).into_iter().find(|(k, _)| k == "nonce").map(|(_, v)| v));
    let is_form = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    let from_form = is_form
        .then(|| std::str::from_utf8(body).ok().and_then(|b| form(b).into_iter().find(|(k, _)| k == "nonce").map(|(_, v)| v)))
        .flatten();
    let nonce = from_header.or(from_query).or(from_form).unwrap_or_default();
    if !constant_time_eq(nonce.as_bytes(), state.nonce.as_bytes()) {
        return Err(Refusal(StatusCode::FORBIDDEN, "a state change needs this process's nonce (X-Nonce header or nonce parameter; GET /api/balancers shows it)".into()));
    }
    let host = parts.headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    for name in [header::ORIGIN, header::REFERER] {
        if let Some(value) = parts.headers.get(&name).and_then(|v| v.to_str().ok()) {
            let authority = value.split_once("://").map_or("", |(_, rest)| rest.split('/').next().unwrap_or(""));
            if authority.is_empty() || !authority.eq_ignore_ascii_case(host) {
                return Err(Refusal(StatusCode::FORBIDDEN, format!("{name} `{value}` is not this manager")));
            }
        }
    }
    Ok(())
}

/// Compares without stopping at the first difference (the time does not tell how much of a
/// guess was right).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn compares_whole_strings() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret-and-more"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
