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

/// Removes hop-by-hop headers, including those named in Connection.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
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

/// Adds X-Forwarded-For (appending the peer), X-Forwarded-Host (the Host the client asked
/// for) and X-Forwarded-Proto, as httpd's mod_proxy does for the first two.
pub(crate) fn add_forwarded(headers: &mut HeaderMap, peer: IpAddr, client_host: Option<&HeaderValue>, proto: &'static str) {
    append_list(headers, HeaderName::from_static("x-forwarded-for"), &peer.to_string());
    if let Some(host) = client_host.and_then(|h| h.to_str().ok()) {
        append_list(headers, HeaderName::from_static("x-forwarded-host"), host);
    }
    headers.insert(HeaderName::from_static("x-forwarded-proto"), HeaderValue::from_static(proto));
}

/// Appends `value` to a comma-separated list header, joining multiple header lines into one.
fn append_list(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    let existing: Vec<&str> = headers.get_all(&name).iter().filter_map(|v| v.to_str().ok()).collect();
    let joined = if existing.is_empty() { value.to_string() } else { format!("{}, {value}", existing.join(", ")) };
    if let Ok(v) = HeaderValue::from_str(&joined) {
        headers.insert(name, v);
    }
}

/// A rough count of the bytes a header block takes on the wire, for the traffic counters.
pub(crate) fn wire_size(headers: &HeaderMap) -> u64 {
    headers.iter().map(|(n, v)| (n.as_str().len() + v.len() + 4) as u64).sum::<u64>() + 2
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
        add_forwarded(&mut h, "192.0.2.7".parse().expect("ip"), Some(&HeaderValue::from_static("example.com")), "http");
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["accept", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto"]);
        assert_eq!(h["x-forwarded-for"], "192.0.2.7", "a client cannot keep its own XFF by naming it in Connection");
    }

    #[test]
    fn appends_to_existing_forwarded_for() {
        let mut h = map(&[("x-forwarded-for", "10.0.0.1"), ("x-forwarded-for", "10.0.0.2")]);
        add_forwarded(&mut h, "::1".parse().expect("ip"), None, "http");
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 10.0.0.2, ::1");
        assert!(!h.contains_key("x-forwarded-host"));
    }
}
