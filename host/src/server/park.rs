//! Parked connections: plain HTTP/1 keep-alive connections idle between requests, held as
//! bare sockets instead of tasks.
//!
//! An idle connection kept as a task costs about 2 KB of memory: the task, its socket's
//! registration with tokio's reactor, its timer. nginx keeps one in about 0.5 KB. So a
//! connection that idles for `PARK_AFTER` (see `edge::guard`) is handed here: its
//! task ends, its socket leaves tokio's reactor for this worker's own epoll set, and what it
//! needs to be served again (the caller's `T`: its accept's settings, its connection slot…)
//! waits in a slab beside it, its keep-alive deadline in one timer wheel for all of them.
//! When the socket becomes readable — the next request, or the client closing — it goes back
//! to tokio and the caller's `wake` serves it on a new task. At its deadline it is closed
//! without a word, as the guard would have closed it. On shutdown every parked connection
//! is closed at once (idle keep-alive connections are what a graceful shutdown closes
//! first).
//!
//! Each worker has one parker, used only from its own thread: a connection is parked and
//! woken on the worker that accepted it.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use rustix::event::epoll;
use slab::Slab;
use tokio::io::unix::AsyncFd;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::time::DelayQueue;
use tokio_util::time::delay_queue::Key;

/// Events taken from the epoll set per call; fewer means it is drained.
const EVENTS: usize = 64;

/// One worker's parked connections.
pub(crate) struct Parker<T> {
    /// The epoll set the parked sockets are in, itself registered with tokio's reactor.
    epoll: AsyncFd<OwnedFd>,
    state: Mutex<State<T>>,
    /// Connections parked now, summed over the proxy's workers (shared with them).
    count: Arc<AtomicUsize>,
}

struct State<T> {
    /// The parked connections; a connection's key is its epoll token.
    parked: Slab<Parked<T>>,
    /// Each parked connection's keep-alive deadline, by key.
    deadlines: DelayQueue<usize>,
    /// Set at shutdown: nothing more is parked.
    closed: bool,
}

struct Parked<T> {
    socket: std::net::TcpStream,
    deadline: Key,
    payload: T,
}

/// A parked connection that became readable, back in tokio's reactor.
pub(crate) struct Woken<T> {
    /// Its socket.
    pub(crate) socket: TcpStream,
    /// What was parked with it.
    pub(crate) payload: T,
}

