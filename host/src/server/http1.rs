//! The HTTP/1.1 fast path: a client connection's plain requests served without hyper's server.
//!
//! Through hyper's server a small proxied request cost about 40,000 user-space instructions;
//! here about 34,000 (callgrind, `host/benches/instructions_per_request.py`): no second parse
//! of a head the guard already scanned, no `HeaderMap` of the member's answer (its lines are
//! written as they came, see `RawHeaders`), no dispatch through hyper's connection state.
//! Most requests a proxy sees are plain: HTTP/1.1, no body, no upgrade, no `Expect`. This loop
//! reads those heads, hands each to the same [`ProxyService`] hyper would call, and writes the
//! answer itself. The first request that is anything else — a body, an upgrade, HTTP/1.0 or
//! HTTP/2, a head that does not parse — hands the connection, with every byte not yet
//! answered, to hyper for the rest of its life; earlier answers were all written by then, so
//! the order of pipelined answers holds.
//!
//! What hyper did on the way out is done here the same way: `date` when the member sent none,
//! `content-length` for a body of known size and `transfer-encoding: chunked` otherwise (none
//! for HEAD, 1xx, 204 and 304), `connection: close` when the connection ends after the
//! answer, and a body error closes the connection.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::edge::{ClientStream, ConnShared, Guard, GuardSettings, Tracked, Waited};
use crate::codec::body::{LAST_CHUNK, write_chunk_size};
use crate::codec::fields::{connection_has, connection_tokens, write_field};
use crate::proxy::{ClientBodySource, ProxyService, ResponseBody};
use crate::splice::{self, Pipe};
use crate::upstream::SpliceFailure;

/// Most header lines a fast-path request may have (hyper's own limit is 100; more goes to it).
const MAX_HEADERS: usize = 100;
/// A head not complete within this many bytes goes to hyper (the guard's limits apply first).
const MAX_HEAD: usize = 64 * 1024;

/// How a connection's time on the fast path ended.
pub(crate) enum Outcome {
    /// The connection is finished (closed by either side, or shutdown).
    Closed,
    /// hyper serves the rest: the socket, and the bytes read but not yet answered.
    HandOff(Box<Prefixed>),
    /// Idle between requests for `PARK_AFTER` (see `edge::guard`), no byte unread:
    /// park the socket (see `server::park`). Its idling began at the instant given.
    Park(TcpStream, Instant),
}

/// Serves plain HTTP/1.1 requests on `stream` (guarded by a [`Guard`] made of it, `conn` and
/// `settings`; `woken` for a parked connection served again) until the client closes, the
/// connection must close or idles long enough to park, `stop` is set while no request is
/// under way, or a request needs hyper.
pub(crate) async fn serve(stream: ClientStream, woken: bool, conn: Arc<ConnShared>, settings: GuardSettings, service: &ProxyService, mut stop: watch::Receiver<bool>) -> Outcome {
    // The guard is made here, not passed in: an async fn keeps its arguments beside the
    // locals they move into, and every idle connection's task would hold room for two.
    let mut io = if woken { Guard::resume(stream, conn, settings) } else { Guard::new(stream, conn, settings) };
    let mut buf = BytesMut::new();
    loop {
        let request = loop {
            if !buf.is_empty() {
                match read_request(&mut buf) {
                    Parsed::Request(request) => break request,
                    Parsed::Partial if buf.len() <= MAX_HEAD => {}
                    Parsed::Partial | Parsed::NotPlain => return Outcome::HandOff(Box::new(Prefixed { prefix: buf.freeze(), io })),
                }
            }
            if buf.is_empty() {
                // Idle between requests: the buffer goes (an idle keep-alive connection holds
                // none) and the wait is for the socket to become readable. A shutdown closes
                // the connection; the guard's idle deadline runs meanwhile.
                buf = BytesMut::new();
                let ready = tokio::select! {
                    ready = std::future::poll_fn(|cx| io.poll_read_ready(cx)) => Some(ready),
                    _ = stop.wait_for(|stopped| *stopped) => None,
                };
                match ready {
                    None => return close(&mut io).await,
                    Some(Err(_)) => return Outcome::Closed,
                    Some(Ok(Waited::Readable)) => {}
                    Some(Ok(Waited::Park)) => {
                        return match io.into_idle() {
                            Some((socket, since)) => Outcome::Park(socket, since),
                            None => Outcome::Closed,
                        };
                    }
                }
            }
            // Within a head, the guard's header deadline bounds the wait.
            buf.reserve(4096);
            let read = io.read_buf(&mut buf).await;
            match read {
                Ok(0) | Err(_) => return Outcome::Closed,
                Ok(_) => {}
            }
        };
        // Boxed, with everything a request holds while it is answered: the connection's task
        // is as large as its largest state, and an idle keep-alive connection should carry
        // none of a request's (one allocation per request, as the boxed answer was before).
        match Box::pin(answer(&mut io, &mut buf, service, request, &stop)).await {
            Answered::Next => {}
            Answered::Close => return close(&mut io).await,
            Answered::Closed => return Outcome::Closed,
        }
    }
}

