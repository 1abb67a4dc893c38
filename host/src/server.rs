//! Workers, listeners, client connections and health-check tasks: accept, serve HTTP/1.1
//! and HTTP/2 (prior knowledge), run each checked member's probes, and drain on shutdown.
//!
//! The proxy runs thread-per-core, like nginx's worker processes: each worker thread has its
//! own single-threaded tokio runtime and its own `SO_REUSEPORT` listener on every address, so
//! the kernel spreads connections over the workers and a connection, its requests and the
//! member connections they use never leave their worker (no cross-thread wakeups, no locks
//! contended on the request path). Measured on 2 cores this, with the inline member client,
//! halved the CPU a proxied request costs.
//!
//! [`start`] builds everything from a checked config (plugins loaded and self-tested, ports
//! bound) before serving a single request, so a bad plugin or a taken port fails the start
//! rather than the first request. Each accepted socket is wrapped in an
//! [`edge::Guard`](crate::edge::Guard) (raw-head checks, head and idle deadlines) before
//! hyper sees it, and counts against `limits.connections` until it closes: at the limit the
//! workers stop accepting and new clients wait in the listen backlog.
//!
//! What a reload may change lives behind two atomic pointers read per request and per
//! connection (`Shared`); listeners are added and removed by sending each worker a
//! `Command` (see [`reload`](crate::reload)). Shutdown stops accepting at once, lets requests in flight
//! finish for up to `shutdown_timeout`, then closes what is left.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::edge::{Answers, ConnShared, Guard, GuardSettings, ScanLimits, Tunnels};
use crate::health;
use crate::plugin::{PluginError, PluginRuntime};
use crate::proxy::{BuildError, Proxy, ProxyService, SharedProxy, raw_page, worker};
use crate::reload::{ReloadError, ReloadReport};

