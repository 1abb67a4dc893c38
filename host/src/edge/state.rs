//! What one client connection's guard and its service share: the scanner's findings, the
//! requests in flight, and whether the connection became a tunnel.
//!
//! The guard ([`super::Guard`]) reads the socket and the service answers requests; on an
//! HTTP/1 connection requests are handled one after the other, so the service numbers them
//! as they come and asks whether the scanner found head number `n` bad. The service also
//! counts requests in flight ([`InFlight`], held until the response body is done) so the
//! guard runs its idle and head timers only while no response is being produced.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};

use super::rawhead::{Finding, Violation};
use crate::config::{Limits, Timeouts};
use crate::observe::PendingEntry;

/// State shared by one connection's guard and service.
#[derive(Debug)]
pub struct ConnShared {
    /// Index of the first head found bad (`u64::MAX`: none).
    bad_head: AtomicU64,
    violation: Mutex<Option<Violation>>,
    /// Requests the service has started on this connection.
    requests: AtomicU64,
    in_flight: AtomicUsize,
    /// The guard's waker, woken when the last request in flight is done.
    idle_waker: Mutex<Option<Waker>>,
    tunnel: AtomicBool,
    http2: AtomicBool,
    /// The worker's count of open tunnels (drained on shutdown like requests).
    tunnels: Arc<Tunnels>,
    /// The size limits and client timeouts in force when the connection was accepted: a
    /// reload's new ones apply to connections accepted after it.
    pub limits: Limits,
    /// See `limits`.
    pub timeouts: Timeouts,
}

/// Open tunnels (upgraded connections) and connections on the HTTP/1 fast path of one worker,
/// so shutdown can wait for them.
#[derive(Debug, Default)]
pub struct Tunnels {
    open: AtomicUsize,
    closed: tokio::sync::Notify,
}

impl Tunnels {
    /// Counts a tunnel open until the returned guard is dropped.
    pub fn open(self: &Arc<Self>) -> TunnelGuard {
        self.open.fetch_add(1, Ordering::AcqRel);
        TunnelGuard { tunnels: Arc::clone(self) }
    }

    /// Resolves once no tunnel is open.
    pub async fn all_closed(&self) {
        loop {
            let closed = self.closed.notified();
            if self.open.load(Ordering::Acquire) == 0 {
                return;
            }
            closed.await;
        }
    }
}

/// Keeps a tunnel counted while alive.
#[derive(Debug)]
pub struct TunnelGuard {
    tunnels: Arc<Tunnels>,
}

impl Drop for TunnelGuard {
    fn drop(&mut self) {
        if self.tunnels.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.tunnels.closed.notify_waiters();
        }
    }
}

impl Default for ConnShared {
    fn default() -> Self {
        Self {
            bad_head: AtomicU64::new(u64::MAX),
            violation: Mutex::new(None),
            requests: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            idle_waker: Mutex::new(None),
            tunnel: AtomicBool::new(false),
            http2: AtomicBool::new(false),
            tunnels: Arc::default(),
            limits: Limits::default(),
            timeouts: Timeouts::default(),
        }
    }
}

impl ConnShared {
    /// A fresh state for a new connection of the worker whose tunnels are `tunnels`, under
    /// `limits` and `timeouts`.
    pub fn new(tunnels: &Arc<Tunnels>, limits: Limits, timeouts: Timeouts) -> Arc<Self> {
        Arc::new(Self { tunnels: Arc::clone(tunnels), limits, timeouts, ..Self::default() })
    }

    /// Records what the scanner found (the first finding wins).
    pub(crate) fn record(&self, finding: Finding) {
        if let Ok(mut v) = self.violation.lock()
            && v.is_none()
        {
            *v = Some(finding.violation);
            self.bad_head.store(finding.head, Ordering::Release);
        }
    }

    /// Marks the connection as HTTP/2 (no raw head checks apply).
    pub(crate) fn set_http2(&self) {
        self.http2.store(true, Ordering::Relaxed);
    }

    /// Starts a request: numbers it, counts it in flight, and tells whether its raw head
    /// broke a rule.
    pub fn begin_request(self: &Arc<Self>) -> (InFlight, Option<Violation>) {
        let index = self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let flight = InFlight { conn: Arc::clone(self) };
        if self.http2.load(Ordering::Relaxed) || self.bad_head.load(Ordering::Acquire) > index {
            return (flight, None);
        }
        let violation = self.violation.lock().ok().and_then(|v| *v).unwrap_or(Violation::FramingLost);
        (flight, Some(violation))
    }

    /// Requests in flight.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Whether a request is in flight; if one is, `waker` is woken when the last one ends.
    /// (Checked again after registering: the last request may end between the two.)
    pub(crate) fn busy_or_wake(&self, waker: &Waker) -> bool {
        if self.in_flight() == 0 {
            return false;
        }
        self.wake_when_idle(waker);
        self.in_flight() > 0
    }

    /// Has `waker` woken when the last request in flight ends.
    fn wake_when_idle(&self, waker: &Waker) {
        if let Ok(mut w) = self.idle_waker.lock() {
            match &*w {
                Some(old) if old.will_wake(waker) => {}
                _ => *w = Some(waker.clone()),
            }
        }
    }

    /// Marks the connection as a tunnel (its bytes are no longer HTTP); the guard keeps the
    /// tunnel counted for the worker's shutdown.
    pub fn set_tunnel(&self) -> TunnelGuard {
        self.tunnel.store(true, Ordering::Release);
        self.tunnels.open()
    }

    /// Whether the connection became a tunnel.
    pub(crate) fn is_tunnel(&self) -> bool {
        self.tunnel.load(Ordering::Acquire)
    }
}

/// One request in flight on a connection; dropping it ends the request.
#[derive(Debug)]
pub struct InFlight {
    conn: Arc<ConnShared>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.conn.in_flight.fetch_sub(1, Ordering::AcqRel) == 1
            && let Some(waker) = self.conn.idle_waker.lock().ok().and_then(|mut w| w.take())
        {
            waker.wake();
        }
    }
}

/// A response body that keeps its request counted in flight until it is done or dropped,
/// and, when the access log is on, counts what it sends and queues the request's line then.
#[derive(Debug)]
pub struct Tracked<B> {
    body: B,
    flight: Option<InFlight>,
    log: Option<Box<PendingEntry>>,
    bytes_out: u64,
}

impl<B> Drop for Tracked<B> {
    fn drop(&mut self) {
        if let Some(log) = self.log.take() {
            log.finish(self.bytes_out);
        }
    }
}

impl<B: Body + Unpin> Tracked<B> {
    /// Wraps `body`, ending `flight` with it.
    pub fn new(body: B, flight: InFlight) -> Self {
        Self { body, flight: Some(flight), log: None, bytes_out: 0 }
    }

    /// Logs the request when the body is done (or dropped).
    pub fn with_log(mut self, log: Box<PendingEntry>) -> Self {
        self.log = Some(log);
        self
    }

    /// The body inside.
    pub fn inner_mut(&mut self) -> &mut B {
        &mut self.body
    }

    /// `n` bytes of the body reached the client without passing through `poll_frame`
    /// (moved socket to socket): counted as if they had.
    pub(crate) fn note_sent(&mut self, n: u64) {
        self.bytes_out += n;
    }
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.get_mut();
        let next = Pin::new(&mut this.body).poll_frame(cx);
        match &next {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes_out += data.remaining() as u64;
                }
            }
            Poll::Ready(None) => {
                if let Some(log) = this.log.take() {
                    log.finish(this.bytes_out);
                }
                this.flight = None;
            }
            _ => {}
        }
        next
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
