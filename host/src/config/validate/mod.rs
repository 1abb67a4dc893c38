//! Turns the raw file into the checked model, collecting every problem with its key path.
//!
//! One file per part of the config: `route`, `balancer` (with its failover and sticky-session
//! settings), `member` (members and a route's single backend); process-wide sections here.

mod balancer;
mod health;
mod member;
mod plugin;
mod route;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::locate::Seg;
pub(crate) use super::problems::{Problems, index, key};
use super::model::{Config, Listener, PluginLimits, Server};
use super::raw::{RawConfig, RawPlugins, RawServer};

pub use plugin::{BUILTIN_HEALTH_CHECKS, BUILTIN_LBMETHODS, BUILTIN_REWRITES};
pub use member::lbfactor;

/// Checks `raw`; `file` names it in messages and `origin_of` turns a key path into
/// `file:line: key` for values checked later (plugins).
pub(crate) fn validate(
    raw: RawConfig,
    file: &Path,
    origin_of: &dyn Fn(&[Seg]) -> String,
) -> Result<Config, Problems> {
    let mut p = Problems::default();
    let base_dir = file.parent().unwrap_or(Path::new("."));

    let listeners = listeners(&raw, base_dir, &mut p);
    let balancer_names: Vec<&String> = raw.balancer.keys().collect();
    health::templates(&raw.hctemplate, &mut p);
    let balancers = balancer::balancers(&raw.balancer, &raw.hctemplate, base_dir, origin_of, &mut p);
    let routes = route::routes(&raw.route, &balancer_names, base_dir, origin_of, &mut p);
    let server = server(&raw.server, &mut p);
    let plugins = plugins(&raw.plugins, &mut p);
    let limits = super::edge::limits(&raw.limits, &mut p);
    let timeouts = super::edge::timeouts(&raw.timeouts, &mut p);
    let forwarded = super::edge::forwarded(&raw.forwarded, &mut p);
    let access_log = super::logging::access_log(raw.access_log.as_ref(), base_dir, &mut p);
    let log = super::logging::log(&raw.log, &mut p);
    let admin = super::admin::admin(raw.admin.as_ref(), base_dir, &mut p);
    let plugin_cache = match raw.plugins.cache.as_deref() {
        Some("") => {
            p.push(&[Seg::Key("plugins".into()), Seg::Key("cache".into())], "give a directory");
            None
        }
        Some(dir) => Some(base_dir.join(dir)),
        None => admin.as_ref().and_then(|a| a.plugins.as_ref()).map(|d| d.join("compiled")),
    };

    if p.0.is_empty() {
        Ok(Config { file: file.to_path_buf(), listeners, routes, balancers, server, plugins, plugin_cache, limits, timeouts, forwarded, access_log, log, admin })
    } else {
        Err(p)
    }
}

fn listeners(raw: &RawConfig, base_dir: &Path, p: &mut Problems) -> Vec<Listener> {
    let path = [Seg::Key("listen".into())];
    if raw.listen.is_empty() {
        p.push(&path, "at least one [[listen]] with an addr is required");
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, l) in raw.listen.iter().enumerate() {
        let at = index(&path, i);
        let here = key(&at, "addr");
        let tls = l.tls.as_ref().and_then(|t| super::tls::listen_tls(&at, t, base_dir, p));
        match l.addr.parse::<SocketAddr>() {
            Ok(addr) if !seen.insert(addr) => p.push(&here, format!("{addr} is listed twice")),
            Ok(addr) => out.push(Listener { addr, tls }),
            Err(_) => p.push(&here, format!("`{}` is not an address such as \"127.0.0.1:8080\"", l.addr)),
        }
    }
    out
}

fn server(raw: &RawServer, p: &mut Problems) -> Server {
    let here = [Seg::Key("server".into())];
    if raw.workers == Some(0) {
        p.push(&key(&here, "workers"), "must be at least 1");
    }
    Server {
        workers: raw.workers.filter(|&w| w > 0),
        shutdown_timeout: raw.shutdown_timeout.map_or(Duration::from_secs(30), |d| d.0),
    }
}

fn plugins(raw: &RawPlugins, p: &mut Problems) -> PluginLimits {
    let here = [Seg::Key("plugins".into())];
    let defaults = PluginLimits::default();
    let memory_limit = raw.memory_limit.map_or(defaults.memory_limit, |s| s.0);
    if memory_limit < (1 << 20) {
        p.push(&key(&here, "memory_limit"), "must be at least 1MiB");
    }
    let deadline = raw.deadline.map_or(defaults.deadline, |d| d.0);
    if deadline < Duration::from_millis(1) || deadline > Duration::from_secs(10) {
        p.push(&key(&here, "deadline"), "must be between 1ms and 10s");
    }
    let trap_limit = raw.trap_limit.unwrap_or(defaults.trap_limit);
    if trap_limit == 0 {
        p.push(&key(&here, "trap_limit"), "must be at least 1");
    }
    PluginLimits {
        memory_limit,
        deadline,
        trap_limit,
        trap_cooldown: raw.trap_cooldown.map_or(defaults.trap_cooldown, |d| d.0),
    }
}

