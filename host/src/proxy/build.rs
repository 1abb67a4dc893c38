//! Building the proxy from a checked config: balancers with their lbmethods, routes with
//! their rewrite chains, and the health checks of checked members — every plugin loaded and
//! self-tested before anything serves.

use std::collections::HashMap;
use std::sync::Arc;

use super::route::{Route, RouteTable};
use super::{BuildError, HealthCheckTask, MemberPool, Proxy, ProxyMember, RouteEntry, RouteRewrite, Target};
use crate::balancer::{Balancer, LbMethod, Member};
use crate::config::{self, Config, PluginSource, RouteTarget};
use crate::health::{self, HealthCheck};
use crate::plugin::PluginRuntime;
use crate::rewrite::{HeaderRewriter, RewriteChain};
use crate::tls::MemberConnector;

impl Proxy {
    /// Builds routes, balancers and pools (with a slot for each of `workers` threads), loading
    /// every plugin the config names. Health checks are described, not started.
    pub async fn build(config: &Config, plugins: &PluginRuntime, workers: usize) -> Result<Self, BuildError> {
        Self::build_with(config, plugins, workers, &|_, _| None, &HashMap::new(), None).await
    }

    /// Like [`Proxy::build`], carrying over the member `previous` finds (given the member's
    /// owner — balancer name or route prefix — and its new config): its live state always,
    /// and its connection pool when `previous` says it may be kept. A balancer named in
    /// `fallbacks` also loads that method, to fall back to while its own fails. Counters of
    /// `old` (the build this one replaces) go on where their subject stays: a route's (same
    /// prefix and balancer), a balancer method's (same balancer, method and version), a
    /// member's health checks (same balancer and URL).
    pub(super) async fn build_with(
        config: &Config,
        plugins: &PluginRuntime,
        workers: usize,
        previous: &(dyn Fn(&str, &config::Member) -> Option<Previous> + Sync),
        fallbacks: &HashMap<String, config::PluginSpec>,
        old: Option<&Proxy>,
    ) -> Result<Self, BuildError> {
        let connectors = member_connectors(config)?;
        let member_for = |owner: &str, m: &config::Member| {
            let before = previous(owner, m);
            let pool = before.as_ref().and_then(|p| p.keep_pool.then(|| Arc::clone(&p.member.conn))).unwrap_or_else(|| {
                let tls = connectors.get(&(owner.to_string(), m.url.clone())).cloned();
                Arc::new(MemberPool::new(&m.url, m.authority.clone(), m.connection, workers, tls))
            });
            match before {
                Some(p) => Member::carry_over(m.clone(), pool, &p.member),
                None => Member::new(m.clone(), pool),
            }
        };
        let mut balancers = Vec::with_capacity(config.balancers.len());
        for b in &config.balancers {
            let method = plugins
                .lbmethod(&b.lbmethod, &b.name)
                .await
                .map_err(|source| BuildError::Plugin { origin: b.lbmethod.origin.clone(), source })?;
            let same_method = old.and_then(|o| o.balancers.iter().find(|ob| ob.name() == b.name && ob.lbmethod().name() == method.name() && ob.lbmethod().version() == method.version()));
            let mut balancer = Balancer::with_members(b, method, |m| member_for(&b.name, m));
            if let Some(before) = same_method {
                balancer = balancer.with_stats_of(before);
            }
            if let Some(spec) = fallbacks.get(&b.name) {
                // The fallback is a convenience: one that no longer loads leaves byrequests.
                match plugins.lbmethod(spec, &b.name).await {
                    Ok(previous) => balancer = balancer.with_previous_method(spec.clone(), previous),
                    Err(e) => tracing::warn!(balancer = %b.name, error = %e, "the previous lbmethod does not load; byrequests is the fallback"),
                }
            }
            if let Some(spec) = &b.shadow {
                let shadow = plugins
                    .lbmethod(spec, &format!("{}/shadow", b.name))
                    .await
                    .map_err(|source| BuildError::Plugin { origin: spec.origin.clone(), source })?;
                balancer = balancer.with_shadow(shadow).map_err(|e| BuildError::Shadow { balancer: b.name.clone(), reason: e.to_string() })?;
            }
            if let Some(path) = &b.record {
                let recorder = crate::trace::Recorder::open(path, b).map_err(|e| BuildError::Record { balancer: b.name.clone(), reason: e.to_string() })?;
                balancer = balancer.with_observer(recorder);
            }
            balancers.push(Arc::new(balancer));
        }
        let health = health_checks(config, plugins, old).await?;
        let mut routes = Vec::with_capacity(config.routes.len());
        for (i, r) in config.routes.iter().enumerate() {
            let target = match &r.target {
                RouteTarget::Exclude => Target::Exclude,
                RouteTarget::Backend(member) => Target::Backend(Arc::new(member_for(&r.prefix, member))),
                RouteTarget::Balancer(b) => Target::Balancer(Arc::clone(&balancers[*b])),
            };
            let rewrite = rewrite_chain(config, i, plugins).await?;
            let labels = super::RouteLabels {
                prefix: Arc::from(r.prefix.as_str()),
                balancer: match &r.target {
                    RouteTarget::Balancer(i) => Some(Arc::from(config.balancers[*i].name.as_str())),
                    _ => None,
                },
            };
            let entry = RouteEntry {
                labels,
                target,
                preserve_host: r.preserve_host,
                allow_encoded_slashes: r.allow_encoded_slashes,
                nocanon: r.nocanon,
                upgrade: r.upgrade,
                rewrite,
            };
            routes.push(Route { prefix: r.prefix.clone(), target: entry });
        }
        Ok(Self {
            routes: RouteTable::new(routes),
            balancers,
            health,
            forwarded: config.forwarded.clone(),
            access_log: None,
            traffic: route_traffic(config, old),
        })
    }
}

