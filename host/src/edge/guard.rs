//! The client socket as hyper sees it: every byte read passes the raw-head [`Scanner`], and
//! the connection's head and idle deadlines are kept where the bytes arrive (`deadlines`, a
//! second part of [`Guard`]'s methods).
//!
//! A request line or header block over its limit is answered at once (414, 431) when no
//! response is under way, instead of letting the parser buffer it. Behind a response under
//! way (pipelining), the offending line and everything after it is held back from the parser
//! and answered the same way once that response is written. Answers written here are
//! pre-made by the caller (the proxy's `respond` module makes every error page).
//!
//! Closing is lingering, as nginx does: after an answer the write side is shut and whatever
//! the client still sends is read and dropped until it closes or [`LINGER`] passes. Closing
//! at once with unread bytes would make the kernel send a reset, which can destroy the
//! answer before the client reads it.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use super::parking::Parking;
use super::rawhead::{Phase, ScanLimits, Scanner, Violation};
use super::state::ConnShared;
use super::stream::ClientStream;

mod deadlines;

pub(crate) use deadlines::Waited;

/// Longest a closing connection keeps reading (and dropping) what the client still sends.
pub(crate) const LINGER: Duration = Duration::from_secs(2);

/// Error pages the guard may write itself (complete HTTP/1.1 responses with
/// `Connection: close`).
#[derive(Debug, Clone)]
pub struct Answers {
    /// 408 Request Timeout.
    pub timeout: Bytes,
    /// 414 URI Too Long.
    pub uri_too_long: Bytes,
    /// 431 Request Header Fields Too Large.
    pub header_too_large: Bytes,
}

/// What a guard enforces.
#[derive(Debug, Clone)]
pub struct GuardSettings {
    /// Size limits for heads.
    pub limits: ScanLimits,
    /// Time to receive a head.
    pub header: Duration,
    /// Time an idle connection is kept.
    pub keepalive: Duration,
    /// When a plain HTTP/1 connection idle between requests is parked ([`Guard::poll_read_ready`]
    /// then says so; see `server::park`), if ever. Clients sending requests back to back
    /// never pay for parking (about 20 µs of CPU to park and wake); connections arriving
    /// faster than they go quiet pile up unparked for this long.
    pub park: Option<Parking>,
    /// Pages for the answers the guard gives itself.
    pub answers: Arc<Answers>,
}

/// A client connection's socket, scanned and timed.
pub struct Guard {
    stream: ClientStream,
    scanner: Scanner,
    shared: Arc<ConnShared>,
    settings: GuardSettings,
    /// When the current wait began: the accept, the end of the last response, or the first
    /// byte of the current head.
    since: Instant,
    /// Whether no head has started yet (the first head's deadline counts from the accept).
    first: bool,
    /// HTTP/2: when the request head (or control frame) now arriving began.
    head_since: Instant,
    /// Whether the next wait starts a new period (after bytes, or after a response).
    restamp: bool,
    timer: Option<Pin<Box<Sleep>>>,
    /// Whether a write is waiting for the client to read (then the guard never writes).
    write_blocked: bool,
    /// Whether the task reading through the guard is itself answering the request in flight
    /// (the HTTP/1 fast path): it reads again once the answer is written, so a wait need not
    /// be woken when the request ends (that wake-up was a whole extra turn of the task for
    /// every request).
    answering: bool,
    /// Set once the connection is ending: reads fail (or linger, see `lingering`).
    done: bool,
    /// Until when a closing connection drains the client's bytes.
    lingering: Option<Instant>,
    /// The answer owed to a head over its limit that arrived behind a response under way.
    deferred: Option<Bytes>,
}

/// What becomes of the bytes of one read, once scanned.
enum Early {
    /// They go to the parser.
    Pass,
    /// None go to the parser; this page answers and the connection closes.
    Answer(Bytes),
    /// All but the last `withhold` go to the parser; the owed answer waits for the response
    /// under way.
    Defer { withhold: usize },
}

impl Guard {
    /// Guards `stream`, sharing findings through `shared`.
    pub fn new(stream: ClientStream, shared: Arc<ConnShared>, settings: GuardSettings) -> Self {
        let scanner = Scanner::new(settings.limits);
        Self::with_start(stream, scanner, shared, settings, Instant::now(), true)
    }

    /// Guards a parked keep-alive connection that became readable. Its wait counts from
    /// now: the bytes that woke it are there (tokio learns so on its next turn, and must
    /// not find the connection idle past its parking time before that), or the client
    /// closed. A head that starts runs its own deadline either way.
    pub(crate) fn resume(stream: ClientStream, shared: Arc<ConnShared>, settings: GuardSettings) -> Self {
        let scanner = Scanner::resumed(settings.limits);
        Self::with_start(stream, scanner, shared, settings, Instant::now(), false)
    }

    fn with_start(stream: ClientStream, scanner: Scanner, shared: Arc<ConnShared>, settings: GuardSettings, since: Instant, first: bool) -> Self {
        Self {
            stream,
            scanner,
            shared,
            settings,
            since,
            first,
            head_since: since,
            restamp: false,
            timer: None,
            write_blocked: false,
            answering: false,
            done: false,
            lingering: None,
            deferred: None,
        }
    }

    /// The socket of a connection [`Waited::Park`] was said of, and when its idling began;
    /// `None` for a TLS connection (never said to park).
    pub(crate) fn into_idle(self) -> Option<(TcpStream, Instant)> {
        match self.stream {
            ClientStream::Plain(tcp) => Some((tcp, self.since)),
            ClientStream::Tls(_) => None,
        }
    }

