//! The checked configuration the rest of the proxy is built from.
//!
//! Every value here has passed `validate`: addresses parse, references resolve, numbers are in
//! range. Defaults are applied, so nothing downstream needs to know them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::status::StatusFlags;

/// httpd's default `retry`: how long a member in error waits before it is tried again.
pub(crate) const DEFAULT_RETRY: Duration = Duration::from_secs(60);

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
    /// Where compiled plugins are kept between runs (`[plugins] cache`, else the `compiled`
    /// folder of `[admin] plugins`), when anywhere.
    pub plugin_cache: Option<PathBuf>,
    /// `[limits]`: request size limits.
    pub limits: super::edge::Limits,
    /// `[timeouts]`: how long clients may take.
    pub timeouts: super::edge::Timeouts,
    /// `[forwarded]`: whose forwarding headers are believed.
    pub forwarded: super::edge::Forwarded,
    /// `[access_log]`, when there is one.
    pub access_log: Option<super::logging::AccessLog>,
    /// `[log]`: the format of the proxy's own log lines.
    pub log: super::logging::LogFormat,
    /// `[admin]`: the balancer manager, when there is one.
    pub admin: Option<super::admin::Admin>,
}

/// One `[[listen]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Address to bind.
    pub addr: SocketAddr,
    /// TLS, when clients must speak it here.
    pub tls: Option<super::tls::ListenTls>,
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
    /// Accept paths holding an encoded `/` or `\` (`%2F`, `%5C`), forwarded still encoded
    /// (httpd's `AllowEncodedSlashes NoDecode`); otherwise they are refused with 400.
    pub allow_encoded_slashes: bool,
    /// Forward the client's own spelling of the path instead of its canonical form (httpd's
    /// `ProxyPass … nocanon`); the request is still routed on the canonical form.
    pub nocanon: bool,
    /// Header-rewrite plugins, applied in this order (ProxyPassReverse first when asked for).
    pub rewrite: Vec<PluginSpec>,
    /// Protocols every member of this route may be upgraded to.
    pub upgrade: super::edge::Upgrades,
}

/// Where a route sends its requests.
#[derive(Debug, Clone)]
pub enum RouteTarget {
    /// httpd's `ProxyPass /x !`: not proxied; the proxy answers 404.
    Exclude,
    /// A single backend.
    Backend(Box<Member>),
    /// A balancer, by index into [`Config::balancers`].
    Balancer(usize),
}

/// One `[balancer.NAME]`.
#[derive(Debug, Clone)]
pub struct Balancer {
    /// The name routes use.
    pub name: String,
    /// The load-balancing method.
    pub lbmethod: PluginSpec,
    /// A second method run in shadow: its picks are counted, never enacted.
    pub shadow: Option<PluginSpec>,
    /// Where to record a trace of every pick and completion (for `switchyard plugin replay`).
    pub record: Option<std::path::PathBuf>,
    /// How many more members to try after a failed attempt (default: members − 1).
    pub maxattempts: u32,
    /// What `pick`'s request key is hashed from.
    pub hashkey: HashKey,
    /// What happens when members fail.
    pub failover: Failover,
    /// Sticky sessions, when configured.
    pub sticky: Option<StickySession>,
    /// The members, in config order.
    pub members: Vec<Member>,
}

/// A balancer's failure handling, with httpd's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failover {
    /// A request whose sticky member (and its redirect) is unusable gets 503 instead of
    /// another member (httpd `nofailover`).
    pub nofailover: bool,
    /// When every member is in error, put them all back in service (httpd `forcerecovery`).
    pub forcerecovery: bool,
    /// Response statuses that put the member that sent them in error (httpd `failonstatus`).
    pub failonstatus: Vec<u16>,
    /// A member timeout puts the member in error (httpd `failontimeout`).
    pub failontimeout: bool,
    /// How long a request waits for a usable member before 503 (httpd balancer `timeout`;
    /// zero: no wait).
    pub timeout: Duration,
}

impl Default for Failover {
    fn default() -> Self {
        Self { nofailover: false, forcerecovery: true, failonstatus: Vec::new(), failontimeout: false, timeout: Duration::ZERO }
    }
}

