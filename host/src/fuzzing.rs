//! Entry points for the fuzz targets in `fuzz/` (and for the seed-corpus smoke test), kept in
//! the library so they reach private code. Each takes arbitrary bytes and panics only when it
//! finds a bug: a crash in the code under test, or a broken invariant checked here.

use std::path::Path;

use crate::codec::lines::HeaderView;
use crate::config::Limits;
use crate::edge::{Phase, ScanLimits, Scanner};

/// The request-head path: the raw-head scanner (fed whole and in pieces, which must agree),
/// the HTTP/1 fast path's parse (it takes only plain requests, and exactly their head, and its
/// lines are judged and relayed as the same head in a map would be), then,
/// for a head that httparse completes (as hyper would), the strict checks on the parsed
/// request and the canonical form of its path.
pub fn request_head(data: &[u8]) {
    let limits = ScanLimits { request_line: 512, header_size: 2048 };
    let mut whole = Scanner::new(limits);
    let found = whole.feed(data);

    // Split at positions derived from the input itself.
    let cuts: Vec<usize> = data.iter().take(4).map(|&b| usize::from(b) % (data.len() + 1)).collect();
    let mut pieces = Scanner::new(limits);
    let mut found_in_pieces = None;
    let mut at = 0;
    let mut sorted = cuts.clone();
    sorted.sort_unstable();
    for cut in sorted.into_iter().chain(std::iter::once(data.len())) {
        if cut < at {
            continue;
        }
        if let Some(f) = pieces.feed(&data[at..cut]) {
            found_in_pieces.get_or_insert(f);
        }
        at = cut;
    }
    assert_eq!(found, found_in_pieces, "split reads changed the finding (cuts {cuts:?})");
    assert_eq!(whole.phase(), pieces.phase(), "split reads changed the phase (cuts {cuts:?})");
    assert_eq!(whole.heads(), pieces.heads());
    if found.is_some() {
        assert_eq!(whole.phase(), Phase::Off, "a finding stops the scanner");
    }

    let raw = found.filter(|f| f.head == 0).map(|f| f.violation);
    let limits = Limits { request_line: 512, header_fields: 32, header_size: 2048, body: Some(1 << 20), connections: 1 };
    fast_path(data, &limits, raw);

    let mut slots = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Request::new(&mut slots);
    let Ok(httparse::Status::Complete(_)) = parsed.parse(data) else { return };
    let (Some(method), Some(path), Some(version)) = (parsed.method, parsed.path, parsed.version) else { return };
    let mut builder = http::Request::builder()
        .method(method)
        .uri(path)
        .version(if version == 1 { http::Version::HTTP_11 } else { http::Version::HTTP_10 });
    for h in parsed.headers.iter() {
        builder = builder.header(h.name, h.value);
    }
    let Ok(request) = builder.body(()) else { return };
    canonical_path(request.uri().path());
    let verdict = crate::proxy::strict_check(&request, HeaderView::Map(request.headers()), &limits, raw);
    if raw.is_some() {
        assert!(verdict.is_err(), "a scanner finding must refuse the request");
    }
}

/// The canonical path of a parsed target: canonicalising it again changes nothing, it holds
/// no dot segment and no empty segment but a trailing one, and it is still a valid target.
fn canonical_path(raw: &str) {
    let Ok(once) = crate::canon::canonicalize(raw) else { return };
    let once = once.as_str();
    let twice = crate::canon::canonicalize(once).expect("a canonical path canonicalises");
    assert_eq!(twice.as_str(), once, "canonicalising twice changed {raw:?}");
    if !raw.starts_with('/') {
        return;
    }
    let segments: Vec<&str> = once[1..].split('/').collect();
    for (i, s) in segments.iter().enumerate() {
        assert!(*s != "." && *s != "..", "dot segment left in {once:?} (from {raw:?})");
        assert!(!s.is_empty() || i + 1 == segments.len(), "empty segment left in {once:?} (from {raw:?})");
    }
    assert!(once.parse::<http::uri::PathAndQuery>().is_ok_and(|p| p.path() == once), "{once:?} is not a target");
}

