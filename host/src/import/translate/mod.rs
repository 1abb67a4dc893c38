//! Walking the httpd directive tree into an [`Output`]: what each directive becomes, in
//! which scope (the main server or a `<VirtualHost>`), and a [`Finding`] for whatever is not
//! carried over exactly. The proxy directives proper are in `proxy`, the pass after the walk
//! in `finish`.

use std::collections::HashMap;

use super::model::{Listener, Output, Table, Value};
use super::params::{Param, param};
use super::parse::Directive;
use super::{Finding, Severity, hcexpr};

mod finish;
mod proxy;

/// Directives with no meaning for a reverse proxy: left out, listed as ignored.
const NOT_PROXY: &[&str] = &[
    "LoadModule", "LoadFile", "ServerRoot", "ServerAdmin", "ServerTokens", "ServerSignature", "User", "Group", "PidFile", "Mutex",
    "ErrorLog", "LogLevel", "DocumentRoot", "DirectoryIndex", "AddDefaultCharset", "TypesConfig", "AddType", "AddHandler",
    "AccessFileName", "HostnameLookups", "EnableSendfile", "EnableMMAP", "DefaultRuntimeDir", "MaxKeepAliveRequests", "StartServers",
    "MinSpareServers", "MaxSpareServers", "MaxRequestWorkers", "MaxConnectionsPerChild", "ServerLimit", "ThreadsPerChild",
    "ThreadLimit", "MinSpareThreads", "MaxSpareThreads", "Options", "AllowOverride", "Alias", "ScriptAlias", "RewriteEngine", "SSLRandomSeed",
    "SSLSessionCache", "SSLSessionCacheTimeout", "SSLPassPhraseDialog", "TraceEnable", "UseCanonicalName", "ServerName", "ServerAlias",
    "SetEnvIf", "BrowserMatch", "ExpiresActive", "ExpiresDefault", "FileETag", "AddOutputFilterByType", "DeflateCompressionLevel",
];

/// Sections whose contents serve files, not the proxy.
const NOT_PROXY_SECTIONS: &[&str] = &["Directory", "DirectoryMatch", "Files", "FilesMatch"];

/// Per-server settings that apply to its routes and members once everything is read.
#[derive(Debug, Default, Clone)]
struct ServerSettings {
    preserve_host: Option<(bool, String)>,
    encoded_slashes: Option<(bool, String)>,
    proxy_timeout: Option<(Value, String)>,
    general_timeout: Option<(Value, String)>,
    cookie_domain: Vec<(String, String, String)>,
    cookie_path: Vec<(String, String, String)>,
    ssl_proxy_ca: Option<(String, String)>,
    ssl_proxy_verify_off: Option<String>,
    ssl_proxy_client: Option<(String, String)>,
    ssl_engine: bool,
    ssl_cert: Option<(String, String)>,
    ssl_key: Option<(String, String)>,
    names: Vec<String>,
    ports: Vec<u16>,
}

struct Walker {
    out: Output,
    servers: Vec<ServerSettings>,
    exprs: HashMap<String, (String, String)>,
    log_formats: HashMap<String, String>,
    /// Which server each balancer was defined in.
    balancer_server: HashMap<String, usize>,
}

/// Translates the directives of a whole configuration.
pub(crate) fn translate(tree: &[Directive]) -> Output {
    let mut w = Walker { out: Output::default(), servers: vec![ServerSettings::default()], exprs: HashMap::new(), log_formats: HashMap::new(), balancer_server: HashMap::new() };
    // ProxyHCExpr and LogFormat are referred to by name, perhaps before they appear.
    collect_names(tree, &mut w);
    w.walk(tree, 0, None);
    w.finish();
    w.out.findings.sort_by_key(|f| natural_at(&f.at));
    w.out
}

/// Sort key for `file:line`: the file, then the line as a number.
fn natural_at(at: &str) -> (String, usize) {
    match at.rsplit_once(':') {
        Some((file, line)) => (file.to_string(), line.parse().unwrap_or(0)),
        None => (at.to_string(), 0),
    }
}

