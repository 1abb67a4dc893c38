//! A member's response body, read straight off the member connection as the client consumes
//! it: no intermediate task or channel, no buffering of the whole body.
//!
//! The framing is decoded by [`codec::body`](crate::codec::body) (Content-Length, strict
//! chunked, close-delimited). Bytes are counted into the member's `read`, the member's busy count stays raised until the
//! body ends or is dropped, a member that stalls longer than its `timeout` mid-body is cut
//! off, and the connection goes back to the worker's pool only when the body ended exactly
//! where its framing said and the member allowed keep-alive.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use super::conn::READ_CHUNK;
use super::pool::Lease;
use super::pump::{Pump, PumpEnd};
use super::upload::Upload;
use super::{MemberPool, OutgoingBody, ProxyMember};
use crate::balancer::BusyGuard;
use crate::codec::body::{BodyDecoder, ChunkError, Decoded, Framing};
use crate::splice::{FillError, Pipe};

/// Largest read of a body whose length is known: what nginx's default proxy buffers hold.
const MAX_BODY_READ: usize = 64 * 1024;

/// Why a member body failed mid-way (the client connection is then cut: its status is sent).
#[derive(Debug, thiserror::Error)]
pub enum MemberBodyError {
    /// The member closed the connection before the body was complete.
    #[error("member {0} closed the connection in the middle of a response body")]
    Truncated(String),
    /// The member sent a malformed chunked body.
    #[error("member {0} sent a malformed chunked body: {1}")]
    BadChunk(String, ChunkError),
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

/// Why moving a body socket to socket stopped short.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SpliceFailure {
    /// The kernel does not splice here; nothing was moved, and the body reads as before.
    #[error("splice is not supported here")]
    Unsupported,
    /// The member's side failed (the body is cut).
    #[error(transparent)]
    Member(#[from] MemberBodyError),
    /// Writing to the client failed.
    #[error("writing to the client: {0}")]
    Client(std::io::Error),
}

/// A member's body on its way to the client.
#[derive(Debug)]
pub struct MemberBody {
    lease: Option<Lease>,
    decoder: BodyDecoder,
    keep_alive: bool,
    member: Arc<ProxyMember>,
    busy: BusyGuard<Arc<MemberPool>>,
    timeout: Duration,
    stall: Option<Pin<Box<Sleep>>>,
    /// The task sending the rest of the request body, when the member answered before
    /// reading all of it (see [`Pump`]).
    pump: Option<Pump>,
}

impl MemberBody {
    pub(crate) fn new<B: OutgoingBody>(
        lease: Lease,
        framing: Framing,
        keep_alive: bool,
        member: Arc<ProxyMember>,
        busy: BusyGuard<Arc<MemberPool>>,
        upload: Option<Upload<B>>,
    ) -> Self {
        let mut keep_alive = keep_alive;
        let mut lease = lease;
        let pump = upload.map(|upload| {
            // A connection that carried an answer and an upload side by side is not reused.
            keep_alive = false;
            Pump::start(&mut lease.conn.stream, upload)
        });
        let decoder = BodyDecoder::new(framing);
        let timeout = member.conn.settings().timeout;
        let mut body = Self { lease: Some(lease), decoder, keep_alive, member, busy, timeout, stall: None, pump };
        // An empty body may never be polled (HEAD, 204, 304): give the connection back now.
        body.finish_if_done();
        body
    }

    fn name(&self) -> String {
        self.member.config.url.clone()
    }

