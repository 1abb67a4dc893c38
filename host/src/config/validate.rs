//! Turns the raw file into the checked model, collecting every problem with its key path.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::locate::Seg;
use super::model::{
    Balancer, Config, ConnectionSettings, HashKey, LbMethodSpec, Listener, Member, PluginLimits, PluginSource, Route,
    RouteTarget, Server,
};
use super::raw::{RawBalancer, RawConfig, RawLbMethod, RawMember, RawPlugins, RawRoute, RawServer};
use super::status::StatusFlags;
use super::units::DurationValue;

/// The default load-balancing methods built into the binary.
pub const BUILTIN_LBMETHODS: [&str; 3] = ["byrequests", "bytraffic", "bybusyness"];

/// httpd's defaults: `timeout` is ProxyTimeout (60 s), `retry` 60 s.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_RETRY: Duration = Duration::from_secs(60);
const DEFAULT_MAX_CONNECTIONS: u32 = 1024;
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Problems found so far, each with the key path it is about.
#[derive(Default)]
pub(crate) struct Problems(pub Vec<(Vec<Seg>, String)>);

impl Problems {
    pub(super) fn push(&mut self, path: &[Seg], message: impl Into<String>) {
        self.0.push((path.to_vec(), message.into()));
    }
}

fn key(path: &[Seg], k: &str) -> Vec<Seg> {
    let mut p = path.to_vec();
    p.push(Seg::Key(k.to_string()));
    p
}

fn index(path: &[Seg], i: usize) -> Vec<Seg> {
    let mut p = path.to_vec();
    p.push(Seg::Index(i));
    p
}

/// Checks `raw`; `file` names it in messages and `origin_of` turns a key path into
/// `file:line: key` for values checked later (plugins).
pub(crate) fn validate(
    raw: RawConfig,
    file: &Path,
    origin_of: &dyn Fn(&[Seg]) -> String,
) -> Result<Config, Problems> {
    let mut p = Problems::default();
    let base_dir = file.parent().unwrap_or(Path::new("."));

    let listeners = listeners(&raw, &mut p);
    let balancer_names: Vec<&String> = raw.balancer.keys().collect();
    let balancers = balancers(&raw.balancer, base_dir, origin_of, &mut p);
    let routes = routes(&raw.route, &balancer_names, &mut p);
    let server = server(&raw.server, &mut p);
    let plugins = plugins(&raw.plugins, &mut p);
    let limits = super::edge::limits(&raw.limits, &mut p);
    let timeouts = super::edge::timeouts(&raw.timeouts, &mut p);
    let forwarded = super::edge::forwarded(&raw.forwarded, &mut p);

    if p.0.is_empty() {
        Ok(Config { file: file.to_path_buf(), listeners, routes, balancers, server, plugins, limits, timeouts, forwarded })
    } else {
        Err(p)
    }
}

fn listeners(raw: &RawConfig, p: &mut Problems) -> Vec<Listener> {
    let path = [Seg::Key("listen".into())];
    if raw.listen.is_empty() {
        p.push(&path, "at least one [[listen]] with an addr is required");
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, l) in raw.listen.iter().enumerate() {
        let here = key(&index(&path, i), "addr");
        match l.addr.parse::<SocketAddr>() {
            Ok(addr) if !seen.insert(addr) => p.push(&here, format!("{addr} is listed twice")),
            Ok(addr) => out.push(Listener { addr }),
            Err(_) => p.push(&here, format!("`{}` is not an address such as \"127.0.0.1:8080\"", l.addr)),
        }
    }
    out
}