impl<T> Parker<T> {
    /// An empty parker, on the runtime its connections are woken on, adding the
    /// connections it holds to `count`.
    pub(crate) fn new(count: Arc<AtomicUsize>) -> io::Result<Self> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        // SAFETY: `register_with_interest` asks that the descriptor stay open for as long as
        // it is registered. An `OwnedFd` is open until dropped, and the `AsyncFd` owns it and
        // deregisters it before dropping it.
        #[allow(unsafe_code)]
        let epoll = unsafe { AsyncFd::register_with_interest(epoll, tokio::io::Interest::READABLE) }.map_err(io::Error::from)?;
        Ok(Self {
            epoll,
            state: Mutex::new(State { parked: Slab::new(), deadlines: DelayQueue::new(), closed: false }),
            count,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nothing panics while holding it; were it poisoned, the slab is still consistent.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Parks `socket` until it is readable or `until` passes.
    /// On an error (or after shutdown) the socket and `payload` are dropped: the connection
    /// closes.
    pub(crate) fn park(&self, socket: TcpStream, until: Instant, payload: T) -> io::Result<()> {
        let socket = socket.into_std()?;
        let mut state = self.lock();
        let State { parked, deadlines, closed } = &mut *state;
        if *closed {
            return Err(io::Error::other("shutting down"));
        }
        let slot = parked.vacant_entry();
        let key = slot.key();
        // Level-triggered: a socket is removed from the set as soon as it is reported.
        epoll::add(self.epoll.get_ref(), &socket, epoll::EventData::new_u64(key as u64), epoll::EventFlags::IN | epoll::EventFlags::RDHUP)?;
        let deadline = deadlines.insert_at(key, until);
        slot.insert(Parked { socket, deadline, payload });
        self.count.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Wakes parked connections as they become readable (handing each to `wake`) and
    /// closes those whose deadline passes, until `stop` is set; then closes every parked
    /// connection and parks no more.
    pub(crate) async fn run(&self, mut stop: watch::Receiver<bool>, mut wake: impl FnMut(Woken<T>)) {
        let mut woken = Vec::new();
        loop {
            tokio::select! {
                _ = stop.wait_for(|stopped| *stopped) => break,
                ready = self.epoll.readable() => {
                    let mut ready = match ready {
                        Ok(ready) => ready,
                        Err(e) => {
                            tracing::warn!(error = %e, "the parked connections' epoll set failed; closing them");
                            break;
                        }
                    };
                    match self.take_ready(&mut woken) {
                        // Drained: tokio notes any event that arrived since, so none is lost.
                        Ok(true) => ready.clear_ready(),
                        Ok(false) => {}
                        Err(e) if e == rustix::io::Errno::INTR => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "the parked connections' epoll set failed; closing them");
                            break;
                        }
                    }
                    for parked in woken.drain(..) {
                        // Back into tokio's reactor; a socket it refuses is closed.
                        if let Ok(socket) = TcpStream::from_std(parked.socket) {
                            wake(Woken { socket, payload: parked.payload });
                        }
                    }
                }
                _ = std::future::poll_fn(|cx| self.poll_expired(cx)) => {}
            }
        }
        let mut state = self.lock();
        state.closed = true;
        self.count.fetch_sub(state.parked.len(), Ordering::Relaxed);
        state.parked.clear();
        state.deadlines.clear();
    }

    /// Moves connections that became readable out of the set and into `woken`; `true` when
    /// no more are ready.
    fn take_ready(&self, woken: &mut Vec<Parked<T>>) -> rustix::io::Result<bool> {
        let mut events = [const { MaybeUninit::<epoll::Event>::uninit() }; EVENTS];
        let (events, _) = epoll::wait(self.epoll.get_ref(), &mut events, Some(&rustix::event::Timespec { tv_sec: 0, tv_nsec: 0 }))?;
        let mut state = self.lock();
        let State { parked, deadlines, .. } = &mut *state;
        for event in events.iter() {
            // Every removal leaves the epoll set under this lock, and one batch is taken
            // under one hold: a token in `events` names the connection it was given for.
            let Ok(key) = usize::try_from(event.data.u64()) else { continue };
            let Some(connection) = parked.try_remove(key) else { continue };
            deadlines.try_remove(&connection.deadline);
            let _ = epoll::delete(self.epoll.get_ref(), &connection.socket);
            self.count.fetch_sub(1, Ordering::Relaxed);
            woken.push(connection);
        }
        Ok(events.len() < EVENTS)
    }

    /// Closes the connections whose deadline passed; `Pending` while none is due.
    fn poll_expired(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.lock();
        let mut closed = 0;
        // `Ready(None)`: nothing is parked; the queue wakes this task when one is.
        while let Poll::Ready(Some(expired)) = state.deadlines.poll_expired(cx) {
            // Closing the socket takes it out of the epoll set (nothing else holds it).
            if state.parked.try_remove(expired.into_inner()).is_some() {
                closed += 1;
            }
        }
        self.count.fetch_sub(closed, Ordering::Relaxed);
        if closed > 0 {
            tracing::debug!(closed, "parked idle connections closed at their keep-alive deadline");
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        (client, server)
    }

    /// A parked socket is handed back, with its payload, once its peer
    /// writes; one never written to is closed at its deadline; shutdown closes the rest.
    #[tokio::test]
    async fn wakes_on_bytes_closes_at_deadline_and_on_stop() {
        let count = Arc::new(AtomicUsize::new(0));
        let parker = Arc::new(Parker::<&'static str>::new(Arc::clone(&count)).expect("epoll"));
        let (stop_tx, stop) = watch::channel(false);
        let (woken_tx, mut woken_rx) = tokio::sync::mpsc::unbounded_channel();
        let runner = tokio::spawn({
            let parker = Arc::clone(&parker);
            async move { parker.run(stop, move |w| drop(woken_tx.send(w))).await }
        });
        let since = Instant::now();
        let (mut talks, server_a) = pair().await;
        let (mut quiet, server_b) = pair().await;
        let (mut left, server_c) = pair().await;
        parker.park(server_a, since + Duration::from_secs(60), "a").expect("park a");
        parker.park(server_b, since + Duration::from_millis(200), "b").expect("park b");
        parker.park(server_c, since + Duration::from_secs(60), "c").expect("park c");
        assert_eq!(count.load(Ordering::Relaxed), 3);

        talks.write_all(b"next").await.expect("write");
        let mut w = tokio::time::timeout(Duration::from_secs(5), woken_rx.recv()).await.expect("woken in time").expect("woken");
        assert_eq!(w.payload, "a");
        let mut got = [0u8; 4];
        w.socket.read_exact(&mut got).await.expect("read on the woken socket");
        assert_eq!(&got, b"next");

        // b's deadline passes: closed by the parker, so its peer reads the end of stream.
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), quiet.read_to_end(&mut rest)).await.expect("closed in time").expect("read");
        assert!(rest.is_empty());
        assert_eq!(count.load(Ordering::Relaxed), 1, "c is still parked");

        stop_tx.send(true).expect("stop");
        tokio::time::timeout(Duration::from_secs(5), runner).await.expect("stopped in time").expect("runner");
        tokio::time::timeout(Duration::from_secs(5), left.read_to_end(&mut rest)).await.expect("closed in time").expect("read");
        assert!(rest.is_empty());
        let (_client, server_d) = pair().await;
        assert!(parker.park(server_d, since + Duration::from_secs(60), "d").is_err(), "nothing is parked after shutdown");
        assert!(woken_rx.try_recv().is_err(), "only a was woken");
        assert_eq!(count.load(Ordering::Relaxed), 0);
    }
}