/// Pending connections the kernel queues per listener before accepting.
const LISTEN_BACKLOG: u32 = 1024;
/// How often idle member connections past their `ttl` are closed.
const EVICT_EVERY: Duration = Duration::from_secs(1);

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The plugin runtime could not be set up.
    #[error(transparent)]
    Plugins(#[from] PluginError),
    /// A plugin failed to load.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// A worker thread could not be started or could not listen.
    #[error("worker {index} could not start: {source}")]
    Worker {
        /// Which worker.
        index: usize,
        /// Why.
        source: std::io::Error,
    },
    /// A listener address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// How client connections are served: the parts of the config a connection reads once, when
/// it is accepted.
pub(crate) struct ConnSettings {
    builder: auto::Builder<TokioExecutor>,
    guard: GuardSettings,
    /// How long shutdown waits for requests in flight.
    pub(crate) drain: Duration,
}

impl ConnSettings {
    /// The settings `config` asks for.
    pub(crate) fn new(config: &Config) -> Self {
        let limits = &config.limits;
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            // The guard keeps the head and idle deadlines (hyper's one timer covers both).
            .header_read_timeout(None)
            .keep_alive(true)
            // An outer bound only: the guard answers heads over the limits itself.
            .max_buf_size((limits.request_line + limits.header_size + 4096).max(8192));
        if limits.header_fields > 100 {
            // Above hyper's default (100, kept on the stack) only when asked for.
            builder.http1().max_headers(limits.header_fields);
        }
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(limits.header_size).unwrap_or(u32::MAX));
        let answers = Arc::new(Answers {
            timeout: raw_page(http::StatusCode::REQUEST_TIMEOUT),
            uri_too_long: raw_page(http::StatusCode::URI_TOO_LONG),
            header_too_large: raw_page(http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
        });
        let guard = GuardSettings {
            limits: ScanLimits { request_line: limits.request_line, header_size: limits.header_size },
            header: config.timeouts.header,
            keepalive: config.timeouts.keepalive,
            answers,
        };
        Self { builder, guard, drain: config.server.shutdown_timeout }
    }
}

/// What every worker shares, and what a reload swaps.
pub(crate) struct Shared {
    /// The request-handling state, loaded per request.
    pub(crate) proxy: SharedProxy,
    /// Connection settings, loaded per accepted connection.
    pub(crate) conn: ArcSwap<ConnSettings>,
    /// One permit per client connection (`limits.connections`).
    pub(crate) connections: Arc<Semaphore>,
    /// How many permits `connections` was made with, to adjust it on reload.
    pub(crate) connection_limit: AtomicUsize,
    /// The plugin runtime in use (replaced when `[plugins]` limits change).
    pub(crate) plugins: ArcSwap<PluginRuntime>,
    /// The config in use.
    pub(crate) config: ArcSwap<Config>,
    /// Each worker's command channel.
    pub(crate) workers: Vec<mpsc::UnboundedSender<Command>>,
    /// Configured listener address → bound address, for the listeners open now.
    pub(crate) listeners: std::sync::Mutex<Vec<(SocketAddr, SocketAddr)>>,
    /// Serialises reloads.
    pub(crate) reloading: tokio::sync::Mutex<()>,
    /// One probe task per health-checked member of the proxy in service.
    pub(crate) health_checks: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl Shared {
    /// Stops the health checks of the proxy that was in service.
    pub(crate) fn stop_health_checks(&self) {
        if let Ok(mut tasks) = self.health_checks.lock() {
            for task in tasks.drain(..) {
                task.abort();
            }
        }
    }

    /// Sets the connection cap to `limit`, keeping the connections open now counted.
    pub(crate) fn set_connection_limit(&self, limit: usize) {
        let old = self.connection_limit.swap(limit, Ordering::AcqRel);
        if limit > old {
            self.connections.add_permits(limit - old);
        } else if old > limit {
            // Permits held by open connections are forgotten as they come back.
            let mut left = old - limit;
            left -= self.connections.forget_permits(left);
            if left > 0 {
                let sem = Arc::clone(&self.connections);
                tokio::spawn(async move {
                    while left > 0 {
                        match sem.acquire().await {
                            Ok(p) => {
                                p.forget();
                                left -= 1;
                            }
                            Err(_) => return,
                        }
                    }
                });
            }
        }
    }
}

/// What a worker is told to do besides serving.
pub(crate) enum Command {
    /// Listen on a bound socket (configured address, socket); reply once listening.
    Listen(SocketAddr, TcpSocket, oneshot::Sender<std::io::Result<()>>),
    /// Stop accepting on the listener for this configured address.
    Unlisten(SocketAddr),
}

/// A running proxy.
pub struct Running {
    /// The bound listener addresses at start, in config order (ports resolved when the
    /// config said 0). [`Running::listening`] tells the current ones.
    pub addrs: Vec<SocketAddr>,
    /// The request-handling state as started (balancers and their counters); after a reload
    /// use [`Running::current`].
    pub proxy: Arc<Proxy>,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    workers: Vec<oneshot::Receiver<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shared.stop_health_checks();
    }
}

impl Running {
    /// Stops accepting, drains requests in flight (up to the shutdown timeout), and returns
    /// when every worker has stopped.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        self.wait().await;
    }

    /// Waits until every worker has stopped (after a shutdown was triggered).
    pub async fn wait(mut self) {
        for worker in std::mem::take(&mut self.workers) {
            let _ = worker.await;
        }
    }

    /// A handle that triggers shutdown.
    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }

    /// The proxy serving requests now.
    pub fn current(&self) -> Arc<Proxy> {
        self.shared.proxy.load_full()
    }

    /// The bound addresses of the listeners open now, in config order.
    pub fn listening(&self) -> Vec<SocketAddr> {
        self.shared.listeners.lock().map(|l| l.iter().map(|(_, bound)| *bound).collect()).unwrap_or_default()
    }

    /// Replaces the config: builds a complete new proxy (plugins loaded and self-tested),
    /// binds new listeners, then swaps it in; on any error nothing changes.
    pub async fn reload(&self, config: Config) -> Result<ReloadReport, ReloadError> {
        crate::reload::reload(&self.shared, config).await
    }

    /// A handle for reloading from elsewhere (a signal handler).
    pub fn reloader(&self) -> Reloader {
        Reloader { shared: Arc::clone(&self.shared) }
    }
}

/// Reloads a running proxy; see [`Running::reload`].
#[derive(Clone)]
pub struct Reloader {
    shared: Arc<Shared>,
}

impl Reloader {
    /// See [`Running::reload`].
    pub async fn reload(&self, config: Config) -> Result<ReloadReport, ReloadError> {
        crate::reload::reload(&self.shared, config).await
    }
}