fn routes(raw: &[RawRoute], balancer_names: &[&String], p: &mut Problems) -> Vec<Route> {
    let mut out = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let here = index(&[Seg::Key("route".into())], i);
        if !r.path.starts_with('/') {
            p.push(&key(&here, "path"), format!("`{}` must start with /", r.path));
        }
        let targets = usize::from(r.backend.is_some()) + usize::from(r.balancer.is_some()) + usize::from(r.exclude);
        if targets != 1 {
            p.push(&here, "a route needs exactly one of backend, balancer or exclude = true");
            continue;
        }
        let has_connection_keys =
            r.timeout.is_some() || r.connectiontimeout.is_some() || r.max.is_some() || r.ttl.is_some() || r.acquire.is_some();
        if has_connection_keys && r.backend.is_none() {
            p.push(&here, "timeout, connectiontimeout, max, ttl and acquire apply to a single backend; set them on the balancer's members instead");
        }
        let target = if r.exclude {
            RouteTarget::Exclude
        } else if let Some(name) = &r.balancer {
            match balancer_names.iter().position(|n| *n == name) {
                Some(b) => RouteTarget::Balancer(b),
                None => {
                    p.push(&key(&here, "balancer"), format!("no [balancer.{name}] is defined"));
                    continue;
                }
            }
        } else {
            let url = r.backend.as_deref().unwrap_or_default();
            let connection = connection(
                &here,
                [r.timeout, r.connectiontimeout, r.ttl, r.acquire],
                r.max,
                p,
            );
            match parse_member_url(url) {
                Ok((authority, path)) => RouteTarget::Backend(Member {
                    url: url.to_string(),
                    authority,
                    base_path: path,
                    lbfactor: 100,
                    lbset: 0,
                    status: StatusFlags::empty(),
                    retry: DEFAULT_RETRY,
                    route: String::new(),
                    redirect: String::new(),
                    connection,
                    upgrade: super::edge::Upgrades::default(),
                }),
                Err(e) => {
                    p.push(&key(&here, "backend"), e);
                    continue;
                }
            }
        };
        let upgrade = super::edge::upgrades(&here, r.upgrade.as_ref(), p);
        out.push(Route { prefix: r.path.clone(), target, preserve_host: r.preserve_host, upgrade });
    }
    out
}

fn balancers(
    raw: &BTreeMap<String, RawBalancer>,
    base_dir: &Path,
    origin_of: &dyn Fn(&[Seg]) -> String,
    p: &mut Problems,
) -> Vec<Balancer> {
    let mut out = Vec::new();
    for (name, b) in raw {
        let here = [Seg::Key("balancer".into()), Seg::Key(name.clone())];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.') {
            p.push(&here, format!("balancer name `{name}` may only use letters, digits, - _ and ."));
        }
        if b.member.is_empty() {
            p.push(&here, "a balancer needs at least one [[balancer.NAME.member]]");
        }
        let members: Vec<Member> = b
            .member
            .iter()
            .enumerate()
            .filter_map(|(i, m)| member(&index(&key(&here, "member"), i), m, p))
            .collect();
        check_unique(&here, &members, p);
        let lbmethod = lbmethod(&key(&here, "lbmethod"), b.lbmethod.as_ref(), base_dir, origin_of, p);
        let hashkey = match b.hashkey.as_deref().map(parse_hashkey).transpose() {
            Ok(h) => h.unwrap_or_default(),
            Err(e) => {
                p.push(&key(&here, "hashkey"), e);
                HashKey::None
            }
        };
        let maxattempts = b.maxattempts.unwrap_or_else(|| (b.member.len() as u32).saturating_sub(1));
        if let Some(lbmethod) = lbmethod {
            out.push(Balancer { name: name.clone(), lbmethod, maxattempts, hashkey, members });
        }
    }
    out
}

fn check_unique(here: &[Seg], members: &[Member], p: &mut Problems) {
    let mut urls = HashSet::new();
    let mut routes = HashSet::new();
    for (i, m) in members.iter().enumerate() {
        let at = index(&key(here, "member"), i);
        if !urls.insert((m.authority.clone(), m.base_path.clone())) {
            p.push(&key(&at, "url"), format!("{} is already a member of this balancer", m.url));
        }
        if !m.route.is_empty() && !routes.insert(m.route.clone()) {
            p.push(&key(&at, "route"), format!("route `{}` is used by another member", m.route));
        }
    }
}