fn collect_names(tree: &[Directive], w: &mut Walker) {
    for d in tree {
        if d.is("ProxyHCExpr") && d.args.len() >= 2 {
            w.exprs.insert(d.args[0].clone(), (d.args[1].clone(), d.at()));
        }
        if d.is("LogFormat") && d.args.len() >= 2 {
            w.log_formats.insert(d.args[1].clone(), d.args[0].clone());
        }
        collect_names(&d.children, w);
    }
}

/// `file:line: Directive args…`, for comments in the output.
fn source(d: &Directive) -> String {
    let mut text = d.name.clone();
    for a in &d.args {
        if a.contains(' ') || a.is_empty() {
            text.push_str(&format!(" \"{a}\""));
        } else {
            text.push(' ');
            text.push_str(a);
        }
    }
    if d.section {
        text = format!("<{text}>");
    }
    format!("{}: {text}", d.at())
}

impl Walker {
    fn note(&mut self, d: &Directive, severity: Severity, why: impl Into<String>) {
        self.out.findings.push(Finding { at: d.at(), directive: d.name.clone(), severity, why: why.into() });
    }

    fn walk(&mut self, tree: &[Directive], server: usize, location: Option<&str>) {
        for d in tree {
            self.directive(d, server, location);
        }
    }

    fn directive(&mut self, d: &Directive, server: usize, location: Option<&str>) {
        let name = d.name.to_ascii_lowercase();
        match name.as_str() {
            "virtualhost" => self.virtual_host(d),
            "location" => {
                let Some(path) = d.args.first() else { return self.note(d, Severity::Untranslated, "a <Location> without a path") };
                if d.children.iter().any(|c| c.is("SetHandler") && c.args.first().is_some_and(|h| h.eq_ignore_ascii_case("balancer-manager"))) {
                    let mut admin = Table::default();
                    admin.set("listen", Value::Str("127.0.0.1:8081".into()), Some(source(d)));
                    self.out.admin = Some(admin);
                    return self.note(
                        d,
                        Severity::Different,
                        "the balancer manager gets a listener of its own on loopback, 127.0.0.1:8081, not a path on the proxy's port (access rules inside are not translated; set [admin] token to open it wider); it edits load factors and flags, not yet members or methods",
                    );
                }
                let path = path.clone();
                self.walk(&d.children, server, Some(&path));
            }
            "ifmodule" | "ifdefine" | "ifversion" | "iffile" => {
                // Assume the modules a reverse proxy needs are loaded and defines are set;
                // a negated condition is taken as false.
                if d.args.first().is_some_and(|a| a.starts_with('!')) {
                    self.note(d, Severity::Ignored, format!("<{} {}> taken as false", d.name, d.args.join(" ")));
                } else {
                    self.walk(&d.children, server, location);
                }
            }
            "proxy" => self.proxy_section(d, server),
            "proxymatch" => self.note(d, Severity::Untranslated, "<ProxyMatch>: Switchyard has no regex-matched proxy sections"),
            "listen" => self.listen(d),
            "proxypass" => self.proxy_pass(d, server, location),
            "proxypassmatch" => self.proxy_pass_match(d, server),
            "proxypassreverse" => self.proxy_pass_reverse(d, server, location),
            "proxypassreversecookiedomain" | "proxypassreversecookiepath" => {
                let [internal, public] = &d.args[..] else { return self.note(d, Severity::Untranslated, "needs an internal and a public value") };
                let entry = (internal.clone(), public.clone(), d.at());
                if name.ends_with("domain") {
                    self.servers[server].cookie_domain.push(entry);
                } else {
                    self.servers[server].cookie_path.push(entry);
                }
            }
            "proxypreservehost" => self.servers[server].preserve_host = Some((flag(d), source(d))),
            "allowencodedslashes" => {
                let value = d.args.first().map(|a| a.to_ascii_lowercase()).unwrap_or_default();
                if value == "on" {
                    self.note(d, Severity::Different, "AllowEncodedSlashes On decodes %2F; Switchyard accepts it but forwards it still encoded (NoDecode)");
                }
                self.servers[server].encoded_slashes = Some((value != "off", source(d)));
            }
            "proxytimeout" | "timeout" => match d.args.first().and_then(|a| a.parse::<i64>().ok()) {
                Some(secs) if name == "proxytimeout" => self.servers[server].proxy_timeout = Some((Value::Int(secs), source(d))),
                Some(secs) => self.servers[server].general_timeout = Some((Value::Int(secs), source(d))),
                None => self.note(d, Severity::Untranslated, "needs a number of seconds"),
            },
            "proxyaddheaders" => {
                if !flag(d) {
                    self.note(d, Severity::Untranslated, "Switchyard always adds X-Forwarded-For/-Host/-Proto (and replaces them from untrusted peers; see [forwarded])");
                }
            }
            "proxyrequests" => {
                if flag(d) {
                    self.note(d, Severity::Untranslated, "Switchyard is not a forward proxy");
                }
            }
            "proxyvia" => self.note(d, Severity::Different, "no Via header is added"),
            "balancermember" => self.balancer_member(d, None, server),
            "proxyset" => self.proxy_set(d, None, server),
            "proxyhcexpr" => {}
            "proxyhctemplate" => self.hc_template(d),
            "balancerpersist" | "balancerinherit" | "balancergrowth" | "proxypassinherit" => {
                if name == "balancerpersist" && flag(d) {
                    self.note(d, Severity::Untranslated, "runtime edits from the balancer manager are not persisted yet: they last until the next reload or restart");
                } else if name != "balancerpersist" {
                    self.note(d, Severity::Different, "Switchyard has one set of routes and balancers for all virtual hosts");
                }
            }
            "limitrequestline" => self.limit(d, "request_line"),
            "limitrequestfields" => self.limit(d, "header_fields"),
            "limitrequestbody" => self.limit(d, "body"),
            "limitrequestfieldsize" => self.note(d, Severity::Different, "Switchyard limits all header fields together ([limits] header_size, default 32KiB), not each one"),
            "keepalivetimeout" => match d.args.first().and_then(|a| a.parse::<i64>().ok()) {
                Some(secs) => self.out.timeouts.set("keepalive", Value::Int(secs), Some(source(d))),
                None => self.note(d, Severity::Untranslated, "needs a number of seconds"),
            },
            "keepalive" => {
                if !flag(d) {
                    self.note(d, Severity::Untranslated, "keep-alive is always on (an idle connection closes after [timeouts] keepalive)");
                }
            }
            "requestreadtimeout" => self.request_read_timeout(d),
            "sslengine" => self.servers[server].ssl_engine = flag(d),
            "sslcertificatefile" => self.servers[server].ssl_cert = d.args.first().map(|a| (a.clone(), source(d))),
            "sslcertificatekeyfile" => self.servers[server].ssl_key = d.args.first().map(|a| (a.clone(), source(d))),
            "sslcertificatechainfile" => self.note(d, Severity::Untranslated, "put the chain into the certificate file, after the leaf (cert = one PEM chain)"),
            "sslprotocol" | "sslciphersuite" | "sslhonorcipherorder" | "sslcompression" | "sslsessiontickets" | "sslopensslconfcmd" | "sslusestapling" => {
                self.note(d, Severity::Different, "TLS 1.2 and 1.3 with rustls's safe default suites; not configurable")
            }
            "sslproxyengine" => {}
            "sslproxycacertificatefile" => self.servers[server].ssl_proxy_ca = d.args.first().map(|a| (a.clone(), source(d))),
            "sslproxyverify" => {
                if d.args.first().is_some_and(|a| a.eq_ignore_ascii_case("none")) {
                    self.servers[server].ssl_proxy_verify_off = Some(source(d));
                }
            }
            "sslproxycheckpeername" | "sslproxycheckpeercn" | "sslproxycheckpeerexpire" => {
                if !flag(d) {
                    self.note(d, Severity::Different, "an https member's certificate is checked whole (name and dates) unless tls.verify = false");
                }
            }
            "sslproxymachinecertificatefile" => self.servers[server].ssl_proxy_client = d.args.first().map(|a| (a.clone(), source(d))),
            "customlog" | "transferlog" => self.custom_log(d),
            "logformat" => {}
            "sethandler" => self.note(d, Severity::Untranslated, "only the proxy's own handlers exist"),
            "require" | "order" | "allow" | "deny" | "satisfy" | "requireall" | "requireany" | "requirenone" | "limit" | "limitexcept" | "authtype" | "authname" | "authuserfile" => {
                self.note(d, Severity::Untranslated, "access control is not translated: Switchyard proxies whatever a route matches (restrict it in front, or leave the path out)")
            }
            "header" | "requestheader" => self.note(d, Severity::Untranslated, "header edits are not translated: a header-rewrite plugin can make them"),
            "rewriterule" | "rewritecond" | "redirect" | "redirectmatch" => self.note(d, Severity::Untranslated, "mod_rewrite and mod_alias redirects are not translated"),
            "locationmatch" => self.note(d, Severity::Untranslated, "<LocationMatch>: Switchyard has no regex routes"),
            _ if NOT_PROXY.iter().any(|n| n.eq_ignore_ascii_case(&d.name)) => self.note(d, Severity::Ignored, "not part of a reverse proxy's configuration"),
            _ if d.section && NOT_PROXY_SECTIONS.iter().any(|n| n.eq_ignore_ascii_case(&d.name)) => {
                self.note(d, Severity::Ignored, "serves files, not the proxy")
            }
            _ => self.note(d, Severity::Untranslated, "no Switchyard equivalent"),
        }
    }

