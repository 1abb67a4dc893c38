//! Header rules on the way to the member: hop-by-hop headers, X-Forwarded-*, Forwarded and
//! X-Request-Id.
//!
//! A request goes out in one of two forms: its header map edited (hyper's requests, HTTP/2,
//! a route whose rewriters edit requests), or, for a plain HTTP/1 request, its client's lines
//! written out as they came, minus what is dropped, plus what is set. The rules are decided
//! once, over a [`HeaderView`] both forms share ([`Forwarding::decide`]); only their
//! application differs ([`apply`] for a map, [`write_lines`] for lines), and the request-head
//! fuzz target checks that both forms send a member the same head.
//!
//! Hop-by-hop headers ([`codec::fields`](crate::codec::fields)) are removed *before* the
//! proxy adds its own headers, so `Connection: X-Forwarded-For` cannot remove ours.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::codec::ascii::eq_ignore_case;
use crate::codec::fields::{is_framing_or_expect, is_hop_by_hop, named_by_connection, names_other_headers, strip_hop_by_hop, write_field};
use crate::codec::lines::{HeaderLines, HeaderView};
use crate::head_buffer::HeadBuffer;

// Statics, not consts: a const `HeaderName` would be built and dropped at every use.
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static FORWARDED: HeaderName = header::FORWARDED;
/// `X-Request-Id`.
pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The X-Forwarded-For entry for a client address, made once per client connection.
pub(crate) fn peer_value(peer: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&peer.to_string()).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// The forwarding headers a request goes to members with.
///
/// X-Forwarded-For, X-Forwarded-Host (the Host the client asked for) and X-Forwarded-Proto.
/// From a `trusted` peer (another proxy of ours) the chain goes on: the peer is appended to
/// X-Forwarded-For and to a Forwarded header if there is one, and the peer's
/// X-Forwarded-Host and -Proto are kept. From anyone else every Forwarded and X-Forwarded-*
/// header is dropped and the proxy's own replace them, so a client cannot pose as someone
/// else to the member.
pub(crate) struct Forwarding {
    /// Every Forwarded and X-Forwarded-* header of the client's is dropped.
    drop_client_chain: bool,
    /// Headers set, each replacing every line of its name; `None` leaves that name alone.
    xff: Option<HeaderValue>,
    xfh: Option<HeaderValue>,
    xfp: Option<HeaderValue>,
    forwarded: Option<HeaderValue>,
}

impl Forwarding {
    /// Decides the forwarding headers of a request with fields `fields` from `peer` (its
    /// X-Forwarded-For entry), which asked for `client_host` over `proto`.
    pub(crate) fn decide(fields: HeaderView<'_>, peer: &HeaderValue, client_host: Option<&HeaderValue>, proto: &'static str, trusted: bool) -> Self {
        let proto = HeaderValue::from_static(proto);
        if !trusted {
            return Self { drop_client_chain: true, xff: Some(peer.clone()), xfh: client_host.cloned(), xfp: Some(proto), forwarded: None };
        }
        // The client's chain as it stands once hop-by-hop headers are gone: a header its
        // Connection names is not part of it.
        let values = |name: &'static HeaderName| fields.get_all(name).filter(move |_| !named_by_connection(fields, name.as_str().as_bytes()));
        let has = |name: &'static HeaderName| values(name).next().is_some();
        let forwarded = has(&FORWARDED).then(|| {
            let ip = peer.to_str().unwrap_or("unknown");
            let node = if ip.contains(':') { format!("for=\"[{ip}]\"") } else { format!("for={ip}") };
            HeaderValue::from_str(&node).ok().and_then(|node| joined(values(&FORWARDED), &node))
        });
        Self {
            drop_client_chain: false,
            xff: joined(values(&X_FORWARDED_FOR), peer),
            xfh: client_host.filter(|_| !has(&X_FORWARDED_HOST)).cloned(),
            xfp: (!has(&X_FORWARDED_PROTO)).then_some(proto),
            forwarded: forwarded.flatten(),
        }
    }

    /// The headers set, name and value.
    fn set(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        let names = [&X_FORWARDED_FOR, &X_FORWARDED_HOST, &X_FORWARDED_PROTO, &FORWARDED];
        let values = [&self.xff, &self.xfh, &self.xfp, &self.forwarded];
        names.into_iter().zip(values).filter_map(|(name, value)| Some((name, value.as_ref()?)))
    }

