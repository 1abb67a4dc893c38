//! The HTTP/1.1 fast path: a client connection's plain requests served without hyper's server.
//!
//! Through hyper's server a small proxied request cost about 40,000 user-space instructions;
//! here it cost about 34,000 when this loop was written (callgrind,
//! `host/benches/instructions_per_request.py`; the README has the figure now): no second
//! parse of a head the guard already scanned, no `HeaderMap` of the request (its lines are
//! read in place and relayed, see `codec::lines`) nor of the member's answer (its lines are
//! written as they came, see `RawHeaders`), no dispatch through hyper's connection state.
//! Most requests a proxy sees are plain: HTTP/1.1, no body, no upgrade, no `Expect`. This loop
//! reads those heads, hands each to the same [`ProxyService`] hyper would call, and writes the
//! answer itself. The first request that is anything else — a body, an upgrade, HTTP/1.0 or
//! HTTP/2, a head that does not parse — hands the connection, with every byte not yet
//! answered, to hyper for the rest of its life; earlier answers were all written by then, so
//! the order of pipelined answers holds.
//!
//! What hyper did on the way out is done here the same way: `date` when the member sent none,
//! `content-length` for a body of known size and `transfer-encoding: chunked` otherwise (none
//! for HEAD, 1xx, 204 and 304), `connection: close` when the connection ends after the
//! answer, and a body error closes the connection.
//!
//! # Layout
//! - `read`: a plain request head into a request (or a reason to hand the connection off).
//! - `write`: the answer onto the client socket, socket to socket for large bodies.
//! - `spare`: read buffers a worker keeps between requests.
//! - here: the connection's loop over the two, and the hand-off to hyper.

mod read;
mod spare;
mod write;

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{Method, Request};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

pub(crate) use read::{Parsed, read_request};
use spare::ReadBuffer;
use write::write_response;

use crate::codec::fields::connection_has;
use crate::codec::lines::{HeaderLines, HeaderView};
use crate::edge::{ClientStream, ConnShared, Guard, GuardSettings, Waited};
use crate::proxy::{ClientBodySource, ProxyService};
use crate::spare_box::SpareBox;

/// A head not complete within this many bytes goes to hyper (the guard's limits apply first).
const MAX_HEAD: usize = 64 * 1024;

/// How a connection's time on the fast path ended.
pub(crate) enum Outcome {
    /// The connection is finished (closed by either side, or shutdown).
    Closed,
    /// hyper serves the rest: the socket, and the bytes read but not yet answered.
    HandOff(Box<Prefixed>),
    /// Idle between requests for `timeouts.park`, no byte unread:
    /// park the socket (see `server::park`). Its idling began at the instant given.
    Park(TcpStream, Instant),
}

