//! The request path: strict checks, routes, forwarding to members over pooled connections,
//! failover between attempts, header rewriting, upgrades, and the one place errors become
//! responses.
//!
//! A request is matched against the routes; a balancer route asks the [`Balancer`] for a
//! member, a backend route has its one member. The member client ([`crate::upstream`]) makes
//! one attempt over a pooled HTTP/1.1 connection, inside the request's task; `failover`
//! decides whether a failed attempt may go to another member and turns the member's answer
//! into the client's; `outgoing` is the request as every member gets it; `respond` answers
//! errors. The proxy runs one single-threaded runtime
//! per worker thread ([`crate::worker`]); member connections are pooled per worker.

mod access;
mod body;
mod build;
mod failover;
pub(crate) mod headers;
mod limits;
mod outcome;
mod outgoing;
mod rebuild;
mod respond;
mod route;
mod service;
mod strict;
mod upgrade;

use std::sync::Arc;
use std::time::Instant;

pub use body::ResponseBody;
pub use respond::raw_page;
pub use service::{ClientBodySource, ProxyService};
pub(crate) use strict::check as strict_check;
pub(crate) use outgoing::member_heads;
pub use crate::upstream::ProxyMember;

use crate::balancer::Balancer;
use crate::config::{Forwarded, Upgrades};
use crate::health::{self, HealthCheck, HealthState, HealthStatus};
use crate::observe::{AccessLog, TrafficStats};
use crate::plugin::PluginError;
use crate::tls::TlsError;
use crate::rewrite::{RewriteChain, RewriteStats};
use crate::upstream::MemberPool;
use route::RouteTable;

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
    /// Paths with an encoded `/` or `\` are taken (and sent on encoded).
    allow_encoded_slashes: bool,
    /// Members get the client's spelling of the path, not the canonical one.
    nocanon: bool,
    upgrade: Upgrades,
    rewrite: Option<RouteRewrite>,
    /// The route's prefix and its balancer's name, shared with access-log lines.
    labels: RouteLabels,
}

/// A route's names as access-log lines show them (shared, not copied per request).
struct RouteLabels {
    prefix: Arc<str>,
    balancer: Option<Arc<str>>,
}

/// A route's header rewriting: its chain, and what the chain is told about the route.
pub(crate) struct RouteRewrite {
    pub(crate) chain: RewriteChain,
    pub(crate) prefix: String,
    /// The route's backend, or every member of its balancer.
    pub(crate) targets: Vec<String>,
}

/// One member's health check, to be run by the server.
pub struct HealthCheckTask {
    /// Index of the member's balancer.
    pub balancer: usize,
    /// Index of the member in its balancer.
    pub member: usize,
    /// The check.
    pub check: Arc<dyn HealthCheck>,
    /// Its schedule.
    pub settings: health::Settings,
    /// What it has seen.
    pub state: Arc<HealthState>,
}

/// The proxy's request-handling state, built from a config.
pub struct Proxy {
    routes: RouteTable<RouteEntry>,
    balancers: Vec<Arc<ProxyBalancer>>,
    health: Vec<HealthCheckTask>,
    forwarded: Forwarded,
    /// The access log, when there is one (kept across reloads that do not change it).
    access_log: Option<Arc<AccessLog>>,
    /// Traffic counters per route, in route order, then one for requests no route matched
    /// (a reload starts them again, as Prometheus counters may).
    /// Per route, then one for requests no route matched; shared with the build before for
    /// routes with the same prefix and balancer, so the counts go on across reloads and edits.
    traffic: Box<[Arc<TrafficStats>]>,
}

/// Why the proxy could not be built from a valid config.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A plugin did not load.
    #[error("{origin}: {source}")]
    Plugin {
        /// Where the failing plugin is configured (`file:line: key`).
        origin: String,
        /// What failed.
        source: PluginError,
    },
    /// An https member's TLS settings did not load.
    #[error("member {member}: tls: {source}")]
    Tls {
        /// The member's URL.
        member: String,
        /// What is wrong.
        source: TlsError,
    },
    /// A balancer's trace file could not be opened.
    #[error("balancer {balancer}: {reason}")]
    Record {
        /// The balancer.
        balancer: String,
        /// Why.
        reason: String,
    },
    /// A balancer's shadow lbmethod could not get its thread.
    #[error("balancer {balancer}: cannot start its shadow lbmethod: {reason}")]
    Shadow {
        /// The balancer.
        balancer: String,
        /// Why.
        reason: String,
    },
}

impl Proxy {
    /// Logs every request to `log` from now on.
    pub(crate) fn set_access_log(&mut self, log: Option<Arc<AccessLog>>) {
        self.access_log = log;
    }

    /// The access log, when there is one.
    pub fn access_log(&self) -> Option<&Arc<AccessLog>> {
        self.access_log.as_ref()
    }

    /// Each route's prefix with its traffic counters, then `None` with those of requests no
    /// route matched.
    pub fn traffic(&self) -> impl Iterator<Item = (Option<(&str, Option<&str>)>, &TrafficStats)> {
        self.routes
            .iter()
            .map(|r| Some((r.prefix.as_str(), r.target.labels.balancer.as_deref())))
            .chain(std::iter::once(None))
            .zip(self.traffic.iter().map(|t| &**t))
    }

    /// Counts an answer: to route `route` (or none) with `status`, its head ready after `took`.
    pub(crate) fn count(&self, route: Option<usize>, status: u16, took: std::time::Duration) {
        let at = route.unwrap_or(self.traffic.len() - 1).min(self.traffic.len() - 1);
        self.traffic[at].record(status, took);
    }

    /// The balancers, in config (name) order.
    pub fn balancers(&self) -> &[Arc<ProxyBalancer>] {
        &self.balancers
    }

    /// The health checks to run: one per checked member.
    pub fn health_checks(&self) -> &[HealthCheckTask] {
        &self.health
    }

    /// What the health checks of member `member` of balancer `balancer` have seen.
    pub fn health_status(&self, balancer: usize, member: usize) -> Option<HealthStatus> {
        self.health.iter().find(|t| t.balancer == balancer && t.member == member).map(|t| t.state.status())
    }

    /// How the calls of every health-check and header-rewrite plugin went: `("healthcheck" or
    /// "rewrite", plugin name, calls)`, each loaded plugin once (members with the same check
    /// share one).
    pub fn plugin_calls(&self) -> Vec<(&'static str, &str, crate::observe::PluginCalls)> {
        let mut seen = std::collections::HashSet::new();
        let checks = self.health.iter().filter(|t| seen.insert(Arc::as_ptr(&t.check).cast::<()>())).filter_map(|t| Some(("healthcheck", t.check.name(), t.check.calls()?)));
        let rewriters = self.routes.iter().filter_map(|r| r.target.rewrite.as_ref()).flat_map(|rw| rw.chain.rewriters());
        checks.chain(rewriters.filter_map(|r| Some(("rewrite", r.name(), r.calls()?)))).collect()
    }

    /// The counters of route `route`'s header-rewrite chain, if it has one.
    pub fn rewrite_stats(&self, route: usize) -> Option<&RewriteStats> {
        self.routes.iter().nth(route).and_then(|r| r.target.rewrite.as_ref()).map(|rw| rw.chain.stats())
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