    fn virtual_host(&mut self, d: &Directive) {
        let server = self.servers.len();
        let mut settings = self.servers[0].clone();
        settings.names.clear();
        settings.ssl_engine = false;
        settings.ssl_cert = None;
        settings.ssl_key = None;
        settings.ports = d.args.iter().filter_map(|a| a.rsplit_once(':').and_then(|(_, p)| p.parse().ok())).collect();
        for c in &d.children {
            if c.is("ServerName") || c.is("ServerAlias") {
                settings.names.extend(c.args.iter().map(|n| n.split(':').next().unwrap_or(n).to_ascii_lowercase()));
            }
        }
        self.servers.push(settings);
        self.walk(&d.children, server, None);
    }

    fn listen(&mut self, d: &Directive) {
        let Some(arg) = d.args.first() else { return self.note(d, Severity::Untranslated, "Listen needs an address") };
        let addr = if arg.contains(':') { arg.clone() } else { format!("0.0.0.0:{arg}") };
        if addr.parse::<std::net::SocketAddr>().is_err() {
            return self.note(d, Severity::Untranslated, format!("`{arg}` is not an address and port (host names are not resolved)"));
        }
        if !arg.contains(':') {
            self.note(d, Severity::Different, format!("Listen {arg} listens on all IPv4 addresses (0.0.0.0); add a [[listen]] on \"[::]:{arg}\" for IPv6"));
        }
        if !self.out.listeners.iter().any(|l| l.addr == addr) {
            self.out.listeners.push(Listener { addr, from: source(d), tls: None, sni: Vec::new() });
        }
    }

