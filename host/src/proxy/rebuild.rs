//! Building the proxy for a new config next to the one in service (a reload, a manager
//! edit): members that are in both share their live state with the old build and, when their
//! connection settings did not change, keep their connection pool.

use std::collections::HashMap;
use std::sync::Arc;

use super::build::Previous;
use super::{BuildError, Proxy, ProxyMember, Target};
use crate::config::{self, Config};
use crate::plugin::PluginRuntime;

impl Proxy {
    /// Builds the proxy for `config`, carrying over from `old` what members in both keep
    /// (see the `reload` module). Returns it with the members carried over, whose configured
    /// flags and loadfactor take effect when it is published ([`ProxyMember::take_configured`]).
    pub(crate) async fn rebuild(config: &Config, plugins: &PluginRuntime, workers: usize, old: &Proxy) -> Result<(Self, Vec<Arc<ProxyMember>>), BuildError> {
        let before = members_by_owner(old);
        let previous = |owner: &str, m: &config::Member| {
            before.get(&(owner.to_string(), m.url.clone())).map(|o| Previous {
                member: Arc::clone(o),
                // An https member's pool is always new: its roots and certificates are read
                // again, as a reload promises.
                keep_pool: o.config.connection == m.connection && o.config.authority == m.authority && m.tls.is_none() && o.config.tls.is_none(),
            })
        };
        let fallbacks: HashMap<String, config::PluginSpec> = config
            .balancers
            .iter()
            .filter_map(|b| {
                let old = old.balancers.iter().find(|o| o.name() == b.name)?;
                Some((b.name.clone(), old.fallback_spec_for(&b.lbmethod)?.clone()))
            })
            .collect();
        let new = Self::build_with(config, plugins, workers, &previous, &fallbacks, Some(old)).await?;
        let kept = members_by_owner(&new).into_iter().filter(|(k, _)| before.contains_key(k)).map(|(_, m)| m).collect();
        Ok((new, kept))
    }
}

/// Every member, keyed by its owner (balancer name, or route prefix for a single backend)
/// and URL.
fn members_by_owner(proxy: &Proxy) -> HashMap<(String, String), Arc<ProxyMember>> {
    let mut out = HashMap::new();
    for b in &proxy.balancers {
        for m in b.members() {
            out.insert((b.name().to_string(), m.config.url.clone()), Arc::clone(m));
        }
    }
    for r in proxy.routes.iter() {
        if let Target::Backend(m) = &r.target.target {
            out.insert((r.prefix.clone(), m.config.url.clone()), Arc::clone(m));
        }
    }
    out
}
