//! A member connection that switched protocols: after a `101` to a WebSocket upgrade the
//! member's socket leaves the pool and is joined to the client's for as long as both stay.
//!
//! The 101 is accepted only when the proxy asked for an upgrade (the route or member allows
//! `websocket` and the client asked for it) and the member names `websocket` in its answer;
//! anything else is a broken exchange (502). A tunnel in which neither side sends anything
//! for the member's `timeout` is closed, as httpd does with ProxyTimeout.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::header::{self, HeaderMap};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::pool::Lease;
use super::{MemberPool, ProxyMember, SwitchedResponse};
use crate::balancer::BusyGuard;
use crate::codec::fields::strip_hop_by_hop;

/// The member's side of an upgraded connection, waiting for the client's.
#[derive(Debug)]
pub struct Tunnel {
    lease: Lease,
    member: Arc<ProxyMember>,
    /// The tunnel counts as a request in flight for the member (bybusyness sees it).
    _busy: BusyGuard<Arc<MemberPool>>,
}

/// The member's 101, when it switched to the WebSocket asked for.
pub(crate) fn switched(
    lease: Lease,
    busy: BusyGuard<Arc<MemberPool>>,
    member: Arc<ProxyMember>,
    mut member_headers: HeaderMap,
) -> Result<SwitchedResponse, String> {
    let websocket = member_headers
        .get_all(header::UPGRADE)
        .iter()
        .any(|v| v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"websocket"));
    if !websocket {
        return Err("the member switched to a protocol other than the websocket asked for".into());
    }
    strip_hop_by_hop(&mut member_headers);
    Ok(SwitchedResponse { headers: member_headers, tunnel: Tunnel { lease, member, _busy: busy } })
}

impl Tunnel {
    /// Relays bytes both ways between `client` and the member until either side closes;
    /// counts them into the member's `transferred` and `read`.
    pub async fn run<C: AsyncRead + AsyncWrite + Unpin>(self, mut client: C) {
        let Tunnel { mut lease, member, _busy } = self;
        let conn = &mut lease.conn;
        // What the member sent right after its 101 head.
        if !conn.buf.is_empty() {
            let early = conn.buf.split();
            member.add_read(early.len() as u64);
            if client.write_all(&early).await.is_err() {
                return;
            }
        }
        let idle = member.conn.settings().timeout;
        let activity = Arc::new(Activity { start: Instant::now(), last_ms: AtomicU64::new(0) });
        let mut client = Active { io: client, activity: Arc::clone(&activity) };
        let relay = tokio::io::copy_bidirectional(&mut client, &mut conn.stream);
        tokio::select! {
            relayed = relay => match relayed {
                Ok((to_member, to_client)) => {
                    member.add_transferred(to_member);
                    member.add_read(to_client);
                    tracing::debug!(member = %member.config.url, to_member, to_client, "tunnel closed");
                }
                Err(e) => tracing::debug!(member = %member.config.url, error = %e, "tunnel broke"),
            },
            () = activity.idle_for(idle) => tracing::debug!(member = %member.config.url, ?idle, "idle tunnel closed"),
        }
        // Dropping the lease closes the member connection: it is not HTTP any more.
    }
}

/// When a tunnel last carried bytes.
#[derive(Debug)]
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Resolves once nothing moved for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let last = self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

/// The client side of a tunnel, stamping `activity` whenever bytes move either way (every
/// byte relayed is read from or written to the client).
struct Active<C> {
    io: C,
    activity: Arc<Activity>,
}

impl<C: AsyncRead + Unpin> AsyncRead for Active<C> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<C: AsyncWrite + Unpin> AsyncWrite for Active<C> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
