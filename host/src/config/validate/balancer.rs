//! `[balancer.NAME]`: members, lbmethod (and shadow), request key, failover and sticky
//! sessions.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use super::health::member_health;
use super::member::member;
use super::plugin::{Kind, plugin_spec};
use super::{Problems, index, key};
use crate::config::locate::Seg;
use crate::config::model::{Balancer, Failover, HashKey, Member, PluginSpec, RouteCookie, StickySession};
use crate::config::raw::{RawBalancer, RawHealthKeys, RawSticky};

pub(super) fn balancers(
    raw: &BTreeMap<String, RawBalancer>,
    templates: &BTreeMap<String, RawHealthKeys>,
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
        let mut members: Vec<Member> = Vec::with_capacity(b.member.len());
        for (i, raw_member) in b.member.iter().enumerate() {
            let at = index(&key(&here, "member"), i);
            let health = member_health(&at, raw_member, templates, base_dir, origin_of, p);
            if let Some(mut m) = member(&at, raw_member, b.tls.as_ref(), base_dir, p) {
                m.health = health;
                members.push(m);
            }
        }
        let sticky = sticky(&here, b, p);
        if sticky.as_ref().is_some_and(|s| s.insert.is_some()) {
            for m in members.iter_mut().filter(|m| m.route.is_empty()) {
                m.route = derived_route(&m.url);
            }
        }
        check_unique(&here, &members, p);
        check_redirects(&here, &members, p);
        let lbmethod = match &b.lbmethod {
            Some(raw) => plugin_spec(&key(&here, "lbmethod"), raw, Kind::LbMethod, base_dir, origin_of, p),
            None => Some(PluginSpec::builtin("byrequests", "{}", origin_of(&key(&here, "lbmethod")))),
        };
        // `None` inside: the shadow is invalid (already reported).
        let shadow = b.shadow.as_ref().map(|raw| plugin_spec(&key(&here, "shadow"), raw, Kind::LbMethod, base_dir, origin_of, p));
        let hashkey = match b.hashkey.as_deref().map(parse_hashkey).transpose() {
            Ok(h) => h.unwrap_or_default(),
            Err(e) => {
                p.push(&key(&here, "hashkey"), e);
                HashKey::None
            }
        };
        let maxattempts = b.maxattempts.unwrap_or_else(|| (b.member.len() as u32).saturating_sub(1));
        let failover = failover(&here, b, p);
        if let (Some(lbmethod), Some(shadow)) = (lbmethod, shadow.map_or(Some(None), |s| s.map(Some))) {
            let record = b.record.as_ref().map(|path| base_dir.join(path));
            out.push(Balancer { name: name.clone(), lbmethod, shadow, record, maxattempts, hashkey, failover, sticky, members });
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

/// A `redirect` must name the route of another member of the same balancer.
fn check_redirects(here: &[Seg], members: &[Member], p: &mut Problems) {
    for (i, m) in members.iter().enumerate() {
        if m.redirect.is_empty() {
            continue;
        }
        let at = key(&index(&key(here, "member"), i), "redirect");
        if m.redirect == m.route {
            p.push(&at, format!("`{}` is this member's own route", m.redirect));
        } else if !members.iter().any(|o| o.route == m.redirect) {
            p.push(&at, format!("no member of this balancer has route `{}`", m.redirect));
        }
    }
}

/// A stable route for a member that has none, when the proxy inserts the route cookie: the
/// first 8 hex digits of the FNV-1a hash of its URL (the same URL always gets the same route,
/// so cookies survive restarts and reordering).
fn derived_route(url: &str) -> String {
    let hash = url.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("{:08x}", hash >> 32)
}

fn failover(here: &[Seg], b: &RawBalancer, p: &mut Problems) -> Failover {
    let defaults = Failover::default();
    let mut failonstatus = Vec::new();
    for (i, &code) in b.failonstatus.iter().flatten().enumerate() {
        match u16::try_from(code) {
            Ok(code) if (100..=599).contains(&code) => failonstatus.push(code),
            _ => p.push(&index(&key(here, "failonstatus"), i), format!("{code} is not an HTTP status (100..599)")),
        }
    }
    Failover {
        nofailover: b.nofailover.unwrap_or(defaults.nofailover),
        forcerecovery: b.forcerecovery.unwrap_or(defaults.forcerecovery),
        failonstatus,
        failontimeout: b.failontimeout.unwrap_or(defaults.failontimeout),
        timeout: b.timeout.map_or(defaults.timeout, |d| d.0),
    }
}

/// `stickysession`, `stickysessionsep` and `scolonpathdelim`.
fn sticky(here: &[Seg], b: &RawBalancer, p: &mut Problems) -> Option<StickySession> {
    let Some(raw) = &b.stickysession else {
        for (k, set) in [("stickysessionsep", b.stickysessionsep.is_some()), ("scolonpathdelim", b.scolonpathdelim.is_some())] {
            if set {
                p.push(&key(here, k), "has no effect without stickysession");
            }
        }
        return None;
    };
    let at = key(here, "stickysession");
    let (name, insert) = match raw {
        RawSticky::Name(name) => (name.as_str(), None),
        RawSticky::Table(t) => {
            let insert = t.insert.unwrap_or(false).then(|| RouteCookie {
                path: t.path.clone().unwrap_or_else(|| "/".to_string()),
                secure: t.secure.unwrap_or(false),
                http_only: t.httponly.unwrap_or(true),
                same_site: t.samesite.clone(),
                max_age: t.max_age.map(|d| d.0),
            });
            let cookie_only = [("path", t.path.is_some()), ("secure", t.secure.is_some()), ("httponly", t.httponly.is_some()), ("samesite", t.samesite.is_some()), ("max_age", t.max_age.is_some())];
            if insert.is_none() {
                for (k, _) in cookie_only.iter().filter(|(_, set)| *set) {
                    p.push(&key(&at, k), "describes the inserted cookie: set insert = true, or leave it out");
                }
            }
            if let Some(path) = &t.path
                && (!path.starts_with('/') || !path.bytes().all(|b| b.is_ascii_graphic() && b != b';')) {
                    p.push(&key(&at, "path"), format!("`{path}` must start with / and hold no spaces or ;"));
                }
            if let Some(same_site) = &t.samesite
                && !["Strict", "Lax", "None"].contains(&same_site.as_str()) {
                    p.push(&key(&at, "samesite"), format!("`{same_site}` must be Strict, Lax or None"));
                }
            (t.name.as_str(), insert)
        }
    };
    let name_at = if matches!(raw, RawSticky::Table(_)) { key(&at, "name") } else { at.clone() };
    let (cookie, param) = match name.split_once('|') {
        Some((cookie, param)) => (cookie.trim(), param.trim()),
        None => (name.trim(), name.trim()),
    };
    for part in [cookie, param] {
        // A cookie name is an RFC 6265 token, the same as a header name.
        if !switchyard_sdk::rules::is_token(part) {
            p.push(&name_at, format!("`{name}`: a session name is a cookie name (letters, digits, !#$%&'*+-.^_`|~), optionally `COOKIE|param`"));
            break;
        }
    }
    let separator = match b.stickysessionsep.as_deref() {
        None => Some('.'),
        Some(off) if off.eq_ignore_ascii_case("off") || off.is_empty() => None,
        Some(sep) => {
            let mut chars = sep.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if c.is_ascii_graphic() => Some(c),
                _ => {
                    p.push(&key(here, "stickysessionsep"), format!("`{sep}` must be one character such as \".\" or \"!\", or \"Off\""));
                    None
                }
            }
        }
    };
    if insert.is_some() && separator.is_some_and(|c| !is_cookie_value_byte(c as u8)) {
        p.push(&key(here, "stickysessionsep"), "cannot appear in a cookie value, so the inserted cookie could not carry it");
    }
    Some(StickySession {
        cookie: cookie.to_string(),
        param: param.to_string(),
        separator,
        scolon_path_delim: b.scolonpathdelim.unwrap_or(false),
        insert,
    })
}

/// RFC 6265 cookie-octet.
fn is_cookie_value_byte(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
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

#[cfg(test)]
mod tests {
    use super::super::member::is_route_token;
    use super::*;

    #[test]
    fn hashkeys() {
        assert_eq!(parse_hashkey("client_ip"), Ok(HashKey::ClientIp));
        assert_eq!(parse_hashkey("cookie:sid"), Ok(HashKey::Cookie("sid".into())));
        assert!(matches!(parse_hashkey("header:X-User"), Ok(HashKey::Header(_))));
        assert!(parse_hashkey("moon").is_err());
    }

    #[test]
    fn derived_routes_are_stable_tokens() {
        let r = derived_route("http://10.0.0.1:8080");
        assert_eq!(r, derived_route("http://10.0.0.1:8080"));
        assert_ne!(r, derived_route("http://10.0.0.2:8080"));
        assert!(is_route_token(&r) && r.len() == 8);
    }
}