/// The fast path's parse of `data`: a request it takes is plain and its head is exactly what
/// was taken off the buffer; the strict checks judge its lines as they judge the same head in
/// a map, and still refuse whatever the scanner found; and a member gets the same head from
/// its written lines as from its map (see `proxy::headers`), trusted or not, with a request
/// id or without.
fn fast_path(data: &[u8], limits: &Limits, raw: Option<crate::edge::Violation>) {
    use crate::server::http1::{Parsed, read_request};
    let mut buf = bytes::BytesMut::from(data);
    let Parsed::Request(request, lines) = read_request(&mut buf) else {
        assert_eq!(&buf[..], data, "a head the fast path does not take is left whole for hyper");
        return;
    };
    assert!(buf.len() < data.len() && data.ends_with(&buf), "the head, and only it, is taken off");
    assert_eq!(request.version(), http::Version::HTTP_11);
    assert!(request.uri().path().starts_with('/'));
    assert_ne!(request.method(), http::Method::CONNECT);
    assert!(request.headers().is_empty(), "a plain request's fields are its lines");
    let fields = HeaderView::Lines(&lines);
    for name in [&http::header::TRANSFER_ENCODING, &http::header::UPGRADE, &http::header::EXPECT] {
        assert!(!fields.contains(name), "a request with {name} is not plain");
    }
    assert!(fields.get_all(&http::header::CONTENT_LENGTH).all(|v| v.trim_ascii() == b"0"), "a plain request has no body");
    let map = lines.clone().into_map();
    assert_eq!(map.len(), lines.len(), "every line the parse took is a valid header");
    let by_lines = crate::proxy::strict_check(&request, fields, limits, raw);
    let by_map = crate::proxy::strict_check(&request, HeaderView::Map(&map), limits, raw);
    // The same error, its reason alike but for the spelling of a header's name in it (a
    // map's names are lower case).
    fn verdict<E: std::fmt::Debug + std::fmt::Display>(r: Result<(), E>) -> Result<(), (String, String)> {
        r.map_err(|e| (format!("{e:?}").split([' ', '{', '(']).next().unwrap_or_default().to_string(), e.to_string().to_ascii_lowercase()))
    }
    assert_eq!(verdict(by_lines), verdict(by_map), "the strict checks judge lines and map alike");
    if raw.is_some() {
        assert!(crate::proxy::strict_check(&request, fields, limits, raw).is_err(), "a scanner finding must refuse the request");
    }
    let peer = http::HeaderValue::from_static("192.0.2.7");
    let id = http::HeaderValue::from_static("id-1");
    let host = http::HeaderValue::from_static("member:80");
    for (trusted, request_id, host) in [(false, None, Some(&host)), (true, Some(&id), None), (true, None, Some(&host)), (false, Some(&id), None)] {
        let [by_map, by_lines] = crate::proxy::member_heads(request.method(), request.uri(), &lines, &peer, trusted, request_id, host);
        let (line, fields) = head_fields(&by_lines);
        assert_eq!(head_fields(&by_map), (line, fields.clone()), "a member's head from the map and from the lines differ (trusted {trusted})");
        // And what both must hold, whatever the client sent: one Host, the member's; no
        // framing header on a request without a body; the request id, when there is one,
        // the proxy's; from an untrusted client, the proxy's forwarding headers alone.
        let values = |name: &str| fields.iter().filter(|(n, _)| n == name.as_bytes()).map(|(_, v)| v.clone()).collect::<Vec<_>>();
        assert_eq!(values("host"), host.map(|h| h.as_bytes().to_vec()).into_iter().collect::<Vec<_>>(), "the member's Host alone");
        for framing in ["content-length", "transfer-encoding", "expect", "connection", "te", "keep-alive", "upgrade"] {
            assert!(values(framing).is_empty(), "{framing} reached the member");
        }
        if let Some(id) = request_id {
            assert_eq!(values("x-request-id"), [id.as_bytes().to_vec()], "the proxy's request id alone");
        }
        if !trusted {
            assert_eq!(values("x-forwarded-for"), [peer.as_bytes().to_vec()], "an untrusted client's chain is replaced");
            assert_eq!(values("x-forwarded-proto"), [b"https".to_vec()]);
            let chain = fields.iter().filter(|(n, _)| n.starts_with(b"x-forwarded-") || n == b"forwarded").count();
            assert_eq!(chain, 2 + values("x-forwarded-host").len(), "only the proxy's forwarding headers");
            let client_host = HeaderView::Lines(&lines).get(&http::header::HOST).map(<[u8]>::to_vec);
            assert_eq!(values("x-forwarded-host"), client_host.into_iter().collect::<Vec<_>>(), "X-Forwarded-Host is the Host the client asked for");
        }
    }
}

/// Field lines as (name, value).
type NamedValues = Vec<(Vec<u8>, Vec<u8>)>;

