//! `[[route]]`: prefixes, what they lead to, and the header rewrites on the way.

use std::collections::BTreeMap;
use std::path::Path;

use super::member::{connection, parse_member_url};
use super::plugin::{Kind, plugin_spec};
use super::{Problems, index, key};
use crate::config::locate::Seg;
use crate::config::model::{Member, PluginSpec, Route, RouteTarget};
use crate::config::raw::RawRoute;

pub(super) fn routes(
    raw: &[RawRoute],
    balancer_names: &[&String],
    base_dir: &Path,
    origin_of: &dyn Fn(&[Seg]) -> String,
    p: &mut Problems,
) -> Vec<Route> {
    let mut out = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let here = index(&[Seg::Key("route".into())], i);
        if !r.path.starts_with('/') {
            p.push(&key(&here, "path"), format!("`{}` must start with /", r.path));
        } else {
            canonical_prefix(&key(&here, "path"), &r.path, p);
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
                Ok((authority, path, https)) => {
                    let tls = crate::config::tls::member_tls(&here, https, authority.host(), r.tls.as_ref(), base_dir, p);
                    RouteTarget::Backend(Box::new(Member::single_backend(url, authority, path, connection, tls)))
                }
                Err(e) => {
                    p.push(&key(&here, "backend"), e);
                    continue;
                }
            }
        };
        let rewrite = rewrite_chain(&here, r, base_dir, origin_of, p);
        if matches!(target, RouteTarget::Exclude) && !rewrite.is_empty() {
            p.push(&here, "an excluded route proxies nothing: it cannot rewrite headers");
        }
        let upgrade = crate::config::edge::upgrades(&here, r.upgrade.as_ref(), p);
        if matches!(target, RouteTarget::Exclude) && (r.nocanon || r.allow_encoded_slashes) {
            p.push(&here, "an excluded route forwards nothing: nocanon and allow_encoded_slashes do not apply");
        }
        out.push(Route {
            prefix: r.path.clone(),
            target,
            preserve_host: r.preserve_host,
            allow_encoded_slashes: r.allow_encoded_slashes,
            nocanon: r.nocanon,
            upgrade,
            rewrite,
        });
    }
    out
}

/// Requests are routed on their canonical path, so a prefix spelled any other way would
/// never match: say how to write it.
fn canonical_prefix(here: &[Seg], prefix: &str, p: &mut Problems) {
    match crate::canon::canonicalize(prefix) {
        Ok(c) if c.as_str() == prefix => {}
        Ok(c) => p.push(here, format!("`{prefix}` is not in canonical form (requests are routed on their canonical path): write `{}`", c.as_str())),
        Err(e) => p.push(here, format!("`{prefix}`: {e}")),
    }
}


/// The route's rewrite plugins: the default ProxyPassReverse plugin first when `reverse` or a
/// cookie map is set, then the `rewrite` list in order.
fn rewrite_chain(here: &[Seg], r: &RawRoute, base_dir: &Path, origin_of: &dyn Fn(&[Seg]) -> String, p: &mut Problems) -> Vec<PluginSpec> {
    let mut chain = Vec::new();
    let domains = r.reverse_cookie_domain.clone().unwrap_or_default();
    let paths = r.reverse_cookie_path.clone().unwrap_or_default();
    check_map(&key(here, "reverse_cookie_domain"), &domains, |d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_graphic() && b != b';'), "a domain", p);
    check_map(&key(here, "reverse_cookie_path"), &paths, |v| v.starts_with('/') && v.bytes().all(|b| b.is_ascii_graphic() && b != b';'), "a path starting with /", p);
    let reverse = r.reverse.unwrap_or(false);
    if reverse || !domains.is_empty() || !paths.is_empty() {
        let config = serde_json::json!({ "reverse": reverse, "cookie_domain": domains, "cookie_path": paths });
        let at = if r.reverse.is_some() { key(here, "reverse") } else { here.to_vec() };
        chain.push(PluginSpec::builtin("proxypassreverse", &config.to_string(), origin_of(&at)));
    }
    for (i, raw) in r.rewrite.iter().flatten().enumerate() {
        if let Some(spec) = plugin_spec(&index(&key(here, "rewrite"), i), raw, Kind::Rewrite, base_dir, origin_of, p) {
            chain.push(spec);
        }
    }
    chain
}

fn check_map(here: &[Seg], map: &BTreeMap<String, String>, valid: impl Fn(&str) -> bool, what: &str, p: &mut Problems) {
    for (from, to) in map {
        for side in [from, to] {
            if !valid(side) {
                p.push(&key(here, from), format!("`{side}` is not {what}"));
            }
        }
    }
}
