//! The answer onto the client socket: the head as the member wrote it (plus what hyper would
//! add), then the body copied, chunked, or moved socket to socket by splice.

use std::io;
use std::pin::Pin;
use std::task::Poll;

use bytes::Bytes;
use http::header;
use http::{Response, StatusCode};
use http_body::Body;
use tokio::io::AsyncWriteExt;

use crate::codec::body::{LAST_CHUNK, write_chunk_size};
use crate::codec::fields::{connection_has, write_field};
use crate::codec::lines::HeaderView;
use crate::edge::{Guard, Tracked};
use crate::head_buffer::HeadBuffer;
use crate::proxy::ResponseBody;
use crate::splice::{self, Pipe};
use crate::upstream::SpliceFailure;

/// Writes `response`; `Ok(true)` when the connection may carry another request.
pub(super) async fn write_response(io: &mut Guard, response: Response<Tracked<ResponseBody>>, head_only: bool, close: bool) -> io::Result<bool> {
    let (parts, mut body) = response.into_parts();
    let member_headers = body.inner_mut().take_member_headers();
    let status = parts.status;
    let bodiless = head_only || status.is_informational() || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
    let close = close || connection_has(HeaderView::Map(&parts.headers), b"close");
    let mut out = HeadBuffer::take();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    // The member's lines as it sent them (its spelling too, as nginx and httpd pass them),
    // then what the proxy added.
    if let Some(raw) = &member_headers {
        raw.write_to(&mut out);
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
