//! Just enough URL handling for ProxyPassReverse: split an absolute URL into its parts,
//! compare origins, and move a path from one base to another.

/// An absolute URL, borrowed from the text it was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Url<'a> {
    pub(crate) scheme: &'a str,
    /// `host[:port]` as written.
    pub(crate) authority: &'a str,
    host: &'a str,
    port: Option<u16>,
    /// The path, possibly empty.
    pub(crate) path: &'a str,
    /// `?query` and/or `#fragment`, possibly empty.
    pub(crate) tail: &'a str,
}

impl<'a> Url<'a> {
    /// Parses `scheme://host[:port][/path][?query][#fragment]`. `None` for anything else,
    /// including URLs with credentials (never compared equal to a target).
    pub(crate) fn parse(s: &'a str) -> Option<Self> {
        let (scheme, rest) = s.split_once("://")?;
        let mut bytes = scheme.bytes();
        if !bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
            || !bytes.all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        {
            return None;
        }
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, rest) = rest.split_at(end);
        let (host, port) = split_authority(authority)?;
        let end = rest.find(['?', '#']).unwrap_or(rest.len());
        let (path, tail) = rest.split_at(end);
        Some(Self { scheme, authority, host, port, path, tail })
    }

    /// The origin `scheme://authority`, with no path: for comparing with [`same_origin`].
    ///
    /// [`same_origin`]: Url::same_origin
    pub(crate) fn origin(scheme: &'a str, authority: &'a str) -> Option<Self> {
        let (host, port) = split_authority(authority)?;
        Some(Self { scheme, authority, host, port, path: "", tail: "" })
    }

    /// Whether both URLs name the same server: scheme and host compared ignoring case, a
    /// missing port standing for the scheme's default.
    pub(crate) fn same_origin(&self, other: &Url<'_>) -> bool {
        self.scheme.eq_ignore_ascii_case(other.scheme)
            && self.host.eq_ignore_ascii_case(other.host)
            && self.effective_port() == other.effective_port()
    }

    fn effective_port(&self) -> Option<u16> {
        self.port.or_else(|| default_port(self.scheme))
    }
}

/// The port a scheme implies.
fn default_port(scheme: &str) -> Option<u16> {
    let is = |s: &str| scheme.eq_ignore_ascii_case(s);
    if is("http") || is("ws") {
        Some(80)
    } else if is("https") || is("wss") {
        Some(443)
    } else {
        None
    }
}

/// `host[:port]` (the host may be a bracketed IPv6 address) into host and port. An empty
/// port (`host:`) is no port.
pub(crate) fn split_authority(authority: &str) -> Option<(&str, Option<u16>)> {
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let port_at = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => i,
        _ => return Some((authority, None)),
    };
    let (host, port) = (&authority[..port_at], &authority[port_at + 1..]);
    if host.is_empty() {
        return None;
    }
    if port.is_empty() {
        return Some((host, None));
    }
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((host, Some(port.parse().ok()?)))
}

/// What is left of `path` under `base`, or `None` when `path` is not under it.
///
/// `base` matches at a segment boundary, a trailing slash on it ignored: `/app` and `/app/`
/// both cover `/app` (rest ``), `/app/` (rest `/`) and `/app/x` (rest `/x`) but not `/apple`;
/// `` and `/` cover every path. Paths compare with case.
pub(crate) fn under<'p>(path: &'p str, base: &str) -> Option<&'p str> {
    let rest = path.strip_prefix(base.trim_end_matches('/'))?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

/// Appends `rest` (from [`under`]) moved under `to`: joined with exactly one slash
/// (`/x` under `/images/` is `/images/x`); an empty rest gives `to` as written, or `/` when
/// `to` is empty.
pub(crate) fn join(to: &str, rest: &str, out: &mut String) {
    if rest.is_empty() {
        out.push_str(if to.is_empty() { "/" } else { to });
    } else {
        out.push_str(to.trim_end_matches('/'));
        out.push_str(rest);
    }
}

/// [`under`] then [`join`]: moves `path` from under `from` to under `to`, or returns false
/// (appending nothing) when `path` is not under `from`.
pub(crate) fn move_path(path: &str, from: &str, to: &str, out: &mut String) -> bool {
    match under(path, from) {
        Some(rest) => {
            join(to, rest, out);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_parts() {
        let u = Url::parse("http://10.0.0.1:9001/app/x?q=1#f").expect("valid");
        assert_eq!((u.scheme, u.authority, u.path, u.tail), ("http", "10.0.0.1:9001", "/app/x", "?q=1#f"));
        let u = Url::parse("HTTPS://Example.COM").expect("valid");
        assert_eq!((u.authority, u.path, u.tail), ("Example.COM", "", ""));
        let u = Url::parse("http://h?x").expect("valid");
        assert_eq!((u.path, u.tail), ("", "?x"));
        let u = Url::parse("http://[::1]:8080/a").expect("valid");
        assert_eq!((u.host, u.port), ("[::1]", Some(8080)));
        for bad in ["/relative", "//host/x", "http:/x", "1http://h/", "http://", "http://u:p@h/", "http://h:x/", "http://h:99999/"] {
            assert_eq!(Url::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn origins_ignore_case_and_default_ports() {
        let same = |a, b| Url::parse(a).expect(a).same_origin(&Url::parse(b).expect(b));
        assert!(same("http://Backend:80/x", "HTTP://backend/"));
        assert!(same("https://h", "https://h:443/"));
        assert!(same("http://h:", "http://h:80"));
        assert!(same("http://[::1]", "http://[::1]:80"));
        assert!(!same("http://h", "https://h"));
        assert!(!same("http://h:8080", "http://h"));
        assert!(!same("http://h1", "http://h2"));
        assert!(!same("foo://h", "foo://h:80"));
    }

    #[test]
    fn moves_paths_at_segment_boundaries_with_one_slash() {
        let moved = |path, from, to| {
            let mut out = String::new();
            move_path(path, from, to, &mut out).then_some(out)
        };
        assert_eq!(moved("/app/x", "/app/", "/images/").as_deref(), Some("/images/x"));
        assert_eq!(moved("/app/x", "/app", "/images").as_deref(), Some("/images/x"));
        assert_eq!(moved("/app/x", "/app/", "/images").as_deref(), Some("/images/x"));
        assert_eq!(moved("/app/x", "/app", "/images/").as_deref(), Some("/images/x"));
        assert_eq!(moved("/app/", "/app/", "/images/").as_deref(), Some("/images/"));
        assert_eq!(moved("/app", "/app/", "/images/").as_deref(), Some("/images/"));
        assert_eq!(moved("/apple", "/app", "/images/"), None);
        assert_eq!(moved("/x/y", "", "/images/").as_deref(), Some("/images/x/y"));
        assert_eq!(moved("", "", "/images/").as_deref(), Some("/images/"));
        assert_eq!(moved("/x", "/", "/").as_deref(), Some("/x"));
        assert_eq!(moved("/app/x", "/app/", "/").as_deref(), Some("/x"));
        assert_eq!(moved("/app/x", "/app/", "").as_deref(), Some("/x"));
        assert_eq!(moved("/app", "/app", "").as_deref(), Some("/"));
        assert_eq!(moved("/APP/x", "/app/", "/"), None, "paths compare with case");
    }
}
