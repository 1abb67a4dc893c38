//! One worker thread's event loop: accept on its listeners (each stoppable on its own, for
//! reloads), obey the commands a reload sends, evict idle member connections, and drain on
//! stop.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{mpsc, oneshot, watch};

use super::shared::{Command, Shared};
use crate::edge::{ClientStream, ConnShared, Tunnels};
use crate::tls::Handshake;
use super::http1;
use crate::proxy::ProxyService;

/// Pending connections the kernel queues per listener before accepting.
pub(crate) const LISTEN_BACKLOG: i32 = 1024;
/// How often idle member connections past their `ttl` are closed.
const EVICT_EVERY: Duration = Duration::from_secs(1);

/// One worker's accept loops, one per listener, each stoppable on its own.
struct AcceptLoops {
    loops: HashMap<SocketAddr, (watch::Sender<bool>, tokio::task::JoinHandle<()>)>,
    shared: Arc<Shared>,
    graceful: Arc<GracefulShutdown>,
    tunnels: Arc<Tunnels>,
    stop: watch::Receiver<bool>,
}

impl AcceptLoops {
    fn listen(&mut self, addr: SocketAddr, socket: TcpSocket) -> std::io::Result<()> {
        let listener = socket.listen(LISTEN_BACKLOG.unsigned_abs())?;
        let (unlisten, unlistened) = watch::channel(false);
        let task = tokio::spawn(accept_loop(
            addr,
            listener,
            Arc::clone(&self.shared),
            Arc::clone(&self.graceful),
            Arc::clone(&self.tunnels),
            self.stop.clone(),
            unlistened,
        ));
        if let Some((old, _)) = self.loops.insert(addr, (unlisten, task)) {
            let _ = old.send(true);
        }
        Ok(())
    }

    fn unlisten(&mut self, addr: SocketAddr) {
        if let Some((unlisten, _)) = self.loops.remove(&addr) {
            let _ = unlisten.send(true);
        }
    }
}

/// One worker: accept on its listeners, obey commands, evict idle member connections, drain
/// on stop.
pub(super) async fn run_worker(
    shared: Arc<Shared>,
    sockets: Vec<(SocketAddr, TcpSocket)>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    ready: oneshot::Sender<std::io::Result<()>>,
    mut stop: watch::Receiver<bool>,
) {
    let graceful = Arc::new(GracefulShutdown::new());
    let tunnels = Arc::new(Tunnels::default());
    let mut loops = AcceptLoops {
        loops: HashMap::new(),
        shared: Arc::clone(&shared),
        graceful: Arc::clone(&graceful),
        tunnels: Arc::clone(&tunnels),
        stop: stop.clone(),
    };
    for (addr, socket) in sockets {
        if let Err(e) = loops.listen(addr, socket) {
            let _ = ready.send(Err(e));
            return;
        }
    }
    let _ = ready.send(Ok(()));
    let evictor = tokio::spawn({
        let shared = Arc::clone(&shared);
        async move {
            let mut tick = tokio::time::interval(EVICT_EVERY);
            loop {
                tick.tick().await;
                shared.proxy.load().evict_idle_connections();
            }
        }
    });
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(Command::Listen(addr, socket, reply)) => {
                    let _ = reply.send(loops.listen(addr, socket));
                }
                Some(Command::Unlisten(addr)) => loops.unlisten(addr),
                None => break,
            },
            _ = stop.wait_for(|stopped| *stopped) => break,
        }
    }
    let tasks: Vec<_> = loops.loops.drain().map(|(_, (_, task))| task).collect();
    drop(loops);
    for task in tasks {
        let _ = task.await;
    }
    evictor.abort();
    let drain = shared.conn.load().drain;
    // The accept loops are done, so this is the last reference.
    if let Ok(graceful) = Arc::try_unwrap(graceful) {
        if graceful.count() > 0 {
            tracing::info!(connections = graceful.count(), ?drain, "draining requests in flight");
        }
        // Tunnels (WebSockets) are in flight too: they get the same deadline.
        let all_done = async {
            graceful.shutdown().await;
            tunnels.all_closed().await;
        };
        if tokio::time::timeout(drain, all_done).await.is_err() {
            tracing::warn!(?drain, "shutdown timeout reached; closing remaining connections and tunnels");
        }
    }
}

async fn accept_loop(
    addr: SocketAddr,
    listener: TcpListener,
    shared: Arc<Shared>,
    graceful: Arc<GracefulShutdown>,
    tunnels: Arc<Tunnels>,
    mut stop: watch::Receiver<bool>,
    mut unlisten: watch::Receiver<bool>,
) {
    let local = listener.local_addr().ok();
    loop {
        // A slot first: at the connection limit, clients wait in the backlog, not in the proxy.
        let permit = tokio::select! {
            permit = Arc::clone(&shared.connections).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = stop.wait_for(|stopped| *stopped) => return,
            _ = unlisten.wait_for(|gone| *gone) => return,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stopped| *stopped) => return,
            _ = unlisten.wait_for(|gone| *gone) => return,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let settings = shared.conn.load_full();
        let tls = settings.tls.get(&addr).cloned();
        let conn = ConnShared::new(&tunnels, settings.limits, settings.timeouts);
        let service = ProxyService::new(Arc::clone(&shared.proxy), peer, Arc::clone(&conn), tls.is_some());
        let watcher = graceful.watcher();
        let stop = stop.clone();
        // Shutdown waits for a connection on the fast path as for a tunnel.
        let on_fast_path = tunnels.open();
        // With RUST_LOG=debug every line logged about this connection says which client and
        // listener it was. Not at info: entering an enabled span on every poll cost ~900
        // instructions per request under callgrind (2.4 %).
        let span = tracing::debug_span!("conn", client = %peer, listener = local.map(tracing::field::display));
        tokio::spawn(tracing::Instrument::instrument(async move {
            // The handshake runs here, on the connection's task: a slow client holds up
            // nobody else.
            let stream = match tls {
                None => ClientStream::Plain(stream),
                // Boxed, as is hyper's connection below: a task is as large as its largest
                // state, and a connection idling on the fast path should carry neither.
                Some(tls) => match Box::pin(tls.accept(stream)).await {
                    Handshake::Done(tls) => ClientStream::Tls(tls),
                    Handshake::PlainHttp => return tracing::debug!(%peer, "plain HTTP on a TLS listener: answered 400"),
                    Handshake::TimedOut => return tracing::debug!(%peer, "TLS handshake timed out"),
                    Handshake::Failed(e) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                },
            };
            let outcome = http1::serve(stream, conn, settings.guard.clone(), &service, stop).await;
            drop(on_fast_path);
            if let http1::Outcome::HandOff(io) = outcome {
                let connection = settings.builder.serve_connection_with_upgrades(TokioIo::new(*io), service);
                if let Err(e) = Box::pin(watcher.watch(connection.into_owned())).await {
                    tracing::debug!(%peer, error = %e, "client connection ended with an error");
                }
            }
            drop(permit);
        }, span));
    }
}