    /// Returns the connection once the body is complete, if it may be reused.
    fn finish_if_done(&mut self) {
        if !self.decoder.is_done() {
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

    /// Starts moving the rest of the body socket to socket ([`crate::splice`]) when it may: a
    /// Content-Length body with at least `min` bytes not yet read, on a whole plain TCP
    /// connection with no upload beside it. Returns the body bytes already read with the
    /// head (perhaps none), which go to the client first; `None`, and nothing taken, when
    /// the body must be read the ordinary way.
    pub(crate) fn begin_splice(&mut self, min: u64) -> Option<Bytes> {
        let remaining = self.decoder.exact_remaining()?;
        let lease = self.lease.as_mut()?;
        if self.pump.is_some() || lease.conn.stream.plain().is_none() || self.decoder.owed() != Some(remaining) {
            return None;
        }
        let buffered = lease.conn.buf.len().min(usize::try_from(remaining).unwrap_or(usize::MAX));
        if remaining - (buffered as u64) < min {
            return None;
        }
        let first = lease.conn.buf.split_to(buffered).freeze();
        self.decoder.passed(buffered as u64);
        Some(first)
    }

    /// Moves the rest of the body from the member's socket into `to` through `pipe`,
    /// counting what it reads as reads do, with the same stall timeout; the connection goes
    /// back to the pool once the last byte is off it. Adds what reached `to` to `sent`.
    /// Call after [`begin_splice`](Self::begin_splice) agreed.
    pub(crate) fn poll_splice(&mut self, cx: &mut Context<'_>, pipe: &mut Pipe, to: &TcpStream, sent: &mut u64) -> Poll<Result<(), SpliceFailure>> {
        let result = self.poll_splice_inner(cx, pipe, to, sent);
        if let Poll::Ready(Err(SpliceFailure::Member(_) | SpliceFailure::Client(_))) = &result {
            // Out of step with the member (bytes left on its socket or in the pipe): close.
            self.lease = None;
            self.decoder.close();
        }
        result
    }

    fn poll_splice_inner(&mut self, cx: &mut Context<'_>, pipe: &mut Pipe, to: &TcpStream, sent: &mut u64) -> Poll<Result<(), SpliceFailure>> {
        loop {
            if pipe.held() > 0 {
                let n = ready!(pipe.poll_drain(cx, to)).map_err(SpliceFailure::Client)?;
                *sent += n as u64;
                continue;
            }
            let Some(remaining) = self.decoder.exact_remaining().filter(|r| *r > 0) else {
                self.finish_if_done();
                return Poll::Ready(Ok(()));
            };
            let Some(from) = self.lease.as_ref().and_then(|lease| lease.conn.stream.plain()) else {
                return Poll::Ready(Err(MemberBodyError::Truncated(self.name()).into()));
            };
            let want = usize::try_from(remaining).unwrap_or(usize::MAX);
            match pipe.poll_fill(cx, from, want) {
                Poll::Pending => {
                    let timeout = self.timeout;
                    let stall = self.stall.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                    if stall.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Err(MemberBodyError::Stalled(self.name(), timeout).into()));
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(MemberBodyError::Truncated(self.name()).into())),
                Poll::Ready(Ok(n)) => {
                    self.stall = None;
                    self.member.add_read(n as u64);
                    self.busy.received(n as u64);
                    self.decoder.passed(n as u64);
                    // The last byte is off the member's socket: its connection can go back
                    // to the pool before the client has it.
                    self.finish_if_done();
                }
                Poll::Ready(Err(FillError::Unsupported(_))) => return Poll::Ready(Err(SpliceFailure::Unsupported)),
                Poll::Ready(Err(FillError::Io(e))) => return Poll::Ready(Err(MemberBodyError::Io(self.name(), e).into())),
            }
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
        let want = match self.decoder.owed() {
            Some(remaining) => usize::try_from(remaining).map_or(MAX_BODY_READ, |r| r.saturating_add(1)).clamp(READ_CHUNK, MAX_BODY_READ),
            None => READ_CHUNK,
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
                Some(lease) => self.decoder.decode(&mut lease.conn.buf),
                None if self.decoder.is_done() => return Poll::Ready(None),
                None => return Poll::Ready(Some(Err(MemberBodyError::Truncated(self.name())))),
            };
            let frame = match step {
                Ok(Decoded::Data(data)) => Frame::data(data),
                Ok(Decoded::Trailers(trailers)) => Frame::trailers(trailers),
                Ok(Decoded::End) => {
                    self.finish_if_done();
                    return Poll::Ready(None);
                }
                Err(e) => return Poll::Ready(Some(Err(MemberBodyError::BadChunk(self.name(), e)))),
                Ok(Decoded::NeedMore) => {
                    if ready!(self.poll_fill(cx))? == 0 {
                        // End of stream: the natural end of a close-delimited body, else
                        // truncation.
                        self.lease = None;
                        if self.decoder.close() {
                            return Poll::Ready(None);
                        }
                        return Poll::Ready(Some(Err(MemberBodyError::Truncated(self.name()))));
                    }
                    continue;
                }
            };
            self.finish_if_done();
            return Poll::Ready(Some(Ok(frame)));
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
            body.decoder.close();
        }
        next
    }

    fn is_end_stream(&self) -> bool {
        self.decoder.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        self.decoder.exact_remaining().map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}
