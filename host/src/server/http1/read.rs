//! A plain request head, parsed with httparse, into the request the service answers; any
//! other head is left for hyper.

use std::mem::MaybeUninit;

use bytes::BytesMut;
use http::{Method, Request, Uri, Version};

use crate::codec::ascii::eq_ignore_case;
use crate::codec::fields::connection_tokens;
use crate::codec::lines::{HeaderLines, places};
use crate::proxy::ClientBodySource;
use crate::spare_box::SpareBox;

/// Most header lines a fast-path request may have (hyper's own limit is 100; more goes to it).
const MAX_HEADERS: usize = 100;

/// What the bytes at the start of the buffer are.
// The large variant is the common one: boxing it would allocate on every request.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Parsed {
    /// A plain request, its header map left empty: its header lines, as the client sent
    /// them, come beside it. Its head was taken off the buffer. Boxed: a request is a few
    /// hundred bytes and goes down through every layer of its answering's future before it
    /// is split (each move of it inline was a copy).
    Request(SpareBox<Request<ClientBodySource>>, HeaderLines),
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
    // Where each line sits, so the request can read the head in place once it is taken off
    // the buffer: no `HeaderMap` is built for a plain request (see `codec::lines`). httparse
    // checked every name and value by the rules `HeaderName` and `HeaderValue` apply.
    let base = buf.as_ptr() as usize;
    // Offsets fit: the head is at most `MAX_HEAD` (64 KiB) plus one read long.
    let at = |part: &[u8]| (part.as_ptr() as usize - base) as u32;
    let mut lines = places(parsed.headers.len());
    lines.extend(parsed.headers.iter().map(|h| [at(h.name.as_bytes()), h.name.len() as u32, at(h.value), h.value.len() as u32]));
    let path = parsed.path.map(|p| (at(p.as_bytes()) as usize, p.len()));
    let head = buf.split_to(len).freeze();
    let uri = path.and_then(|(at, n)| Uri::from_maybe_shared(head.slice(at..at + n)).ok());
    let Some(uri) = uri else {
        // Not valid as a URI for `http` (hyper answers it): the head goes back in front of
        // the bytes behind it, for hyper to read.
        let mut whole = BytesMut::with_capacity(head.len() + buf.len());
        whole.extend_from_slice(&head);
        whole.extend_from_slice(buf);
        *buf = whole;
        return Parsed::NotPlain;
    };
    let mut request = SpareBox::new(|| Request::new(ClientBodySource::None));
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    Parsed::Request(request, HeaderLines::new(head, lines))
}

/// Whether a request header keeps the request plain: no body, no upgrade, no `Expect`, and a
/// Connection header naming nothing but `close` or `keep-alive`.
fn plain_header(name: &[u8], value: &[u8]) -> bool {
    let is = |n: &str| eq_ignore_case(name, n.as_bytes());
    if is("content-length") {
        return value.trim_ascii() == b"0";
    }
    if is("transfer-encoding") || is("upgrade") || is("expect") || is("http2-settings") {
        return false;
    }
    if is("connection") {
        return connection_tokens(value).all(|t| eq_ignore_case(t, b"close") || eq_ignore_case(t, b"keep-alive"));
    }
    true
}
