//! The checks the host applies to a plugin's answers, written once so the native test
//! harness ([`testing`](crate::testing)) refuses exactly what the proxy refuses.
//!
//! Each check returns `Err` with the sentence the host logs. The host may call these
//! functions itself; they allocate only to build an error.

/// Headers a health-check probe may not set: the host writes them itself.
pub const PROBE_RESERVED_HEADERS: [&str; 4] = ["host", "content-length", "transfer-encoding", "connection"];

/// Headers a header-rewrite edit may not touch: message framing, hop-by-hop headers and Host.
pub const REWRITE_PROTECTED_HEADERS: [&str; 9] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
    "host",
];

/// Whether `b` may appear in an RFC 9110 token (a method or a header name).
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether `s` is a non-empty RFC 9110 token.
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// An HTTP method: a token.
pub fn check_method(method: &str) -> Result<(), String> {
    if is_token(method) { Ok(()) } else { Err(format!("method {method:?} is not a valid HTTP method token")) }
}

/// A header name: a token.
pub fn check_header_name(name: &str) -> Result<(), String> {
    if is_token(name) { Ok(()) } else { Err(format!("header name {name:?} is not a valid token")) }
}

/// A header value: no control characters (CR, LF, NUL, the others below 0x20 and DEL);
/// horizontal tab is allowed, as RFC 9110 allows it.
pub fn check_header_value(name: &str, value: &str) -> Result<(), String> {
    match value.bytes().find(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        None => Ok(()),
        Some(b) => Err(format!("value of header {name:?} contains the control character 0x{b:02x}")),
    }
}

/// A request target in origin form (RFC 9112 §3.2.1): `/` then path characters, an optional
/// `?query`, no fragment, no spaces, only RFC 3986 characters, percent signs followed by two
/// hex digits.
pub fn check_origin_form(path: &str) -> Result<(), String> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(format!("path {path:?} is not in origin form (it must start with `/`)"));
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
            if !hex {
                return Err(format!("path {path:?} has a `%` not followed by two hex digits"));
            }
            i += 3;
            continue;
        }
        let ok = b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?".contains(&b);
        if !ok {
            return Err(format!("path {path:?} contains {:?}, which is not allowed in a request target", char::from(b)));
        }
        i += 1;
    }
    Ok(())
}

/// A header a health-check probe adds: a valid name and value, and not one the host writes.
pub fn check_probe_header(name: &str, value: &str) -> Result<(), String> {
    check_header_name(name)?;
    if PROBE_RESERVED_HEADERS.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(format!("a probe may not set {name:?}: the host writes it"));
    }
    check_header_value(name, value)
}

/// The header an edit names (and its value, for set and append): a valid name, not a framing
/// or hop-by-hop header nor Host, and a valid value.
pub fn check_edit(name: &str, value: Option<&str>) -> Result<(), String> {
    check_header_name(name)?;
    if REWRITE_PROTECTED_HEADERS.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(format!("{name:?} is a framing, hop-by-hop or Host header, which plugins may not edit"));
    }
    match value {
        Some(value) => check_header_value(name, value),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert!(is_token("GET") && is_token("x-my_header.1") && is_token("M-SEARCH"));
        assert!(!is_token("") && !is_token("GET ") && !is_token("a:b") && !is_token("é"));
    }

    #[test]
    fn origin_form() {
        for ok in ["/", "/app/health", "/a?b=c&d=%2F", "/~user/;p=1", "/a:b@c"] {
            assert_eq!(check_origin_form(ok), Ok(()), "{ok}");
        }
        for bad in ["", "*", "health", "http://x/", "/a b", "/a#f", "/%zz", "/%2", "/a\r\n", "/ä"] {
            assert!(check_origin_form(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn values() {
        assert!(check_header_value("x", "a\tb c").is_ok());
        for bad in ["a\rb", "a\nb", "a\0b", "\x1b[0m", "a\x7f"] {
            assert!(check_header_value("x", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reserved_and_protected_names() {
        assert!(check_probe_header("Host", "x").is_err());
        assert!(check_probe_header("content-LENGTH", "1").is_err());
        assert!(check_probe_header("User-Agent", "switchyard").is_ok());
        assert!(check_edit("Keep-Alive", None).is_err());
        assert!(check_edit("TE", Some("trailers")).is_err());
        assert!(check_edit("location", Some("/x")).is_ok());
        assert!(check_edit("bad name", None).is_err());
        assert!(check_edit("x", Some("a\nSet-Cookie: evil")).is_err());
    }
}