/// A request head's request line and its fields as (lower-case name, value), sorted by
/// name only: a map groups a name's lines, written lines keep the client's order, and both
/// keep the order of a name's values.
fn head_fields(head: &[u8]) -> (String, NamedValues) {
    let mut slots = [httparse::EMPTY_HEADER; 128];
    let mut parsed = httparse::Request::new(&mut slots);
    assert!(matches!(parsed.parse(head), Ok(httparse::Status::Complete(n)) if n == head.len()), "a member's head parses whole: {}", String::from_utf8_lossy(head));
    let line = format!("{:?} {:?}", parsed.method, parsed.path);
    let mut fields: NamedValues = parsed.headers.iter().map(|h| (h.name.as_bytes().to_ascii_lowercase(), h.value.to_vec())).collect();
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    (line, fields)
}

/// The config loader: any text either loads or yields errors that each name a line within
/// the file (or none).
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(errors) = crate::config::parse(text, Path::new("fuzz.toml")) {
        assert!(!errors.0.is_empty());
        let lines = text.lines().count() + 1;
        for e in &errors.0 {
            assert!(e.line.is_none_or(|l| l >= 1 && l <= lines), "line {:?} outside the file: {e}", e.line);
            let _ = e.to_string();
        }
    }
}

/// The strict checks on a parsed request (for the benchmark); `true` when it passes.
pub fn strict_check(request: &http::Request<()>, limits: &Limits) -> bool {
    crate::proxy::strict_check(request, HeaderView::Map(request.headers()), limits, None).is_ok()
}

/// What a member sends back: the response head parsed (for GET or HEAD, chosen by the
/// first byte) and its body decoded, the bytes fed whole and in pieces, which must agree.
/// Whatever the bytes, a decoded body never holds more than what was sent, nor more than a
/// Content-Length declared.
pub fn member_response(data: &[u8]) {
    use bytes::BytesMut;
    use crate::codec::body::{BodyDecoder, Decoded, Framing};
    use crate::codec::response;

    let Some((&first, data)) = data.split_first() else { return };
    let method = if first & 1 == 0 { http::Method::GET } else { http::Method::HEAD };
    let cuts = cuts_of(data);

    /// What a read of a response saw: status, framing, header lines, body, how it ended.
    type Read = (u16, Framing, Vec<(Vec<u8>, Vec<u8>)>, Vec<u8>, &'static str);

    /// Head then body over `pieces`.
    fn read(pieces: &[&[u8]], method: &http::Method) -> Option<Read> {
        let mut buf = BytesMut::new();
        let mut rest = pieces.iter();
        let head = loop {
            match response::parse(&mut buf, method) {
                Ok(Some(head)) => break head,
                Ok(None) => buf.extend_from_slice(rest.next()?),
                Err(_) => return None,
            }
        };
        let lines: Vec<(Vec<u8>, Vec<u8>)> = match head.fields {
            response::Fields::Raw(ref raw) => raw.lines().map(|(n, v)| (n.to_ascii_lowercase(), v.to_vec())).collect(),
            response::Fields::Map(ref map) => map.iter().map(|(n, v)| (n.as_str().as_bytes().to_vec(), v.as_bytes().to_vec())).collect(),
        };
        let mut decoder = BodyDecoder::new(head.framing);
        let mut body = Vec::new();
        let end = loop {
            match decoder.decode(&mut buf) {
                Ok(Decoded::Data(bytes)) => body.extend_from_slice(&bytes),
                Ok(Decoded::Trailers(_)) => break "trailers",
                Ok(Decoded::End) => break "end",
                Ok(Decoded::NeedMore) => match rest.next() {
                    Some(piece) => buf.extend_from_slice(piece),
                    None if decoder.close() => break "closed",
                    None => break "truncated",
                },
                Err(_) => break "malformed",
            }
        };
        Some((head.status.as_u16(), head.framing, lines, body, end))
    }

    let whole = read(&[data], &method);
    let mut pieces = Vec::new();
    let mut at = 0;
    for cut in cuts.iter().copied().chain(std::iter::once(data.len())) {
        if cut >= at {
            pieces.push(&data[at..cut]);
            at = cut;
        }
    }
    let split = read(&pieces, &method);
    assert_eq!(whole, split, "split reads changed the response (cuts {cuts:?})");
    if let Some((_, framing, _, body, _)) = whole {
        assert!(body.len() <= data.len(), "more body than bytes sent");
        if let Framing::Length(n) = framing {
            assert!(body.len() as u64 <= n, "more body than Content-Length");
        }
        if framing == Framing::Empty {
            assert!(body.is_empty(), "a bodiless answer with a body");
        }
    }
}

/// Split positions derived from the input itself, in order.
fn cuts_of(data: &[u8]) -> Vec<usize> {
    let mut cuts: Vec<usize> = data.iter().take(4).map(|&b| usize::from(b) % (data.len() + 1)).collect();
    cuts.sort_unstable();
    cuts
}
