//! Routes: which prefix a request path matches, and the path the member receives.
//!
//! Matching follows httpd's ProxyPass: routes are tried in config order, the first match wins,
//! and a prefix matches only at a segment boundary (`/images` matches `/images` and
//! `/images/a.png`, not `/imagesX`). The matched prefix is replaced by the target's path.
//! Where httpd would glue two slashes together (`ProxyPass /a http://h/b/` sends `/a/x` to
//! `/b//x`), we join with exactly one.

/// One compiled route: a prefix and what it leads to.
#[derive(Debug)]
pub(crate) struct Route<T> {
    pub(crate) prefix: String,
    pub(crate) target: T,
}

/// The routes in config order.
#[derive(Debug)]
pub(crate) struct RouteTable<T> {
    routes: Vec<Route<T>>,
}

impl<T> RouteTable<T> {
    pub(crate) fn new(routes: Vec<Route<T>>) -> Self {
        Self { routes }
    }

    /// The first route matching `path` (its index and itself), and the rest of the path
    /// after its prefix.
    pub(crate) fn find<'p>(&self, path: &'p str) -> Option<(usize, &Route<T>, &'p str)> {
        self.routes.iter().enumerate().find_map(|(i, r)| matches(&r.prefix, path).map(|rest| (i, r, rest)))
    }

    /// Every route, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Route<T>> {
        self.routes.iter()
    }
}

/// The rest of `path` after `prefix`, if `prefix` matches at a segment boundary. A `;`
/// parameter ends a segment too, and parameters of the segments the prefix covers are passed
/// over (`/static;x/y` is under `/static/`), as servlet containers read them: a parameter
/// cannot walk a request around a route.
fn matches<'p>(prefix: &str, path: &'p str) -> Option<&'p str> {
    let rest = match path.strip_prefix(prefix) {
        Some(rest) => rest,
        None if path.contains(';') => strip_with_parameters(prefix, path)?,
        None => return None,
    };
    (prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/') || rest.starts_with(';')).then_some(rest)
}

/// `path` after `prefix`, passing over `;` parameters where the prefix has a `/`.
fn strip_with_parameters<'p>(prefix: &str, path: &'p str) -> Option<&'p str> {
    let (p, s) = (prefix.as_bytes(), path.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < p.len() {
        if s.get(j) == Some(&p[i]) {
            i += 1;
            j += 1;
        } else if s.get(j) == Some(&b';') && p[i] == b'/' {
            while j < s.len() && s[j] != b'/' {
                j += 1;
            }
        } else {
            return None;
        }
    }
    path.get(j..)
}

