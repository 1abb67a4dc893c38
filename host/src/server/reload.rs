//! Reloading the config without refusing a connection (SIGHUP, or
//! [`Running::reload`](super::Running::reload)).
//!
//! The new proxy is built completely off the request path — plugins compiled, configured and
//! self-tested, pools made — and listeners that are new are bound on every worker, before
//! anything changes. Then, in order: the proxy is swapped in (the next request on every
//! connection, old or new, uses it; requests in flight finish on the old one), the
//! connection settings are swapped (new connections get the new limits and timeouts), new
//! listeners start accepting, and listeners no longer configured stop. A listener whose
//! address did not change is never closed, so the kernel keeps queueing connections on it
//! throughout. Any failure before the swap leaves everything as it was.
//!
//! Live state kept across a reload, for members that are in both configs (same balancer,
//! same URL): the member's flags and counters are shared by the old and the new build, so
//! requests still in flight on the old one count into the new one's lbstatus, busy, bytes and
//! errors; the in-error flag E stays with its `retry` clock; the health-check flag C stays when
//! the member is still health-checked (its checks restart at once with the new settings); when
//! the connection settings are unchanged too, the member's connection pool, idle connections
//! included. The flags a config sets (D, S, H, R, I, N) and the loadfactor come from the new
//! config. The number of workers cannot change without a restart.
//!
//! [`prepare`] does everything that can fail and [`Prepared::commit`] publishes, so a caller
//! with one more step that can fail (persisting a manager edit) puts it between the two.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::config::Config;
use crate::plugin::PluginRuntime;
use crate::proxy::Proxy;
use super::{Command, ConnSettings, Shared, StartError, bind_all};

/// What a reload changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReloadReport {
    /// Listeners opened, with their bound addresses.
    pub listeners_added: Vec<SocketAddr>,
    /// Listeners closed (configured addresses).
    pub listeners_removed: Vec<SocketAddr>,
    /// Members whose live state was carried over.
    pub members_kept: usize,
    /// New listeners a worker could not take after the swap (configured address, why); the
    /// rest of the reload stands.
    pub listeners_failed: Vec<(SocketAddr, String)>,
}

/// Why a reload was refused (the old config keeps serving).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// Plugins could not be loaded, or a new address could not be bound.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The change could not be kept (persisted) before it was put in service.
    #[error("the change could not be kept: {0}")]
    NotKept(String),
    /// A worker did not take its new listener.
    #[error("a worker could not listen on {addr}: {source}")]
    Listen {
        /// The configured address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Builds everything `config` needs, then swaps it in.
pub(crate) async fn reload(shared: &Shared, config: Config) -> Result<ReloadReport, ReloadError> {
    let _one_at_a_time = shared.reloading.lock().await;
    Ok(prepare(shared, config).await?.commit().await)
}

/// A new config with everything it needs built, listeners bound and listening; nothing in
/// service has changed yet. Dropping it changes nothing.
pub(crate) struct Prepared<'a> {
    shared: &'a Shared,
    config: Config,
    proxy: Proxy,
    plugins: Arc<PluginRuntime>,
    tls: HashMap<SocketAddr, Arc<crate::tls::ServerTls>>,
    current: Vec<(SocketAddr, SocketAddr)>,
    new_sockets: Vec<(SocketAddr, SocketAddr, Vec<tokio::net::TcpSocket>)>,
    carried: Vec<Arc<crate::upstream::ProxyMember>>,
}