/// How answering one request left the connection.
enum Answered {
    /// Ready for the next request.
    Next,
    /// The connection must close (the client or the answer said so, or a shutdown).
    Close,
    /// The connection is gone.
    Closed,
}

/// Answers `request` and writes the answer; bytes the client sends meanwhile are kept in `buf`.
async fn answer(io: &mut Guard, buf: &mut BytesMut, service: &ProxyService, request: Request<ClientBodySource>, stop: &watch::Receiver<bool>) -> Answered {
    let head_only = request.method() == Method::HEAD;
    let client_close = connection_has(request.headers(), b"close");
    // While the answer is awaited the socket is still read, as hyper does: bytes of a
    // pipelined request are kept, and a client that closes its side gives the request
    // up (its member exchange is dropped instead of running to its timeout).
    let response = {
        let mut respond = std::pin::pin!(service.respond(request));
        loop {
            tokio::select! {
                biased;
                response = &mut respond => break Some(response),
                read = io.read_buf(buf), if buf.len() <= MAX_HEAD => match read {
                    Ok(0) | Err(_) => break None,
                    Ok(_) => {}
                },
            }
        }
    };
    let Some(response) = response else { return Answered::Closed };
    let closing = client_close || *stop.borrow();
    match write_response(io, response, head_only, closing).await {
        Ok(true) => Answered::Next,
        Ok(false) => Answered::Close,
        Err(_) => Answered::Closed,
    }
}