    fn limit(&mut self, d: &Directive, key: &str) {
        match d.args.first().and_then(|a| a.parse::<i64>().ok()) {
            Some(n) => self.out.limits.set(key, Value::Int(n), Some(source(d))),
            None => self.note(d, Severity::Untranslated, "needs a number"),
        }
    }

    fn request_read_timeout(&mut self, d: &Directive) {
        for arg in &d.args {
            let Some((stage, rest)) = arg.split_once('=') else { continue };
            let mut parts = rest.split(',');
            let time = parts.next().unwrap_or("");
            let first = time.split('-').next().and_then(|t| t.parse::<i64>().ok());
            if time.contains('-') {
                self.note(d, Severity::Different, format!("{stage}={time}: the time is not extended as data arrives; the first value is used"));
            }
            let key = match stage.to_ascii_lowercase().as_str() {
                "header" => "header",
                "body" => "body",
                other => {
                    self.note(d, Severity::Untranslated, format!("{other}=: only header and body stages exist"));
                    continue;
                }
            };
            if let Some(secs) = first {
                self.out.timeouts.set(key, Value::Int(secs), Some(source(d)));
            }
            for extra in parts {
                if let Some(rate) = extra.strip_prefix("MinRate=").or_else(|| extra.strip_prefix("minrate=")).and_then(|r| r.parse::<i64>().ok()) {
                    if key == "body" {
                        self.out.timeouts.set("body_min_rate", Value::Int(rate), Some(source(d)));
                    } else {
                        self.note(d, Severity::Different, "a head's minimum rate is not supported: the whole head must arrive within the header time");
                    }
                }
            }
        }
    }