/// How many worker threads `config` asks for (default: one per CPU).
pub fn worker_count(config: &Config) -> usize {
    config.server.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Loads the plugins and builds the proxy for `config`, without binding anything (what
/// `--check` runs).
pub async fn build(config: &Config) -> Result<(Arc<PluginRuntime>, Arc<Proxy>), StartError> {
    let plugins = Arc::new(PluginRuntime::new(config.plugins)?);
    let proxy = Arc::new(Proxy::build(config, &plugins, worker_count(config)).await?);
    Ok((plugins, proxy))
}

/// One reuseport socket per worker for `addr`, all on the same port; returns the bound address.
pub(crate) fn bind_all(addr: SocketAddr, workers: usize) -> Result<(SocketAddr, Vec<TcpSocket>), StartError> {
    let mut bound = addr;
    let mut sockets = Vec::with_capacity(workers);
    for _ in 0..workers {
        let socket = reuseport_socket(bound).map_err(|source| StartError::Bind { addr, source })?;
        // Port 0 resolves on the first bind; every other worker binds the same port.
        bound = socket.local_addr().map_err(|source| StartError::Bind { addr, source })?;
        sockets.push(socket);
    }
    Ok((bound, sockets))
}

/// Builds the proxy, binds every listener for every worker and starts the workers.
pub async fn start(config: &Config) -> Result<Running, StartError> {
    let (plugins, proxy) = build(config).await?;
    let workers = worker_count(config);
    let mut per_worker: Vec<Vec<(SocketAddr, TcpSocket)>> = (0..workers).map(|_| Vec::new()).collect();
    let mut addrs = Vec::with_capacity(config.listeners.len());
    let mut listeners = Vec::with_capacity(config.listeners.len());
    for l in &config.listeners {
        let (bound, sockets) = bind_all(l.addr, workers)?;
        for (worker, socket) in per_worker.iter_mut().zip(sockets) {
            worker.push((l.addr, socket));
        }
        addrs.push(bound);
        listeners.push((l.addr, bound));
    }
    let (shutdown, stop) = watch::channel(false);
    let mut commands = Vec::with_capacity(workers);
    let mut receivers = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (tx, rx) = mpsc::unbounded_channel();
        commands.push(tx);
        receivers.push(rx);
    }
    let shared = Arc::new(Shared {
        proxy: Arc::new(ArcSwap::new(Arc::clone(&proxy))),
        conn: ArcSwap::from_pointee(ConnSettings::new(config)),
        connections: Arc::new(Semaphore::new(config.limits.connections)),
        connection_limit: AtomicUsize::new(config.limits.connections),
        plugins: ArcSwap::new(plugins),
        config: ArcSwap::from_pointee(config.clone()),
        workers: commands,
        listeners: std::sync::Mutex::new(listeners),
        reloading: tokio::sync::Mutex::new(()),
        health_checks: std::sync::Mutex::new(Vec::new()),
    });
    let mut done = Vec::with_capacity(workers);
    let mut listening = Vec::with_capacity(workers);
    for (index, (sockets, commands)) in per_worker.into_iter().zip(receivers).enumerate() {
        let (finished, finished_rx) = oneshot::channel();
        let (ready, ready_rx) = oneshot::channel();
        let shared = Arc::clone(&shared);
        let stop = stop.clone();
        std::thread::Builder::new()
            .name(format!("switchyard-worker-{index}"))
            .spawn(move || {
                worker::enter(index);
                match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime.block_on(run_worker(shared, sockets, commands, ready, stop)),
                    Err(e) => {
                        let _ = ready.send(Err(e));
                    }
                }
                let _ = finished.send(());
            })
            .map_err(|source| StartError::Worker { index, source })?;
        done.push(finished_rx);
        listening.push(ready_rx);
    }
    start_health_checks(&shared);
    let running = Running { addrs, proxy, shared, shutdown, workers: done };
    // Return only once every worker listens, so a client may connect as soon as we return.
    for (index, ready) in listening.into_iter().enumerate() {
        if let Ok(Err(source)) | Err(source) = ready.await.map_err(|_| std::io::Error::other("worker exited")) {
            running.shutdown().await;
            return Err(StartError::Worker { index, source });
        }
    }
    Ok(running)
}

/// Replaces the running health checks with those of the proxy in service, on the current
/// runtime.
pub(crate) fn start_health_checks(shared: &Shared) {
    let proxy = shared.proxy.load_full();
    let tasks: Vec<JoinHandle<()>> = proxy
        .health_checks()
        .iter()
        .map(|t| {
            let member = Arc::clone(&proxy.balancers()[t.balancer].members()[t.member]);
            health::spawn(member, Arc::clone(&t.check), t.settings, Arc::clone(&t.state))
        })
        .collect();
    shared.stop_health_checks();
    if let Ok(mut running) = shared.health_checks.lock() {
        *running = tasks;
    }
}

/// A listening-to-be socket with `SO_REUSEPORT`, bound to `addr`.
fn reuseport_socket(addr: SocketAddr) -> std::io::Result<TcpSocket> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    Ok(socket)
}

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
        let listener = socket.listen(LISTEN_BACKLOG)?;
        let (unlisten, unlistened) = watch::channel(false);
        let task = tokio::spawn(accept_loop(
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
async fn run_worker(
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
    listener: TcpListener,
    shared: Arc<Shared>,
    graceful: Arc<GracefulShutdown>,
    tunnels: Arc<Tunnels>,
    mut stop: watch::Receiver<bool>,
    mut unlisten: watch::Receiver<bool>,
) {
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
        let conn = ConnShared::new(&tunnels);
        let service = ProxyService::new(Arc::clone(&shared.proxy), peer, Arc::clone(&conn));
        let guard = Guard::new(stream, conn, settings.guard.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let connection = settings.builder.serve_connection_with_upgrades(TokioIo::new(guard), service);
            if let Err(e) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(%peer, error = %e, "client connection ended with an error");
            }
            drop(permit);
        });
    }
}
