//! `[[balancer.NAME.member]]` and a route's single `backend`: URLs, weights, flags and
//! connection settings.

use std::path::Path;
use std::time::Duration;

use super::{Problems, key};
use crate::config::tls::{RawMemberTls, member_tls};
use crate::config::locate::Seg;
use crate::config::model::{ConnectionSettings, DEFAULT_RETRY, Member};
use crate::config::raw::RawMember;
use crate::config::status::StatusFlags;
use crate::config::units::DurationValue;

/// httpd's defaults: `timeout` is ProxyTimeout (60 s), `retry` 60 s.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_MAX_CONNECTIONS: u32 = 1024;
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether `v` can be a route. A route travels in a cookie's value, so it is what RFC 6265
/// lets a cookie value hold: visible ASCII but `"` `,` `;` `\` (no spaces, no controls).
pub(super) fn is_route_token(v: &str) -> bool {
    !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic() && !b"\",;\\".contains(&b))
}

pub(super) fn member(here: &[Seg], m: &RawMember, balancer_tls: Option<&RawMemberTls>, base_dir: &Path, p: &mut Problems) -> Option<Member> {
    let (authority, base_path, https) = match parse_member_url(&m.url) {
        Ok(v) => v,
        Err(e) => {
            p.push(&key(here, "url"), e);
            return None;
        }
    };
    let lbfactor = lbfactor(m.loadfactor.unwrap_or(1.0)).unwrap_or_else(|e| {
        p.push(&key(here, "loadfactor"), e);
        100
    });
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
        if let Some(v) = value
            && !is_route_token(v) {
                p.push(&key(here, field), format!("`{v}` must be visible ASCII with no space, quote, comma, semicolon or backslash (it travels in a cookie)"));
            }
    }
    let connection = connection(here, [m.timeout, m.connectiontimeout, m.ttl, m.acquire], m.max, p);
    // The balancer's tls keys are defaults for its https members; on an http member only its
    // own keys are an error.
    let tls_keys = match (&m.tls, https) {
        (Some(own), _) => Some(own.over(balancer_tls)),
        (None, true) => balancer_tls.cloned(),
        (None, false) => None,
    };
    let tls = member_tls(here, https, authority.host(), tls_keys.as_ref(), base_dir, p);
    let ping = m.ping.map(|d| d.0);
    if ping.is_some_and(|d| d.is_zero()) {
        p.push(&key(here, "ping"), "must be more than 0 (leave it out to send no probe)");
    }
    Some(Member {
        url: m.url.clone(),
        authority,
        base_path,
        lbfactor,
        lbset: lbset.min(99),
        status,
        retry: m.retry.map_or(DEFAULT_RETRY, |d| d.0),
        route: m.route.clone().unwrap_or_default(),
        redirect: m.redirect.clone().unwrap_or_default(),
        ping,
        connection,
        health: None,
        upgrade: crate::config::edge::upgrades(here, m.upgrade.as_ref(), p),
        tls,
    })
}

/// A loadfactor (1..100, decimals allowed) as lbfactor: httpd keeps loadfactor × 100,
/// truncated, and bit-exact sequences depend on it. The one check, for the config file and
/// the balancer manager alike.
pub fn lbfactor(loadfactor: f64) -> Result<u32, String> {
    if (1.0..=100.0).contains(&loadfactor) {
        Ok((loadfactor * 100.0) as u32)
    } else {
        Err(format!("must be between 1 and 100 (decimals allowed), got {loadfactor}"))
    }
}

/// Connection settings from `[timeout, connectiontimeout, ttl, acquire]` and `max`.
pub(super) fn connection(here: &[Seg], durations: [Option<DurationValue>; 4], max: Option<u32>, p: &mut Problems) -> ConnectionSettings {
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

/// Splits `http://host:port/path` (or `https://…`) into its authority (with the port made
/// explicit), path, and whether it is https.
pub(super) fn parse_member_url(url: &str) -> Result<(http::uri::Authority, String, bool), String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(format!("`{url}` must be an absolute http:// or https:// URL")),
    };
    let Some(authority) = uri.authority() else {
        return Err(format!("`{url}` has no host"));
    };
    if authority.as_str().contains('@') {
        return Err(format!("`{url}`: credentials in member URLs are not supported"));
    }
    if uri.query().is_some() {
        return Err(format!("`{url}`: a member URL cannot carry a query"));
    }
    if url.contains('#') {
        return Err(format!("`{url}`: a member URL cannot carry a fragment"));
    }
    if authority.host().is_empty() {
        return Err(format!("`{url}` has no host"));
    }
    // A port the URL spells but that does not fit 16 bits reads as none: not the default.
    let spelled_port = authority.as_str().get(authority.host().len()..).is_some_and(|rest| rest.len() > 1);
    let port = match authority.port() {
        None if spelled_port => return Err(format!("`{url}`: the port must be between 1 and 65535")),
        None => if https { 443 } else { 80 },
        Some(p) => match p.as_u16() {
            0 => return Err(format!("`{url}`: the port must be between 1 and 65535")),
            port => port,
        },
    };
    let authority: http::uri::Authority = format!("{}:{port}", authority.host())
        .parse()
        .map_err(|e| format!("`{url}`: {e}"))?;
    Ok((authority, uri.path().to_string(), https))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_urls() {
        let (a, path, https) = parse_member_url("http://127.0.0.1:9001").expect("valid");
        assert_eq!((a.as_str(), path.as_str(), https), ("127.0.0.1:9001", "/", false));
        let (a, path, _) = parse_member_url("http://example.com/app/").expect("valid");
        assert_eq!((a.as_str(), path.as_str()), ("example.com:80", "/app/"));
        let (a, _, https) = parse_member_url("https://x").expect("valid");
        assert_eq!((a.as_str(), https), ("x:443", true));
        assert!(parse_member_url("ftp://x").is_err());
        assert!(parse_member_url("/just/a/path").is_err());
        assert!(parse_member_url("http://x/?q=1").is_err());
        for bad in ["http://:80", "http://x:0", "http://x:99999", "http://x:1/#f", "http://x:1#f"] {
            assert!(parse_member_url(bad).is_err(), "{bad}");
        }
    }
}
