//! A plain request head, parsed with httparse, into the request the service answers; any
//! other head is left for hyper.

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Uri, Version};

use crate::codec::fields::connection_tokens;
use crate::proxy::ClientBodySource;

/// Most header lines a fast-path request may have (hyper's own limit is 100; more goes to it).
const MAX_HEADERS: usize = 100;

/// Header lines whose places are noted on the stack; a head with more notes them in a Vec.
const INLINE_SPANS: usize = 16;

/// What the bytes at the start of the buffer are.
// The large variant is the common one: boxing it would allocate on every request.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Parsed {
    /// A plain request; its head was taken off the buffer.
    Request(Request<ClientBodySource>),
    /// Not a whole head yet.
    Partial,
    /// Something for hyper: not a plain HTTP/1.1 request without a body, or not valid.
    NotPlain,
}

/// Parses a head at the start of `buf` into a request when it is a plain one.
pub(crate) fn read_request(buf: &mut BytesMut) -> Parsed {
    // Uninitialised: zeroing a hundred slots would cost more than the parse.
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_request_with_uninit_headers(&mut parsed, buf, &mut slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::NotPlain,
    };
    if parsed.version != Some(1) || !parsed.path.is_some_and(|p| p.starts_with('/')) {
        return Parsed::NotPlain;
    }
    let Some(method) = parsed.method.and_then(|m| Method::from_bytes(m.as_bytes()).ok()) else { return Parsed::NotPlain };
    if method == Method::CONNECT || !parsed.headers.iter().all(|h| plain_header(h.name.as_bytes(), h.value)) {
        return Parsed::NotPlain;
    }
    // Where each part sits, so the request can slice the head without copying once it is
    // taken off the buffer. On the stack for a usual head (zeroing room for the most headers
    // would cost more than the parse), in a Vec beyond that.
    let base = buf.as_ptr() as usize;
    let at = |part: &[u8]| (part.as_ptr() as usize - base, part.len());
    let span = |h: &httparse::Header<'_>| (at(h.name.as_bytes()), at(h.value));
    let mut inline = [((0, 0), (0, 0)); INLINE_SPANS];
    let spilled: Vec<(Span, Span)>;
    let spans = if parsed.headers.len() <= INLINE_SPANS {
        for (slot, header) in inline.iter_mut().zip(parsed.headers.iter()) {
            *slot = span(header);
        }
        &inline[..parsed.headers.len()]
    } else {
        spilled = parsed.headers.iter().map(span).collect();
        &spilled[..]
    };
    let path = parsed.path.map(|p| at(p.as_bytes()));
    let head = buf.split_to(len).freeze();
    match build_request(method, &head, path, spans) {
        Some(request) => Parsed::Request(request),
        None => {
            // Not valid as a URI or header for `http` (hyper answers it): the head goes back
            // in front of the bytes behind it, for hyper to read.
            let mut whole = BytesMut::with_capacity(head.len() + buf.len());
            whole.extend_from_slice(&head);
            whole.extend_from_slice(buf);
            *buf = whole;
            Parsed::NotPlain
        }
    }
}

/// Offset and length of a part of a head.
type Span = (usize, usize);

/// The request from a parsed head's parts (offsets into `head`); `None` when `http` refuses a
/// part.
fn build_request(method: Method, head: &Bytes, path: Option<Span>, spans: &[(Span, Span)]) -> Option<Request<ClientBodySource>> {
    let (at, n) = path?;
    let uri = Uri::from_maybe_shared(head.slice(at..at + n)).ok()?;
    // Room for what the proxy adds on the way out (Host, X-Forwarded-*), so the map is not
    // grown and rehashed on every request.
    let mut headers = HeaderMap::with_capacity(spans.len() + 4);
    for &((name_at, name_len), (value_at, value_len)) in spans {
        let name = HeaderName::from_bytes(&head[name_at..name_at + name_len]).ok()?;
        let value = HeaderValue::from_maybe_shared(head.slice(value_at..value_at + value_len)).ok()?;
        headers.append(name, value);
    }
    let mut request = Request::new(ClientBodySource::None);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = headers;
    Some(request)
}

/// Whether a request header keeps the request plain: no body, no upgrade, no `Expect`, and a
/// Connection header naming nothing but `close` or `keep-alive`.
fn plain_header(name: &[u8], value: &[u8]) -> bool {
    let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
    if is("content-length") {
        return value.trim_ascii() == b"0";
    }
    if is("transfer-encoding") || is("upgrade") || is("expect") || is("http2-settings") {
        return false;
    }
    if is("connection") {
        return connection_tokens(value).all(|t| t.eq_ignore_ascii_case(b"close") || t.eq_ignore_ascii_case(b"keep-alive"));
    }
    true
}
