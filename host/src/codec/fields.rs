//! Header lines on the wire: which headers are hop-by-hop (they describe one connection, not
//! the message, so they never cross the proxy: the fixed list, and those a Connection header
//! names), the tokens of a Connection header, which request headers the member exchange
//! writes itself (framing, Expect), and how a field line is written.

use http::header::{self, HeaderMap, HeaderName};

use super::ascii::eq_ignore_case;
use super::lines::HeaderView;

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Headers that are hop-by-hop whatever Connection says. A static, not a const: a const
/// array of `HeaderName`s would be built and dropped at every use.
static HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    header::TE,
    header::UPGRADE,
    header::TRANSFER_ENCODING,
    header::PROXY_AUTHENTICATE,
    KEEP_ALIVE,
    PROXY_CONNECTION,
];

/// Whether a header name (any case) is hop-by-hop whatever Connection says. Runs for every
/// line of every member answer, so the length picks the one name to compare.
#[inline]
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    let candidate: &[u8] = match name.len() {
        2 => b"te",
        7 => b"upgrade",
        10 if name[0].eq_ignore_ascii_case(&b'c') => b"connection",
        10 => b"keep-alive",
        16 => b"proxy-connection",
        17 => b"transfer-encoding",
        18 => b"proxy-authenticate",
        _ => return false,
    };
    eq_ignore_case(name, candidate)
}

/// The tokens of a Connection header value, trimmed, empty ones skipped.
pub fn connection_tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(<[u8]>::trim_ascii).filter(|t| !t.is_empty())
}

/// Whether any Connection header of `headers` names `token` (any case).
pub fn connection_has(headers: HeaderView<'_>, token: &[u8]) -> bool {
    headers.get_all(&header::CONNECTION).any(|v| connection_tokens(v).any(|t| eq_ignore_case(t, token)))
}

/// Whether a Connection token names a header to remove: `close` and `keep-alive` name none
/// (a Keep-Alive header is hop-by-hop anyway).
fn names_a_header(token: &[u8]) -> bool {
    !eq_ignore_case(token, b"close") && !eq_ignore_case(token, b"keep-alive")
}

/// Whether some Connection header of `headers` names a header to remove.
pub fn names_other_headers(headers: HeaderView<'_>) -> bool {
    headers.get_all(&header::CONNECTION).flat_map(connection_tokens).any(names_a_header)
}

/// Whether some Connection header of `headers` names the header `name` (any case), which is
/// then hop-by-hop.
pub fn named_by_connection(headers: HeaderView<'_>, name: &[u8]) -> bool {
    headers.get_all(&header::CONNECTION).flat_map(connection_tokens).any(|token| names_a_header(token) && eq_ignore_case(token, name))
}

/// Whether a request header (any case) is one the member exchange writes itself:
/// Content-Length and Transfer-Encoding (the framing is the proxy's own), and Expect.
pub fn is_framing_or_expect(name: &[u8]) -> bool {
    eq_ignore_case(name, b"content-length") || eq_ignore_case(name, b"transfer-encoding") || eq_ignore_case(name, b"expect")
}

/// Removes hop-by-hop headers, including those named in Connection.
///
/// This runs twice per proxied request, so it hashes only what is there: one scan over the
/// names finds the hop-by-hop ones present (usually just Connection), and of the tokens
/// Connection lists only those that are not hop-by-hop anyway cost a removal.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let mut present = [false; HOP_BY_HOP.len()];
    let mut any = false;
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == name) {
            present[i] = true;
            any = true;
        }
    }
    if !any {
        return;
    }
    if present[0] {
        let mut named: Vec<HeaderName> = Vec::new();
        for token in headers.get_all(header::CONNECTION).iter().flat_map(|v| connection_tokens(v.as_bytes())) {
            if !names_a_header(token) {
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(token)
                && !HOP_BY_HOP.contains(&name)
            {
                named.push(name);
            }
        }
        for name in named {
            headers.remove(name);
        }
    }
    for (name, _) in HOP_BY_HOP.iter().zip(present).filter(|(_, here)| *here) {
        headers.remove(name);
    }
}

/// Appends the field line `name: value` and its CRLF to `out`. Names and values come from
/// places that checked them (`HeaderName`, `HeaderValue`, a parsed head): nothing here can
/// end a line early.
pub fn write_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn removes_hop_by_hop_and_what_connection_names() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, X-Secret"),
            ("connection", "close"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("proxy-connection", "keep-alive"),
            ("upgrade", "websocket"),
            ("transfer-encoding", "chunked"),
            ("x-secret", "1"),
            ("accept", "*/*"),
        ] {
            h.append(HeaderName::from_bytes(k.as_bytes()).expect("name"), HeaderValue::from_static(v));
        }
        assert!(connection_has(HeaderView::Map(&h), b"CLOSE"));
        strip_hop_by_hop(&mut h);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["accept"]);
    }

    #[test]
    fn tokens() {
        let t: Vec<&[u8]> = connection_tokens(b" close ,, Upgrade,").collect();
        assert_eq!(t, [&b"close"[..], b"Upgrade"]);
        assert!(is_hop_by_hop(b"Transfer-Encoding") && !is_hop_by_hop(b"x-a"));
        for name in &HOP_BY_HOP {
            assert!(is_hop_by_hop(name.as_str().to_ascii_uppercase().as_bytes()), "{name}");
        }
        for name in ["tE", "KEEP-ALIVE", "Connection"] {
            assert!(is_hop_by_hop(name.as_bytes()), "{name}");
        }
        for name in ["tx", "connectiox", "keep-alivx", "upgrades", "content-length", ""] {
            assert!(!is_hop_by_hop(name.as_bytes()), "{name}");
        }
        let mut out = Vec::new();
        write_field(&mut out, b"x-a", b"1");
        assert_eq!(out, b"x-a: 1\r\n");
    }
}
