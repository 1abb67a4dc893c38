//! Sending a request body to a member as a state machine any task can drive.
//!
//! A member may answer while it is still reading the request — an echo, a streaming
//! transform, an early `413` — and neither side's socket buffers hold a large body. So the
//! body is not written to the end before the answer is read: the exchange drives the upload
//! while it waits for the response head, and when the member answers first a task of its own
//! keeps driving it (see [`pump`](super::pump)) while the answer streams to the client.
//! Nothing is buffered beyond the frame being written.

use std::collections::VecDeque;
use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http_body::Body;
use tokio::io::AsyncWrite;
use tokio::time::Sleep;

use std::sync::Arc;

use super::ProxyMember;
use super::request::{BodyWriteError, RequestFraming};
use crate::codec::body::{LAST_CHUNK, write_chunk_size};

/// A request body on its way to a member.
#[derive(Debug)]
pub(crate) struct Upload<B> {
    body: B,
    /// Whose `transferred` the body's bytes count into.
    member: Arc<ProxyMember>,
    chunked: bool,
    /// What to write before taking the next frame from the body, in order (a chunk is its
    /// size line, its data and its CRLF).
    queue: VecDeque<Bytes>,
    /// The body ended; its last bytes may still be queued.
    ended: bool,
    /// How long the member may take no bytes before the upload fails.
    timeout: Duration,
    stall: Option<Pin<Box<Sleep>>>,
}

impl<B: Body<Data = Bytes> + Unpin> Upload<B>
where
    B::Error: std::fmt::Display,
{
    /// An upload of `body` to `member` with `framing` (nothing to send for a request without
    /// a body).
    pub(crate) fn new(body: B, framing: RequestFraming, timeout: Duration, member: Arc<ProxyMember>) -> Self {
        Self {
            body,
            member,
            chunked: framing == RequestFraming::Chunked,
            queue: VecDeque::new(),
            ended: !framing.has_body(),
            timeout,
            stall: None,
        }
    }

    /// Whether everything has been sent.
    pub(crate) fn is_done(&self) -> bool {
        self.ended && self.queue.is_empty()
    }

    /// Writes what it can to `stream`: `Ready(Ok)` once the whole body is sent; `Pending`
    /// while waiting for the client's body or for the member to read. A member that reads
    /// nothing for `timeout` fails the upload.
    pub(crate) fn poll_send<W: AsyncWrite + Unpin>(&mut self, cx: &mut Context<'_>, stream: &mut W) -> Poll<Result<(), BodyWriteError<B::Error>>> {
        loop {
            if !self.queue.is_empty() {
                match self.poll_write_queue(cx, stream) {
                    Poll::Ready(Ok(())) => continue,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            if self.ended {
                // TLS may still hold the last records (a no-op on plain TCP).
                return Pin::new(&mut *stream).poll_flush(cx).map_err(BodyWriteError::Member);
            }
            match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Ready(None) => {
                    self.ended = true;
                    if self.chunked {
                        self.queue.push_back(Bytes::from_static(LAST_CHUNK));
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(BodyWriteError::Client(e))),
                Poll::Ready(Some(Ok(frame))) => {
                    // Trailers of a chunked upload are dropped: members rarely want them, and
                    // forwarding them would need them announced in the head.
                    if let Ok(data) = frame.into_data()
                        && !data.is_empty()
                    {
                        self.member.add_transferred(data.len() as u64);
                        if self.chunked {
                            let mut size = Vec::with_capacity(18);
                            write_chunk_size(&mut size, data.len());
                            self.queue.push_back(Bytes::from(size));
                            self.queue.push_back(data);
                            self.queue.push_back(Bytes::from_static(b"\r\n"));
                        } else {
                            self.queue.push_back(data);
                        }
                    }
                }
                // Waiting on the client: its own deadlines (body rate) apply, not ours. What
                // TLS still holds goes out meanwhile (a no-op on plain TCP).
                Poll::Pending => {
                    if let Poll::Ready(Err(e)) = Pin::new(&mut *stream).poll_flush(cx) {
                        return Poll::Ready(Err(BodyWriteError::Member(e)));
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    /// Writes the queue, in one vectored write when it can.
    fn poll_write_queue<W: AsyncWrite + Unpin>(&mut self, cx: &mut Context<'_>, stream: &mut W) -> Poll<Result<(), BodyWriteError<B::Error>>> {
        while !self.queue.is_empty() {
            let written = {
                let slices: Vec<IoSlice<'_>> = self.queue.iter().map(|b| IoSlice::new(b)).collect();
                Pin::new(&mut *stream).poll_write_vectored(cx, &slices)
            };
            match written {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(BodyWriteError::Member(std::io::ErrorKind::WriteZero.into())));
                }
                Poll::Ready(Ok(mut n)) => {
                    self.stall = None;
                    while n > 0 {
                        let Some(front) = self.queue.front_mut() else { break };
                        let step = n.min(front.len());
                        front.advance(step);
                        n -= step;
                        if front.is_empty() {
                            self.queue.pop_front();
                        }
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(BodyWriteError::Member(e))),
                Poll::Pending => {
                    let timeout = self.timeout;
                    let stall = self.stall.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                    if stall.as_mut().poll(cx).is_ready() {
                        let stopped = std::io::Error::new(std::io::ErrorKind::TimedOut, "member stopped reading the request body");
                        return Poll::Ready(Err(BodyWriteError::Member(stopped)));
                    }
                    return Poll::Pending;
                }
            }
        }
        Poll::Ready(Ok(()))
    }
}