    /// Whether a client line named `name` (any case) is dropped: every forwarding header
    /// when the client's chain is, else those the rules set.
    fn drops(&self, name: &[u8]) -> bool {
        is_forwarding(name) && (self.drop_client_chain || self.set().any(|(n, _)| eq_ignore_case(name, n.as_str().as_bytes())))
    }
}

/// Forwarded, or an X-Forwarded-* name (any case).
fn is_forwarding(name: &[u8]) -> bool {
    eq_ignore_case(name, b"forwarded") || name.get(..12).is_some_and(|p| eq_ignore_case(p, b"x-forwarded-"))
}

/// `values` joined into one comma-separated list, `last` at the end.
fn joined<'a>(values: impl Iterator<Item = &'a [u8]>, last: &HeaderValue) -> Option<HeaderValue> {
    let mut list = Vec::new();
    for v in values {
        list.extend_from_slice(v);
        list.extend_from_slice(b", ");
    }
    list.extend_from_slice(last.as_bytes());
    HeaderValue::from_maybe_shared(bytes::Bytes::from(list)).ok()
}

/// Applies the rules to a request's header map: hop-by-hop headers and Expect removed, the
/// forwarding headers and `request_id` set.
pub(crate) fn apply(headers: &mut HeaderMap, forwarding: &Forwarding, request_id: Option<&HeaderValue>) {
    strip_hop_by_hop(headers);
    // The proxy answered any 100-continue itself by reading the body.
    headers.remove(header::EXPECT);
    if forwarding.drop_client_chain {
        strip_forwarding(headers);
    }
    for (name, value) in forwarding.set() {
        headers.insert(name.clone(), value.clone());
    }
    if let Some(id) = request_id {
        headers.insert(X_REQUEST_ID.clone(), id.clone());
    }
}

/// Writes a plain request's header lines as they go to every member: the client's lines in
/// its order and spelling, minus hop-by-hop ones (and what Connection names), Host (each
/// member's is written with the request line), framing and Expect (the member exchange
/// writes its own), and what the rules replace; then the forwarding headers and
/// `request_id`. The same head, once parsed, as [`apply`] gives a map.
pub(crate) fn write_lines(lines: &HeaderLines, forwarding: &Forwarding, request_id: Option<&HeaderValue>) -> HeadBuffer {
    let view = HeaderView::Lines(lines);
    // Usually Connection names nothing but `close` or `keep-alive`: then no line is looked up.
    let names_others = names_other_headers(view);
    let mut out = HeadBuffer::take();
    lines.write_where(&mut out, |name, _| {
        let dropped = is_hop_by_hop(name)
            || eq_ignore_case(name, b"host")
            || is_framing_or_expect(name)
            || forwarding.drops(name)
            || (request_id.is_some() && eq_ignore_case(name, b"x-request-id"))
            || (names_others && named_by_connection(view, name));
        !dropped
    });
    for (name, value) in forwarding.set() {
        write_field(&mut out, name.as_str().as_bytes(), value.as_bytes());
    }
    if let Some(id) = request_id {
        write_field(&mut out, X_REQUEST_ID.as_str().as_bytes(), id.as_bytes());
    }
    out
}

