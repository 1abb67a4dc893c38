//! Request checks made before anything is forwarded, on the head hyper parsed (HTTP/1 and
//! HTTP/2 alike) or the fast path's header lines (read the same way through a
//! [`HeaderView`]), plus what the raw-head scanner found on an HTTP/1 connection.
//!
//! The rules (RFC 9110, RFC 9112, RFC 9113), each answered with its own status and, for
//! everything that leaves the body unread or the framing in doubt, `Connection: close`:
//! - anything the scanner found: both Content-Length and Transfer-Encoding, a
//!   Transfer-Encoding other than exactly `chunked`, bare LF or CR, obs-fold, whitespace
//!   before a colon… → 400; request line or header block over its limit → 414 / 431;
//! - the request line (method and target) longer than `limits.request_line` → 414;
//! - more than `limits.header_fields` fields, or more than `limits.header_size` bytes → 431;
//! - HTTP/1.1 without exactly one Host, or with two on any version; a Host that is not a
//!   valid `host[:port]` (spaces, userinfo, paths…); on HTTP/2 a Host differing from
//!   `:authority` → 400;
//! - a field name with `_` that reads as a framing header (`Content_Length`,
//!   `transfer_encoding`): some back ends fold `_` into `-` → 400;
//! - a declared Content-Length over `limits.body` → 413, before a byte of the body is read.

use http::{Request, Version};

use super::respond::ProxyError;
use crate::config::Limits;
use crate::codec::ascii::eq_ignore_case;
use crate::codec::framing::{Declared, FramingFields};
use crate::codec::lines::HeaderView;
use crate::edge::Violation;

/// Checks `request`, with its header fields `headers` (its map, or the lines of a plain
/// HTTP/1 request), whose raw head produced `raw`, against the rules above.
pub(crate) fn check<B>(request: &Request<B>, headers: HeaderView<'_>, limits: &Limits, raw: Option<Violation>) -> Result<(), ProxyError> {
    if let Some(v) = raw {
        return Err(match v {
            Violation::RequestLineTooLong => ProxyError::UriTooLong { len: limits.request_line + 1, limit: limits.request_line },
            Violation::HeaderTooLarge => ProxyError::HeaderTooLarge { reason: v.describe().to_string() },
            _ => ProxyError::Malformed { reason: v.describe().to_string() },
        });
    }
    let line = request_line_len(request);
    if line > limits.request_line {
        return Err(ProxyError::UriTooLong { len: line, limit: limits.request_line });
    }
    if headers.len() > limits.header_fields {
        return Err(ProxyError::HeaderTooLarge { reason: format!("{} fields, limit {}", headers.len(), limits.header_fields) });
    }
    // One pass over the fields notes what the Host and framing checks need (a lookup of
    // each name would pass over them four times more).
    let mut size = 0usize;
    let mut hosts = Hosts::default();
    let mut framing = FramingFields::default();
    for (name, value) in headers.iter() {
        // As on the wire: `name: value` and CRLF.
        size += name.len() + value.len() + 4;
        if name.contains(&b'_') && reads_as_framing(name) {
            return Err(malformed(format!("header `{}` reads as a framing header", String::from_utf8_lossy(name))));
        }
        match name.len() {
            4 if eq_ignore_case(name, b"host") => hosts.note(value),
            // Content-Length and Transfer-Encoding; a name's values keep their order, as
            // in a map, and the two names do not bear on each other's noting.
            14 | 17 => framing.note(name, value),
            _ => {}
        }
    }
    if size > limits.header_size {
        return Err(ProxyError::HeaderTooLarge { reason: format!("{size} bytes of header fields, limit {}", limits.header_size) });
    }
    check_host(request, hosts)?;
    check_framing(&framing, limits)
}

/// The Host fields of a request: the first one's value, and whether there was another.
#[derive(Default)]
struct Hosts<'a> {
    first: Option<&'a [u8]>,
    more: bool,
}

impl<'a> Hosts<'a> {
    fn note(&mut self, value: &'a [u8]) {
        match self.first {
            Some(_) => self.more = true,
            None => self.first = Some(value),
        }
    }
}

fn malformed(reason: impl Into<String>) -> ProxyError {
    ProxyError::Malformed { reason: reason.into() }
}

/// The request line's length as the client sent it (`METHOD SP target SP HTTP/1.1`).
fn request_line_len<B>(request: &Request<B>) -> usize {
    let uri = request.uri();
    let mut target = uri.path_and_query().map_or(1, |p| p.as_str().len());
    if request.version() != Version::HTTP_2
        && let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority())
    {
        target += scheme.len() + 3 + authority.as_str().len();
    }
    request.method().as_str().len() + 1 + target + 9
}

/// `content_length`, `Transfer_Encoding`… with `_` read as `-`, in any case.
fn reads_as_framing(name: &[u8]) -> bool {
    let folded = |target: &str| {
        name.len() == target.len() && name.iter().zip(target.bytes()).all(|(a, b)| a.to_ascii_lowercase() == b || (*a == b'_' && b == b'-'))
    };
    folded("content-length") || folded("transfer-encoding") || folded("host") || folded("connection")
}

