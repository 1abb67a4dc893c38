//! Header rules on the way to the member and back: hop-by-hop removal and X-Forwarded-*.
//!
//! Hop-by-hop headers describe one connection, not the message, so they never cross the
//! proxy: Connection and every header it names, Keep-Alive, TE, Proxy-Connection, Upgrade and
//! Transfer-Encoding (the proxy frames each side itself). They are removed *before* the proxy
//! adds its own headers, so `Connection: X-Forwarded-For` cannot remove ours.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that are hop-by-hop whatever Connection says.
const HOP_BY_HOP: [HeaderName; 5] =
    [header::CONNECTION, header::TE, header::UPGRADE, header::TRANSFER_ENCODING, header::PROXY_AUTHENTICATE];

/// Whether `name` is hop-by-hop by itself (Connection may name more).
fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name) || name.as_str() == "keep-alive" || name.as_str() == "proxy-connection"
}

/// Removes hop-by-hop headers, including those named in Connection.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none: one scan over the names, no hashing.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

/// The X-Forwarded-For entry for a client address, made once per client connection.
pub(crate) fn peer_value(peer: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&peer.to_string()).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// Adds X-Forwarded-For (appending the peer), X-Forwarded-Host (the Host the client asked
/// for) and X-Forwarded-Proto, as httpd's mod_proxy does for the first two.
pub(crate) fn add_forwarded(headers: &mut HeaderMap, peer: &HeaderValue, client_host: Option<&HeaderValue>, proto: &'static str) {
    append_list(headers, HeaderName::from_static("x-forwarded-for"), peer);
    if let Some(host) = client_host {
        append_list(headers, HeaderName::from_static("x-forwarded-host"), host);
    }
    headers.insert(HeaderName::from_static("x-forwarded-proto"), HeaderValue::from_static(proto));
}

/// Appends `value` to a comma-separated list header, joining multiple header lines into one.
fn append_list(headers: &mut HeaderMap, name: HeaderName, value: &HeaderValue) {
    if !headers.contains_key(&name) {
        headers.insert(name, value.clone());
        return;
    }
    let mut joined = Vec::new();
    for v in headers.get_all(&name).iter().chain(std::iter::once(value)) {
        if !joined.is_empty() {
            joined.extend_from_slice(b", ");
        }
        joined.extend_from_slice(v.as_bytes());
    }
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        headers.insert(name, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).expect("name"), HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    #[test]
    fn removes_hop_by_hop_and_what_connection_names() {
        let mut h = map(&[
            ("connection", "keep-alive, X-Secret, x-forwarded-for"),
            ("connection", "close"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("proxy-connection", "keep-alive"),
            ("upgrade", "websocket"),
            ("transfer-encoding", "chunked"),
            ("x-secret", "1"),
            ("x-forwarded-for", "10.0.0.1"),
            ("accept", "*/*"),
        ]);
        strip_hop_by_hop(&mut h);
        add_forwarded(&mut h, &peer_value("192.0.2.7".parse().expect("ip")), Some(&HeaderValue::from_static("example.com")), "http");
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["accept", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto"]);
        assert_eq!(h["x-forwarded-for"], "192.0.2.7", "a client cannot keep its own XFF by naming it in Connection");
    }

    #[test]
    fn appends_to_existing_forwarded_for() {
        let mut h = map(&[("x-forwarded-for", "10.0.0.1"), ("x-forwarded-for", "10.0.0.2")]);
        add_forwarded(&mut h, &peer_value("::1".parse().expect("ip")), None, "http");
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 10.0.0.2, ::1");
        assert!(!h.contains_key("x-forwarded-host"));
    }
}
