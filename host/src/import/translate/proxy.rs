//! The reverse-proxy directives proper: `<Proxy balancer://>`, `BalancerMember`, `ProxySet`,
//! and the `ProxyPass` family.

use super::super::model::{Balancer, Member, Route, Table, Value};
use super::super::params::{Param, param, seconds};
use super::super::parse::Directive;
use super::super::Severity;
use super::{Walker, balancer_name, member_url, source};

impl Walker {
    pub(super) fn proxy_section(&mut self, d: &Directive, server: usize) {
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

    pub(super) fn balancer_member(&mut self, d: &Directive, within: Option<&str>, server: usize) {
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

    pub(super) fn proxy_set(&mut self, d: &Directive, within: Option<&str>, server: usize) {
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
        let translated = match k.eq_ignore_ascii_case("timeout") {
            true => seconds(v).map_or_else(|| Param::Note(Severity::Untranslated, format!("timeout={v}: not a number of seconds")), |s| Param::Balancer("timeout", s)),
            false => param(k, v),
        };
        match translated {
            Param::Balancer(key, value) => self.balancer(name, d, server).keys.set(key, value, Some(source(d))),
            Param::Note(severity, why) => self.note(d, severity, why),
            _ => self.note(d, Severity::Untranslated, format!("{k}: a worker parameter, not a balancer one: put it on the BalancerMembers")),
        }
    }

    pub(super) fn proxy_pass(&mut self, d: &Directive, server: usize, location: Option<&str>) {
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

    pub(super) fn proxy_pass_match(&mut self, d: &Directive, server: usize) {
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

    pub(super) fn proxy_pass_reverse(&mut self, d: &Directive, server: usize, location: Option<&str>) {
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
}