fn check_host<B>(request: &Request<B>, hosts: Hosts<'_>) -> Result<(), ProxyError> {
    if hosts.more {
        return Err(malformed("more than one Host"));
    }
    let host = hosts.first;
    match (request.version(), host) {
        (Version::HTTP_11, None) => return Err(malformed("HTTP/1.1 request without Host")),
        (_, Some(h)) if !valid_host(h) => {
            return Err(malformed(format!("invalid Host `{}`", String::from_utf8_lossy(h))));
        }
        _ => {}
    }
    if request.version() == Version::HTTP_2
        && let (Some(h), Some(authority)) = (host, request.uri().authority())
        && !h.eq_ignore_ascii_case(authority.as_str().as_bytes())
    {
        return Err(malformed("Host differs from :authority"));
    }
    Ok(())
}

/// The bytes of a reg-name: unreserved, `%` of pct-encoded, sub-delims. A table: this runs
/// on every request's Host, and a search of the punctuation for every byte cost more than the
/// rest of the strict checks.
static REG_NAME: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric();
        b += 1;
    }
    let punctuation = b"-._~%!$&'()*+,;=";
    let mut i = 0;
    while i < punctuation.len() {
        table[punctuation[i] as usize] = true;
        i += 1;
    }
    table
};

/// `uri-host [ ":" port ]`: a reg-name (unreserved, pct-encoded, sub-delims), an IPv4
/// address or a bracketed IP literal; no userinfo, path, spaces or controls.
pub(crate) fn valid_host(host: &[u8]) -> bool {
    if host.is_empty() {
        return false;
    }
    let (name, port) = if host[0] == b'[' {
        let Some(close) = host.iter().position(|&b| b == b']') else { return false };
        let literal = &host[1..close];
        if literal.is_empty() || !literal.iter().all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.') {
            return false;
        }
        (&host[..=close], &host[close + 1..])
    } else {
        match host.iter().position(|&b| b == b':') {
            Some(colon) => (&host[..colon], &host[colon..]),
            None => (host, &host[host.len()..]),
        }
    };
    if name.is_empty() {
        return false;
    }
    let name_ok = name[0] == b'[' || name.iter().all(|&b| REG_NAME[usize::from(b)]);
    let port_ok = match port.split_first() {
        None => true,
        Some((b':', digits)) => digits.len() <= 5 && digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    };
    name_ok && port_ok
}

fn check_framing(framing: &FramingFields, limits: &Limits) -> Result<(), ProxyError> {
    match (framing.declared().map_err(|e| malformed(e.to_string()))?, limits.body) {
        (Declared::Length(n), Some(limit)) if n > limit => Err(ProxyError::BodyTooLarge { limit }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits { request_line: 100, header_fields: 5, header_size: 300, body: Some(1000), connections: 1 }
    }

    fn status_of(request: Request<()>) -> u16 {
        match check(&request, HeaderView::Map(request.headers()), &limits(), None) {
            Ok(()) => 200,
            Err(e) => crate::proxy::respond::error_response(&e).status().as_u16(),
        }
    }

    fn get(uri: &str) -> http::request::Builder {
        Request::get(uri).version(Version::HTTP_11)
    }

    #[test]
    fn host_rules() {
        assert_eq!(status_of(get("/").header("host", "example.com:8080").body(()).expect("request")), 200);
        assert_eq!(status_of(get("/").body(()).expect("request")), 400, "HTTP/1.1 needs a Host");
        assert_eq!(status_of(get("/").version(Version::HTTP_10).body(()).expect("request")), 200);
        assert_eq!(status_of(get("/").header("host", "a").header("host", "a").body(()).expect("request")), 400);
        for bad in ["exa mple.com", "user@example.com", "example.com/x", "example.com:80a", "", ":80", "[::1", "a\tb"] {
            assert_eq!(status_of(get("/").header("host", bad).body(()).expect("request")), 400, "{bad:?}");
        }
        for good in ["[::1]:8080", "127.0.0.1", "xn--bcher-kva.example", "a-b.c_d"] {
            assert_eq!(status_of(get("/").header("host", good).body(()).expect("request")), 200, "{good:?}");
        }
        let h2 = Request::get("http://example.com/").version(Version::HTTP_2).header("host", "other.com").body(()).expect("request");
        assert_eq!(status_of(h2), 400);
    }

    #[test]
    fn limits_and_framing() {
        let long = format!("/{}", "a".repeat(100));
        assert_eq!(status_of(get(&long).header("host", "h").body(()).expect("request")), 414);
        let mut many = get("/").header("host", "h");
        for i in 0..5 {
            many = many.header(format!("x-{i}"), "1");
        }
        assert_eq!(status_of(many.body(()).expect("request")), 431);
        assert_eq!(status_of(get("/").header("host", "h").header("x-big", "a".repeat(300)).body(()).expect("request")), 431);
        let post = |cl: &str| Request::post("/").header("host", "h").header("content-length", cl).body(()).expect("request");
        assert_eq!(status_of(post("1000")), 200);
        assert_eq!(status_of(post("1001")), 413);
        assert_eq!(status_of(get("/").header("host", "h").header("transfer-encoding", "gzip, chunked").body(()).expect("request")), 400);
        assert_eq!(status_of(get("/").header("host", "h").header("content_length", "5").body(()).expect("request")), 400);
        assert_eq!(status_of(get("/").header("host", "h").header("x_custom", "5").body(()).expect("request")), 200);
    }
}
