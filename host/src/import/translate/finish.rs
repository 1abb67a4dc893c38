//! The last pass of the translation, once every directive is read: server-wide settings
//! onto the routes and members they apply to, TLS virtual hosts onto listeners, `<Location>`
//! routes put in Switchyard's order, and references checked.

use super::super::model::{Entry, Listener, Route, Table, Value, quote};
use super::super::{Finding, Severity};
use super::{ServerSettings, Walker};

impl Walker {
    /// Server-level settings onto routes and members; TLS onto listeners.
    pub(super) fn finish(&mut self) {
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
                    table.0.insert(0, Entry { key: "names".into(), value: Value::Raw(names), from: None });
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