fn member(here: &[Seg], m: &RawMember, p: &mut Problems) -> Option<Member> {
    let (authority, base_path) = match parse_member_url(&m.url) {
        Ok(v) => v,
        Err(e) => {
            p.push(&key(here, "url"), e);
            return None;
        }
    };
    let loadfactor = m.loadfactor.unwrap_or(1.0);
    if !(1.0..=100.0).contains(&loadfactor) {
        p.push(&key(here, "loadfactor"), format!("must be between 1 and 100 (decimals allowed), got {loadfactor}"));
    }
    let lbset = m.lbset.unwrap_or(0);
    if lbset > 99 {
        p.push(&key(here, "lbset"), format!("must be between 0 and 99, got {lbset}"));
    }
    let status = match m.status.as_deref().map(|s| StatusFlags::empty().apply(s)).transpose() {
        Ok(s) => s.unwrap_or_default(),
        Err(e) => {
            p.push(&key(here, "status"), e);
            StatusFlags::empty()
        }
    };
    for (field, value) in [("route", &m.route), ("redirect", &m.redirect)] {
        if let Some(v) = value {
            if v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric() || "-_.~".contains(c)) {
                p.push(&key(here, field), format!("`{v}` must be a non-empty token of letters, digits, - _ . ~"));
            }
        }
    }
    let connection = connection(here, [m.timeout, m.connectiontimeout, m.ttl, m.acquire], m.max, p);
    Some(Member {
        url: m.url.clone(),
        authority,
        base_path,
        // httpd keeps loadfactor × 100, truncated; bit-exact sequences depend on it.
        lbfactor: (loadfactor.clamp(1.0, 100.0) * 100.0) as u32,
        lbset: lbset.min(99),
        status,
        retry: m.retry.map_or(DEFAULT_RETRY, |d| d.0),
        route: m.route.clone().unwrap_or_default(),
        redirect: m.redirect.clone().unwrap_or_default(),
        connection,
        upgrade: super::edge::upgrades(here, m.upgrade.as_ref(), p),
    })
}

/// Connection settings from `[timeout, connectiontimeout, ttl, acquire]` and `max`.
fn connection(here: &[Seg], durations: [Option<DurationValue>; 4], max: Option<u32>, p: &mut Problems) -> ConnectionSettings {
    let [timeout, connect, ttl, acquire] = durations.map(|d| d.map(|d| d.0));
    let timeout = timeout.unwrap_or(DEFAULT_TIMEOUT);
    if timeout.is_zero() {
        p.push(&key(here, "timeout"), "must be more than 0");
    }
    let connect_timeout = connect.unwrap_or(timeout);
    if connect_timeout.is_zero() {
        p.push(&key(here, "connectiontimeout"), "must be more than 0");
    }
    let max_connections = max.unwrap_or(DEFAULT_MAX_CONNECTIONS);
    if max_connections == 0 {
        p.push(&key(here, "max"), "must be at least 1");
    }
    ConnectionSettings {
        timeout,
        connect_timeout,
        max_connections: max_connections.max(1) as usize,
        idle_timeout: ttl.unwrap_or(DEFAULT_IDLE_TIMEOUT),
        acquire_timeout: acquire.unwrap_or(connect_timeout),
    }
}

/// Splits `http://host:port/path` into its authority (with the port made explicit) and path.
fn parse_member_url(url: &str) -> Result<(http::uri::Authority, String), String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => return Err(format!("`{url}`: https members are not supported yet; use http://")),
        _ => return Err(format!("`{url}` must be an absolute http:// URL")),
    }
    let Some(authority) = uri.authority() else {
        return Err(format!("`{url}` has no host"));
    };
    if authority.as_str().contains('@') {
        return Err(format!("`{url}`: credentials in member URLs are not supported"));
    }
    if uri.query().is_some() {
        return Err(format!("`{url}`: a member URL cannot carry a query"));
    }
    let port = authority.port_u16().unwrap_or(80);
    let authority: http::uri::Authority = format!("{}:{port}", authority.host())
        .parse()
        .map_err(|e| format!("`{url}`: {e}"))?;
    Ok((authority, uri.path().to_string()))
}

