//! One HTTP/1.1 connection to a member: the stream (plain or TLS) and what has been read
//! from it but not yet consumed.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use http::uri::Authority;
use tokio::net::TcpStream;

use super::pool::ConnectError;
use crate::deadline::KeptTimer;
use crate::tls::{MemberConnector, MemberStream};

/// Read buffer size for a member connection (grows for large heads; bodies are split off it).
pub(crate) const READ_CHUNK: usize = 16 * 1024;

/// A connection to a member.
#[derive(Debug)]
pub(crate) struct MemberConn {
    pub(crate) stream: MemberStream,
    pub(crate) buf: BytesMut,
    /// Whether it served an earlier exchange (a failure may then be a keep-alive race).
    pub(crate) reused: bool,
    /// When it was last put back in the pool.
    pub(crate) idle_since: Instant,
    /// The deadline of each answer's head after a request without a body, one timer for the
    /// connection's life. (Requests with a body, and the `ping` wait, make their own.)
    pub(crate) timer: KeptTimer,
}

impl MemberConn {
    /// Opens a connection within `timeout`, the TLS handshake included for an https member.
    pub(crate) async fn connect(authority: &Authority, timeout: Duration, tls: Option<&MemberConnector>) -> Result<Self, ConnectError> {
        let stream = tokio::time::timeout(timeout, connect(authority, tls)).await.map_err(|_| ConnectError::Timeout { member: authority.clone(), after: timeout })??;
        Ok(Self { stream, buf: BytesMut::with_capacity(READ_CHUNK), reused: false, idle_since: Instant::now(), timer: KeptTimer::default() })
    }

    /// Whether an idle connection can still carry a request: the member has not closed it and
    /// has sent nothing unasked. Catches the common keep-alive race (the member closed an idle
    /// connection) before the request is written, so the request is never lost to it.
    pub(crate) fn still_open(&mut self) -> bool {
        self.stream.still_open()
    }
}

/// Opens a stream to `authority`: TCP (no delay), then the TLS handshake for an https
/// member. No deadline of its own: callers put theirs around it.
pub async fn connect(authority: &Authority, tls: Option<&MemberConnector>) -> Result<MemberStream, ConnectError> {
    let tcp = TcpStream::connect(authority.as_str()).await.map_err(|source| ConnectError::Failed { member: authority.clone(), source })?;
    tcp.set_nodelay(true).map_err(|source| ConnectError::Failed { member: authority.clone(), source })?;
    match tls {
        None => Ok(MemberStream::Plain(tcp)),
        Some(tls) => match tls.connect(tcp).await {
            Ok(stream) => Ok(MemberStream::Tls(Box::new(stream))),
            Err(e) => Err(ConnectError::Tls { member: authority.clone(), reason: e.to_string() }),
        },
    }
}
