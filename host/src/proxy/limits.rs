//! The client's request body on its way in: its size limit and its deadlines.
//!
//! - **Size**: `limits.body` bytes at most. A declared Content-Length is checked before
//!   reading (`strict`); here the bytes are counted as they stream, which catches chunked
//!   bodies (413).
//! - **Stalls**: the client must send something at least every `timeouts.body` (408).
//! - **Rate**: after `timeouts.body` of grace, the client must keep up an average of
//!   `timeouts.body_min_rate` bytes per second (mod_reqtimeout's MinRate), so a
//!   1-byte-per-second upload cannot hold a connection for ever (nginx's per-read timeout
//!   lets it). Only time spent waiting for the client counts: while the member is slow to
//!   take the bytes the body is not polled and the clock stops.
//!
//! The first piece of a body is read before any member is chosen ([`ClientBody::prefetch`]):
//! a body that is malformed, too large or too slow from the start never reaches a member, and
//! no member connection waits on a client that has not started sending.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use super::respond::ProxyError;
use crate::config::{Limits, Timeouts};

/// Why the client's body was cut off.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientBodyError {
    /// More than the limit arrived.
    #[error("request body exceeds {limit} bytes")]
    TooLarge { limit: u64 },
    /// The client stalled, or sent too slowly.
    #[error("{0}")]
    TooSlow(String),
    /// The body was malformed (bad chunk) or the client went away.
    #[error("{0}")]
    Failed(hyper::Error),
}

impl From<ClientBodyError> for ProxyError {
    fn from(e: ClientBodyError) -> Self {
        match e {
            ClientBodyError::TooLarge { limit } => ProxyError::BodyTooLarge { limit },
            ClientBodyError::TooSlow(reason) => ProxyError::ClientTimeout { reason },
            ClientBodyError::Failed(e) => ProxyError::ClientBody { reason: e.to_string() },
        }
    }
}

/// A client's body with its limit and deadlines.
#[derive(Debug)]
pub(crate) struct ClientBody {
    inner: Incoming,
    limit: Option<u64>,
    received: u64,
    stall: Duration,
    min_rate: u64,
    /// Time spent waiting for the client so far (not counting the current wait).
    waited: Duration,
    /// When the current wait began.
    waiting_since: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
    /// The frame read ahead by `prefetch`, handed out first.
    first: Option<Frame<Bytes>>,
    /// Whether `prefetch` found the end of the body.
    ended: bool,
    /// Where bytes received are also counted for the access log, when it is on.
    counted: Option<Arc<AtomicU64>>,
}

impl ClientBody {
    /// Wraps `inner` with the limits of the proxy's config.
    pub(crate) fn new(inner: Incoming, limits: &Limits, timeouts: &Timeouts) -> Self {
        Self {
            inner,
            limit: limits.body,
            received: 0,
            stall: timeouts.body,
            min_rate: timeouts.body_min_rate,
            waited: Duration::ZERO,
            waiting_since: None,
            timer: None,
            first: None,
            ended: false,
            counted: None,
        }
    }

    /// Also counts the bytes received into `counter` (for the access log).
    pub(crate) fn count_into(&mut self, counter: Arc<AtomicU64>) {
        counter.store(self.received, Ordering::Relaxed);
        self.counted = Some(counter);
    }

    /// Reads the first frame of the body (if there is a body), under the limits.
    pub(crate) async fn prefetch(&mut self) -> Result<(), ClientBodyError> {
        if self.inner.is_end_stream() {
            return Ok(());
        }
        match std::future::poll_fn(|cx| Pin::new(&mut *self).poll_frame(cx)).await {
            Some(Ok(frame)) => self.first = Some(frame),
            Some(Err(e)) => return Err(e),
            None => self.ended = true,
        }
        Ok(())
    }

    fn first_len(&self) -> u64 {
        self.first.as_ref().and_then(|f| f.data_ref()).map_or(0, |d| d.len() as u64)
    }

    /// When the current wait, begun at `since`, runs out.
    fn deadline(&self, since: Instant) -> Instant {
        let stalled = since + self.stall;
        if self.min_rate == 0 {
            return stalled;
        }
        let allowed = self.stall + Duration::from_secs_f64(self.received as f64 / self.min_rate as f64);
        let too_slow = since + allowed.saturating_sub(self.waited);
        stalled.min(too_slow)
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        let this = self.get_mut();
        if let Some(frame) = this.first.take() {
            return Poll::Ready(Some(Ok(frame)));
        }
        if this.ended {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                if let Some(since) = this.waiting_since.take() {
                    this.waited += since.elapsed();
                }
                let frame = match frame {
                    None => return Poll::Ready(None),
                    Some(Err(e)) => return Poll::Ready(Some(Err(ClientBodyError::Failed(e)))),
                    Some(Ok(frame)) => frame,
                };
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                    if let Some(counter) = &this.counted {
                        counter.store(this.received, Ordering::Relaxed);
                    }
                    if let Some(limit) = this.limit.filter(|&l| this.received > l) {
                        return Poll::Ready(Some(Err(ClientBodyError::TooLarge { limit })));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                let since = *this.waiting_since.get_or_insert_with(Instant::now);
                let deadline = this.deadline(since);
                let timer = match &mut this.timer {
                    Some(t) => {
                        if t.deadline() != deadline {
                            t.as_mut().reset(deadline);
                        }
                        t
                    }
                    None => this.timer.insert(Box::pin(tokio::time::sleep_until(deadline))),
                };
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                let reason = if deadline == since + this.stall {
                    format!("no body bytes for {:?}", this.stall)
                } else {
                    format!("body slower than {} bytes/s ({} bytes received)", this.min_rate, this.received)
                };
                Poll::Ready(Some(Err(ClientBodyError::TooSlow(reason))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && (self.ended || self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let ahead = self.first_len();
        if self.ended {
            return SizeHint::with_exact(ahead);
        }
        let inner = self.inner.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + ahead);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + ahead);
        }
        hint
    }
}