    /// Scans newly read bytes and records what they show.
    fn scan(&mut self, bytes: &[u8]) -> Early {
        if self.shared.is_tunnel() {
            self.scanner.stop();
            return Early::Pass;
        }
        let before = self.scanner.phase();
        if before == Phase::Off {
            return Early::Pass;
        }
        let was_http2 = self.scanner.is_http2();
        let finding = self.scanner.feed(bytes);
        if self.scanner.is_http2() {
            self.shared.set_http2();
            // A head that started in this read is timed from now (the preface from the
            // accept). Bytes do not make the connection any less idle.
            if self.scanner.phase() == Phase::InHead && (before != Phase::InHead || !was_http2) {
                self.head_since = if was_http2 { Instant::now() } else { self.since };
            }
            self.first = false;
            return Early::Pass;
        }
        let after = self.scanner.phase();
        // A head started in this read: its deadline counts from now (or from the accept).
        if before == Phase::Idle && after == Phase::InHead && !self.first {
            self.since = Instant::now();
        }
        if after != Phase::Idle || self.scanner.heads() > 0 {
            self.first = false;
        }
        self.restamp = after != Phase::InHead;
        let Some(finding) = finding else { return Early::Pass };
        self.shared.record(finding);
        let page = match finding.violation {
            Violation::RequestLineTooLong => &self.settings.answers.uri_too_long,
            Violation::HeaderTooLarge => &self.settings.answers.header_too_large,
            // The service answers the rest when it gets the head.
            _ => return Early::Pass,
        };
        // Answer at once when the head being refused is the next one to be answered (no
        // response under way, no earlier request in this read); otherwise keep it from the
        // parser (which would buffer it, and past its own limit answer 431 for it) until the
        // requests before it are answered.
        let withhold = self.scanner.finding_tail().min(bytes.len());
        if self.shared.in_flight() == 0 && !self.write_blocked && withhold == bytes.len() {
            return Early::Answer(page.clone());
        }
        self.deferred = Some(page.clone());
        Early::Defer { withhold }
    }

    /// Answers a deferred finding (see [`Early::Defer`]) once no response is under way;
    /// until then nothing more is read.
    fn poll_deferred(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.write_blocked {
            // The write completing wakes the connection, which reads again.
            return Poll::Pending;
        }
        if self.shared.busy_or_wake(cx.waker()) {
            return Poll::Pending;
        }
        let Some(page) = self.deferred.take() else { return Poll::Ready(Ok(())) };
        self.answer_and_close(cx, &page, "request head too large, behind a pipelined response")
    }

    /// Writes `page` if the socket takes it at once, shuts the write side, and lingers
    /// (see [`LINGER`]) before the read fails with `why`.
    fn answer_and_close(&mut self, cx: &mut Context<'_>, page: &[u8], why: &str) -> Poll<io::Result<()>> {
        if !self.write_blocked {
            self.stream.write_now(cx, page);
        }
        let _ = Pin::new(&mut self.stream).poll_shutdown(cx);
        self.done = true;
        self.lingering = Some(Instant::now() + LINGER);
        tracing::debug!(reason = why, "answered and closing");
        self.poll_linger(cx)
    }

    /// Reads and drops the client's bytes until it closes or the linger time is up; then
    /// `Ready` (an error: the connection is over).
    fn poll_linger(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let closed = || Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionAborted, "connection closed by the proxy")));
        let Some(until) = self.lingering else { return closed() };
        let mut scratch = [0u8; 4096];
        loop {
            let mut sink = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.stream).poll_read(cx, &mut sink) {
                Poll::Ready(Ok(())) if !sink.filled().is_empty() => continue,
                Poll::Ready(_) => {
                    self.lingering = None;
                    return closed();
                }
                Poll::Pending => {
                    let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(until)));
                    if timer.deadline() != until {
                        timer.as_mut().reset(until);
                    }
                    if timer.as_mut().poll(cx).is_ready() {
                        self.lingering = None;
                        return closed();
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

impl AsyncRead for Guard {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.done {
            return this.poll_linger(cx);
        }
        if this.deferred.is_some() {
            return this.poll_deferred(cx);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let filled = &buf.filled()[before..];
                if filled.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                let read = filled.len();
                match this.scan(filled) {
                    Early::Pass => Poll::Ready(Ok(())),
                    Early::Answer(page) => {
                        buf.set_filled(before);
                        this.answer_and_close(cx, &page, "request head too large")
                    }
                    Early::Defer { withhold } if withhold < read => {
                        buf.set_filled(before + read - withhold);
                        Poll::Ready(Ok(()))
                    }
                    Early::Defer { .. } => {
                        buf.set_filled(before);
                        this.poll_deferred(cx)
                    }
                }
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.poll_waiting(cx),
        }
    }
}

impl Guard {
    /// The client's TCP socket, when the connection is plain (no TLS to see its bytes), for
    /// writes that bypass user space. Nothing the guard does on writes applies to them.
    pub(crate) fn plain_tcp(&self) -> Option<&tokio::net::TcpStream> {
        match &self.stream {
            ClientStream::Plain(tcp) if !self.done => Some(tcp),
            _ => None,
        }
    }
}

impl AsyncWrite for Guard {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.write_blocked = r.is_pending();
        r
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.write_blocked = r.is_pending();
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.stream).poll_flush(cx);
        this.write_blocked = r.is_pending();
        r
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(Pin::new(&mut this.stream).poll_shutdown(cx))?;
        // hyper closes after a `Connection: close` answer, perhaps with a body still coming:
        // linger so the answer is not lost to a reset. Not after an idle close, nor twice.
        if !this.done && !this.shared.is_tunnel() {
            this.done = true;
            this.lingering = Some(Instant::now() + LINGER);
        }
        if this.lingering.is_some() {
            ready!(this.poll_linger(cx)).ok();
        }
        Poll::Ready(Ok(()))
    }
}
