//! Header rules on the way to the member: X-Forwarded-* and Forwarded.
//!
//! Hop-by-hop headers ([`codec::fields`](crate::codec::fields)) are removed *before* the
//! proxy adds its own headers, so `Connection: X-Forwarded-For` cannot remove ours.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// The X-Forwarded-For entry for a client address, made once per client connection.
pub(crate) fn peer_value(peer: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&peer.to_string()).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// Sets X-Forwarded-For, X-Forwarded-Host (the Host the client asked for) and
/// X-Forwarded-Proto. From a `trusted` peer (another proxy of ours) the chain goes on: the
/// peer is appended to X-Forwarded-For and to a Forwarded header if there is one, and the
/// peer's X-Forwarded-Host and -Proto are kept. From anyone else every Forwarded and
/// X-Forwarded-* header is removed first and the proxy's own replace them, so a client
/// cannot pose as someone else to the member.
pub(crate) fn add_forwarded(
    headers: &mut HeaderMap,
    peer: &HeaderValue,
    client_host: Option<&HeaderValue>,
    proto: &'static str,
    trusted: bool,
) {
    let (xff, xfh, xfp) = (X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO);
    if !trusted {
        strip_forwarding(headers);
        headers.insert(xff, peer.clone());
        if let Some(host) = client_host {
            headers.insert(xfh, host.clone());
        }
        headers.insert(xfp, HeaderValue::from_static(proto));
        return;
    }
    append_list(headers, xff, peer);
    if let Some(host) = client_host.filter(|_| !headers.contains_key(&xfh)) {
        headers.insert(xfh, host.clone());
    }
    if !headers.contains_key(&xfp) {
        headers.insert(xfp, HeaderValue::from_static(proto));
    }
    if headers.contains_key(header::FORWARDED) {
        let node = peer.to_str().map_or_else(|_| "unknown".to_string(), |ip| if ip.contains(':') { format!("for=\"[{ip}]\"") } else { format!("for={ip}") });
        if let Ok(node) = HeaderValue::from_str(&node) {
            append_list(headers, header::FORWARDED, &node);
        }
    }
}

/// Removes Forwarded and every X-Forwarded-* header.
fn strip_forwarding(headers: &mut HeaderMap) {
    let is_forwarding = |name: &HeaderName| name == header::FORWARDED || name.as_str().starts_with("x-forwarded-");
    if !headers.keys().any(is_forwarding) {
        return;
    }
    let names: Vec<HeaderName> = headers.keys().filter(|n| is_forwarding(n)).cloned().collect();
    for name in names {
        headers.remove(name);
    }
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
    use crate::codec::fields::strip_hop_by_hop;

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
        add_forwarded(&mut h, &peer_value("192.0.2.7".parse().expect("ip")), Some(&HeaderValue::from_static("example.com")), "http", true);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["accept", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto"]);
        assert_eq!(h["x-forwarded-for"], "192.0.2.7", "a client cannot keep its own XFF by naming it in Connection");
    }

    #[test]
    fn appends_to_a_trusted_chain() {
        let mut h = map(&[("x-forwarded-for", "10.0.0.1"), ("x-forwarded-for", "10.0.0.2"), ("x-forwarded-proto", "https"), ("forwarded", "for=10.0.0.1")]);
        add_forwarded(&mut h, &peer_value("::1".parse().expect("ip")), None, "http", true);
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 10.0.0.2, ::1");
        assert_eq!(h["x-forwarded-proto"], "https", "the trusted peer's view of the scheme is kept");
        assert_eq!(h["forwarded"], "for=10.0.0.1, for=\"[::1]\"");
        assert!(!h.contains_key("x-forwarded-host"));
    }

    #[test]
    fn replaces_an_untrusted_chain() {
        let mut h = map(&[
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-host", "evil.example"),
            ("x-forwarded-prefix", "/admin"),
            ("forwarded", "for=10.0.0.1;host=evil.example"),
            ("accept", "*/*"),
        ]);
        add_forwarded(&mut h, &peer_value("192.0.2.7".parse().expect("ip")), Some(&HeaderValue::from_static("site.example")), "http", false);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["accept", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto"]);
        assert_eq!(h["x-forwarded-for"], "192.0.2.7");
        assert_eq!(h["x-forwarded-host"], "site.example");
    }
}
