//! ProxyPassReverseCookieDomain and ProxyPassReverseCookiePath: the `Domain` and `Path`
//! attributes of a `Set-Cookie` value, rewritten in place.

use crate::url::move_path;

/// The maps from internal to public values.
#[derive(Debug, Default)]
pub(crate) struct CookieMaps {
    /// Internal domain → public domain. Matched whole, ignoring case and a leading dot.
    pub(crate) domains: Vec<(String, String)>,
    /// Internal path → public path, longest internal path first. Matched as a prefix at a
    /// segment boundary; the rest of the path is kept.
    pub(crate) paths: Vec<(String, String)>,
}

impl CookieMaps {
    pub(crate) fn is_empty(&self) -> bool {
        self.domains.is_empty() && self.paths.is_empty()
    }

    /// `cookie` with its mapped `Domain` and `Path` attributes rewritten, or `None` when
    /// nothing maps. Everything else — the name and value, other attributes, spacing, case,
    /// separators — is kept byte for byte.
    pub(crate) fn rewrite(&self, cookie: &str) -> Option<String> {
        let mut out: Option<String> = None;
        // Where the part of `cookie` not yet copied to `out` starts.
        let mut copied = 0;
        let mut start = match cookie.find(';') {
            Some(i) => i + 1, // the first part is the cookie's name=value: never an attribute
            None => return None,
        };
        while start <= cookie.len() {
            let end = cookie[start..].find(';').map_or(cookie.len(), |i| start + i);
            if let Some((at, value)) = attribute_value(cookie, start, end) {
                let mut replacement = String::new();
                let mapped = match attribute_name(&cookie[start..at]) {
                    Some(Attr::Domain) => self.domain(value, &mut replacement),
                    Some(Attr::Path) => self.path(value, &mut replacement),
                    None => false,
                };
                if mapped {
                    let out = out.get_or_insert_with(|| String::with_capacity(cookie.len() + 16));
                    out.push_str(&cookie[copied..at]);
                    out.push_str(&replacement);
                    copied = at + value.len();
                }
            }
            start = end + 1;
        }
        let mut out = out?;
        out.push_str(&cookie[copied..]);
        Some(out)
    }

    fn domain(&self, value: &str, out: &mut String) -> bool {
        let bare = value.trim_start_matches('.');
        match self.domains.iter().find(|(from, _)| from.trim_start_matches('.').eq_ignore_ascii_case(bare)) {
            Some((_, to)) => {
                out.push_str(to);
                true
            }
            None => false,
        }
    }

    fn path(&self, value: &str, out: &mut String) -> bool {
        self.paths.iter().any(|(from, to)| move_path(value, from, to, out))
    }
}

enum Attr {
    Domain,
    Path,
}

/// The attribute an `attribute-name` (spaces around it allowed) names, if it is one we map.
fn attribute_name(name: &str) -> Option<Attr> {
    let name = name.trim_matches([' ', '\t']);
    let name = name.strip_suffix('=').unwrap_or(name).trim_end_matches([' ', '\t']);
    if name.eq_ignore_ascii_case("domain") {
        Some(Attr::Domain)
    } else if name.eq_ignore_ascii_case("path") {
        Some(Attr::Path)
    } else {
        None
    }
}

/// For the attribute in `cookie[start..end]`: the offset where its value starts and the
/// value without surrounding spaces, or `None` when it has no `=` or an empty value.
fn attribute_value(cookie: &str, start: usize, end: usize) -> Option<(usize, &str)> {
    let eq = start + cookie[start..end].find('=')?;
    let raw = &cookie[eq + 1..end];
    let value = raw.trim_start_matches([' ', '\t']);
    let at = eq + 1 + (raw.len() - value.len());
    let value = value.trim_end_matches([' ', '\t']);
    // An empty Path or Domain means "the default" (RFC 6265): nothing to map.
    (!value.is_empty()).then_some((at, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maps(domains: &[(&str, &str)], paths: &[(&str, &str)]) -> CookieMaps {
        let own = |v: &[(&str, &str)]| v.iter().map(|&(a, b)| (a.to_string(), b.to_string())).collect();
        CookieMaps { domains: own(domains), paths: own(paths) }
    }

    #[test]
    fn rewrites_domain_and_path_keeping_everything_else() {
        let m = maps(&[("backend.internal", "www.example.com")], &[("/app/", "/shop/")]);
        assert_eq!(
            m.rewrite("sid=abc.1; Domain=backend.internal; Path=/app/x; HttpOnly").as_deref(),
            Some("sid=abc.1; Domain=www.example.com; Path=/shop/x; HttpOnly")
        );
        assert_eq!(m.rewrite("theme=dark;path=/;domain=other.example"), None);
        assert_eq!(
            m.rewrite("a=1;PATH=/app/;DOMAIN=BACKEND.INTERNAL;secure").as_deref(),
            Some("a=1;PATH=/shop/;DOMAIN=www.example.com;secure")
        );
    }

    #[test]
    fn odd_spacing_and_case() {
        let m = maps(&[("backend.internal", "www.example.com")], &[("/app", "/")]);
        assert_eq!(
            m.rewrite("a=b ;  pAtH  =  /app/x  ;\tDomain\t=\t.Backend.Internal\t; Max-Age=60").as_deref(),
            Some("a=b ;  pAtH  =  /x  ;\tDomain\t=\twww.example.com\t; Max-Age=60")
        );
        assert_eq!(m.rewrite("a=b;path=/app").as_deref(), Some("a=b;path=/"));
        assert_eq!(m.rewrite("a=b;path=/application"), None, "a segment boundary");
    }

    #[test]
    fn the_cookie_itself_is_never_an_attribute() {
        let m = maps(&[("d", "e")], &[("/", "/p/")]);
        assert_eq!(m.rewrite("path=/x"), None);
        assert_eq!(m.rewrite("Domain=d; Secure"), None);
        assert_eq!(m.rewrite("path=/x; Path=/y").as_deref(), Some("path=/x; Path=/p/y"));
        assert_eq!(m.rewrite("a=\"Path=/x; domain=d\"").as_deref(), None);
    }

    #[test]
    fn attributes_without_values_and_empty_values() {
        let m = maps(&[("d", "e")], &[("/", "/p/")]);
        assert_eq!(m.rewrite("a=b; Path; Domain"), None);
        assert_eq!(m.rewrite("a=b; Path=; Domain="), None);
        assert_eq!(m.rewrite("a=b;"), None);
        assert_eq!(m.rewrite("a=b;;Path=/;;").as_deref(), Some("a=b;;Path=/p/;;"));
    }

    #[test]
    fn longest_internal_path_wins() {
        let m = maps(&[], &[("/app/admin/", "/admin/"), ("/app/", "/shop/"), ("/", "/root/")]);
        assert_eq!(m.rewrite("a=1; Path=/app/admin/x").as_deref(), Some("a=1; Path=/admin/x"));
        assert_eq!(m.rewrite("a=1; Path=/app/x").as_deref(), Some("a=1; Path=/shop/x"));
        assert_eq!(m.rewrite("a=1; Path=/other").as_deref(), Some("a=1; Path=/root/other"));
    }

    #[test]
    fn domains_match_whole_not_by_prefix() {
        let m = maps(&[("backend.internal", "www.example.com")], &[]);
        assert_eq!(m.rewrite("a=1; Domain=backend.internal.evil.net"), None);
        assert_eq!(m.rewrite("a=1; Domain=internal"), None);
        assert_eq!(m.rewrite("a=1; Domain=.backend.internal").as_deref(), Some("a=1; Domain=www.example.com"));
    }
}
