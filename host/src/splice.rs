//! Moving bytes from one TCP socket to another without copying them through user space:
//! splice(2) from the first socket into a pipe, then from the pipe into the second (Linux).
//!
//! A large answer relayed the ordinary way is copied twice: out of the member's socket into
//! a buffer, and from the buffer into the client's socket. Through a pipe the kernel moves
//! page references instead (HAProxy's `option splice-response` does the same). Only
//! plain TCP on both sides can take this road: TLS must see the bytes.
//!
//! A [`Pipe`] is taken from the worker thread's spares and given back empty, so a response
//! costs no `pipe2`/`close` calls; a pipe given back holding bytes (a relay cut short) is
//! closed instead, its bytes belonging to nothing.

use std::cell::RefCell;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use rustix::pipe::{PipeFlags, SpliceFlags, pipe_with, splice};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Most bytes one fill asks for: a pipe's default capacity (sixteen pages).
pub(crate) const PIPE_CAPACITY: usize = 64 * 1024;

/// Spare pipes kept per worker thread (each is two descriptors).
const MAX_SPARES: usize = 32;

/// Cleared the first time the kernel refuses splice on a socket: nothing tries it again.
static AVAILABLE: AtomicBool = AtomicBool::new(true);

/// Bytes moved socket to socket since the process started (the `spliced_bytes` metric).
static MOVED: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static SPARES: RefCell<Vec<Pipe>> = const { RefCell::new(Vec::new()) };
}

/// Whether splice may work here (it is tried until the kernel refuses it once).
pub(crate) fn available() -> bool {
    AVAILABLE.load(Ordering::Relaxed)
}

/// Bytes moved socket to socket since the process started.
pub(crate) fn moved_bytes() -> u64 {
    MOVED.load(Ordering::Relaxed)
}

/// Why a fill failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FillError {
    /// The kernel does not splice from this socket (nothing was moved; do it the ordinary way).
    #[error("splice is not supported here: {0}")]
    Unsupported(io::Error),
    /// Reading the socket failed.
    #[error(transparent)]
    Io(io::Error),
}

/// A pipe, and how many bytes it holds.
#[derive(Debug)]
pub(crate) struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    held: usize,
}

impl Pipe {
    /// An empty pipe: one of this thread's spares, or a new one.
    pub(crate) fn take() -> io::Result<Pipe> {
        if let Some(pipe) = SPARES.with_borrow_mut(Vec::pop) {
            return Ok(pipe);
        }
        let (read, write) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        Ok(Pipe { read, write, held: 0 })
    }

    /// Keeps the pipe for the next relay on this thread when it is empty; closes it otherwise.
    pub(crate) fn give_back(self) {
        if self.held == 0 {
            SPARES.with_borrow_mut(|spares| {
                if spares.len() < MAX_SPARES {
                    spares.push(self);
                }
            });
        }
    }

    /// The bytes in the pipe, not yet drained.
    pub(crate) fn held(&self) -> usize {
        self.held
    }

    /// Moves up to `max` bytes waiting on `from` into the pipe, which must be empty (so the
    /// only reason to wait is the socket). `Ok(0)`: `from` reached its end.
    pub(crate) fn poll_fill(&mut self, cx: &mut Context<'_>, from: &TcpStream, max: usize) -> Poll<Result<usize, FillError>> {
        debug_assert_eq!(self.held, 0, "a pipe is filled only once drained");
        let max = max.min(PIPE_CAPACITY);
        loop {
            ready!(from.poll_read_ready(cx)).map_err(FillError::Io)?;
            let moved = from.try_io(Interest::READABLE, || Ok(splice(from, None, &self.write, None, max, SpliceFlags::MOVE | SpliceFlags::NONBLOCK)?));
            match moved {
                Ok(n) => {
                    self.held = n;
                    return Poll::Ready(Ok(n));
                }
                // Not readable after all: try_io cleared the readiness, so wait again.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if refused(&e) => {
                    AVAILABLE.store(false, Ordering::Relaxed);
                    return Poll::Ready(Err(FillError::Unsupported(e)));
                }
                Err(e) => return Poll::Ready(Err(FillError::Io(e))),
            }
        }
    }

    /// Moves what the pipe holds into `to`, as much as it takes now; the number moved.
    pub(crate) fn poll_drain(&mut self, cx: &mut Context<'_>, to: &TcpStream) -> Poll<io::Result<usize>> {
        loop {
            if self.held == 0 {
                return Poll::Ready(Ok(0));
            }
            ready!(to.poll_write_ready(cx))?;
            let moved = to.try_io(Interest::WRITABLE, || Ok(splice(&self.read, None, to, None, self.held, SpliceFlags::MOVE | SpliceFlags::NONBLOCK)?));
            match moved {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    self.held -= n;
                    MOVED.fetch_add(n as u64, Ordering::Relaxed);
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// Whether an error says the kernel will not splice this kind of descriptor at all.
fn refused(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(code) if code == rustix::io::Errno::INVAL.raw_os_error() || code == rustix::io::Errno::NOSYS.raw_os_error() || code == rustix::io::Errno::OPNOTSUPP.raw_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// Two connected sockets: (the end written to, the end read from).
    async fn socket_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (client.expect("connect"), accepted.expect("accept").0)
    }

    #[tokio::test]
    async fn moves_bytes_from_one_socket_to_another_in_order() {
        let (mut source_writer, source) = socket_pair().await;
        let (sink, mut sink_reader) = socket_pair().await;
        // More than one pipe's worth, with a pattern that shows any reordering or loss.
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let sender = {
            let data = data.clone();
            tokio::spawn(async move {
                source_writer.write_all(&data).await.expect("send");
                source_writer.shutdown().await.expect("shutdown");
            })
        };
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            sink_reader.read_to_end(&mut got).await.expect("read");
            got
        });
        let mut pipe = Pipe::take().expect("pipe");
        let mut moved = 0;
        loop {
            let filled = std::future::poll_fn(|cx| pipe.poll_fill(cx, &source, 1 << 20)).await.expect("fill");
            assert!(filled <= PIPE_CAPACITY, "a fill is bounded by the pipe");
            if filled == 0 {
                break;
            }
            while pipe.held() > 0 {
                moved += std::future::poll_fn(|cx| pipe.poll_drain(cx, &sink)).await.expect("drain");
            }
        }
        drop(sink);
        sender.await.expect("sender");
        assert_eq!(moved, data.len());
        assert!(reader.await.expect("reader") == data, "the bytes arrive whole and in order");
        pipe.give_back();
        assert_eq!(SPARES.with_borrow(Vec::len), 1, "an empty pipe is kept for the next relay");
        let again = Pipe::take().expect("pipe");
        assert_eq!(SPARES.with_borrow(Vec::len), 0, "and handed out again");
        drop(again);
    }

    #[tokio::test]
    async fn a_pipe_still_holding_bytes_is_not_kept() {
        let (mut source_writer, source) = socket_pair().await;
        source_writer.write_all(b"left behind").await.expect("send");
        let mut pipe = Pipe::take().expect("pipe");
        let filled = std::future::poll_fn(|cx| pipe.poll_fill(cx, &source, 64)).await.expect("fill");
        assert_eq!(filled, pipe.held());
        assert!(filled > 0);
        let before = SPARES.with_borrow(Vec::len);
        pipe.give_back();
        assert_eq!(SPARES.with_borrow(Vec::len), before, "its bytes would reach the next relay's client");
    }
}
