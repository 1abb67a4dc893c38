//! The request path: routes, forwarding to members over pooled connections, failover
//! between attempts, and the one place errors become 404/502/503/504.
//!
//! A request is matched against the routes; a balancer route asks the [`Balancer`] for a
//! member, a backend route has its one member. `upstream` makes one attempt over a pooled
//! HTTP/1.1 connection, inside the request's task; `service` decides whether a failed attempt
//! may go to another member; `respond` answers errors. The proxy runs one single-threaded
//! runtime per worker thread ([`worker`]); member connections are pooled per worker.

mod body;
mod headers;
mod limits;
mod rebuild;
mod respond;
mod route;
mod service;
mod strict;
mod upgrade;
mod upstream;
pub mod worker;

use std::sync::Arc;
use std::time::Instant;

pub use body::ResponseBody;
pub use respond::raw_page;
pub(crate) use strict::check as strict_check;
pub use service::ProxyService;
pub use upstream::{MemberBody, MemberBodyError, MemberPool};

use crate::balancer::{Balancer, Member};
use crate::config::{self, Config, Forwarded, Limits, RouteTarget, Timeouts, Upgrades};
use crate::plugin::{PluginError, PluginRuntime};
use route::{Route, RouteTable};

/// A member as the proxy holds it: balancer state plus its connection pool.
pub type ProxyMember = Member<Arc<MemberPool>>;
/// A balancer whose members have connection pools.
pub type ProxyBalancer = Balancer<Arc<MemberPool>>;
/// The proxy in service, swapped whole on reload; each request loads it once.
pub type SharedProxy = Arc<arc_swap::ArcSwap<Proxy>>;

/// Where a route sends requests.
enum Target {
    Exclude,
    Backend(Arc<ProxyMember>),
    Balancer(Arc<ProxyBalancer>),
}

struct RouteEntry {
    target: Target,
    preserve_host: bool,
    upgrade: Upgrades,
}

/// The proxy's request-handling state, built from a config.
pub struct Proxy {
    routes: RouteTable<RouteEntry>,
    balancers: Vec<Arc<ProxyBalancer>>,
    limits: Limits,
    timeouts: Timeouts,
    forwarded: Forwarded,
}

/// Why the proxy could not be built from a valid config.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: {source}")]
pub struct BuildError {
    /// Where the failing plugin is configured (`file:line: key`).
    pub origin: String,
    /// What failed.
    pub source: PluginError,
}

impl Proxy {
    /// Builds routes, balancers and pools (with a slot for each of `workers` threads), loading
    /// every balancer's lbmethod plugin.
    pub async fn build(config: &Config, plugins: &PluginRuntime, workers: usize) -> Result<Self, BuildError> {
        Self::build_with(config, plugins, workers, &|_, _| None).await
    }

    /// Like [`Proxy::build`], taking a member's pool from `reuse` (given the member's owner —
    /// balancer name or route prefix — and config) when it has one.
    async fn build_with(
        config: &Config,
        plugins: &PluginRuntime,
        workers: usize,
        reuse: &(dyn Fn(&str, &config::Member) -> Option<Arc<MemberPool>> + Sync),
    ) -> Result<Self, BuildError> {
        let pool_for = |owner: &str, m: &config::Member| {
            reuse(owner, m).unwrap_or_else(|| Arc::new(MemberPool::new(m.authority.clone(), m.connection, workers)))
        };
        let mut balancers = Vec::with_capacity(config.balancers.len());
        for b in &config.balancers {
            let method = plugins
                .lbmethod(&b.lbmethod, &b.name)
                .await
                .map_err(|source| BuildError { origin: b.lbmethod.origin.clone(), source })?;
            balancers.push(Arc::new(Balancer::new(b, method, |m| pool_for(&b.name, m))));
        }
        let routes = config
            .routes
            .iter()
            .map(|r| {
                let target = match &r.target {
                    RouteTarget::Exclude => Target::Exclude,
                    RouteTarget::Backend(member) => Target::Backend(Arc::new(Member::new(member.clone(), pool_for(&r.prefix, member)))),
                    RouteTarget::Balancer(i) => Target::Balancer(Arc::clone(&balancers[*i])),
                };
                Route { prefix: r.prefix.clone(), target: RouteEntry { target, preserve_host: r.preserve_host, upgrade: r.upgrade } }
            })
            .collect();
        Ok(Self {
            routes: RouteTable::new(routes),
            balancers,
            limits: config.limits,
            timeouts: config.timeouts,
            forwarded: config.forwarded.clone(),
        })
    }

    /// The balancers, in config (name) order.
    pub fn balancers(&self) -> &[Arc<ProxyBalancer>] {
        &self.balancers
    }

    /// Closes this worker's idle member connections older than their `ttl`.
    pub fn evict_idle_connections(&self) {
        let now = Instant::now();
        for b in &self.balancers {
            for m in b.members() {
                m.conn.evict_idle(now);
            }
        }
        for r in self.routes.iter() {
            if let Target::Backend(m) = &r.target.target {
                m.conn.evict_idle(now);
            }
        }
    }
}

