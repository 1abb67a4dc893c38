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
//!
//! # Layout
//! - `shared`: what the workers share and a reload swaps.
//! - `http1`: the HTTP/1.1 fast path a connection starts on.
//! - `park`: idle keep-alive connections held as bare sockets, without a task.
//! - `trim`: memory that ended connection tasks freed, handed back to the system.
//! - `workers`: one worker's event loop (accept, serve, commands, eviction, drain), using
//!   the four above.

pub(crate) mod http1;
mod park;
mod reload;
mod shared;
mod trim;
mod workers;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use arc_swap::ArcSwap;
use tokio::net::TcpSocket;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::health;
use crate::observe::{AccessLog, AccessLogError};
use crate::tls::{ServerTls, TlsError};
use crate::plugin::{PluginError, PluginRuntime};
use crate::proxy::{BuildError, Proxy};
use crate::worker;
pub use reload::{ReloadError, ReloadReport};

pub(crate) use shared::{Command, ConnSettings, Shared};
pub(crate) use workers::LISTEN_BACKLOG;

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
    /// A TLS listener's certificates could not be loaded.
    #[error("listen {addr}: tls: {source}")]
    Tls {
        /// The listener.
        addr: SocketAddr,
        /// What is wrong.
        source: TlsError,
    },
    /// The access log could not be opened.
    #[error(transparent)]
    AccessLog(#[from] AccessLogError),
    /// Another process listens on a listener address already.
    #[error("cannot listen on {addr}: address already in use (is another proxy running with this address?)")]
    InUse {
        /// The address.
        addr: SocketAddr,
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

    /// Waits until every worker has stopped (after a shutdown was triggered), then until the
    /// access log has written every line.
    pub async fn wait(mut self) {
        for worker in std::mem::take(&mut self.workers) {
            let _ = worker.await;
        }
        if let Some(log) = self.shared.proxy.load().access_log().cloned() {
            // Its last write and flush, off the runtime's thread.
            let _ = tokio::task::spawn_blocking(move || log.close()).await;
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
    /// binds new listeners, then swaps it in; on any error nothing changes. This is the
    /// library's bare reload: a process run with a [`crate::control::Control`] changes through
    /// it instead, so the manager's runtime changes stay laid over the file.
    pub async fn reload(&self, config: Config) -> Result<ReloadReport, ReloadError> {
        reload::reload(&self.shared, config).await
    }

    /// How many idle keep-alive client connections are parked now (see the README's
    /// Performance section).
    pub fn parked_connections(&self) -> usize {
        self.shared.parked.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many times memory freed by ended connection tasks was handed back to the system
    /// (see the README's Performance section).
    pub fn memory_trims(&self) -> u64 {
        self.shared.trim.trims()
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
        reload::reload(&self.shared, config).await
    }

    /// The proxy in service now.
    pub fn current(&self) -> Arc<Proxy> {
        self.shared.proxy.load_full()
    }

    /// Builds everything `config` needs, then asks `keep` (which may refuse: a manager edit
    /// is persisted here), then puts it in service; one change at a time. Nothing changes
    /// when any step before the swap fails.
    pub(crate) async fn publish(&self, config: Config, keep: impl FnOnce(&Proxy) -> Result<(), String>) -> Result<ReloadReport, ReloadError> {
        let _one_at_a_time = self.shared.reloading.lock().await;
        let prepared = reload::prepare(&self.shared, config).await?;
        keep(prepared.proxy()).map_err(ReloadError::NotKept)?;
        Ok(prepared.commit().await)
    }

    /// See [`Running::parked_connections`].
    pub fn parked_connections(&self) -> usize {
        self.shared.parked.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// See [`Running::memory_trims`].
    pub fn memory_trims(&self) -> u64 {
        self.shared.trim.trims()
    }

    /// Makes the access log in service open its file again by name (SIGUSR1, logrotate).
    pub fn reopen_logs(&self) {
        if let Some(log) = self.shared.proxy.load().access_log() {
            log.reopen();
        }
    }
}

/// How many worker threads `config` asks for (default: one per CPU).
pub fn worker_count(config: &Config) -> usize {
    // Asked once: the answer reads cgroup files, and every reload and manager edit asks.
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    config.server.workers.unwrap_or_else(|| *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get())))
}

/// Loads the plugins and builds the proxy for `config`, without binding anything (what
/// `--check` runs).
pub async fn build(config: &Config) -> Result<(Arc<PluginRuntime>, Arc<Proxy>), StartError> {
    // Certificates first: a bad one is the cheapest thing to find.
    listener_tls(config)?;
    let plugins = Arc::new(PluginRuntime::with_cache(config.plugins, config.plugin_cache.as_deref())?.calling_threads(worker_count(config)));
    let mut proxy = Proxy::build(config, &plugins, worker_count(config)).await?;
    proxy.set_access_log(access_log(config, None)?);
    Ok((plugins, Arc::new(proxy)))
}

/// The TLS of every TLS listener of `config`, certificates read from their files now.
pub(crate) fn listener_tls(config: &Config) -> Result<HashMap<SocketAddr, Arc<ServerTls>>, StartError> {
    let mut out = HashMap::new();
    for l in &config.listeners {
        if let Some(tls) = &l.tls {
            let server = ServerTls::new(tls).map_err(|source| StartError::Tls { addr: l.addr, source })?;
            out.insert(l.addr, server);
        }
    }
    Ok(out)
}

/// The access log `config` asks for: `current` when its settings are the same (a reload
/// keeps the writer and its file), else a newly opened one.
pub(crate) fn access_log(config: &Config, current: Option<&Arc<AccessLog>>) -> Result<Option<Arc<AccessLog>>, StartError> {
    let Some(settings) = &config.access_log else { return Ok(None) };
    match current {
        Some(log) if log.settings() == settings => Ok(Some(Arc::clone(log))),
        _ => Ok(Some(AccessLog::open(settings)?)),
    }
}

/// One reuseport socket per worker for `addr`, all on the same port; returns the bound address.
///
/// `SO_REUSEPORT` would also let another process (another proxy with another config) join the
/// port and take half the new connections, silently. So an address in use by anyone else is
/// refused first, as nginx and HAProxy refuse it: see [`refuse_if_in_use`]. Only addresses new
/// to this process come here (a reload keeps the sockets it has); a reload adding an address on
/// a port this process already listens on (`127.0.0.1:8080` beside `0.0.0.0:8080`) passes
/// `probe = false`, since the probe would find the process's own listener.
pub(crate) fn bind_all(addr: SocketAddr, workers: usize, probe: bool) -> Result<(SocketAddr, Vec<TcpSocket>), StartError> {
    if probe {
        refuse_if_in_use(addr)?;
    }
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
        let (bound, sockets) = bind_all(l.addr, workers, true)?;
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
        conn: ArcSwap::from_pointee(ConnSettings::new(config, listener_tls(config)?)),
        connections: Arc::new(Semaphore::new(config.limits.connections)),
        connection_limit: AtomicUsize::new(config.limits.connections),
        plugins: ArcSwap::new(plugins),
        config: ArcSwap::from_pointee(config.clone()),
        workers: commands,
        listeners: std::sync::Mutex::new(listeners),
        reloading: tokio::sync::Mutex::new(()),
        health_checks: std::sync::Mutex::new(Vec::new()),
        parked: Arc::new(AtomicUsize::new(0)),
        trim: trim::Trim::default(),
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
                    Ok(runtime) => runtime.block_on(workers::run_worker(shared, sockets, commands, ready, stop)),
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
    tokio::spawn({
        let (shared, stop) = (Arc::clone(&shared), stop.clone());
        async move { shared.trim.run(stop).await }
    });
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
            let tls = member.conn.tls().cloned();
            health::spawn(member, Arc::clone(&t.check), t.settings, Arc::clone(&t.state), tls)
        })
        .collect();
    shared.stop_health_checks();
    if let Ok(mut running) = shared.health_checks.lock() {
        *running = tasks;
    }
}

/// Fails with [`StartError::InUse`] when something listens on `addr` already: a probe bound
/// without `SO_REUSEPORT` conflicts with any listener there, reuseport or not (with
/// `SO_REUSEADDR`, so connections of an earlier run lingering in TIME_WAIT do not count).
/// The probe is closed before the workers bind; two proxies starting within that instant
/// could both pass, which a start script does not do.
fn refuse_if_in_use(addr: SocketAddr) -> Result<(), StartError> {
    if addr.port() == 0 {
        return Ok(());
    }
    let probe = if addr.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() };
    let probe = probe.and_then(|s| s.set_reuseaddr(true).map(|()| s)).map_err(|source| StartError::Bind { addr, source })?;
    match probe.bind(addr) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(StartError::InUse { addr }),
        Err(source) => Err(StartError::Bind { addr, source }),
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

