//! Parked connections: plain HTTP/1 keep-alive connections idle between requests, held as
//! bare sockets instead of tasks.
//!
//! An idle connection kept as a task costs about 2 KB of memory: the task, its socket's
//! registration with tokio's reactor, its timer. nginx keeps one in about 0.5 KB. So a
//! connection that idles for `timeouts.park` (100 ms by default) is handed here: its task
//! ends, its socket leaves tokio's reactor for this worker's own epoll set, and what it needs
//! to be served again (the caller's `T`: its accept's settings, its connection slot…) waits
//! in a slab beside it, its keep-alive deadline in one ordered set for all of them with one
//! timer. When the socket becomes readable — the next request, or the client closing — it
//! goes back to tokio and the caller's `wake` serves it on a new task. At its deadline it is
//! closed without a word, as the guard would have closed it. On shutdown, and if the epoll
//! set ever fails, every parked connection is handed back to `wake` (to close the way any
//! idle connection closes then) and nothing more is parked.
//!
//! Each worker has one parker, used only from its own thread: a connection is parked and
//! woken on the worker that accepted it.

use std::collections::BTreeSet;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use rustix::event::epoll;
use slab::Slab;
use tokio::io::unix::AsyncFd;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

/// Events taken from the epoll set per call; fewer means it is drained.
const EVENTS: usize = 64;

/// One worker's parked connections.
pub(crate) struct Parker<T> {
    /// The epoll set the parked sockets are in, itself registered with tokio's reactor.
    epoll: AsyncFd<rustix::fd::OwnedFd>,
    state: Mutex<State<T>>,
    /// Connections parked now, summed over the proxy's workers (shared with them).
    count: Arc<AtomicUsize>,
}

struct State<T> {
    /// The parked connections; a connection's key is its epoll token.
    parked: Slab<Parked<T>>,
    /// Every parked connection's keep-alive deadline and key, soonest first.
    deadlines: BTreeSet<(Instant, usize)>,
    /// The task running [`Parker::run`], woken when a sooner deadline arrives.
    timer_waker: Option<Waker>,
    /// Set at shutdown (or when the epoll set failed): nothing more is parked.
    closed: bool,
}

struct Parked<T> {
    socket: std::net::TcpStream,
    until: Instant,
    payload: T,
}

