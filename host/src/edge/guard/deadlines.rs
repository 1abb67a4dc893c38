//! When a client connection's reads may wait no longer: its head and idle deadlines, and when
//! an idle plain connection is parked. The second part of [`Guard`]'s methods (the first,
//! in the parent module, scans the bytes and answers what it finds).
//!
//! Deadlines (see [`GuardSettings`](super::GuardSettings)): a connection's first head must
//! arrive within `header` of the accept; after a response, the next request's first byte
//! within `keepalive`, and the rest of its head within `header` of that byte. A client that
//! started a head and ran out of time gets 408 and the connection is closed; one that sent
//! nothing is closed silently (nginx and HAProxy do the same). No deadline runs while a
//! request is in flight (hyper keeps reading to notice a client that goes away, and a slow
//! member is not the client's fault); body deadlines belong to the request body
//! (`proxy::limits`).
//!
//! HTTP/2 (prior knowledge): a connection with no request in flight for `keepalive` is closed,
//! whatever frames it sends meanwhile (PINGs do not keep it open). A request head — a HEADERS
//! frame and its CONTINUATIONs, or any control frame — must arrive whole within `header` of
//! its first byte, even while other requests are in flight; otherwise the connection is
//! closed (there is no HTTP/1 page to answer with).

use std::io;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::time::Instant;

use super::super::rawhead::Phase;
use super::super::stream::ClientStream;
use super::Guard;

/// How a wait for the client's next bytes ended (see [`Guard::poll_read_ready`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Waited {
    /// A read would find bytes, or the end of the stream (the deadline may have ended it).
    Readable,
    /// Idle for its `park` time between requests: park the socket or close it.
    Park,
}

/// How a deadline that ran out ends the wait.
enum Quiet {
    /// Close the connection without a word.
    Close,
    /// Idle long enough to park.
    Park,
}

impl Guard {
    /// Says whether the task reading through the guard is answering a request itself, and
    /// reads again once the answer is written: until then the idle and head deadlines wait,
    /// without asking to be woken when the request ends.
    pub(crate) fn set_answering(&mut self, answering: bool) {
        self.answering = answering;
    }

    /// While the read waits: runs the idle or head deadline (and, with `may_park`, the
    /// parking one). `Ready(Ok)` says how to end the connection quietly; `Ready(Err)`:
    /// answer-and-close happened.
    fn poll_deadline(&mut self, cx: &mut Context<'_>, may_park: bool) -> Poll<io::Result<Quiet>> {
        let phase = match self.scanner.phase() {
            _ if self.shared.is_tunnel() => return Poll::Pending,
            _ if self.scanner.is_http2() => return self.poll_h2_deadline(cx).map_ok(|()| Quiet::Close),
            // Stopped at a finding: the head deadline still runs, so a client cannot break a
            // rule early in a head and then trickle the rest for ever.
            Phase::Off => Phase::InHead,
            phase => phase,
        };
        if self.write_blocked {
            // The last response is still going out to a slow reader: not idle yet (the write
            // completing wakes the connection, which reads again).
            self.restamp = true;
            return Poll::Pending;
        }
        if self.answering || self.shared.busy_or_wake(cx.waker()) {
            self.restamp = true;
            return Poll::Pending;
        }
        if self.restamp {
            // Idle (or a head that started while a response was under way) counts from now.
            if !self.first {
                self.since = Instant::now();
            }
            self.restamp = false;
        }
        let limit = match phase {
            Phase::InHead => self.settings.header,
            _ if self.first => self.settings.header,
            _ => self.settings.keepalive,
        };
        // Only between requests, after the first: a head under way, or a connection that
        // never sent one, keeps its task and its head deadline.
        if may_park
            && phase == Phase::Idle
            && !self.first
            && let Some(parking) = self.settings.park
        {
            ready!(self.poll_timer(cx, parking.at(self.since)));
            return Poll::Ready(Ok(Quiet::Park));
        }
        ready!(self.poll_timer(cx, self.since + limit));
        if phase == Phase::InHead {
            let page = Arc::clone(&self.settings.answers);
            tracing::debug!(timeout = ?limit, "request head not received in time");
            return match self.answer_and_close(cx, &page.timeout, "request head timeout") {
                Poll::Ready(r) => Poll::Ready(r.and(Err(io::Error::other("closed")))),
                Poll::Pending => Poll::Pending,
            };
        }
        tracing::debug!(timeout = ?limit, "idle connection closed");
        Poll::Ready(Ok(Quiet::Close))
    }

    /// The HTTP/2 deadlines (see the module header); `Ready` means close the connection.
    fn poll_h2_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let busy = self.shared.busy_or_wake(cx.waker()) || self.write_blocked;
        if busy {
            self.restamp = true;
        } else if self.restamp {
            self.since = Instant::now();
            self.restamp = false;
        }
        let idle = (!busy).then(|| self.since + self.settings.keepalive);
        let head = (self.scanner.phase() == Phase::InHead).then(|| self.head_since + self.settings.header);
        let deadline = match (idle, head) {
            (Some(idle), Some(head)) => idle.min(head),
            (Some(at), None) | (None, Some(at)) => at,
            (None, None) => return Poll::Pending,
        };
        ready!(self.poll_timer(cx, deadline));
        if head == Some(deadline) {
            tracing::debug!(timeout = ?self.settings.header, "HTTP/2 request head not received in time; connection closed");
        } else {
            tracing::debug!(timeout = ?self.settings.keepalive, "idle HTTP/2 connection closed");
        }
        Poll::Ready(Ok(()))
    }

    /// Polls the connection's one timer, set to `deadline`.
    fn poll_timer(&mut self, cx: &mut Context<'_>, deadline: Instant) -> Poll<()> {
        let timer = match &mut self.timer {
            Some(t) => {
                if t.deadline() != deadline {
                    t.as_mut().reset(deadline);
                }
                t
            }
            None => self.timer.insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        timer.as_mut().poll(cx)
    }

    /// Waits until a read would find bytes (or the connection ends), holding no buffer: an
    /// idle keep-alive connection waits here, so it keeps no read buffer while it idles. The
    /// idle and head deadlines run as they do while a read waits. A TLS stream keeps buffers
    /// of its own anyway and is always ready here (the read that follows does the waiting).
    ///
    /// A plain connection idle for its `park` time between requests ends the wait with
    /// [`Waited::Park`]; the caller then parks it or closes it (polling again would say the
    /// same at once).
    pub(crate) fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Waited>> {
        if self.done || self.deferred.is_some() {
            return Poll::Ready(Ok(Waited::Readable));
        }
        let ClientStream::Plain(tcp) = &self.stream else { return Poll::Ready(Ok(Waited::Readable)) };
        match tcp.poll_read_ready(cx) {
            Poll::Ready(r) => Poll::Ready(r.map(|()| Waited::Readable)),
            Poll::Pending => match ready!(self.poll_deadline(cx, true)) {
                Ok(Quiet::Park) => Poll::Ready(Ok(Waited::Park)),
                Ok(Quiet::Close) => {
                    self.done = true;
                    Poll::Ready(Ok(Waited::Readable))
                }
                Err(e) => Poll::Ready(Err(e)),
            },
        }
    }

    /// While the client sends nothing: the deadlines run; one that ends the connection
    /// quietly makes the wait end as the client's end of stream would.
    pub(super) fn poll_waiting(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match ready!(self.poll_deadline(cx, false)) {
            Ok(_) => {
                self.done = true;
                Poll::Ready(Ok(()))
            }
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}