/// The same member in the proxy being replaced.
pub(super) struct Previous {
    /// It, with its live state.
    pub member: Arc<ProxyMember>,
    /// Whether its connection pool may be kept (the connection settings did not change).
    pub keep_pool: bool,
}

/// Each route's traffic counters, then those of requests no route matched: `old`'s for a
/// route with the same prefix and balancer (and for no route), new ones for the others.
fn route_traffic(config: &Config, old: Option<&Proxy>) -> Box<[Arc<crate::observe::TrafficStats>]> {
    let balancer_of = |r: &config::Route| match &r.target {
        RouteTarget::Balancer(i) => Some(config.balancers[*i].name.as_str()),
        _ => None,
    };
    // Each old route's counters go to one new route at most (two routes may share a prefix).
    type Slot<'a> = (Option<(&'a str, Option<&'a str>)>, Option<Arc<crate::observe::TrafficStats>>);
    let mut before: Vec<Slot<'_>> = old
        .map(|o| o.routes.iter().map(|r| Some((r.prefix.as_str(), r.target.labels.balancer.as_deref()))).chain(std::iter::once(None)).zip(o.traffic.iter().map(|t| Some(Arc::clone(t)))).collect())
        .unwrap_or_default();
    let mut take = |key: Option<(&str, Option<&str>)>| before.iter_mut().find(|(k, t)| *k == key && t.is_some()).and_then(|(_, t)| t.take()).unwrap_or_default();
    config.routes.iter().map(|r| Some((r.prefix.as_str(), balancer_of(r)))).chain(std::iter::once(None)).map(&mut take).collect()
}

/// Loads the health check of every checked member; members with the same check and settings
/// share one loaded plugin. A member `old` checked too keeps its counts (probes, failures,
/// the last verdict).
async fn health_checks(config: &Config, plugins: &PluginRuntime, old: Option<&Proxy>) -> Result<Vec<HealthCheckTask>, BuildError> {
    let mut loaded: HashMap<(PluginSource, String), Arc<dyn HealthCheck>> = HashMap::new();
    let mut tasks = Vec::new();
    for (b, balancer) in config.balancers.iter().enumerate() {
        for (m, member) in balancer.members.iter().enumerate() {
            let Some(spec) = &member.health else { continue };
            let cache_key = (spec.plugin.source.clone(), spec.plugin.config_json.clone());
            let check = match loaded.get(&cache_key) {
                Some(check) => Arc::clone(check),
                None => {
                    let check: Arc<dyn HealthCheck> = plugins
                        .health_check(&spec.plugin, &balancer.name)
                        .await
                        .map_err(|source| BuildError::Plugin { origin: spec.plugin.origin.clone(), source })?;
                    loaded.insert(cache_key, Arc::clone(&check));
                    check
                }
            };
            let settings = health::Settings { interval: spec.interval, passes: spec.passes, fails: spec.fails, timeout: spec.timeout };
            let before = old.and_then(|o| {
                let ob = o.balancers.iter().position(|ob| ob.name() == balancer.name)?;
                let om = o.balancers[ob].members().iter().position(|om| om.config.url == member.url)?;
                o.health.iter().find(|t| t.balancer == ob && t.member == om).map(|t| Arc::clone(&t.state))
            });
            tasks.push(HealthCheckTask { balancer: b, member: m, check, settings, state: before.unwrap_or_default() });
        }
    }
    Ok(tasks)
}

/// The TLS connector of every https member, by owner (balancer name or route prefix) and
/// URL: roots and client certificates read from their files now.
fn member_connectors(config: &Config) -> Result<HashMap<(String, String), Arc<MemberConnector>>, BuildError> {
    let mut out = HashMap::new();
    let members = config
        .balancers
        .iter()
        .flat_map(|b| b.members.iter().map(move |m| (b.name.clone(), m)))
        .chain(config.routes.iter().filter_map(|r| match &r.target {
            RouteTarget::Backend(m) => Some((r.prefix.clone(), &**m)),
            _ => None,
        }));
    for (owner, m) in members {
        if let Some(tls) = &m.tls {
            let connector = MemberConnector::new(tls).map_err(|source| BuildError::Tls { member: m.url.clone(), source })?;
            out.insert((owner, m.url.clone()), connector);
        }
    }
    Ok(out)
}

/// The rewrite chain of route `index`, if it has rewrite plugins.
async fn rewrite_chain(config: &Config, index: usize, plugins: &PluginRuntime) -> Result<Option<RouteRewrite>, BuildError> {
    let route = &config.routes[index];
    if route.rewrite.is_empty() {
        return Ok(None);
    }
    let label = format!("route[{index}] {}", route.prefix);
    let mut rewriters: Vec<Arc<dyn HeaderRewriter>> = Vec::with_capacity(route.rewrite.len());
    for spec in &route.rewrite {
        let rewriter =
            plugins.header_rewrite(spec, &label).await.map_err(|source| BuildError::Plugin { origin: spec.origin.clone(), source })?;
        rewriters.push(rewriter);
    }
    let targets = match &route.target {
        RouteTarget::Backend(m) => vec![m.url.clone()],
        RouteTarget::Balancer(b) => config.balancers[*b].members.iter().map(|m| m.url.clone()).collect(),
        RouteTarget::Exclude => Vec::new(),
    };
    Ok(Some(RouteRewrite { chain: RewriteChain::new(rewriters), prefix: route.prefix.clone(), targets }))
}
