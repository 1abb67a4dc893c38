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
    /// The JSON answer; a 401 names the schemes that are accepted, so a browser asks for the
    /// token (Basic: any user name, the token as the password).
    pub(super) fn response(self) -> Response<Full<Bytes>> {
        let unauthorised = self.0 == StatusCode::UNAUTHORIZED;
        let mut r = error(self.0, self.1);
        // A refused client does not keep one of the manager's few connections.
        r.headers_mut().insert(header::CONNECTION, http::HeaderValue::from_static("close"));
        if unauthorised {
            for scheme in ["Bearer realm=\"switchyard\"", "Basic realm=\"switchyard balancer manager\", charset=\"UTF-8\""] {
                r.headers_mut().append(header::WWW_AUTHENTICATE, http::HeaderValue::from_static(scheme));
            }
        }
        r
    }
}

/// A fresh nonce: 128 bits from the OS's random source, as 32 hex digits. (Not derived from
/// anything the proxy shows elsewhere, such as request ids.)
pub(super) fn new_nonce() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether the request carries the token, when one is set (every request, GET included).
/// Without a token (loopback only), the request must name this listener by a loopback Host:
/// a page elsewhere that re-points its own name at 127.0.0.1 (DNS rebinding) gets nothing.
pub(super) fn authorised(state: &AdminState, req: &Request<Incoming>) -> Result<(), Refusal> {
    let Some(token) = &state.token else {
        let host = req.headers().get(header::HOST).and_then(|v| v.to_str().ok()).or_else(|| req.uri().authority().map(|a| a.as_str())).unwrap_or("");
        let port = state.addr.port();
        let ours = [state.addr.to_string(), format!("127.0.0.1:{port}"), format!("localhost:{port}"), format!("[::1]:{port}")];
        return if ours.iter().any(|o| o.eq_ignore_ascii_case(host)) {
            Ok(())
        } else {
            Err(Refusal(StatusCode::FORBIDDEN, format!("Host `{host}` is not this manager (use {}, or set a token)", state.addr)))
        };
    };
    let given = req.headers().get(header::AUTHORIZATION).map(|v| presented_token(v.as_bytes())).unwrap_or_default();
    if constant_time_eq(&given, token.as_bytes()) {
        Ok(())
    } else {
        Err(Refusal(StatusCode::UNAUTHORIZED, "the admin token is required (Authorization: Bearer TOKEN, or Basic with the token as the password)".into()))
    }
}

/// The token an `Authorization` header presents: `Bearer TOKEN` (scripts), or `Basic` with
/// the token as the password and any user name (what a browser sends once it has asked).
/// Schemes are case-insensitive (RFC 9110); anything else presents nothing.
fn presented_token(value: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let Some(space) = value.iter().position(|&b| b == b' ') else { return Vec::new() };
    let (scheme, credentials) = (&value[..space], value[space + 1..].trim_ascii());
    if scheme.eq_ignore_ascii_case(b"bearer") {
        return credentials.to_vec();
    }
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return Vec::new();
    }
    let pair = base64::engine::general_purpose::STANDARD.decode(credentials).unwrap_or_default();
    pair.iter().position(|&b| b == b':').map(|colon| pair[colon + 1..].to_vec()).unwrap_or_default()
}

/// Whether a state-changing request may go ahead: it names this process's nonce (header
/// `X-Nonce`, or `nonce` in the query or form body), and any Origin or Referer a browser sent
/// names this listener (the Host it was asked for).
pub(super) fn may_change(state: &AdminState, parts: &Parts, body: Option<&Bytes>) -> Result<(), Refusal> {
    let from_header = parts.headers.get("x-nonce").and_then(|v| v.to_str().ok()).map(str::to_string);
    let from_query = parts.uri.query().and_then(|q| form(q).into_iter().find(|(k, _)| k == "nonce").map(|(_, v)| v));
    let is_form = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    let from_form = body
        .filter(|_| is_form)
        .and_then(|body| std::str::from_utf8(body).ok().and_then(|b| form(b).into_iter().find(|(k, _)| k == "nonce").map(|(_, v)| v)));
    let nonce = from_header.or(from_query).or(from_form).unwrap_or_default();
    if !constant_time_eq(nonce.as_bytes(), state.nonce.as_bytes()) {
        return Err(Refusal(StatusCode::FORBIDDEN, "a state change needs this process's nonce (X-Nonce header or nonce parameter; GET /api/balancers shows it)".into()));
    }
    let host = parts.headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    for name in [header::ORIGIN, header::REFERER] {
        if let Some(value) = parts.headers.get(&name).and_then(|v| v.to_str().ok()) {
            // The listener speaks plain HTTP: a page of this manager has an http:// origin.
            let authority = value.split_once("://").filter(|(scheme, _)| scheme.eq_ignore_ascii_case("http")).map_or("", |(_, rest)| rest.split('/').next().unwrap_or(""));
            if authority.is_empty() || !authority.eq_ignore_ascii_case(host) {
                return Err(Refusal(StatusCode::FORBIDDEN, format!("{name} `{value}` is not this manager")));
            }
        }
    }
    Ok(())
}

/// Whether the nonce comes in the header or the query, so it can be checked before the body
/// is read.
pub(super) fn nonce_outside_body(parts: &Parts) -> bool {
    parts.headers.contains_key("x-nonce") || parts.uri.query().is_some_and(|q| form(q).iter().any(|(k, _)| k == "nonce"))
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
    use super::{constant_time_eq, presented_token};

    #[test]
    fn compares_whole_strings() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret-and-more"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    #[test]
    fn the_token_comes_as_bearer_or_as_basics_password() {
        assert_eq!(presented_token(b"Bearer s3cret"), b"s3cret");
        assert_eq!(presented_token(b"bearer s3cret "), b"s3cret");
        // "admin:s3cret" and ":s3cret:x" (a colon in the password stays in it).
        assert_eq!(presented_token(b"Basic YWRtaW46czNjcmV0"), b"s3cret");
        assert_eq!(presented_token(b"BASIC OnMzY3JldDp4"), b"s3cret:x");
        assert_eq!(presented_token(b"Basic czNjcmV0"), b"", "no colon: no password");
        assert_eq!(presented_token(b"Basic !!!"), b"");
        assert_eq!(presented_token(b"Digest s3cret"), b"");
        assert_eq!(presented_token(b"s3cret"), b"");
    }
}