/// Serves plain HTTP/1.1 requests on `stream` (guarded by a [`Guard`] made of it, `conn` and
/// `settings`; `woken` for a parked connection served again) until the client closes, the
/// connection must close or idles long enough to park, `stop` is set while no request is
/// under way, or a request needs hyper.
pub(crate) async fn serve(stream: ClientStream, woken: bool, conn: Arc<ConnShared>, settings: GuardSettings, service: &ProxyService, stop: watch::Receiver<bool>) -> Outcome {
    // The guard is made here, not passed in: an async fn keeps its arguments beside the
    // locals they move into, and every idle connection's task would hold room for two.
    let mut io = if woken { Guard::resume(stream, conn, settings) } else { Guard::new(stream, conn, settings) };
    let mut buf = ReadBuffer::default();
    // The wait for a shutdown, made once for the connection: made afresh for each idle wait,
    // it joined the server-wide watch's list of waiters and left it again on every request
    // (turns of a lock all workers share, about 540 instructions of a small request). Once
    // it waits, it holds the waker it was polled with; it is polled again only when `stop`
    // changed (one atomic load to see) or the waker did.
    let mut shutdown = std::pin::pin!(shutdown(stop.clone()));
    let mut watching: Option<Waker> = None;
    loop {
        let (request, lines) = loop {
            if !buf.bytes.is_empty() {
                match read_request(&mut buf.bytes) {
                    Parsed::Request(request, lines) => break (request, lines),
                    Parsed::Partial if buf.bytes.len() <= MAX_HEAD => {}
                    Parsed::Partial | Parsed::NotPlain => return Outcome::HandOff(Box::new(Prefixed { prefix: buf.bytes.freeze(), io })),
                }
            }
            if buf.bytes.is_empty() {
                // Idle between requests: the buffer goes back to the worker's spares (an idle
                // keep-alive connection holds none) and the wait is for the socket to become
                // readable. A shutdown closes the connection; the guard's idle deadline runs
                // meanwhile.
                buf.release();
                // The socket first: the shutdown's wait matters only when the connection is
                // about to sleep.
                let ready = std::future::poll_fn(|cx| match io.poll_read_ready(cx) {
                    Poll::Ready(ready) => Poll::Ready(Some(ready)),
                    Poll::Pending => {
                        let waiting = watching.as_ref().is_some_and(|w| w.will_wake(cx.waker()));
                        if waiting && !stop.has_changed().unwrap_or(true) {
                            return Poll::Pending;
                        }
                        watching = Some(cx.waker().clone());
                        shutdown.as_mut().poll(cx).map(|()| None)
                    }
                })
                .await;
                match ready {
                    None => return close(&mut io).await,
                    Some(Err(_)) => return Outcome::Closed,
                    Some(Ok(Waited::Readable)) => {}
                    Some(Ok(Waited::Park)) => {
                        return match io.into_idle() {
                            Some((socket, since)) => Outcome::Park(socket, since),
                            None => Outcome::Closed,
                        };
                    }
                }
            }
            // Within a head, the guard's header deadline bounds the wait.
            buf.make_room();
            let read = io.read_buf(&mut buf.bytes).await;
            match read {
                Ok(0) | Err(_) => return Outcome::Closed,
                Ok(_) => {}
            }
        };
        // Boxed, with everything a request holds while it is answered: the connection's task
        // is as large as its largest state, and an idle keep-alive connection should carry
        // none of a request's. The box's memory is the worker's, kept from one request's
        // answering to the next (see `spare_box`).
        io.set_answering(true);
        let answered = SpareBox::new(|| answer(&mut io, &mut buf, service, request, lines, &stop)).await;
        io.set_answering(false);
        match answered {
            Answered::Next => {}
            Answered::Close => return close(&mut io).await,
            Answered::Closed => return Outcome::Closed,
        }
    }
}

/// Returns once `stop` is set (or its sender is gone: the server is ending either way).
async fn shutdown(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// How answering one request left the connection.
enum Answered {
    /// Ready for the next request.
    Next,
    /// The connection must close (the client or the answer said so, or a shutdown).
    Close,
    /// The connection is gone.
    Closed,
}

/// Answers `request` (its header `lines` beside it) and writes the answer; bytes the client sends meanwhile are kept in `buf`.
async fn answer(
    io: &mut Guard,
    buf: &mut ReadBuffer,
    service: &ProxyService,
    request: SpareBox<Request<ClientBodySource>>,
    lines: HeaderLines,
    stop: &watch::Receiver<bool>,
) -> Answered {
    let head_only = request.method() == Method::HEAD;
    let client_close = connection_has(HeaderView::Lines(&lines), b"close");
    // While the answer is awaited the socket is still read, as hyper does: bytes of a
    // pipelined request are kept, and a client that closes its side gives the request
    // up (its member exchange is dropped instead of running to its timeout).
    let response = {
        let mut respond = std::pin::pin!(service.respond(request, Some(lines)));
        loop {
            tokio::select! {
                biased;
                response = &mut respond => break Some(response),
                read = {
                    buf.before_read();
                    io.read_buf(&mut buf.bytes)
                }, if buf.bytes.len() <= MAX_HEAD => match read {
                    Ok(0) | Err(_) => break None,
                    Ok(_) => {}
                },
            }
        }
    };
    let Some(response) = response else { return Answered::Closed };
    let closing = client_close || *stop.borrow();
    match write_response(io, response, head_only, closing).await {
        Ok(true) => Answered::Next,
        Ok(false) => Answered::Close,
        Err(_) => Answered::Closed,
    }
}

/// Shuts the connection down (lingering, see the guard). By reference: a guard moved into
/// this future would make every connection's task hold room for two.
async fn close(io: &mut Guard) -> Outcome {
    let _ = io.shutdown().await;
    Outcome::Closed
}

/// The socket as hyper gets it on a hand-off: the bytes already read first.
pub(crate) struct Prefixed {
    prefix: Bytes,
    io: Guard,
}

impl AsyncRead for Prefixed {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.prefix.is_empty() {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        let n = this.prefix.len().min(buf.remaining());
        buf.put_slice(&this.prefix.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