/// Removes Forwarded and every X-Forwarded-* header.
fn strip_forwarding(headers: &mut HeaderMap) {
    let is_chain = |name: &HeaderName| is_forwarding(name.as_str().as_bytes());
    if !headers.keys().any(is_chain) {
        return;
    }
    let names: Vec<HeaderName> = headers.keys().filter(|n| is_chain(n)).cloned().collect();
    for name in names {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rules applied to a map, as a request from hyper gets them.
    fn forward(h: &mut HeaderMap, peer: &HeaderValue, host: Option<&HeaderValue>, proto: &'static str, trusted: bool) {
        let forwarding = Forwarding::decide(HeaderView::Map(h), peer, host, proto, trusted);
        apply(h, &forwarding, None);
    }

    /// `head`'s header lines.
    fn lines_of(head: &'static [u8]) -> HeaderLines {
        let mut slots = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Request::new(&mut slots);
        assert!(parsed.parse(head).expect("parse").is_complete());
        let at = |p: &[u8]| (p.as_ptr() as usize - head.as_ptr() as usize) as u32;
        let spans = parsed.headers.iter().map(|h| [at(h.name.as_bytes()), h.name.len() as u32, at(h.value), h.value.len() as u32]).collect();
        HeaderLines::new(bytes::Bytes::from_static(head), spans)
    }

    /// Field lines as (lower-case name, value), sorted by name only: a map groups a name's
    /// lines, written lines keep the client's order, and both keep a name's values in order.
    fn normalised(lines: impl Iterator<Item = (Vec<u8>, Vec<u8>)>) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut all: Vec<_> = lines.map(|(n, v)| (n.to_ascii_lowercase(), v)).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    #[test]
    fn lines_written_and_a_map_edited_agree() {
        let heads: [&'static [u8]; 4] = [
            b"GET / HTTP/1.1\r\nHost: a\r\nUser-Agent: x\r\nConnection: keep-alive\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.1\r\nx-forwarded-for: 10.0.0.2\r\nX-Forwarded-Proto: https\r\nForwarded: for=1\r\nX-Forwarded-Prefix: /p\r\nX-Request-Id: mine\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Secret, X-Forwarded-For\r\nX-Secret: 1\r\nX-Forwarded-For: 10.0.0.1\r\nTE: trailers\r\nKeep-Alive: 5\r\nClose: kept\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nCookie: a=1\r\ncookie: b=2\r\nX-Forwarded-Host: h\r\n\r\n",
        ];
        let peer = peer_value("192.0.2.7".parse().expect("ip"));
        let host = HeaderValue::from_static("a");
        let id = HeaderValue::from_static("id-1");
        for head in heads {
            for (trusted, request_id) in [(false, None), (true, None), (false, Some(&id)), (true, Some(&id))] {
                let lines = lines_of(head);
                let forwarding = Forwarding::decide(HeaderView::Lines(&lines), &peer, Some(&host), "https", trusted);
                let written = write_lines(&lines, &forwarding, request_id);
                let mut map = lines.into_map();
                let forwarding = Forwarding::decide(HeaderView::Map(&map), &peer, Some(&host), "https", trusted);
                apply(&mut map, &forwarding, request_id);
                map.remove(header::HOST);
                map.remove(header::CONTENT_LENGTH);
                let from_map = normalised(map.iter().map(|(n, v)| (n.as_str().as_bytes().to_vec(), v.as_bytes().to_vec())));
                let mut slots = [httparse::EMPTY_HEADER; 32];
                let whole = [&b"GET / HTTP/1.1\r\n"[..], &written[..], b"\r\n"].concat();
                let mut parsed = httparse::Request::new(&mut slots);
                assert!(parsed.parse(&whole).expect("written lines parse").is_complete());
                let from_lines = normalised(parsed.headers.iter().map(|h| (h.name.as_bytes().to_vec(), h.value.to_vec())));
                assert_eq!(from_lines, from_map, "{} (trusted {trusted}, id {request_id:?})", String::from_utf8_lossy(head));
            }
        }
    }

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
        forward(&mut h, &peer_value("192.0.2.7".parse().expect("ip")), Some(&HeaderValue::from_static("example.com")), "http", true);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["accept", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto"]);
        assert_eq!(h["x-forwarded-for"], "192.0.2.7", "a client cannot keep its own XFF by naming it in Connection");
    }

    #[test]
    fn appends_to_a_trusted_chain() {
        let mut h = map(&[("x-forwarded-for", "10.0.0.1"), ("x-forwarded-for", "10.0.0.2"), ("x-forwarded-proto", "https"), ("forwarded", "for=10.0.0.1")]);
        forward(&mut h, &peer_value("::1".parse().expect("ip")), None, "http", true);
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
        forward(&mut h, &peer_value("192.0.2.7".parse().expect("ip")), Some(&HeaderValue::from_static("site.example")), "http", false);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["accept", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto"]);
        assert_eq!(h["x-forwarded-for"], "192.0.2.7");
        assert_eq!(h["x-forwarded-host"], "site.example");
    }
}
