//! Walking the httpd directive tree into an [`Output`]: what each directive becomes, in
//! which scope (the main server or a `<VirtualHost>`), and a [`Finding`] for whatever is not
//! carried over exactly.

use std::collections::HashMap;

use super::model::{Balancer, Listener, Member, Output, Route, Table, Value, quote};
use super::params::{Param, param};
use super::parse::Directive;
use super::{Finding, Severity, hcexpr};

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

    fn proxy_section(&mut self, d: &Directive, server: usize) {
        let target = d.args.first().cloned().unwrap_or_default();
        let Some(name) = balancer_name(&target) else {
            let severity = if d.children.is_empty() { Severity::Ignored } else { Severity::Untranslated };
            return self.note(d, severity, format!("<Proxy {target}>: access control and settings for proxied URLs are not translated"));
        };
        self.balancer(&name, d, server);
        for c in &d.children {
            if c.is("BalancerMember") {
                self.balancer_member(c, Some(&name), server);
            } else if c.is("ProxySet") {
                self.proxy_set(c, Some(&name), server);
            } else {
                self.directive(c, server, None);
            }
        }
    }

    fn balancer(&mut self, name: &str, d: &Directive, server: usize) -> &mut Balancer {
        self.balancer_server.entry(name.to_string()).or_insert(server);
        let from = source(d);
        self.out.balancers.entry(name.to_string()).or_insert_with(|| Balancer { from, ..Balancer::default() })
    }

    fn balancer_member(&mut self, d: &Directive, within: Option<&str>, server: usize) {
        let mut args = d.args.iter();
        let name = match within {
            Some(n) => n.to_string(),
            None => match args.next().and_then(|a| balancer_name(a)) {
                Some(n) => n,
                None => return self.note(d, Severity::Untranslated, "outside <Proxy balancer://…>, name the balancer first"),
            },
        };
        let Some(url) = args.next() else { return self.note(d, Severity::Untranslated, "needs a URL") };
        let Some(url) = member_url(url) else {
            return self.note(d, Severity::Untranslated, format!("`{url}`: only http(s):// and ws(s):// members are supported"));
        };
        let mut keys = Table::default();
        keys.set("url", Value::Str(url.0.clone()), None);
        if url.1 {
            keys.set("upgrade", Value::Raw("[\"websocket\"]".into()), None);
        }
        let params: Vec<String> = args.cloned().collect();
        let mut balancer_keys = Vec::new();
        for p in &params {
            self.member_param(d, p, &mut keys, &mut balancer_keys);
        }
        let member = Member { from: source(d), keys, server };
        let b = self.balancer(&name, d, server);
        b.members.push(member);
        for (k, v) in balancer_keys {
            b.keys.set(k, v, None);
        }
    }

    /// A worker parameter onto a member's `keys` (balancer parameters given on a member are
    /// put on its balancer).
    fn member_param(&mut self, d: &Directive, p: &str, keys: &mut Table, balancer_keys: &mut Vec<(&'static str, Value)>) {
        let Some((k, v)) = p.split_once('=') else {
            return self.note(d, Severity::Untranslated, format!("`{p}`: not a key=value parameter"));
        };
        match param(k, v) {
            Param::Member(key, value) => keys.set(key, value, None),
            Param::Balancer(key, value) => balancer_keys.push((key, value)),
            Param::HcExpr(name) => match self.expr(&name) {
                Ok(e) => keys.set("hcexpr", Value::Str(e), None),
                Err(why) => self.note(d, Severity::Untranslated, why),
            },
            Param::Note(severity, why) => self.note(d, severity, why),
        }
    }

    fn proxy_set(&mut self, d: &Directive, within: Option<&str>, server: usize) {
        let mut args = d.args.iter();
        let name = match within {
            Some(n) => n.to_string(),
            None => match args.next().and_then(|a| balancer_name(a)) {
                Some(n) => n,
                None => return self.note(d, Severity::Untranslated, "ProxySet on a single worker: put its parameters on the route's ProxyPass"),
            },
        };
        let params: Vec<String> = args.cloned().collect();
        for p in &params {
            self.balancer_param(d, &name, p, server);
        }
    }

    fn balancer_param(&mut self, d: &Directive, name: &str, p: &str, server: usize) {
        let Some((k, v)) = p.split_once('=') else { return self.note(d, Severity::Untranslated, format!("`{p}`: not a key=value parameter")) };
        // On a balancer, `timeout` is how long a request waits for a usable member.
        let translated = if k.eq_ignore_ascii_case("timeout") { param("retry", v) } else { param(k, v) };
        match (k.eq_ignore_ascii_case("timeout"), translated) {
            (true, Param::Member(_, value)) => self.balancer(name, d, server).keys.set("timeout", value, Some(source(d))),
            (_, Param::Balancer(key, value)) => self.balancer(name, d, server).keys.set(key, value, Some(source(d))),
            (_, Param::Note(severity, why)) => self.note(d, severity, why),
            _ => self.note(d, Severity::Untranslated, format!("{k}: a worker parameter, not a balancer one: put it on the BalancerMembers")),
        }
    }

    fn proxy_pass(&mut self, d: &Directive, server: usize, location: Option<&str>) {
        self.proxy_pass_route(d, server, location);
        if location.is_some()
            && let Some(route) = self.out.routes.last_mut()
        {
            route.location = true;
        }
    }

    fn proxy_pass_route(&mut self, d: &Directive, server: usize, location: Option<&str>) {
        let mut args = d.args.iter();
        let path = match location {
            Some(l) => l.to_string(),
            None => match args.next() {
                Some(p) => p.clone(),
                None => return self.note(d, Severity::Untranslated, "needs a path and a URL"),
            },
        };
        let Some(target) = args.next() else { return self.note(d, Severity::Untranslated, "needs a URL") };
        let mut keys = Table::default();
        keys.set("path", Value::Str(path.clone()), None);
        let params: Vec<String> = args.cloned().collect();
        if target == "!" {
            keys.set("exclude", Value::Bool(true), None);
        } else if let Some(name) = balancer_name(target) {
            let rest = target.trim_start_matches("balancer://").trim_start_matches(&*name);
            if !rest.is_empty() && rest != "/" {
                self.note(d, Severity::Untranslated, format!("the path {rest} after the balancer name: put it in the members' URLs"));
            }
            keys.set("balancer", Value::Str(name.clone()), None);
            for p in &params {
                self.balancer_param(d, &name, p, server);
            }
        } else if let Some((url, ws)) = member_url(target) {
            keys.set("backend", Value::Str(url), None);
            if ws {
                keys.set("upgrade", Value::Raw("[\"websocket\"]".into()), None);
            }
            let mut balancer_keys = Vec::new();
            let mut member_keys = Table::default();
            for p in &params {
                if p.eq_ignore_ascii_case("nocanon") {
                    keys.set("nocanon", Value::Bool(true), None);
                } else if p.eq_ignore_ascii_case("noquery") || p.eq_ignore_ascii_case("interpolate") {
                    self.note(d, Severity::Untranslated, format!("{p}: not supported"));
                } else {
                    self.member_param(d, p, &mut member_keys, &mut balancer_keys);
                }
            }
            for e in member_keys.0 {
                match e.key.as_str() {
                    "timeout" | "connectiontimeout" | "max" | "ttl" | "acquire" | "upgrade" => keys.set(&e.key, e.value, None),
                    "retry" => self.note(d, Severity::Different, "a route's single backend is never put in error: every request tries it"),
                    other => self.note(d, Severity::Untranslated, format!("{other}: applies to balancer members, not a single backend")),
                }
            }
            if !balancer_keys.is_empty() {
                self.note(d, Severity::Untranslated, "balancer parameters on a single backend do nothing");
            }
        } else {
            return self.note(d, Severity::Untranslated, format!("`{target}`: only http(s)://, ws(s):// and balancer:// targets are supported"));
        }
        if params.iter().any(|p| p.eq_ignore_ascii_case("nocanon")) && !keys.has("nocanon") {
            keys.set("nocanon", Value::Bool(true), None);
        }
        self.out.routes.push(Route { from: source(d), keys, server, location: false });
    }

    fn proxy_pass_match(&mut self, d: &Directive, server: usize) {
        let (Some(regex), Some(target)) = (d.args.first(), d.args.get(1)) else { return self.note(d, Severity::Untranslated, "needs a regex and a URL") };
        // `^/prefix(.*)$` → URL`$1` is a prefix route; anything else needs regex routes.
        let prefix = regex
            .strip_prefix('^')
            .and_then(|r| r.strip_suffix("(.*)$").or_else(|| r.strip_suffix("(.*)")))
            .filter(|p| p.starts_with('/') && !p.contains(['(', '[', '*', '+', '?', '.', '|', '\\', '$']));
        let target_base = target.strip_suffix("$1");
        match (prefix, target_base) {
            (Some(prefix), Some(base)) => {
                let mut args = vec![prefix.to_string(), base.to_string()];
                args.extend(d.args.iter().skip(2).cloned());
                let as_pass = Directive { name: "ProxyPass".into(), args, ..d.clone() };
                self.note(d, Severity::Different, format!("translated as the prefix route {prefix}"));
                self.proxy_pass_route(&as_pass, server, None);
            }
            _ => self.note(d, Severity::Untranslated, "Switchyard has no regex routes (only ^/prefix(.*)$ → URL$1 shapes become prefix routes)"),
        }
    }

    fn proxy_pass_reverse(&mut self, d: &Directive, server: usize, location: Option<&str>) {
        let (path, url) = match (location, &d.args[..]) {
            (Some(l), [url, ..]) => (l.to_string(), url.clone()),
            (None, [path, url, ..]) => (path.clone(), url.clone()),
            _ => return self.note(d, Severity::Untranslated, "needs a path and a URL"),
        };
        let route = self.out.routes.iter_mut().rev().find(|r| r.server == server && r.keys.0.iter().any(|e| e.key == "path" && e.value == Value::Str(path.clone())));
        let Some(route) = route else {
            return self.note(d, Severity::Untranslated, format!("no ProxyPass for {path} before it: Switchyard rewrites a route's own answers"));
        };
        let target = route.keys.0.iter().find(|e| e.key == "backend" || e.key == "balancer").map(|e| e.value.clone());
        let same = match (&target, balancer_name(&url)) {
            (Some(Value::Str(b)), Some(name)) => *b == name,
            (Some(Value::Str(backend)), None) => member_url(&url).is_some_and(|(u, _)| u.trim_end_matches('/') == backend.trim_end_matches('/')),
            _ => false,
        };
        route.keys.set("reverse", Value::Bool(true), Some(source(d)));
        if !same {
            self.note(d, Severity::Different, format!("Switchyard maps the route's own backend or members, not {url}"));
        }
    }

    /// Server-level settings onto routes and members; TLS onto listeners.
    fn finish(&mut self) {
        self.order_locations();
        let servers = self.servers.clone();
        for route in &mut self.out.routes {
            let s = &servers[route.server];
            let proxied = route.keys.has("backend") || route.keys.has("balancer");
            if let Some((on, from)) = &s.preserve_host
                && *on
                && proxied
            {
                route.keys.set("preserve_host", Value::Bool(true), Some(from.clone()));
            }
            if let Some((on, from)) = &s.encoded_slashes
                && *on
                && proxied
            {
                route.keys.set("allow_encoded_slashes", Value::Bool(true), Some(from.clone()));
            }
            if proxied && !s.cookie_domain.is_empty() {
                route.keys.set("reverse_cookie_domain", Value::Raw(inline_map(&s.cookie_domain)), Some(s.cookie_domain[0].2.clone()));
            }
            if proxied && !s.cookie_path.is_empty() {
                route.keys.set("reverse_cookie_path", Value::Raw(inline_map(&s.cookie_path)), Some(s.cookie_path[0].2.clone()));
            }
            if route.keys.has("backend") {
                let https = route.keys.0.iter().any(|e| e.key == "backend" && matches!(&e.value, Value::Str(u) if u.starts_with("https://")));
                default_timeout(&mut route.keys, s);
                if https && let Some(tls) = member_tls(s) {
                    route.keys.set("tls", Value::Raw(tls), None);
                }
            }
        }
        for b in self.out.balancers.values_mut() {
            for m in &mut b.members {
                let s = &servers[m.server];
                default_timeout(&mut m.keys, s);
                let https = m.keys.0.iter().any(|e| e.key == "url" && matches!(&e.value, Value::Str(u) if u.starts_with("https://")));
                if https && let Some(tls) = member_tls(s) {
                    m.keys.set("tls", Value::Raw(tls), None);
                }
            }
        }
        self.tls_listeners(&servers);
        let vhosts_with_routes: Vec<usize> = {
            let mut v: Vec<usize> = self.out.routes.iter().map(|r| r.server).collect();
            v.dedup();
            v
        };
        if vhosts_with_routes.len() > 1 {
            for r in self.out.routes.iter().filter(|r| r.server > 0 && r.server != vhosts_with_routes[0]) {
                let at = r.from.split(": ").next().unwrap_or_default().to_string();
                self.out.findings.push(Finding {
                    at,
                    directive: "ProxyPass".into(),
                    severity: Severity::Different,
                    why: "Switchyard routes on the path alone: the routes of every virtual host are merged, and the first route for a path wins".into(),
                });
            }
        }
        if self.out.listeners.is_empty() {
            self.out.listeners.push(Listener { addr: "0.0.0.0:80".into(), from: "no Listen directive: httpd's default port".into(), tls: None, sni: Vec::new() });
        }
        let names: Vec<String> = self.out.balancers.keys().cloned().collect();
        for route in &self.out.routes {
            let used = route.keys.0.iter().find(|e| e.key == "balancer").and_then(|e| if let Value::Str(b) = &e.value { Some(b.clone()) } else { None });
            if let Some(b) = used
                && !names.contains(&b)
            {
                let at = route.from.split(": ").next().unwrap_or_default().to_string();
                self.out.findings.push(Finding { at, directive: "ProxyPass".into(), severity: Severity::Untranslated, why: format!("balancer://{b} is never defined") });
            }
        }
        self.out.routes.retain(|r| !r.keys.0.iter().any(|e| e.key == "balancer" && matches!(&e.value, Value::Str(b) if !names.contains(b))));
        self.out.balancers.retain(|_, b| !b.members.is_empty());
    }

    /// In httpd the last matching `<Location>` wins, and configs put the more specific block
    /// after the general one; Switchyard's first matching route wins. So the routes from
    /// `<Location>` blocks go first, most specific (longest) first.
    fn order_locations(&mut self) {
        let prefix = |r: &Route| r.keys.0.iter().find(|e| e.key == "path").map(|e| if let Value::Str(p) = &e.value { p.len() } else { 0 }).unwrap_or(0);
        let (mut located, rest): (Vec<Route>, Vec<Route>) = std::mem::take(&mut self.out.routes).into_iter().partition(|r| r.location);
        let before: Vec<String> = located.iter().map(|r| r.from.clone()).collect();
        located.sort_by_key(|r| std::cmp::Reverse(prefix(r)));
        if located.iter().map(|r| r.from.clone()).collect::<Vec<_>>() != before {
            for r in &located {
                let at = r.from.split(": ").next().unwrap_or_default().to_string();
                self.out.findings.push(Finding {
                    at,
                    directive: "Location".into(),
                    severity: Severity::Different,
                    why: "routes from <Location> blocks are ordered most specific first (httpd lets the last matching block win)".into(),
                });
            }
        }
        located.extend(rest);
        self.out.routes = located;
    }

    /// A virtual host with `SSLEngine on` makes its port's listener a TLS one: the first such
    /// host's certificate is the default, the others are chosen by their names (SNI).
    fn tls_listeners(&mut self, servers: &[ServerSettings]) {
        if servers[0].ssl_engine {
            self.out.findings.push(Finding {
                at: servers[0].ssl_cert.as_ref().map(|(_, from)| from.split(": ").next().unwrap_or_default().to_string()).unwrap_or_default(),
                directive: "SSLEngine".into(),
                severity: Severity::Untranslated,
                why: "TLS outside a <VirtualHost>: add [listen.tls] with cert and key to the listener it belongs to".into(),
            });
        }
        for s in servers.iter().skip(1).filter(|s| s.ssl_engine) {
            let (Some((cert, cert_from)), Some((key, _))) = (&s.ssl_cert, &s.ssl_key) else {
                self.out.findings.push(Finding { at: String::new(), directive: "SSLEngine".into(), severity: Severity::Untranslated, why: "a TLS virtual host needs SSLCertificateFile and SSLCertificateKeyFile".into() });
                continue;
            };
            for port in &s.ports {
                let addr = format!("0.0.0.0:{port}");
                let listener = match self.out.listeners.iter_mut().find(|l| l.addr.ends_with(&format!(":{port}"))) {
                    Some(l) => l,
                    None => {
                        self.out.listeners.push(Listener { addr, from: cert_from.clone(), tls: None, sni: Vec::new() });
                        let last = self.out.listeners.len() - 1;
                        &mut self.out.listeners[last]
                    }
                };
                let mut table = Table::default();
                table.set("cert", Value::Str(cert.clone()), Some(cert_from.clone()));
                table.set("key", Value::Str(key.clone()), None);
                if listener.tls.is_none() {
                    listener.tls = Some(table);
                } else if !s.names.is_empty() {
                    let names = format!("[{}]", s.names.iter().map(|n| quote(n)).collect::<Vec<_>>().join(", "));
                    table.0.insert(0, super::model::Entry { key: "names".into(), value: Value::Raw(names), from: None });
                    listener.sni.push(table);
                }
            }
        }
    }
}

fn default_timeout(keys: &mut Table, s: &ServerSettings) {
    if keys.has("timeout") {
        return;
    }
    if let Some((v, from)) = s.proxy_timeout.as_ref().or(s.general_timeout.as_ref()) {
        keys.set("timeout", v.clone(), Some(from.clone()));
    }
}

fn member_tls(s: &ServerSettings) -> Option<String> {
    let mut parts = Vec::new();
    if let Some((ca, _)) = &s.ssl_proxy_ca {
        parts.push(format!("ca = {}", quote(ca)));
    }
    if s.ssl_proxy_verify_off.is_some() {
        parts.push("verify = false".into());
    }
    if let Some((both, _)) = &s.ssl_proxy_client {
        parts.push(format!("cert = {q}, key = {q}", q = quote(both)));
    }
    (!parts.is_empty()).then(|| format!("{{ {} }}", parts.join(", ")))
}

fn inline_map(entries: &[(String, String, String)]) -> String {
    let items: Vec<String> = entries.iter().map(|(k, v, _)| format!("{} = {}", quote(k), quote(v))).collect();
    format!("{{ {} }}", items.join(", "))
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
