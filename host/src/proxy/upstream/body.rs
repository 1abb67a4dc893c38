//! A member's response body, read straight off the member connection as the client consumes
//! it: no intermediate task or channel, no buffering of the whole body.
//!
//! The decoder understands Content-Length, chunked (strictly: a chunk size is hex digits and
//! nothing else but an optional `;extension`, lines end in CRLF) and close-delimited bodies.
//! Bytes are counted into the member's `read`, the member's busy count stays raised until the
//! body ends or is dropped, a member that stalls longer than its `timeout` mid-body is cut
//! off, and the connection goes back to the worker's pool only when the body ended exactly
//! where its framing said and the member allowed keep-alive.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

use super::conn::READ_CHUNK;

/// Largest read of a body whose length is known: what nginx's default proxy buffers hold.
const MAX_BODY_READ: usize = 64 * 1024;
use super::pool::Lease;
use super::pump::{Pump, PumpEnd};
use super::response::{Framing, RawHeaders};
use super::upload::Upload;
use crate::balancer::BusyGuard;
use crate::proxy::{MemberPool, ProxyMember};

/// Longest chunk-size line or trailer section accepted.
const MAX_LINE: usize = 4096;

/// Why a member body failed mid-way (the client connection is then cut: its status is sent).
#[derive(Debug, thiserror::Error)]
pub enum MemberBodyError {
    /// The member closed the connection before the body was complete.
    #[error("member {0} closed the connection in the middle of a response body")]
    Truncated(String),
    /// The member sent a malformed chunked body.
    #[error("member {0} sent a malformed chunked body: {1}")]
    BadChunk(String, &'static str),
    /// Reading from the member failed.
    #[error("reading from member {0}: {1}")]
    Io(String, std::io::Error),
    /// The member sent nothing for longer than its `timeout`.
    #[error("member {0} stalled for {1:?} in the middle of a response body")]
    Stalled(String, Duration),
    /// The client's request body failed while member {0} was already answering.
    #[error("the request body for member {0} failed while it was answering: {1}")]
    ClientBody(String, String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decoder {
    Length { remaining: u64 },
    ChunkSize,
    ChunkData { remaining: u64 },
    ChunkDataEnd,
    Trailers,
    UntilClose,
    Done,
}

/// A member's body on its way to the client.
#[derive(Debug)]
pub struct MemberBody {
    lease: Option<Lease>,
    decoder: Decoder,
    keep_alive: bool,
    member: Arc<ProxyMember>,
    busy: BusyGuard<Arc<MemberPool>>,
    timeout: Duration,
    stall: Option<Pin<Box<Sleep>>>,
    /// The task sending the rest of the request body, when the member answered before
    /// reading all of it (see [`Pump`]).
    pump: Option<Pump>,
    /// The member's header lines, until the answer's writer or a map takes them.
    headers: Option<RawHeaders>,
}

impl MemberBody {
    pub(crate) fn new(
        lease: Lease,
        framing: Framing,
        keep_alive: bool,
        member: Arc<ProxyMember>,
        busy: BusyGuard<Arc<MemberPool>>,
        upload: Option<Upload>,
    ) -> Self {
        let mut keep_alive = keep_alive;
        let mut lease = lease;
        let pump = upload.map(|upload| {
            // A connection that carried an answer and an upload side by side is not reused.
            keep_alive = false;
            Pump::start(&mut lease.conn.stream, upload)
        });
        let decoder = match framing {
            Framing::Empty | Framing::Length(0) => Decoder::Done,
            Framing::Length(n) => Decoder::Length { remaining: n },
            Framing::Chunked => Decoder::ChunkSize,
            Framing::UntilClose => Decoder::UntilClose,
        };
        let timeout = member.conn.settings().timeout;
        let mut body = Self { lease: Some(lease), decoder, keep_alive, member, busy, timeout, stall: None, pump, headers: None };
        // An empty body may never be polled (HEAD, 204, 304): give the connection back now.
        body.finish_if_done();
        body
    }

    /// Keeps the member's header lines with the body (see [`RawHeaders`]).
    pub(crate) fn with_headers(mut self, headers: Option<RawHeaders>) -> Self {
        self.headers = headers;
        self
    }

    /// Takes the member's header lines, if they are still kept here.
    pub(crate) fn take_headers(&mut self) -> Option<RawHeaders> {
        self.headers.take()
    }

    /// The member's header lines, if they are still kept here.
    pub(crate) fn headers(&self) -> Option<&RawHeaders> {
        self.headers.as_ref()
    }

    fn name(&self) -> String {
        self.member.config.url.clone()
    }

    /// Returns the connection once the body is complete, if it may be reused.
    fn finish_if_done(&mut self) {
        if self.decoder != Decoder::Done {
            return;
        }
        if let Some(lease) = self.lease.take() {
            // Bytes beyond the body mean the member is out of step with us, and a member that
            // answered in full before reading the whole request is too: do not reuse.
            if self.keep_alive && lease.conn.buf.is_empty() && self.pump.is_none() {
                lease.release();
            }
        }
        // The answer is complete: what is left of the upload has no one to go to.
        self.pump = None;
    }

    /// How the pumped upload went, if it ended: a client body that failed cuts the answer
    /// (the member has an incomplete request, and its connection is already shut down).
    fn check_pump(&mut self) -> Result<(), MemberBodyError> {
        match self.pump.as_mut().and_then(Pump::ended) {
            Some(PumpEnd::ClientFailed(reason)) => {
                self.pump = None;
                Err(MemberBodyError::ClientBody(self.name(), reason))
            }
            Some(PumpEnd::Sent | PumpEnd::MemberStopped) => {
                self.pump = None;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Reads more from the member into the buffer; `Ok(0)` at end of stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<Result<usize, MemberBodyError>> {
        let name = self.name();
        // A body of known length is read in pieces as large as what is left of it (up to
        // MAX_BODY_READ): a 64 KiB answer takes two reads, not five. One byte more than that,
        // so the read that gets the rest comes up short and tells tokio the socket is drained
        // (a full read leaves it marked ready, and the next request on the connection would
        // begin with a read that only finds EAGAIN).
        let want = match self.decoder {
            Decoder::Length { remaining } | Decoder::ChunkData { remaining } => {
                usize::try_from(remaining).map_or(MAX_BODY_READ, |r| r.saturating_add(1)).clamp(READ_CHUNK, MAX_BODY_READ)
            }
            _ => READ_CHUNK,
        };
        let Some(lease) = self.lease.as_mut() else { return Poll::Ready(Ok(0)) };
        let conn = &mut lease.conn;
        if conn.buf.capacity() - conn.buf.len() < READ_CHUNK / 4 {
            conn.buf.reserve(want);
        }
        // A read that fills less than the buffer tells tokio the socket is drained, so no
        // extra read just to see EAGAIN.
        let read = std::pin::pin!(tokio::io::AsyncReadExt::read_buf(&mut conn.stream, &mut conn.buf));
        match read.poll(cx) {
            Poll::Pending => {
                let timeout = self.timeout;
                let stall = self.stall.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if stall.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(MemberBodyError::Stalled(name, timeout)));
                }
                Poll::Pending
            }
            Poll::Ready(Ok(n)) => {
                self.stall = None;
                self.member.add_read(n as u64);
                self.busy.received(n as u64);
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(MemberBodyError::Io(name, e))),
        }
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, MemberBodyError>>> {
        if let Err(e) = self.check_pump() {
            return Poll::Ready(Some(Err(e)));
        }
        loop {
            let step = match self.lease.as_mut() {
                Some(lease) => decode(&mut self.decoder, &mut lease.conn.buf),
                None if self.decoder == Decoder::Done => return Poll::Ready(None),
                None => return Poll::Ready(Some(Err(MemberBodyError::Truncated(self.name())))),
            };
            match step {
                Step::Emit(frame) => {
                    self.finish_if_done();
                    return Poll::Ready(Some(Ok(frame)));
                }
                Step::End => {
                    self.finish_if_done();
                    return Poll::Ready(None);
                }
                Step::Bad(reason) => return Poll::Ready(Some(Err(MemberBodyError::BadChunk(self.name(), reason)))),
                Step::NeedMore => {}
            }
            if ready!(self.poll_fill(cx))? == 0 {
                // End of stream: the natural end of a close-delimited body, else truncation.
                self.lease = None;
                if self.decoder == Decoder::UntilClose {
                    self.decoder = Decoder::Done;
                    return Poll::Ready(None);
                }
                return Poll::Ready(Some(Err(MemberBodyError::Truncated(self.name()))));
            }
        }
    }
}

/// One decoding step over the bytes read so far.
#[derive(Debug)]
enum Step {
    /// A frame to hand on.
    Emit(Frame<Bytes>),
    /// The body ended (`decoder` is now `Done`).
    End,
    /// More bytes are needed.
    NeedMore,
    /// The bytes violate the framing.
    Bad(&'static str),
}

/// Decodes what `buf` holds, consuming it; `decoder` is advanced.
fn decode(decoder: &mut Decoder, buf: &mut bytes::BytesMut) -> Step {
    loop {
        match *decoder {
            Decoder::Done => return Step::End,
            Decoder::Length { remaining } | Decoder::ChunkData { remaining } => {
                if buf.is_empty() {
                    return Step::NeedMore;
                }
                let take = (buf.len() as u64).min(remaining) as usize;
                let data = buf.split_to(take).freeze();
                let left = remaining - take as u64;
                *decoder = match (*decoder, left) {
                    (Decoder::Length { .. }, 0) => Decoder::Done,
                    (Decoder::Length { .. }, _) => Decoder::Length { remaining: left },
                    (_, 0) => Decoder::ChunkDataEnd,
                    _ => Decoder::ChunkData { remaining: left },
                };
                return Step::Emit(Frame::data(data));
            }
            Decoder::UntilClose if buf.is_empty() => return Step::NeedMore,
            Decoder::UntilClose => return Step::Emit(Frame::data(buf.split().freeze())),
            Decoder::ChunkSize => match take_line(buf) {
                Some(line) => match parse_chunk_size(&line) {
                    Some(0) => *decoder = Decoder::Trailers,
                    Some(size) => *decoder = Decoder::ChunkData { remaining: size },
                    None => return Step::Bad("invalid chunk size"),
                },
                None if buf.len() > MAX_LINE => return Step::Bad("chunk size line too long"),
                None => return Step::NeedMore,
            },
            Decoder::ChunkDataEnd => {
                if buf.len() < 2 {
                    return Step::NeedMore;
                }
                if &buf[..2] != b"\r\n" {
                    return Step::Bad("chunk data not followed by CRLF");
                }
                buf.advance(2);
                *decoder = Decoder::ChunkSize;
            }
            Decoder::Trailers => match take_trailers(buf) {
                Some(Ok(trailers)) => {
                    *decoder = Decoder::Done;
                    return match trailers {
                        Some(map) => Step::Emit(Frame::trailers(map)),
                        None => Step::End,
                    };
                }
                Some(Err(reason)) => return Step::Bad(reason),
                None if buf.len() > MAX_LINE => return Step::Bad("trailers too long"),
                None => return Step::NeedMore,
            },
        }
    }
}

impl Body for MemberBody {
    type Data = Bytes;
    type Error = MemberBodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, MemberBodyError>>> {
        let body = self.get_mut();
        let next = body.poll_next(cx);
        if let Poll::Ready(Some(Err(_))) = &next {
            // The connection is in an unknown state: close it (both handles, if an upload is
            // still being pumped).
            body.lease = None;
            body.pump = None;
            body.decoder = Decoder::Done;
        }
        next
    }

    fn is_end_stream(&self) -> bool {
        self.decoder == Decoder::Done
    }

    fn size_hint(&self) -> SizeHint {
        match self.decoder {
            Decoder::Done => SizeHint::with_exact(0),
            Decoder::Length { remaining } => SizeHint::with_exact(remaining),
            _ => SizeHint::default(),
        }
    }
}

/// Takes one CRLF-terminated line off the front of `buf`, without the CRLF.
fn take_line(buf: &mut bytes::BytesMut) -> Option<bytes::BytesMut> {
    let end = buf.windows(2).position(|w| w == b"\r\n")?;
    let line = buf.split_to(end);
    buf.advance(2);
    Some(line)
}

/// A chunk size: hex digits, optionally followed by `;extensions` (ignored).
fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.split(|&b| b == b';').next()?.trim_ascii_end();
    if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

/// Takes the trailer section (after the last chunk) off `buf`: `None` if incomplete,
/// `Some(Ok(None))` for no trailers.
fn take_trailers(buf: &mut bytes::BytesMut) -> Option<Result<Option<HeaderMap>, &'static str>> {
    if buf.starts_with(b"\r\n") {
        buf.advance(2);
        return Some(Ok(None));
    }
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let section = buf.split_to(end);
    let mut slots = [httparse::EMPTY_HEADER; 32];
    match httparse::parse_headers(&section, &mut slots) {
        Ok(httparse::Status::Complete((_, parsed))) => {
            let mut map = HeaderMap::new();
            for h in parsed {
                let (Ok(name), Ok(value)) = (http::HeaderName::from_bytes(h.name.as_bytes()), http::HeaderValue::from_bytes(h.value)) else {
                    return Some(Err("invalid trailer"));
                };
                map.append(name, value);
            }
            Some(Ok(Some(map)))
        }
        _ => Some(Err("invalid trailers")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes() {
        assert_eq!(parse_chunk_size(b"1a"), Some(26));
        assert_eq!(parse_chunk_size(b"0"), Some(0));
        assert_eq!(parse_chunk_size(b"10;name=value"), Some(16));
        assert_eq!(parse_chunk_size(b""), None);
        assert_eq!(parse_chunk_size(b"-1"), None);
        assert_eq!(parse_chunk_size(b"0x10"), None);
        assert_eq!(parse_chunk_size(b"fffffffffffffffff"), None, "overflow");
        assert_eq!(parse_chunk_size(b" 5"), None);
    }

    /// Decodes `input` in one go; returns the data, whether trailers came, and the final step.
    fn run(decoder: Decoder, input: &[u8]) -> (Vec<u8>, bool, String) {
        let mut d = decoder;
        let mut buf = bytes::BytesMut::from(input);
        let mut data = Vec::new();
        let mut trailers = false;
        loop {
            match decode(&mut d, &mut buf) {
                Step::Emit(f) if f.is_data() => data.extend_from_slice(f.data_ref().expect("data")),
                Step::Emit(_) => trailers = true,
                other => return (data, trailers, format!("{other:?}")),
            }
        }
    }

    #[test]
    fn decodes_chunked_bodies() {
        let (data, trailers, end) = run(Decoder::ChunkSize, b"5\r\nhello\r\n1;ext=1\r\n!\r\n0\r\n\r\n");
        assert_eq!((data.as_slice(), trailers, end.as_str()), (&b"hello!"[..], false, "End"));
        let (data, trailers, end) = run(Decoder::ChunkSize, b"3\r\nabc\r\n0\r\nx-sum: 9\r\n\r\n");
        assert_eq!((data.as_slice(), trailers, end.as_str()), (&b"abc"[..], true, "End"));
        assert_eq!(run(Decoder::ChunkSize, b"3\r\nab").2, "NeedMore");
        assert_eq!(run(Decoder::ChunkSize, b"3\r\nabcXY").2, "Bad(\"chunk data not followed by CRLF\")");
        assert_eq!(run(Decoder::ChunkSize, b"zz\r\n").2, "Bad(\"invalid chunk size\")");
    }

    #[test]
    fn decodes_length_bodies_and_stops_at_the_end() {
        let mut d = Decoder::Length { remaining: 3 };
        let mut buf = bytes::BytesMut::from(&b"abcEXTRA"[..]);
        assert!(matches!(decode(&mut d, &mut buf), Step::Emit(_)));
        assert_eq!(d, Decoder::Done);
        assert_eq!(&buf[..], b"EXTRA", "bytes beyond the body stay (and forbid reuse)");
    }

    #[test]
    fn trailers() {
        let mut buf = bytes::BytesMut::from(&b"\r\nrest"[..]);
        assert_eq!(take_trailers(&mut buf), Some(Ok(None)));
        assert_eq!(&buf[..], b"rest");
        let mut buf = bytes::BytesMut::from(&b"x-sum: 1\r\n\r\n"[..]);
        let map = take_trailers(&mut buf).expect("complete").expect("valid").expect("some");
        assert_eq!(map["x-sum"], "1");
        let mut partial = bytes::BytesMut::from(&b"x-sum: 1\r\n"[..]);
        assert_eq!(take_trailers(&mut partial), None);
    }
}
