//! Keep-alive HTTP/1.1 connections to one member.
//!
//! A request checks out a connection (the most recently used idle one, or a new one), sends
//! on it, and the response body puts it back when the member's response has been read to the
//! end. At most `max` connections exist per member: each request holds a permit while it has
//! a connection, and idle connections are kept only while `idle + busy ≤ max`, so a request
//! that finds all permits taken waits up to `acquire` and then gets 503. Idle connections
//! older than `ttl` are closed on the next checkout or by [`MemberPool::evict_idle`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::uri::Authority;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::body::RequestBody;
use crate::config::ConnectionSettings;

/// The sending half of one member connection.
pub(crate) type Sender = http1::SendRequest<RequestBody>;

/// Why no connection could be had. None of these means the request reached the member.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    /// `max` connections were busy for longer than `acquire`.
    #[error("all {max} connections to {member} stayed busy for {waited:?}")]
    Exhausted { member: Authority, max: usize, waited: Duration },
    /// The TCP connect took longer than `connectiontimeout`.
    #[error("connecting to {member} timed out after {after:?}")]
    Timeout { member: Authority, after: Duration },
    /// The TCP connect or the HTTP/1 handshake failed.
    #[error("cannot connect to {member}: {source}")]
    Failed { member: Authority, source: std::io::Error },
}

/// Connections to one member.
#[derive(Debug)]
pub struct MemberPool {
    authority: Authority,
    settings: ConnectionSettings,
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<Idle>>,
}

#[derive(Debug)]
struct Idle {
    sender: Sender,
    since: Instant,
}

/// A connection checked out for one request; dropping it closes it.
#[derive(Debug)]
pub(crate) struct PooledConn {
    pub(crate) sender: Sender,
    /// Whether the connection served an earlier request (so a failure may be a keep-alive race).
    pub(crate) reused: bool,
    _permit: OwnedSemaphorePermit,
}

impl MemberPool {
    /// An empty pool for the member at `authority`.
    pub(crate) fn new(authority: Authority, settings: ConnectionSettings) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(settings.max_connections)),
            idle: Mutex::new(Vec::new()),
            authority,
            settings,
        }
    }

    /// The member's connection settings.
    pub(crate) fn settings(&self) -> &ConnectionSettings {
        &self.settings
    }

    /// Connections idle in the pool now.
    pub fn idle_count(&self) -> usize {
        self.idle.lock().map_or(0, |idle| idle.len())
    }

    /// A ready connection: an idle one if any is still open, else a new one.
    pub(crate) async fn checkout(&self) -> Result<PooledConn, ConnectError> {
        let permit = self.permit().await?;
        while let Some(idle) = self.pop_idle() {
            let mut sender = idle.sender;
            // Usually ready at once; a connection the member closed errors here.
            if sender.ready().await.is_ok() {
                return Ok(PooledConn { sender, reused: true, _permit: permit });
            }
        }
        let sender = self.connect().await?;
        Ok(PooledConn { sender, reused: false, _permit: permit })
    }

    /// Puts a connection whose exchange completed back in the pool, if there is room.
    pub(crate) fn checkin(&self, conn: PooledConn) {
        let PooledConn { sender, _permit, .. } = conn;
        if sender.is_closed() {
            return;
        }
        // The permit is released when this function returns; count it as free already.
        let free = self.permits.available_permits() + 1;
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < free {
                idle.push(Idle { sender, since: Instant::now() });
            }
        }
    }

    /// Closes idle connections older than `ttl`.
    pub(crate) fn evict_idle(&self, now: Instant) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.retain(|c| !c.sender.is_closed() && now.duration_since(c.since) < self.settings.idle_timeout);
        }
    }

    async fn permit(&self) -> Result<OwnedSemaphorePermit, ConnectError> {
        if let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() {
            return Ok(permit);
        }
        let wait = self.settings.acquire_timeout;
        match tokio::time::timeout(wait, Arc::clone(&self.permits).acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(ConnectError::Exhausted { member: self.authority.clone(), max: self.settings.max_connections, waited: wait }),
        }
    }

    fn pop_idle(&self) -> Option<Idle> {
        let mut idle = self.idle.lock().ok()?;
        let now = Instant::now();
        while let Some(c) = idle.pop() {
            if now.duration_since(c.since) < self.settings.idle_timeout && !c.sender.is_closed() {
                return Some(c);
            }
        }
        None
    }

    async fn connect(&self) -> Result<Sender, ConnectError> {
        let failed = |source| ConnectError::Failed { member: self.authority.clone(), source };
        let after = self.settings.connect_timeout;
        let stream = tokio::time::timeout(after, TcpStream::connect(self.authority.as_str()))
            .await
            .map_err(|_| ConnectError::Timeout { member: self.authority.clone(), after })?
            .map_err(failed)?;
        stream.set_nodelay(true).map_err(failed)?;
        let (sender, connection) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| failed(std::io::Error::other(e)))?;
        let member = self.authority.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%member, error = %e, "member connection ended with an error");
            }
        });
        Ok(sender)
    }
}
