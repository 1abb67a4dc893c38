//! Keep-alive connections to one member, kept per worker thread.
//!
//! Each worker has its own slot per member (idle connections and a count of open ones), so a
//! request only ever uses connections its own thread created and polls, with no cross-thread
//! wakeups. `max` (httpd's `max`) caps the open connections of each worker to the member, as
//! httpd's caps each child process; a request that finds them all busy waits up to `acquire`,
//! then gets 503. Idle connections older than `ttl` are closed on checkout and by
//! [`MemberPool::evict_idle`], which each worker runs for its own slots.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::HeaderValue;
use http::uri::Authority;
use tokio::sync::Notify;

use super::conn::MemberConn;
use crate::config::ConnectionSettings;
use crate::worker;
use crate::tls::MemberConnector;

/// Why a request did not reach a member (no connection, or no answer to the ping). None of
/// these means the member could have acted on the request.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// `max` connections were busy for longer than `acquire`.
    #[error("all {max} connections to {member} stayed busy for {waited:?}")]
    Exhausted {
        /// The member.
        member: Authority,
        /// Its `max`.
        max: usize,
        /// How long the request waited (its `acquire`).
        waited: Duration,
    },
    /// The TCP connect took longer than `connectiontimeout`.
    #[error("connecting to {member} timed out after {after:?}")]
    Timeout {
        /// The member.
        member: Authority,
        /// Its `connectiontimeout`.
        after: Duration,
    },
    /// The member did not answer `Expect: 100-continue` within its `ping` (the request head
    /// reached it, but no body: the member has nothing it could have acted on).
    #[error("{member} did not answer the ping (Expect: 100-continue) within {after:?}")]
    PingTimeout {
        /// The member.
        member: Authority,
        /// Its `ping`.
        after: Duration,
    },
    /// The TCP connect failed (refused, unreachable…).
    #[error("cannot connect to {member}: {source}")]
    Failed {
        /// The member.
        member: Authority,
        /// What the system said.
        source: std::io::Error,
    },
    /// The TLS handshake failed (a certificate that is expired, for another name, not
    /// signed by a trusted root; no shared version…).
    #[error("TLS with {member} failed: {reason}")]
    Tls {
        /// The member.
        member: Authority,
        /// What rustls said.
        reason: String,
    },
}

/// Connections to one member, one slot per worker.
#[derive(Debug)]
pub struct MemberPool {
    authority: Authority,
    /// The member's URL as configured, shared with access-log lines.
    url: Arc<str>,
    /// How TLS is opened, for an https member.
    tls: Option<Arc<MemberConnector>>,
    host_header: Option<HeaderValue>,
    settings: ConnectionSettings,
    slots: Box<[Slot]>,
}

#[derive(Debug, Default)]
struct Slot {
    state: Mutex<SlotState>,
    /// Wakes a request waiting for a connection when one is returned or closed.
    freed: Notify,
}

#[derive(Debug, Default)]
struct SlotState {
    idle: Vec<MemberConn>,
    /// Connections of this worker to the member, idle or in use.
    open: usize,
}

/// A connection checked out for one exchange. Dropping it closes the connection; give it back
/// with [`Lease::release`] when the exchange completed cleanly.
#[derive(Debug)]
pub(crate) struct Lease {
    pub(crate) conn: MemberConn,
    open: OpenToken,
    /// When it was taken (the caller's clock reading, or after the wait or connect that gave
    /// it): the member's `timeout` for the answer's head runs from here.
    pub(crate) taken_at: Instant,
}

/// Counts one open connection in a slot; dropping it (armed) uncounts it and wakes a waiter.
#[derive(Debug)]
struct OpenToken {
    pool: Arc<MemberPool>,
    slot: usize,
    armed: bool,
}

impl Drop for OpenToken {
    fn drop(&mut self) {
        if self.armed {
            self.pool.closed(self.slot);
        }
    }
}

/// What a look at a worker's slot found.
enum Taken {
    /// A live idle connection.
    Idle(MemberConn),
    /// Room for a new connection, now counted as open.
    Reserved,
    /// `max` connections are open.
    Full,
}

impl MemberPool {
    /// An empty pool for the member at `authority`, with a slot for each of `workers` threads.
    pub(crate) fn new(url: &str, authority: Authority, settings: ConnectionSettings, workers: usize, tls: Option<Arc<MemberConnector>>) -> Self {
        let default_port = if tls.is_some() { 443 } else { 80 };
        let host = if authority.port_u16() == Some(default_port) { authority.host() } else { authority.as_str() };
        Self {
            host_header: HeaderValue::from_str(host).ok(),
            url: Arc::from(url),
            authority,
            tls,
            settings,
            slots: (0..workers.max(1)).map(|_| Slot::default()).collect(),
        }
    }