    fn custom_log(&mut self, d: &Directive) {
        if self.out.access_log.is_some() {
            return self.note(d, Severity::Untranslated, "Switchyard writes one access log; this one is left out");
        }
        let (Some(path), format) = (d.args.first(), d.args.get(1)) else { return self.note(d, Severity::Untranslated, "needs a file") };
        if path.starts_with('|') {
            return self.note(d, Severity::Untranslated, "piped logs are not supported: log to a file (rotated with SIGUSR1) or stderr");
        }
        let mut table = Table::default();
        table.set("path", Value::Str(path.clone()), Some(source(d)));
        let format = match format {
            Some(f) if f != "combined" && f != "common" && !f.contains('%') => match self.log_formats.get(f) {
                Some(known) => Some(known.clone()),
                None => {
                    self.note(d, Severity::Different, format!("no LogFormat named {f}: combined is used"));
                    None
                }
            },
            other => other.cloned(),
        };
        match format.as_deref() {
            None | Some("combined") => {}
            Some("common") => table.set("format", Value::Str("common".into()), None),
            Some(f) => match crate::config::parse_format(f) {
                Ok(_) => table.set("format", Value::Str(f.to_string()), None),
                Err(e) => self.note(d, Severity::Different, format!("the log format uses what Switchyard does not ({e}); combined is used")),
            },
        }
        if path.contains("${") {
            self.note(d, Severity::Untranslated, "the path uses an environment variable: write it out");
        }
        self.out.access_log = Some(table);
    }

    fn hc_template(&mut self, d: &Directive) {
        let Some((name, params)) = d.args.split_first() else { return self.note(d, Severity::Untranslated, "needs a name") };
        let mut table = Table::default();
        for p in params {
            let Some((k, v)) = p.split_once('=') else { continue };
            match param(k, v) {
                Param::Member(key, value) if key.starts_with("hc") => table.set(key, value, None),
                Param::HcExpr(expr) => match self.expr(&expr) {
                    Ok(e) => table.set("hcexpr", Value::Str(e), None),
                    Err(why) => self.note(d, Severity::Untranslated, why),
                },
                _ => self.note(d, Severity::Untranslated, format!("{k}: a template holds only hc* parameters")),
            }
        }
        self.out.hctemplates.insert(name.clone(), table);
    }

    /// The translated expression named `name`.
    fn expr(&self, name: &str) -> Result<String, String> {
        let (text, at) = self.exprs.get(name).ok_or_else(|| format!("hcexpr={name}: no ProxyHCExpr of that name"))?;
        hcexpr::translate(text).map_err(|why| format!("hcexpr={name} ({at}): {why}"))
    }
}

/// `On`/`Off` of a directive's first argument.
fn flag(d: &Directive) -> bool {
    d.args.first().is_some_and(|a| a.eq_ignore_ascii_case("on"))
}

/// The name in `balancer://NAME[/…]`.
fn balancer_name(url: &str) -> Option<String> {
    let rest = url.strip_prefix("balancer://")?;
    let name = rest.split('/').next().unwrap_or(rest);
    (!name.is_empty()).then(|| name.to_string())
}

/// A member URL in Switchyard's terms, and whether it asked for WebSocket (`ws://`).
fn member_url(url: &str) -> Option<(String, bool)> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        Some((url.to_string(), false))
    } else if let Some(rest) = lower.strip_prefix("ws://") {
        Some((format!("http://{}", &url[url.len() - rest.len()..]), true))
    } else {
        lower.strip_prefix("wss://").map(|rest| (format!("https://{}", &url[url.len() - rest.len()..]), true))
    }
}
