//! One HTTP/1.1 connection to a member: the socket and what has been read from it but not
//! yet consumed.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use http::uri::Authority;
use tokio::net::TcpStream;

use super::pool::ConnectError;

/// Read buffer size for a member connection (grows for large heads; bodies are split off it).
pub(crate) const READ_CHUNK: usize = 16 * 1024;

/// A connection to a member.
#[derive(Debug)]
pub(crate) struct MemberConn {
    pub(crate) stream: TcpStream,
    pub(crate) buf: BytesMut,
    /// Whether it served an earlier exchange (a failure may then be a keep-alive race).
    pub(crate) reused: bool,
    /// When it was last put back in the pool.
    pub(crate) idle_since: Instant,
}

impl MemberConn {
    /// Opens a connection within `timeout`.
    pub(crate) async fn connect(authority: &Authority, timeout: Duration) -> Result<Self, ConnectError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(authority.as_str()))
            .await
            .map_err(|_| ConnectError::Timeout { member: authority.clone(), after: timeout })?
            .map_err(|source| ConnectError::Failed { member: authority.clone(), source })?;
        stream.set_nodelay(true).map_err(|source| ConnectError::Failed { member: authority.clone(), source })?;
        Ok(Self { stream, buf: BytesMut::with_capacity(READ_CHUNK), reused: false, idle_since: Instant::now() })
    }

    /// Whether an idle connection can still carry a request: the member has not closed it and
    /// has sent nothing unasked. Catches the common keep-alive race (the member closed an idle
    /// connection) before the request is written, so the request is never lost to it.
    pub(crate) fn still_open(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}