fn parse_hashkey(text: &str) -> Result<HashKey, String> {
    match text.split_once(':') {
        None if text == "client_ip" => Ok(HashKey::ClientIp),
        None if text == "path" => Ok(HashKey::Path),
        Some(("header", name)) => name
            .parse::<http::HeaderName>()
            .map(HashKey::Header)
            .map_err(|_| format!("`{name}` is not a header name")),
        Some(("cookie", name)) if !name.is_empty() => Ok(HashKey::Cookie(name.to_string())),
        _ => Err(format!(
            "unknown hashkey `{text}`: use \"client_ip\", \"path\", \"header:NAME\" or \"cookie:NAME\""
        )),
    }
}

fn lbmethod(
    here: &[Seg],
    raw: Option<&RawLbMethod>,
    base_dir: &Path,
    origin_of: &dyn Fn(&[Seg]) -> String,
    p: &mut Problems,
) -> Option<LbMethodSpec> {
    let origin = origin_of(here);
    let builtin = |name: &str, p: &mut Problems| {
        if BUILTIN_LBMETHODS.contains(&name) {
            Some(PluginSource::Builtin(name.to_string()))
        } else {
            p.push(here, format!("unknown lbmethod `{name}`: the default ones are {}, or give {{ path = \"x.wasm\" }}", BUILTIN_LBMETHODS.join(", ")));
            None
        }
    };
    let (source, config) = match raw {
        None => (PluginSource::Builtin("byrequests".to_string()), None),
        Some(RawLbMethod::Name(name)) => (builtin(name, p)?, None),
        Some(RawLbMethod::Table(t)) => {
            let source = match (&t.name, &t.path) {
                (Some(name), None) => builtin(name, p)?,
                (None, Some(path)) => {
                    let full = base_dir.join(path);
                    if !full.is_file() {
                        p.push(&key(here, "path"), format!("no such file: {}", full.display()));
                        return None;
                    }
                    PluginSource::File(full)
                }
                _ => {
                    p.push(here, "give exactly one of name (a default method) or path (a .wasm component)");
                    return None;
                }
            };
            (source, t.config.as_ref())
        }
    };
    let config_json = match config {
        Some(table) => match serde_json::to_string(table) {
            Ok(json) => json,
            Err(e) => {
                p.push(&key(here, "config"), format!("cannot be handed to the plugin as JSON: {e}"));
                return None;
            }
        },
        None => "{}".to_string(),
    };
    Some(LbMethodSpec { source, config_json, origin })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_urls() {
        let (a, path) = parse_member_url("http://127.0.0.1:9001").expect("valid");
        assert_eq!((a.as_str(), path.as_str()), ("127.0.0.1:9001", "/"));
        let (a, path) = parse_member_url("http://example.com/app/").expect("valid");
        assert_eq!((a.as_str(), path.as_str()), ("example.com:80", "/app/"));
        assert!(parse_member_url("https://x").unwrap_err().contains("https"));
        assert!(parse_member_url("ftp://x").is_err());
        assert!(parse_member_url("/just/a/path").is_err());
        assert!(parse_member_url("http://x/?q=1").is_err());
    }

    #[test]
    fn hashkeys() {
        assert_eq!(parse_hashkey("client_ip"), Ok(HashKey::ClientIp));
        assert_eq!(parse_hashkey("cookie:sid"), Ok(HashKey::Cookie("sid".into())));
        assert!(matches!(parse_hashkey("header:X-User"), Ok(HashKey::Header(_))));
        assert!(parse_hashkey("moon").is_err());
    }
}
