//! `proxypassreverse`: httpd's ProxyPassReverse, ProxyPassReverseCookieDomain and
//! ProxyPassReverseCookiePath as a header-rewrite plugin.
//!
//! Configured with `{"reverse": true, "cookie_domain": {"backend.internal": "www.example.com"},
//! "cookie_path": {"/app/": "/"}}`, every key optional (`reverse` defaults to true):
//!
//! - `reverse`: on responses, a `Location`, `Content-Location` or `URI` that points into one
//!   of the route's targets (its backend, or any member of its balancer) is made to point at
//!   the proxy: `http://10.0.0.1:9001/app/x?q` with target `http://10.0.0.1:9001/app/` on the
//!   route `/images/` reached as `www.example.com` becomes
//!   `http://www.example.com/images/x?q`. On requests, a WebDAV `Destination` that points into
//!   the route's public URL is mapped the other way, to the member the request goes to.
//! - `cookie_domain`: internal → public `Domain=` of every `Set-Cookie`.
//! - `cookie_path`: internal → public `Path=` of every `Set-Cookie`, by prefix: `/app/` →
//!   `/shop/` makes `Path=/app/x` `Path=/shop/x`.
//!
//! The plugin asks only for the headers it rewrites, so the host calls it only for the
//! messages that carry them.

mod cookie;
mod url;

use std::collections::BTreeMap;

use serde::Deserialize;
use switchyard_sdk::{Config, Context, Edit, Header, HeaderRewrite, Interest, PhaseInterest};

use cookie::CookieMaps;
use url::{Url, join, under};

/// Response headers holding a URL that `reverse` maps back to the proxy (httpd's list).
const RESPONSE_URL_HEADERS: [&str; 3] = ["location", "content-location", "uri"];
/// Request headers holding a URL that `reverse` maps to the member.
const REQUEST_URL_HEADERS: [&str; 1] = ["destination"];
const SET_COOKIE: &str = "set-cookie";

/// The plugin's config table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default = "yes")]
    reverse: bool,
    #[serde(default)]
    cookie_domain: BTreeMap<String, String>,
    #[serde(default)]
    cookie_path: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

/// The configured rewrite.
#[derive(Debug)]
pub struct ProxyPassReverse {
    reverse: bool,
    cookies: CookieMaps,
}

impl ProxyPassReverse {
    fn from_raw(raw: RawConfig) -> Result<Self, String> {
        let mut cookies = CookieMaps::default();
        for (from, to) in raw.cookie_domain {
            for side in [&from, &to] {
                if side.is_empty() || !side.bytes().all(|b| b.is_ascii_graphic() && b != b';' && b != b',') {
                    return Err(format!("cookie_domain: {side:?} is not a domain"));
                }
            }
            cookies.domains.push((from, to));
        }
        for (from, to) in raw.cookie_path {
            for side in [&from, &to] {
                if !side.starts_with('/') || !side.bytes().all(|b| b.is_ascii_graphic() && b != b';') {
                    return Err(format!("cookie_path: {side:?} is not a path starting with `/`"));
                }
            }
            // Kept longest internal path first, so the longest match wins whatever order the
            // table came in (inserted in place: a sort would double the component's code).
            let len = |p: &str| p.trim_end_matches('/').len();
            let at = cookies.paths.iter().position(|(f, _)| len(f) < len(&from)).unwrap_or(cookies.paths.len());
            cookies.paths.insert(at, (from, to));
        }
        Ok(Self { reverse: raw.reverse, cookies })
    }

    /// A response URL mapped back to the proxy, when it points into one of the targets (the
    /// first that matches, in config order).
    fn to_public(&self, value: &str, context: &Context) -> Option<String> {
        let url = Url::parse(value)?;
        let rest = context.targets.iter().find_map(|target| {
            let target = Url::parse(target)?;
            if target.same_origin(&url) { under(url.path, target.path) } else { None }
        })?;
        let mut out = String::with_capacity(value.len() + context.public_host.len() + context.public_prefix.len() + 8);
        if !context.public_host.is_empty() {
            out.push_str(if context.public_scheme.is_empty() { "http" } else { &context.public_scheme });
            out.push_str("://");
            out.push_str(&context.public_host);
        }
        join(&context.public_prefix, rest, &mut out);
        out.push_str(url.tail);
        Some(out)
    }