/// A parked connection handed back, in tokio's reactor again.
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
            state: Mutex::new(State { parked: Slab::new(), deadlines: BTreeSet::new(), timer_waker: None, closed: false }),
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
        let State { parked, deadlines, timer_waker, closed } = &mut *state;
        if *closed {
            return Err(io::Error::other("no longer parking (shutting down)"));
        }
        let slot = parked.vacant_entry();
        let key = slot.key();
        // Level-triggered: a socket is removed from the set as soon as it is reported.
        epoll::add(self.epoll.get_ref(), &socket, epoll::EventData::new_u64(key as u64), epoll::EventFlags::IN | epoll::EventFlags::RDHUP)?;
        deadlines.insert((until, key));
        // The soonest deadline now: the timer must be set again.
        if deadlines.first() == Some(&(until, key))
            && let Some(waker) = timer_waker.take()
        {
            waker.wake();
        }
        slot.insert(Parked { socket, until, payload });
        self.count.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Wakes parked connections as they become readable (handing each to `wake`) and
    /// closes those whose deadline passes, until `stop` is set; then hands every parked
    /// connection to `wake` and parks no more.
    pub(crate) async fn run(&self, mut stop: watch::Receiver<bool>, mut wake: impl FnMut(Woken<T>)) {
        let mut woken = Vec::new();
        let mut timer = std::pin::pin!(tokio::time::sleep_until(Instant::now()));
        loop {
            tokio::select! {
                _ = stop.wait_for(|stopped| *stopped) => break,
                ready = self.epoll.readable() => {
                    let mut ready = match ready {
                        Ok(ready) => ready,
                        Err(e) => {
                            tracing::warn!(error = %e, "the parked connections' epoll set failed; serving them as tasks, parking no more");
                            break;
                        }
                    };
                    match self.take_ready(&mut woken) {
                        // Drained: tokio notes any event that arrived since, so none is lost.
                        Ok(true) => ready.clear_ready(),
                        Ok(false) => {}
                        Err(e) if e == rustix::io::Errno::INTR => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "the parked connections' epoll set failed; serving them as tasks, parking no more");
                            break;
                        }
                    }
                    hand_back(&mut woken, &mut wake);
                }
                () = std::future::poll_fn(|cx| self.poll_expired(cx, timer.as_mut())) => {}
            }
        }
        let mut state = self.lock();
        state.closed = true;
        state.deadlines.clear();
        woken.extend(state.parked.drain());
        drop(state);
        for parked in &woken {
            let _ = epoll::delete(self.epoll.get_ref(), &parked.socket);
        }
        self.count.fetch_sub(woken.len(), Ordering::Relaxed);
        hand_back(&mut woken, &mut wake);
    }

    /// Moves connections that became readable out of the set and into `woken`; `true` when
    /// no more are ready.
    fn take_ready(&self, woken: &mut Vec<Parked<T>>) -> rustix::io::Result<bool> {
        let mut events = [const { MaybeUninit::<epoll::Event>::uninit() }; EVENTS];
        let (events, _) = epoll::wait(self.epoll.get_ref(), &mut events, Some(&rustix::event::Timespec { tv_sec: 0, tv_nsec: 0 }))?;
        let mut state = self.lock();
        let State { parked, deadlines, .. } = &mut *state;
        for event in events.iter() {
            // A token names the connection it was given for: every removal takes the socket
            // out of the set first, and nothing is parked between the wait above and here
            // (one thread, no await between).
            let Ok(key) = usize::try_from(event.data.u64()) else { continue };
            let Some(connection) = parked.try_remove(key) else { continue };
            deadlines.remove(&(connection.until, key));
            let _ = epoll::delete(self.epoll.get_ref(), &connection.socket);
            self.count.fetch_sub(1, Ordering::Relaxed);
            woken.push(connection);
        }
        Ok(events.len() < EVENTS)
    }

    /// Closes the connections whose deadline passed and sets `timer` for the next one;
    /// always `Pending` (woken when a deadline passes or a sooner one is parked).
    fn poll_expired(&self, cx: &mut Context<'_>, mut timer: Pin<&mut Sleep>) -> Poll<()> {
        loop {
            let now = Instant::now();
            let mut state = self.lock();
            let State { parked, deadlines, timer_waker, .. } = &mut *state;
            let mut closed = 0;
            while let Some(&(until, key)) = deadlines.first() {
                if until > now {
                    break;
                }
                deadlines.pop_first();
                if let Some(connection) = parked.try_remove(key) {
                    let _ = epoll::delete(self.epoll.get_ref(), &connection.socket);
                    closed += 1;
                }
            }
            self.count.fetch_sub(closed, Ordering::Relaxed);
            if closed > 0 {
                tracing::debug!(closed, "parked idle connections closed at their keep-alive deadline");
            }
            if !timer_waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *timer_waker = Some(cx.waker().clone());
            }
            let Some(&(next, _)) = deadlines.first() else { return Poll::Pending };
            drop(state);
            if timer.deadline() != next {
                timer.as_mut().reset(next);
            }
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

/// Puts each connection in `woken` back into tokio's reactor and hands it to `wake`; a socket
/// the reactor refuses is closed.
fn hand_back<T>(woken: &mut Vec<Parked<T>>, wake: &mut impl FnMut(Woken<T>)) {
    for parked in woken.drain(..) {
        if let Ok(socket) = TcpStream::from_std(parked.socket) {
            wake(Woken { socket, payload: parked.payload });
        }
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

    /// A parked socket is handed back, with its payload, once its peer writes; one never
    /// written to is closed at its deadline; shutdown hands back the rest.
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

        // Shutdown hands c back (to close as any idle connection closes then).
        stop_tx.send(true).expect("stop");
        tokio::time::timeout(Duration::from_secs(5), runner).await.expect("stopped in time").expect("runner");
        let c = woken_rx.try_recv().expect("c handed back at shutdown");
        assert_eq!(c.payload, "c");
        drop(c);
        tokio::time::timeout(Duration::from_secs(5), left.read_to_end(&mut rest)).await.expect("closed in time").expect("read");
        assert!(rest.is_empty());
        let (_client, server_d) = pair().await;
        assert!(parker.park(server_d, since + Duration::from_secs(60), "d").is_err(), "nothing is parked after shutdown");
        assert!(woken_rx.try_recv().is_err(), "only a and c were handed back");
        assert_eq!(count.load(Ordering::Relaxed), 0);
    }
}
