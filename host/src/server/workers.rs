//! One worker thread's event loop: accept on its listeners (each stoppable on its own, for
//! reloads), serve each client connection on a task of its own (again when its parked socket
//! wakes), obey the commands a reload sends, evict idle member connections, and drain on
//! stop.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot, watch};

use super::http1;
use super::park::{Parker, Woken};
use super::shared::{Command, ConnSettings, Shared};
use crate::edge::{ClientStream, ConnShared, TunnelGuard, Tunnels};
use crate::proxy::ProxyService;
use crate::tls::{Handshake, ServerTls};

/// Pending connections the kernel queues per listener before accepting.
pub(crate) const LISTEN_BACKLOG: i32 = 1024;
/// How often idle member connections past their `ttl` are closed.
const EVICT_EVERY: Duration = Duration::from_secs(1);

/// What a worker's client connections share.
struct Clients {
    shared: Arc<Shared>,
    tunnels: Arc<Tunnels>,
    /// The worker's idle connections, parked.
    parker: Parker<Client>,
    stop: watch::Receiver<bool>,
}

/// What a client connection keeps from its accept for its whole life, parked or not.
struct Client {
    peer: SocketAddr,
    /// The listener that accepted it, for the debug span.
    listener: Option<SocketAddr>,
    /// The settings it was accepted under (a reload's apply to connections accepted after).
    settings: Arc<ConnSettings>,
    /// Its slot under `limits.connections`.
    _permit: OwnedSemaphorePermit,
    /// Shutdown waits for it once hyper serves it.
    watcher: Watcher,
    /// Shutdown waits for a connection on the fast path, as for a tunnel.
    on_fast_path: TunnelGuard,
}

/// One worker's accept loops, one per listener, each stoppable on its own.
struct AcceptLoops {
    loops: HashMap<SocketAddr, (watch::Sender<bool>, tokio::task::JoinHandle<()>)>,
    clients: Arc<Clients>,
    graceful: Arc<GracefulShutdown>,
}

impl AcceptLoops {
    fn listen(&mut self, addr: SocketAddr, socket: TcpSocket) -> std::io::Result<()> {
        let listener = socket.listen(LISTEN_BACKLOG.unsigned_abs())?;
        let (unlisten, unlistened) = watch::channel(false);
        let task = tokio::spawn(accept_loop(addr, listener, Arc::clone(&self.clients), Arc::clone(&self.graceful), unlistened));
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
    let parker = match Parker::new(Arc::clone(&shared.parked)) {
        Ok(parker) => parker,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let clients = Arc::new(Clients { shared: Arc::clone(&shared), tunnels: Arc::clone(&tunnels), parker, stop: stop.clone() });
    let mut loops = AcceptLoops { loops: HashMap::new(), clients: Arc::clone(&clients), graceful: Arc::clone(&graceful) };
    for (addr, socket) in sockets {
        if let Err(e) = loops.listen(addr, socket) {
            let _ = ready.send(Err(e));
            return;
        }
    }
    let _ = ready.send(Ok(()));
    // Closes every parked connection when `stop` is set (before the drain below waits).
    let parking = tokio::spawn({
        let clients = Arc::clone(&clients);
        let stop = stop.clone();
        async move {
            let wake = |woken: Woken<Client>| serve_client(&clients, Start::Woken(woken.socket), woken.payload);
            clients.parker.run(stop, wake).await;
        }
    });
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
    let _ = parking.await;
    drop(clients);
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

async fn accept_loop(addr: SocketAddr, listener: TcpListener, clients: Arc<Clients>, graceful: Arc<GracefulShutdown>, mut unlisten: watch::Receiver<bool>) {
    let local = listener.local_addr().ok();
    let shared = &clients.shared;
    let mut stop = clients.stop.clone();
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
        let client = Client { peer, listener: local, settings, _permit: permit, watcher: graceful.watcher(), on_fast_path: clients.tunnels.open() };
        serve_client(&clients, Start::Accepted(stream, tls), client);
    }
}

/// How a client connection's task begins.
enum Start {
    /// Just accepted, on a listener with this TLS (or none).
    Accepted(TcpStream, Option<Arc<ServerTls>>),
    /// Woken from the parker (plain).
    Woken(TcpStream),
}

/// Serves a client connection on a task of its own, until it closes or is parked.
fn serve_client(clients: &Arc<Clients>, start: Start, client: Client) {
    // With RUST_LOG=debug every line logged about this connection says which client and
    // listener it was. Not at info: entering an enabled span on every poll cost ~900
    // instructions per request under callgrind (2.4 %).
    let span = tracing::debug_span!("conn", client = %client.peer, listener = client.listener.map(tracing::field::display));
    let clients = Arc::clone(clients);
    tokio::spawn(tracing::Instrument::instrument(
        async move {
            let _ended = clients.shared.trim.task_end();
            let peer = client.peer;
            let settings = &client.settings;
            let conn = ConnShared::new(&clients.tunnels, settings.limits, settings.timeouts);
            let (stream, woken, tls) = match start {
                Start::Accepted(tcp, None) => (ClientStream::Plain(tcp), false, false),
                // The handshake runs here, on the connection's task: a slow client holds up
                // nobody else. Boxed, as is hyper's connection below: a task is as large as
                // its largest state, and a connection idling on the fast path should carry
                // neither.
                Start::Accepted(tcp, Some(tls)) => match Box::pin(tls.accept(tcp)).await {
                    Handshake::Done(tls) => (ClientStream::Tls(tls), false, true),
                    Handshake::PlainHttp => return tracing::debug!(%peer, "plain HTTP on a TLS listener: answered 400"),
                    Handshake::TimedOut => return tracing::debug!(%peer, "TLS handshake timed out"),
                    Handshake::Failed(e) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                },
                Start::Woken(tcp) => (ClientStream::Plain(tcp), true, false),
            };
            let service = ProxyService::new(Arc::clone(&clients.shared.proxy), peer, Arc::clone(&conn), tls);
            match http1::serve(stream, woken, conn, settings.guard.clone(), &service, clients.stop.clone()).await {
                http1::Outcome::Closed => {}
                http1::Outcome::Park(socket, since) => {
                    let until = since + settings.guard.keepalive;
                    if let Err(e) = clients.parker.park(socket, until, client) {
                        tracing::debug!(%peer, error = %e, "idle connection closed instead of parked");
                    }
                }
                http1::Outcome::HandOff(io) => {
                    let Client { settings, watcher, on_fast_path, _permit, .. } = client;
                    drop(on_fast_path);
                    let connection = settings.builder.serve_connection_with_upgrades(TokioIo::new(*io), service);
                    if let Err(e) = Box::pin(watcher.watch(connection.into_owned())).await {
                        tracing::debug!(%peer, error = %e, "client connection ended with an error");
                    }
                }
            }
        },
        span,
    ));
}
