//! What every worker shares and what a reload swaps: the proxy in service, the settings new
//! client connections are served with, the connection cap, the plugin runtime, the config, and
//! each worker's command channel.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpSocket;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::edge::{Answers, GuardSettings, Parking, ScanLimits};
use crate::plugin::PluginRuntime;
use crate::tls::ServerTls;
use crate::proxy::{SharedProxy, raw_page};

/// How client connections are served: the parts of the config a connection reads once, when
/// it is accepted.
pub(crate) struct ConnSettings {
    pub(super) builder: auto::Builder<TokioExecutor>,
    pub(super) guard: GuardSettings,
    /// The TLS of each TLS listener, by its configured address.
    pub(super) tls: HashMap<SocketAddr, Arc<ServerTls>>,
    /// How long shutdown waits for requests in flight.
    pub(crate) drain: Duration,
    /// `[limits]` and `[timeouts]` for the connections accepted under these settings.
    pub(crate) limits: crate::config::Limits,
    pub(crate) timeouts: crate::config::Timeouts,
}

impl ConnSettings {
    /// The settings `config` asks for, with its listeners' TLS loaded (`tls`).
    pub(crate) fn new(config: &Config, tls: HashMap<SocketAddr, Arc<ServerTls>>) -> Self {
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
            park: Parking::new(config.timeouts.park, config.timeouts.keepalive),
            answers,
        };
        Self { builder, guard, tls, drain: config.server.shutdown_timeout, limits: config.limits, timeouts: config.timeouts }
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
    /// Idle client connections parked now, over the workers (see `park`).
    pub(crate) parked: Arc<AtomicUsize>,
    /// Connection tasks ended, and freed memory handed back (see `trim`).
    pub(crate) trim: super::trim::Trim,
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
