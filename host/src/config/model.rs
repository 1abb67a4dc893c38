//! The checked configuration the rest of the proxy is built from.
//!
//! Every value here has passed `validate`: addresses parse, references resolve, numbers are in
//! range. Defaults are applied, so nothing downstream needs to know them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::status::StatusFlags;

/// A whole, valid config.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub file: PathBuf,
    /// Addresses to accept clients on.
    pub listeners: Vec<Listener>,
    /// Routes in config order; the first match wins.
    pub routes: Vec<Route>,
    /// Balancers, in name order; routes refer to them by index.
    pub balancers: Vec<Balancer>,
    /// Process-wide settings.
    pub server: Server,
    /// Limits every plugin runs under.
    pub plugins: PluginLimits,
    /// `[limits]`: request size limits.
    pub limits: super::edge::Limits,
    /// `[timeouts]`: how long clients may take.
    pub timeouts: super::edge::Timeouts,
    /// `[forwarded]`: whose forwarding headers are believed.
    pub forwarded: super::edge::Forwarded,
}

/// One `[[listen]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Address to bind.
    pub addr: SocketAddr,
}

/// One `[[route]]`.
#[derive(Debug, Clone)]
pub struct Route {
    /// The path prefix this route matches (at a segment boundary, as httpd's ProxyPass).
    pub prefix: String,
    /// What to do with a matching request.
    pub target: RouteTarget,
    /// Send the client's Host header to the member instead of the member's own (ProxyPreserveHost).
    pub preserve_host: bool,
    /// Protocols every member of this route may be upgraded to.
    pub upgrade: super::edge::Upgrades,
}

/// Where a route sends its requests.
#[derive(Debug, Clone)]
pub enum RouteTarget {
    /// httpd's `ProxyPass /x !`: not proxied; the proxy answers 404.
    Exclude,
    /// A single backend.
    Backend(Member),
    /// A balancer, by index into [`Config::balancers`].
    Balancer(usize),
}

/// One `[balancer.NAME]`.
#[derive(Debug, Clone)]
pub struct Balancer {
    /// The name routes use.
    pub name: String,
    /// The load-balancing method.
    pub lbmethod: LbMethodSpec,
    /// How many more members to try after a failed attempt (default: members − 1).
    pub maxattempts: u32,
    /// What `pick`'s request key is hashed from.
    pub hashkey: HashKey,
    /// The members, in config order.
    pub members: Vec<Member>,
}

/// Which plugin a balancer uses, and its config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbMethodSpec {
    /// Where the component comes from.
    pub source: PluginSource,
    /// The plugin's own config table, as JSON (`{}` when none).
    pub config_json: String,
    /// Where in the config file this was set, for error messages (`file:line: key`).
    pub origin: String,
}

/// Where a plugin's component comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PluginSource {
    /// One of the default plugins embedded in the binary.
    Builtin(String),
    /// A `.wasm` component on disk (absolute, or resolved against the config file's folder).
    File(PathBuf),
}

/// What the request key handed to `pick` is computed from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HashKey {
    /// No key: `pick` gets 0.
    #[default]
    None,
    /// The client's IP address.
    ClientIp,
    /// The request path (without the query).
    Path,
    /// A request header's value.
    Header(http::HeaderName),
    /// A cookie's value.
    Cookie(String),
}

/// One member (or a route's single backend) and how to talk to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// The URL as configured (shown in logs and the manager).
    pub url: String,
    /// `host:port` to connect to.
    pub authority: http::uri::Authority,
    /// The path the member's URL carries (no trailing slash), prefixed to forwarded paths.
    pub base_path: String,
    /// loadfactor × 100 (100..10000).
    pub lbfactor: u32,
    /// Failover tier, 0..99.
    pub lbset: u32,
    /// Initial status flags.
    pub status: StatusFlags,
    /// How long a member in error is left alone before it is tried again.
    pub retry: Duration,
    /// Sticky-session route.
    pub route: String,
    /// Route to use when this member is unusable.
    pub redirect: String,
    /// Connection and pooling settings.
    pub connection: ConnectionSettings,
    /// Protocols requests to this member may be upgraded to (httpd's `upgrade=`).
    pub upgrade: super::edge::Upgrades,
}

/// How the proxy connects to a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// Wait for the member's response head, and between its body chunks (httpd `timeout`).
    pub timeout: Duration,
    /// Wait for a TCP connection to be set up (httpd `connectiontimeout`).
    pub connect_timeout: Duration,
    /// Most connections open to the member at once (httpd `max`).
    pub max_connections: usize,
    /// How long an idle pooled connection is kept (httpd `ttl`).
    pub idle_timeout: Duration,
    /// How long a request waits for a free connection when `max` are busy (httpd `acquire`).
    pub acquire_timeout: Duration,
}

/// `[server]`: process-wide settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Worker threads (default: one per CPU).
    pub workers: Option<usize>,
    /// How long shutdown waits for requests in flight.
    pub shutdown_timeout: Duration,
}

/// `[plugins]`: limits every plugin instance runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginLimits {
    /// Most linear memory one instance may have.
    pub memory_limit: u64,
    /// CPU time one call may take before it is stopped.
    pub deadline: Duration,
    /// Traps in a row after which the plugin is circuit-broken.
    pub trap_limit: u32,
    /// How long a circuit-broken plugin is bypassed before it is tried again.
    pub trap_cooldown: Duration,
}

impl Default for PluginLimits {
    fn default() -> Self {
        Self {
            memory_limit: 64 << 20,
            deadline: Duration::from_millis(10),
            trap_limit: 5,
            trap_cooldown: Duration::from_secs(10),
        }
    }
}