    /// The member's URL as configured.
    pub(crate) fn url(&self) -> &Arc<str> {
        &self.url
    }

    /// How TLS is opened to the member, for an https one.
    pub fn tls(&self) -> Option<&Arc<MemberConnector>> {
        self.tls.as_ref()
    }

    /// The member's connection settings.
    pub(crate) fn settings(&self) -> &ConnectionSettings {
        &self.settings
    }

    /// The Host header the member gets when the client's is not preserved (no `:80`).
    pub(crate) fn host_header(&self) -> Option<&HeaderValue> {
        self.host_header.as_ref()
    }

    /// Idle connections in all slots.
    pub fn idle_count(&self) -> usize {
        self.slots.iter().map(|s| s.state.lock().map_or(0, |st| st.idle.len())).sum()
    }

    /// A connection for this worker: an idle one that is still open, else a new one. `now` is
    /// the caller's reading of the clock: it serves the idle connections' ages, the deadline
    /// of a wait for a full slot and the lease's `taken_at` (read again after a wait or a
    /// connect).
    pub(crate) async fn checkout(self: &Arc<Self>, mut now: Instant) -> Result<Lease, ConnectError> {
        let slot = worker::current() % self.slots.len();
        let deadline = now + self.settings.acquire_timeout;
        loop {
            // Registered before looking, so a connection freed in between still wakes us.
            let freed = self.slots[slot].freed.notified();
            match self.take(slot, now) {
                Taken::Idle(conn) => return Ok(self.lease(conn, slot, now)),
                Taken::Reserved => break,
                Taken::Full => {}
            }
            if tokio::time::timeout_at(deadline.into(), freed).await.is_err() {
                return Err(ConnectError::Exhausted {
                    member: self.authority.clone(),
                    max: self.settings.max_connections,
                    waited: self.settings.acquire_timeout,
                });
            }
            now = Instant::now();
        }
        // Boxed: a TLS handshake's state is large, and most checkouts find an idle connection;
        // every layer of the request path above holds (and moves) this future.
        match Box::pin(MemberConn::connect(&self.authority, self.settings.connect_timeout, self.tls.as_deref())).await {
            Ok(conn) => Ok(self.lease(conn, slot, Instant::now())),
            Err(e) => {
                self.closed(slot);
                Err(e)
            }
        }
    }

    fn lease(self: &Arc<Self>, conn: MemberConn, slot: usize, taken_at: Instant) -> Lease {
        Lease { conn, open: OpenToken { pool: Arc::clone(self), slot, armed: true }, taken_at }
    }

    /// Pops a live idle connection, or reserves room for a new one. Idle connections that died
    /// or outlived `ttl` by `now` are dropped on the way.
    fn take(&self, slot: usize, now: Instant) -> Taken {
        let Ok(mut state) = self.slots[slot].state.lock() else { return Taken::Full };
        while let Some(mut conn) = state.idle.pop() {
            if now.duration_since(conn.idle_since) < self.settings.idle_timeout && conn.still_open() {
                conn.reused = true;
                return Taken::Idle(conn);
            }
            state.open = state.open.saturating_sub(1);
        }
        if state.open < self.settings.max_connections {
            state.open += 1;
            Taken::Reserved
        } else {
            Taken::Full
        }
    }

    fn closed(&self, slot: usize) {
        if let Ok(mut state) = self.slots[slot].state.lock() {
            state.open = state.open.saturating_sub(1);
        }
        self.slots[slot].freed.notify_one();
    }

    /// Closes this worker's idle connections older than `ttl` (or closed by the member).
    pub(crate) fn evict_idle(&self, now: Instant) {
        let slot = worker::current() % self.slots.len();
        if let Ok(mut state) = self.slots[slot].state.lock() {
            let before = state.idle.len();
            state.idle.retain_mut(|c| now.duration_since(c.idle_since) < self.settings.idle_timeout && c.still_open());
            state.open = state.open.saturating_sub(before - state.idle.len());
        }
    }
}

impl Lease {
    /// Returns the connection to its worker's pool after an exchange that ended cleanly.
    pub(crate) fn release(self) {
        let Lease { mut conn, mut open, .. } = self;
        conn.idle_since = Instant::now();
        // Still counted as open, now idle: disarm so dropping the token does not uncount it.
        open.armed = false;
        let slot = &open.pool.slots[open.slot];
        if let Ok(mut state) = slot.state.lock() {
            state.idle.push(conn);
        }
        slot.freed.notify_one();
    }
}