/// Sticky sessions: where a request's route is found, and whether the proxy sets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StickySession {
    /// The cookie holding the session (e.g. `JSESSIONID`).
    pub cookie: String,
    /// The URL parameter holding the session (e.g. `jsessionid`); it wins over the cookie.
    pub param: String,
    /// The route is what follows this character in the session value; `None`: the whole
    /// value is the route (httpd `stickysessionsep`, `Off`).
    pub separator: Option<char>,
    /// `;` also ends a URL parameter's value (httpd `scolonpathdelim`).
    pub scolon_path_delim: bool,
    /// When set, the proxy itself sets the cookie to the chosen member's route.
    pub insert: Option<RouteCookie>,
}

impl StickySession {
    /// The names as the config writes them: `COOKIE`, or `COOKIE|param` when they differ.
    pub fn names(&self) -> String {
        if self.param == self.cookie { self.cookie.clone() } else { format!("{}|{}", self.cookie, self.param) }
    }
}

/// The attributes of a cookie the proxy sets to keep a client on its member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteCookie {
    /// `Path=` (default `/`).
    pub path: String,
    /// `Secure`.
    pub secure: bool,
    /// `HttpOnly` (default on).
    pub http_only: bool,
    /// `SameSite=` value, if any.
    pub same_site: Option<String>,
    /// `Max-Age=`; a session cookie when `None`.
    pub max_age: Option<Duration>,
}

/// A plugin of any kind (lbmethod, health check, header rewrite) and its config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginSpec {
    /// Where the component comes from.
    pub source: PluginSource,
    /// The plugin's own config table, as JSON (`{}` when none).
    pub config_json: String,
    /// Where in the config file this was set, for error messages (`file:line: key`).
    pub origin: String,
}

impl PluginSpec {
    /// A default plugin with a JSON config.
    pub(crate) fn builtin(name: &str, config_json: &str, origin: String) -> Self {
        Self { source: PluginSource::Builtin(name.to_string()), config_json: config_json.to_string(), origin }
    }
}

/// Where a plugin's component comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PluginSource {
    /// One of the default plugins embedded in the binary.
    Builtin(String),
    /// A `.wasm` component on disk (absolute, or resolved against the config file's folder).
    File(PathBuf),
}

impl std::fmt::Display for PluginSource {
    /// A default plugin's name, or the file's path.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Builtin(name) => f.write_str(name),
            Self::File(path) => write!(f, "{}", path.display()),
        }
    }
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
    /// Probe the member with `Expect: 100-continue` before sending a request body, and put it
    /// in error if it does not answer within this long (httpd `ping`).
    pub ping: Option<Duration>,
    /// Connection and pooling settings.
    pub connection: ConnectionSettings,
    /// Health checking, when configured.
    pub health: Option<HealthCheckSpec>,
    /// Protocols requests to this member may be upgraded to (httpd's `upgrade=`).
    pub upgrade: super::edge::Upgrades,
    /// How to reach it over TLS, when its URL is `https://`.
    pub tls: Option<super::tls::MemberTls>,
}

/// A member's health check (httpd's mod_proxy_hcheck settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckSpec {
    /// The check: the default `hcheck` plugin configured from `hcmethod`, `hcuri`, `hcexpr`,
    /// or a custom one.
    pub plugin: PluginSpec,
    /// Time between probes (`hcinterval`).
    pub interval: Duration,
    /// Passes in a row that clear C and E (`hcpasses`).
    pub passes: u32,
    /// Failures in a row that set C (`hcfails`).
    pub fails: u32,
    /// How long one probe may take (`hctimeout`).
    pub timeout: Duration,
}

impl Member {
    /// A route's single `backend`: weight 1, no flags, no route.
    pub(crate) fn single_backend(
        url: &str,
        authority: http::uri::Authority,
        base_path: String,
        connection: ConnectionSettings,
        tls: Option<super::tls::MemberTls>,
    ) -> Self {
        Self {
            url: url.to_string(),
            authority,
            base_path,
            lbfactor: 100,
            lbset: 0,
            status: StatusFlags::empty(),
            retry: DEFAULT_RETRY,
            route: String::new(),
            redirect: String::new(),
            ping: None,
            connection,
            health: None,
            upgrade: super::edge::Upgrades::default(),
            tls,
        }
    }
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