/// Shuts the connection down (lingering, see the guard). By reference: a guard moved into
/// this future would make every connection's task hold room for two.
async fn close(io: &mut Guard) -> Outcome {
    let _ = io.shutdown().await;
    Outcome::Closed
}

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
    // taken off the buffer. (A Vec: zeroing a fixed array for the most headers costs more.)
    let base = buf.as_ptr() as usize;
    let at = |part: &[u8]| (part.as_ptr() as usize - base, part.len());
    let spans: Vec<(Span, Span)> = parsed.headers.iter().map(|h| (at(h.name.as_bytes()), at(h.value))).collect();
    let path = parsed.path.map(|p| at(p.as_bytes()));
    let head = buf.split_to(len).freeze();
    match build_request(method, &head, path, &spans) {
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

/// Writes `response`; `Ok(true)` when the connection may carry another request.
async fn write_response(io: &mut Guard, response: Response<Tracked<ResponseBody>>, head_only: bool, close: bool) -> io::Result<bool> {
    let (parts, mut body) = response.into_parts();
    let member_headers = body.inner_mut().take_member_headers();
    let status = parts.status;
    let bodiless = head_only || status.is_informational() || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
    let close = close || connection_has(&parts.headers, b"close");
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    // The member's lines as it sent them (its spelling too, as nginx and httpd pass them),
    // then what the proxy added.
    for (name, value) in member_headers.iter().flat_map(|raw| raw.lines()) {
        write_field(&mut out, name, value);
    }
    for (name, value) in &parts.headers {
        write_field(&mut out, name.as_str().as_bytes(), value.as_bytes());
    }
    if !member_headers.as_ref().is_some_and(|raw| raw.has_date()) && !parts.headers.contains_key(header::DATE) {
        date::with(|now| write_field(&mut out, b"date", now));
    }
    let has_length = member_headers.as_ref().is_some_and(|raw| raw.has_length()) || parts.headers.contains_key(header::CONTENT_LENGTH);
    drop(member_headers);
    let mut chunked = false;
    if !has_length {
        match body.size_hint().exact() {
            // As hyper does, a HEAD answer tells the length its body would have had.
            Some(n) if !bodiless || (head_only && n > 0) => write_field(&mut out, b"content-length", n.to_string().as_bytes()),
            None if !bodiless => {
                chunked = true;
                write_field(&mut out, b"transfer-encoding", b"chunked");
            }
            _ => {}
        }
    }
    if close && !parts.headers.contains_key(header::CONNECTION) {
        write_field(&mut out, b"connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
    if bodiless {
        drop(body);
        io.write_all(&out).await?;
        io.flush().await?;
        return Ok(!close);
    }
    // A large answer of known length from a plain member to a plain client moves socket to
    // socket: its bytes are never copied through this process. (Boxed: a small answer's
    // writing should not carry, nor move, room for it.)
    let large = body.size_hint().exact().is_some_and(|n| n >= SPLICE_MIN);
    if !chunked && large && let Some(keep) = Box::pin(splice_rest(io, &mut body, &mut out)).await? {
        drop(body);
        return Ok(keep && !close);
    }
    // The head goes out with the first piece of the body when that is already here (a small
    // answer: one write), and at once when it is not.
    loop {
        let frame = std::future::poll_fn(|cx| match Pin::new(&mut body).poll_frame(cx) {
            Poll::Pending if !out.is_empty() => Poll::Ready(Step::Flush),
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => Poll::Ready(Step::End),
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Step::Frame(frame.into_data().ok())),
            Poll::Ready(Some(Err(_))) => Poll::Ready(Step::Failed),
        })
        .await;
        match frame {
            // The body has nothing more yet: what is written must reach the client now (over
            // TLS, a write alone may leave records queued; the flush is free on plain TCP).
            Step::Flush => {
                io.write_all(&out).await?;
                io.flush().await?;
                out.clear();
            }
            Step::Frame(None) => {} // trailers: not passed on, as before
            Step::Frame(Some(data)) if data.is_empty() => {}
            Step::Frame(Some(data)) if chunked => {
                write_chunk_size(&mut out, data.len());
                out.extend_from_slice(&data);
                out.extend_from_slice(b"\r\n");
            }
            Step::Frame(Some(data)) if out.is_empty() => {
                io.write_all(&data).await?;
                io.flush().await?;
            }
            // A large piece goes out beside the head in one write, not copied behind it.
            Step::Frame(Some(data)) if data.len() > COPY_LIMIT => {
                write_both(io, &out, &data).await?;
                out.clear();
            }
            Step::Frame(Some(data)) => out.extend_from_slice(&data),
            Step::End => break,
            Step::Failed => {
                // The answer cannot be finished: the client learns from the connection closing.
                drop(body);
                io.write_all(&out).await?;
                return Ok(false);
            }
        }
    }
    // The body is done: it goes (ending the member's busy count and giving its connection
    // back) before the client has the last bytes and can send its next request.
    drop(body);
    if chunked {
        out.extend_from_slice(LAST_CHUNK);
    }
    io.write_all(&out).await?;
    io.flush().await?;
    Ok(!close)
}

/// Bodies with fewer bytes than this still to read are copied. Measured (proxy CPU per
/// request, wrk, 16 connections): with 24 KiB left after the head's read (40 KiB answers)
/// splicing cost as much as copying; with 48 KiB left (64 KiB answers) it saved a quarter.
const SPLICE_MIN: u64 = 32 * 1024;

/// Sends the head in `out`, then the body socket to socket through a pipe ([`splice`]),
/// when the body allows it (see `MemberBody::begin_splice`). `Ok(Some(reusable))` when the
/// answer was sent (or cut: then not reusable); `Ok(None)` when the body goes the ordinary
/// way, with what is left of it (the head may have been sent, and `out` emptied).
async fn splice_rest(io: &mut Guard, body: &mut Tracked<ResponseBody>, out: &mut Vec<u8>) -> io::Result<Option<bool>> {
    if !splice::available() || io.plain_tcp().is_none() {
        return Ok(None);
    }
    let Some(member) = body.inner_mut().member_mut() else { return Ok(None) };
    let Some(first) = member.begin_splice(SPLICE_MIN) else { return Ok(None) };
    body.note_sent(first.len() as u64);
    if first.len() > COPY_LIMIT {
        write_both(io, out, &first).await?;
    } else {
        out.extend_from_slice(&first);
        io.write_all(out).await?;
    }
    out.clear();
    // Without a pipe (out of descriptors) the rest goes the ordinary way.
    let Ok(mut pipe) = Pipe::take() else { return Ok(None) };
    let (Some(to), Some(member)) = (io.plain_tcp(), body.inner_mut().member_mut()) else { return Ok(None) };
    let mut sent = 0;
    let result = std::future::poll_fn(|cx| member.poll_splice(cx, &mut pipe, to, &mut sent)).await;
    body.note_sent(sent);
    match result {
        Ok(()) => {
            pipe.give_back();
            Ok(Some(true))
        }
        Err(SpliceFailure::Unsupported) => Ok(None),
        // The answer cannot be finished: the client learns from the connection closing.
        Err(SpliceFailure::Member(_)) => Ok(Some(false)),
        Err(SpliceFailure::Client(e)) => Err(e),
    }
}

/// One step of writing a body.
enum Step {
    /// Write what is buffered: the body has nothing more yet.
    Flush,
    /// A frame: data, or trailers (`None`).
    Frame(Option<Bytes>),
    End,
    Failed,
}

/// Body pieces up to this size are copied behind the head (one small write); larger ones are
/// written beside it.
const COPY_LIMIT: usize = 4096;

/// Writes `first` then `second` with vectored writes (one system call when the socket takes
/// both).
async fn write_both(io: &mut Guard, first: &[u8], second: &[u8]) -> io::Result<()> {
    let (mut a, mut b) = (first, second);
    while !a.is_empty() {
        let n = io.write_vectored(&[io::IoSlice::new(a), io::IoSlice::new(b)]).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let from_a = n.min(a.len());
        a = &a[from_a..];
        b = &b[n - from_a..];
    }
    io.write_all(b).await
}

/// The `date` header's value, formatted once a second per worker thread.
mod date {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};

    thread_local! {
        static CACHED: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }

    /// Calls `f` with the current date in HTTP's format.
    pub(super) fn with(f: impl FnOnce(&[u8])) {
        let now = SystemTime::now();
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        CACHED.with_borrow_mut(|(at, text)| {
            if *at != second {
                *at = second;
                *text = httpdate::fmt_http_date(now);
            }
            f(text.as_bytes());
        });
    }
}

/// The socket as hyper gets it on a hand-off: the bytes already read first.
pub(crate) struct Prefixed {
    prefix: Bytes,
    io: Guard,
}

impl AsyncRead for Prefixed {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.prefix.is_empty() {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        let n = this.prefix.len().min(buf.remaining());
        buf.put_slice(&this.prefix.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