/// The client's own spelling of what follows `prefix` in the raw path `raw`, for a `nocanon`
/// route: when `raw` spells the prefix plainly (its characters, percent-encodings of them, and
/// repeated slashes); `None` when it reaches the prefix otherwise (through dot segments), and
/// the canonical rest is sent instead.
pub(crate) fn raw_rest<'p>(prefix: &str, raw: &'p str) -> Option<&'p str> {
    let bytes = raw.as_bytes();
    let mut at = 0;
    for want in prefix.bytes() {
        match bytes.get(at) {
            Some(&b) if b == want => {
                at += 1;
                if want == b'/' {
                    while bytes.get(at) == Some(&b'/') {
                        at += 1;
                    }
                }
            }
            // An encoded `/` is not the prefix's separator.
            Some(b'%') if want != b'/' && crate::canon::escaped_byte(bytes, at) == Some(want) => at += 3,
            _ => return None,
        }
    }
    let rest = &raw[at..];
    // Dot segments in the client's rest would climb out of the member's base path.
    let climbs = rest.split('/').any(|segment| {
        let one = format!("/{segment}");
        crate::canon::canonicalize(&one).map_or(true, |c| c.as_str() == "/" && !segment.is_empty())
    });
    (!climbs && (prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'))).then_some(rest)
}


/// The path a member receives: the target's `base` path with `rest` appended (one slash
/// between them), plus the query, if any.
pub(crate) fn forward_path(base: &str, rest: &str, query: Option<&str>) -> String {
    forward_pieces(base, rest, query).concat()
}

/// Whether `target` is already the path [`forward_path`] would build, told without building
/// it: most routes send a member the path the client sent, whose `Uri` can then be kept.
pub(crate) fn is_forward_path(target: &str, base: &str, rest: &str, query: Option<&str>) -> bool {
    let mut left = target.as_bytes();
    for piece in forward_pieces(base, rest, query) {
        match left.strip_prefix(piece.as_bytes()) {
            Some(after) => left = after,
            None => return false,
        }
    }
    left.is_empty()
}

/// The forwarded path's pieces in order: base, joining slash, rest, `?`, query.
fn forward_pieces<'a>(base: &'a str, rest: &'a str, query: Option<&'a str>) -> [&'a str; 5] {
    let (base, slash) = if rest.is_empty() {
        (if base.is_empty() { "/" } else { base }, "")
    } else {
        let base = base.trim_end_matches('/');
        // A `;` parameter of the prefix's last segment stays on the base's (`/app;jsessionid=1`
        // to `/internal;jsessionid=1`), unless the base is the root.
        let parameter_of_base = rest.starts_with(';') && !base.is_empty();
        (base, if rest.starts_with('/') || parameter_of_base { "" } else { "/" })
    };
    match query {
        Some(q) => [base, slash, rest, "?", q],
        None => [base, slash, rest, "", ""],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(prefixes: &[&str]) -> RouteTable<usize> {
        RouteTable::new(prefixes.iter().enumerate().map(|(i, p)| Route { prefix: p.to_string(), target: i }).collect())
    }

    #[test]
    fn first_match_at_a_segment_boundary() {
        let t = table(&["/images/", "/static", "/"]);
        let find = |p| t.find(p).map(|(_, r, rest)| (r.target, rest));
        assert_eq!(find("/images/a.png"), Some((0, "a.png")));
        assert_eq!(find("/images"), Some((2, "images")), "/images/ does not match /images");
        assert_eq!(find("/static"), Some((1, "")));
        assert_eq!(find("/static/x"), Some((1, "/x")));
        assert_eq!(find("/staticx"), Some((2, "staticx")));
        assert_eq!(table(&["/api"]).find("/other").map(|(_, r, _)| r.target), None);
        // `;` parameters end a segment and cannot walk around a prefix.
        assert_eq!(find("/static;x/secret"), Some((1, ";x/secret")));
        assert_eq!(find("/images;v=1/a.png"), Some((0, "a.png")));
        assert_eq!(find("/staticx;y"), Some((2, "staticx;y")));
    }

    #[test]
    fn raw_rest_follows_a_plain_spelling_of_the_prefix() {
        assert_eq!(raw_rest("/static", "/static/a%2Fb"), Some("/a%2Fb"));
        assert_eq!(raw_rest("/static/", "/%73tatic//a%2fb"), Some("a%2fb"));
        assert_eq!(raw_rest("/static", "//static"), Some(""));
        assert_eq!(raw_rest("/static", "/a/../static/x"), None, "dot segments: the canonical rest goes");
        assert_eq!(raw_rest("/static", "/staticx"), None);
        assert_eq!(raw_rest("/", "/x/./y"), None, "dot segments in the rest: the canonical rest goes");
        assert_eq!(raw_rest("/app/", "/app/../app/x"), None, "a climb out of the base path");
        assert_eq!(raw_rest("/app/", "/app/%2e%2e/x"), None);
        assert_eq!(raw_rest("/a/b", "/a%2fb/x"), None, "an encoded slash is not the prefix's separator");
        assert_eq!(raw_rest("/app/", "/app/a%2Fb/c"), Some("a%2Fb/c"));
    }

    #[test]
    fn forwarded_paths_join_with_one_slash() {
        assert_eq!(forward_path("/", "a.png", None), "/a.png");
        assert_eq!(forward_path("/", "", None), "/");
        assert_eq!(forward_path("", "", None), "/");
        assert_eq!(forward_path("/app/", "/x", Some("q=1")), "/app/x?q=1");
        assert_eq!(forward_path("/app", "x", None), "/app/x");
        assert_eq!(forward_path("/app/", "", None), "/app/");
        assert_eq!(forward_path("/", "/x", None), "/x");
        assert_eq!(forward_path("/internal", ";jsessionid=1/x", None), "/internal;jsessionid=1/x");
        assert_eq!(forward_path("/", ";jsessionid=1", None), "/;jsessionid=1");
    }

    #[test]
    fn a_forward_path_is_recognised_without_being_built() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("/", "a.png", None),
            ("", "", None),
            ("/app/", "/x", Some("q=1")),
            ("/app", "x", None),
            ("/app/", "", None),
            ("/internal", ";jsessionid=1/x", None),
            ("", "/ok", Some("")),
        ];
        for &(base, rest, query) in cases {
            let built = forward_path(base, rest, query);
            assert!(is_forward_path(&built, base, rest, query), "{built}");
            assert!(!is_forward_path(&format!("{built}x"), base, rest, query), "{built} and more");
            assert!(!is_forward_path(&built[..built.len() - 1], base, rest, query), "{built} less one");
        }
        assert!(!is_forward_path("/ok", "", "/ok", Some("")), "an empty query still has its `?`");
        assert!(!is_forward_path("/app/x", "/app", "/y", None));
    }
}
