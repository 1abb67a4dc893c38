//! Listeners and client connections: accept, serve HTTP/1.1 and HTTP/2 (prior knowledge),
//! and drain on shutdown.
//!
//! [`start`] builds everything from a checked config (plugins loaded and self-tested, ports
//! bound) before serving a single request, so a bad plugin or a taken port fails the start
//! rather than the first request. Shutdown stops accepting at once, lets requests in flight
//! finish for up to `shutdown_timeout`, then closes what is left.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::plugin::{PluginError, PluginRuntime};
use crate::proxy::{BuildError, Proxy, ProxyService};

/// How long a client may take to send a request head (slowloris guard).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
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
    /// The bound listener addresses, in config order (ports resolved when the config said 0).
    pub addrs: Vec<SocketAddr>,
    /// The request-handling state (balancers and their counters).
    pub proxy: Arc<Proxy>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Running {
    /// Stops accepting, drains requests in flight (up to the shutdown timeout), and returns
    /// when every connection is closed.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }

    /// Waits until the server stops (after [`Running::shutdown`] from elsewhere, or never).
    pub async fn wait(self) {
        let _ = self.task.await;
    }

    /// A handle that triggers shutdown.
    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }
}

/// Loads the plugins and builds the proxy for `config`, without binding anything (what
/// `--check` runs).
pub async fn build(config: &Config) -> Result<(Arc<PluginRuntime>, Arc<Proxy>), StartError> {
    let plugins = Arc::new(PluginRuntime::new(config.plugins)?);
    let proxy = Arc::new(Proxy::build(config, &plugins).await?);
    Ok((plugins, proxy))
}

/// Builds the proxy, binds every listener and starts serving.
pub async fn start(config: &Config) -> Result<Running, StartError> {
    let (plugins, proxy) = build(config).await?;
    let mut listeners = Vec::with_capacity(config.listeners.len());
    for l in &config.listeners {
        let listener = TcpListener::bind(l.addr).await.map_err(|source| StartError::Bind { addr: l.addr, source })?;
        listeners.push(listener);
    }
    let addrs = listeners.iter().filter_map(|l| l.local_addr().ok()).collect();
    let (shutdown, stop) = watch::channel(false);
    let drain = config.server.shutdown_timeout;
    let task = tokio::spawn(serve(Arc::clone(&proxy), plugins, listeners, stop, drain));
    Ok(Running { addrs, proxy, shutdown, task })
}

async fn serve(proxy: Arc<Proxy>, plugins: Arc<PluginRuntime>, listeners: Vec<TcpListener>, stop: watch::Receiver<bool>, drain: Duration) {
    let graceful = Arc::new(GracefulShutdown::new());
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT).keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);

    let mut accept_loops = Vec::new();
    for listener in listeners {
        accept_loops.push(tokio::spawn(accept_loop(
            listener,
            Arc::clone(&proxy),
            Arc::clone(&builder),
            Arc::clone(&graceful),
            stop.clone(),
        )));
    }
    let evictor = tokio::spawn({
        let proxy = Arc::clone(&proxy);
        async move {
            let mut tick = tokio::time::interval(EVICT_EVERY);
            loop {
                tick.tick().await;
                proxy.evict_idle_connections();
            }
        }
    });

    for accept in accept_loops {
        let _ = accept.await;
    }
    evictor.abort();
    tracing::info!(connections = graceful.count(), ?drain, "stopped accepting; draining requests in flight");
    // The accept loops are done, so this is the last reference.
    if let Ok(graceful) = Arc::try_unwrap(graceful) {
        if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
            tracing::warn!(?drain, "shutdown timeout reached; closing remaining connections");
        }
    }
    // Plugins must outlive every request that might still call them.
    drop(plugins);
}

async fn accept_loop(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    graceful: Arc<GracefulShutdown>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stopped| *stopped) => return,
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
        let service = ProxyService::new(Arc::clone(&proxy), peer);
        let builder = Arc::clone(&builder);
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(%peer, error = %e, "client connection ended with an error");
            }
        });
    }
}
