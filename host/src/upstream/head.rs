//! Reading a member's response head off the connection: skipping interim answers, a 101 only
//! when the request asked to upgrade, the `ping` wait for `100 Continue`, within deadlines.

use bytes::BytesMut;
use http::{Method, StatusCode};

use super::ProxyMember;
use super::conn::READ_CHUNK;
use super::pool::Lease;
use crate::codec::response::{self, ResponseHead};
use std::time::Duration;

pub(super) enum HeadFailure {
    Timeout,
    Broken(String),
}

/// The member's answer to `Expect: 100-continue`.
pub(super) enum Continue {
    /// 100 Continue: send the body.
    Proceed,
    /// A final response instead: the body is not sent.
    Final(ResponseHead),
}

/// Waits up to `ping` for the member to answer `Expect: 100-continue`.
pub(super) async fn await_continue(lease: &mut Lease, ping: Duration, member: &ProxyMember) -> Result<Continue, HeadFailure> {
    let conn = &mut lease.conn;
    let wait = async {
        loop {
            // A HEAD-less method: interim answers carry no body either way.
            match response::parse(&mut conn.buf, &Method::POST) {
                Ok(Some(head)) if head.status == StatusCode::CONTINUE => return Ok(Continue::Proceed),
                Ok(Some(head)) if head.status == StatusCode::SWITCHING_PROTOCOLS => {
                    return Err(HeadFailure::Broken("the member switched protocols, which this route does not allow".into()));
                }
                Ok(Some(head)) if head.status.is_informational() => continue,
                Ok(Some(head)) => return Ok(Continue::Final(head)),
                Ok(None) => {}
                Err(e) => return Err(HeadFailure::Broken(e.to_string())),
            }
            conn.buf.reserve(READ_CHUNK);
            match tokio::io::AsyncReadExt::read_buf(&mut conn.stream, &mut conn.buf).await {
                Ok(0) => return Err(HeadFailure::Broken("connection closed before answering Expect: 100-continue".into())),
                Ok(n) => member.add_read(n as u64),
                Err(e) => return Err(HeadFailure::Broken(format!("reading the response: {e}"))),
            }
        }
    };
    crate::deadline::within(ping, wait).await.unwrap_or(Err(HeadFailure::Timeout))
}

/// Reads the response head (skipping 100 Continue and other interim responses) within
/// `timeout` of the lease's taking.
pub(super) async fn read_head(
    lease: &mut Lease,
    method: &Method,
    upgrading: bool,
    timeout: Duration,
    member: &ProxyMember,
) -> Result<ResponseHead, HeadFailure> {
    let conn = &mut lease.conn;
    let read = read_head_from(&mut conn.stream, &mut conn.buf, method, upgrading, member);
    match crate::deadline::within_kept((lease.taken_at + timeout).into(), &mut conn.timer, read).await {
        Some(Ok(head)) => Ok(head),
        Some(Err(reason)) => Err(HeadFailure::Broken(reason)),
        None => Err(HeadFailure::Timeout),
    }
}

/// Reads from `stream` into `buf` until a final response head (or an allowed 101) is parsed.
pub(super) async fn read_head_from<R: tokio::io::AsyncRead + Unpin>(
    stream: &mut R,
    buf: &mut BytesMut,
    method: &Method,
    upgrading: bool,
    member: &ProxyMember,
) -> Result<ResponseHead, String> {
    loop {
        // Nothing read yet (the usual case on a pooled connection): nothing to parse.
        let parsed = if buf.is_empty() { Ok(None) } else { response::parse(buf, method) };
        match parsed {
            Ok(Some(head)) => {
                if head.status == StatusCode::SWITCHING_PROTOCOLS && upgrading {
                    return Ok(head);
                }
                if head.status == StatusCode::SWITCHING_PROTOCOLS {
                    return Err("the member switched protocols, which this route does not allow".into());
                }
                if head.status.is_informational() {
                    continue;
                }
                return Ok(head);
            }
            Ok(None) => {}
            Err(e) => return Err(e.to_string()),
        }
        buf.reserve(READ_CHUNK);
        match tokio::io::AsyncReadExt::read_buf(stream, buf).await {
            Ok(0) if buf.is_empty() => return Err("connection closed before any response".into()),
            Ok(0) => return Err("connection closed in the middle of the response head".into()),
            Ok(n) => member.add_read(n as u64),
            Err(e) => return Err(format!("reading the response: {e}")),
        }
    }
}