/// Builds everything `config` needs; the caller holds `shared.reloading`.
pub(crate) async fn prepare(shared: &Shared, config: Config) -> Result<Prepared<'_>, ReloadError> {
    let old_config = shared.config.load_full();
    let workers = shared.workers.len();
    if super::worker_count(&config) != workers {
        tracing::warn!(workers, "the number of workers changes only on restart; keeping the current one");
    }
    let plugins = if config.plugins == old_config.plugins && config.plugin_cache == old_config.plugin_cache {
        shared.plugins.load_full()
    } else {
        Arc::new(PluginRuntime::with_cache(config.plugins, config.plugin_cache.as_deref()).map_err(StartError::from)?.calling_threads(workers))
    };
    let old = shared.proxy.load_full();
    let (mut proxy, carried) = Proxy::rebuild(&config, &plugins, workers, &old).await.map_err(StartError::from)?;
    proxy.set_access_log(super::access_log(&config, old.access_log())?);

    // Certificates are read again (a renewed one is taken up; a bad one refuses the reload).
    let tls = super::listener_tls(&config)?;

    // Bind what is new before anything changes.
    let current: Vec<(SocketAddr, SocketAddr)> = shared.listeners.lock().map(|l| l.clone()).unwrap_or_default();
    let mut new_sockets = Vec::new();
    for l in &config.listeners {
        if !current.iter().any(|(addr, _)| *addr == l.addr) {
            let ours = current.iter().any(|(_, bound)| bound.port() == l.addr.port());
            let (bound, sockets) = bind_all(l.addr, workers, !ours)?;
            // Listening too, before anything changes: a socket that cannot listen refuses the
            // reload here, not after the swap (the worker's own listen call then only
            // registers the socket with its runtime).
            for socket in &sockets {
                socket2::SockRef::from(socket)
                    .listen(super::LISTEN_BACKLOG)
                    .map_err(|source| ReloadError::Listen { addr: l.addr, source })?;
            }
            new_sockets.push((l.addr, bound, sockets));
        }
    }
    Ok(Prepared { shared, config, proxy, plugins, tls, current, new_sockets, carried })
}

impl Prepared<'_> {
    /// The proxy that [`Prepared::commit`] will put in service.
    pub(crate) fn proxy(&self) -> &Proxy {
        &self.proxy
    }

    /// Puts the new config in service. Nothing here can refuse the change: a new listener a
    /// worker cannot take is reported and logged, and the rest stands.
    pub(crate) async fn commit(self) -> ReloadReport {
        let Prepared { shared, config, proxy, plugins, tls, current, new_sockets, carried } = self;
        // The old probes write the members' shared flags: stop them before the new config's
        // flags are laid down, so none lands after.
        shared.stop_health_checks();
        for member in &carried {
            member.take_configured();
        }
        shared.proxy.store(Arc::new(proxy));
        super::start_health_checks(shared);
        shared.conn.store(Arc::new(ConnSettings::new(&config, tls)));
        shared.set_connection_limit(config.limits.connections);
        shared.plugins.store(plugins);
        let members_kept = carried.len();

        let mut report = ReloadReport { members_kept, ..ReloadReport::default() };
        let mut listening: HashMap<SocketAddr, SocketAddr> = current.iter().copied().collect();
        for (addr, bound, sockets) in new_sockets {
            for (worker, socket) in shared.workers.iter().zip(sockets) {
                let (reply, replied) = oneshot::channel();
                if worker.send(Command::Listen(addr, socket, reply)).is_err() {
                    continue;
                }
                if let Ok(Err(source)) = replied.await {
                    tracing::error!(%addr, error = %source, "a worker could not listen on a new address; the rest of the reload stands");
                    report.listeners_failed.push((addr, source.to_string()));
                }
            }
            listening.insert(addr, bound);
            report.listeners_added.push(bound);
        }
        for (addr, _) in &current {
            if !config.listeners.iter().any(|l| l.addr == *addr) {
                for worker in &shared.workers {
                    let _ = worker.send(Command::Unlisten(*addr));
                }
                listening.remove(addr);
                report.listeners_removed.push(*addr);
            }
        }
        if let Ok(mut l) = shared.listeners.lock() {
            *l = config.listeners.iter().filter_map(|c| listening.get(&c.addr).map(|b| (c.addr, *b))).collect();
        }
        shared.config.store(Arc::new(config));
        tracing::info!(
            added = report.listeners_added.len(),
            removed = report.listeners_removed.len(),
            members_kept = report.members_kept,
            "config reloaded"
        );
        report
    }
}