    /// A request URL (absolute, or a path) mapped to the member, when it points into the
    /// route's public URL.
    fn to_member(&self, value: &str, context: &Context) -> Option<String> {
        let member = Url::parse(&context.member)?;
        if value.starts_with('/') && !value.starts_with("//") {
            let end = value.find(['?', '#']).unwrap_or(value.len());
            let rest = under(&value[..end], &context.public_prefix)?;
            let mut out = String::with_capacity(value.len() + member.path.len());
            join(member.path, rest, &mut out);
            out.push_str(&value[end..]);
            return Some(out);
        }
        let url = Url::parse(value)?;
        let public = Url::origin(&context.public_scheme, &context.public_host)?;
        if !public.same_origin(&url) {
            return None;
        }
        let rest = under(url.path, &context.public_prefix)?;
        let mut out = String::with_capacity(value.len() + context.member.len());
        out.push_str(member.scheme);
        out.push_str("://");
        out.push_str(member.authority);
        join(member.path, rest, &mut out);
        out.push_str(url.tail);
        Some(out)
    }
}

impl HeaderRewrite for ProxyPassReverse {
    fn configure(config: &Config) -> Result<Self, String> {
        Self::from_raw(config.parse()?)
    }

    fn interest(&self) -> Interest {
        let mut response = Vec::with_capacity(4);
        let mut request = Vec::with_capacity(1);
        if self.reverse {
            response.extend(RESPONSE_URL_HEADERS);
            request.extend(REQUEST_URL_HEADERS);
        }
        if !self.cookies.is_empty() {
            response.push(SET_COOKIE);
        }
        Interest { request: PhaseInterest::headers(request), response: PhaseInterest::headers(response) }
    }

    fn on_request(&mut self, context: &Context, _method: &str, _path: &str, headers: &[Header]) -> Vec<Edit> {
        let mut edits = Vec::new();
        if self.reverse {
            for name in REQUEST_URL_HEADERS {
                rewrite_all(headers, name, &mut edits, |v| self.to_member(v, context));
            }
        }
        edits
    }

    fn on_response(&mut self, context: &Context, _status: u16, headers: &[Header]) -> Vec<Edit> {
        let mut edits = Vec::new();
        if self.reverse {
            for name in RESPONSE_URL_HEADERS {
                rewrite_all(headers, name, &mut edits, |v| self.to_public(v, context));
            }
        }
        if !self.cookies.is_empty() {
            rewrite_all(headers, SET_COOKIE, &mut edits, |v| self.cookies.rewrite(v));
        }
        edits
    }
}

/// Rewrites every value of header `name` with `map` (`None`: unchanged). When any changes,
/// the edits replace all of them, in order: `set` the first, `append` the rest.
///
/// A header holding a value that was not valid UTF-8 (the host passes U+FFFD for its bad
/// bytes) is left alone: writing it back would damage it.
fn rewrite_all(headers: &[Header], name: &str, edits: &mut Vec<Edit>, map: impl Fn(&str) -> Option<String>) {
    let values = || headers.iter().filter(|h| h.is(name)).map(|h| h.value.as_str());
    if values().any(|v| v.contains('\u{FFFD}')) {
        return;
    }
    let changed: Vec<(usize, String)> = values().enumerate().filter_map(|(i, v)| Some((i, map(v)?))).collect();
    if changed.is_empty() {
        return;
    }
    let mut changed = changed.into_iter().peekable();
    for (i, value) in values().enumerate() {
        let value = match changed.next_if(|(j, _)| *j == i) {
            Some((_, new)) => new,
            None => value.to_string(),
        };
        edits.push(if i == 0 { Edit::set(name, value) } else { Edit::append(name, value) });
    }
}

switchyard_sdk::export_header_rewrite!(ProxyPassReverse);

// Each call gets the blocks the last one freed (the candidate table, the answer's lists)
// instead of going to dlmalloc for them.
#[global_allocator]
static ALLOCATOR: switchyard_sdk::Recycling = switchyard_sdk::Recycling::new();

#[cfg(test)]
mod tests;
