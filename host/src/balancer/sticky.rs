//! Sticky sessions: finding a request's route in its URL or cookies, and the cookie the proxy
//! sets when it inserts routes itself.
//!
//! As in httpd, the session value is looked for first as a URL parameter (`?jsessionid=…`,
//! `&jsessionid=…`, or a path parameter `;jsessionid=…`), then as a cookie; the route is
//! what follows the first separator (`.` by default) in that value. Unlike httpd, which finds
//! `name=` anywhere in the URL, a parameter must start right after `;`, `?` or `&`, so
//! `/xjsessionid=a.b` is not a session.

use crate::config::StickySession;

/// The route a request asks for: from the URL parameter if present there, else the cookie.
/// `None` when neither holds a value with a non-empty route.
pub fn route_of<'a>(
    sticky: &StickySession,
    path_and_query: &'a str,
    cookie_headers: impl IntoIterator<Item = &'a [u8]>,
) -> Option<&'a str> {
    let value = url_param(path_and_query, &sticky.param, sticky.scolon_path_delim)
        .or_else(|| cookie(cookie_headers, &sticky.cookie))?;
    let route = match sticky.separator {
        Some(sep) => &value[value.find(sep)? + sep.len_utf8()..],
        None => value,
    };
    (!route.is_empty()).then_some(route)
}

/// The value of URL parameter `name` in `path_and_query`.
fn url_param<'a>(path_and_query: &'a str, name: &str, scolon_path_delim: bool) -> Option<&'a str> {
    let bytes = path_and_query.as_bytes();
    let mut from = 0;
    while let Some(found) = path_and_query[from..].find(name) {
        let at = from + found;
        from = at + 1;
        let boundary = at > 0 && matches!(bytes[at - 1], b';' | b'?' | b'&');
        let after = at + name.len();
        if !boundary || bytes.get(after) != Some(&b'=') {
            continue;
        }
        let rest = &path_and_query[after + 1..];
        let end = rest.find(|c: char| c == '?' || c == '&' || (scolon_path_delim && c == ';')).unwrap_or(rest.len());
        if end > 0 {
            return Some(&rest[..end]);
        }
    }
    None
}

/// The value of cookie `name` in the Cookie header lines (quotes around it removed): the one
/// cookie parser, for sticky sessions and for `hashkey = "cookie:NAME"` alike.
pub fn cookie<'a>(headers: impl IntoIterator<Item = &'a [u8]>, name: &str) -> Option<&'a str> {
    headers
        .into_iter()
        .filter_map(|line| std::str::from_utf8(line).ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| k.trim() == name)
        .map(|(_, v)| {
            let v = v.trim();
            v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v)
        })
        .filter(|v| !v.is_empty())
}

/// The `Set-Cookie` value that sends a client back to `route`, or `None` when the balancer
/// does not insert route cookies.
pub fn route_cookie(sticky: &StickySession, route: &str) -> Option<String> {
    let insert = sticky.insert.as_ref()?;
    let mut cookie = format!("{}=", sticky.cookie);
    if let Some(sep) = sticky.separator {
        cookie.push(sep);
    }
    cookie.push_str(route);
    cookie.push_str("; Path=");
    cookie.push_str(&insert.path);
    if let Some(age) = insert.max_age {
        cookie.push_str(&format!("; Max-Age={}", age.as_secs()));
    }
    if insert.http_only {
        cookie.push_str("; HttpOnly");
    }
    if insert.secure {
        cookie.push_str("; Secure");
    }
    if let Some(same_site) = &insert.same_site {
        cookie.push_str("; SameSite=");
        cookie.push_str(same_site);
    }
    Some(cookie)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::RouteCookie;

    fn sticky(name: &str, separator: Option<char>, scolon: bool) -> StickySession {
        let (cookie, param) = name.split_once('|').unwrap_or((name, name));
        StickySession {
            cookie: cookie.into(),
            param: param.into(),
            separator,
            scolon_path_delim: scolon,
            insert: None,
        }
    }

    fn route<'a>(s: &StickySession, url: &'a str, cookies: &[&'a str]) -> Option<&'a str> {
        route_of(s, url, cookies.iter().map(|c| c.as_bytes()))
    }

    #[test]
    fn one_cookie_however_it_is_spelled() {
        for line in ["ROUTEID=sess.r2", "ROUTEID=\"sess.r2\"", "theme=dark;  ROUTEID = \"sess.r2\" ", "ROUTEID= sess.r2 ;x=1"] {
            assert_eq!(cookie([line.as_bytes()], "ROUTEID"), Some("sess.r2"), "{line:?}");
        }
        assert_eq!(cookie([&b"XROUTEID=a; ROUTEID=b"[..]], "ROUTEID"), Some("b"), "names match whole");
        assert_eq!(cookie([&b"a=1"[..], &b"ROUTEID=\"\""[..]], "ROUTEID"), None, "empty is none");
    }

    #[test]
    fn cookie_route_after_the_separator() {
        let s = sticky("JSESSIONID|jsessionid", Some('.'), false);
        assert_eq!(route(&s, "/app/x", &["a=1; JSESSIONID=abc123.node2; b=2"]), Some("node2"));
        assert_eq!(route(&s, "/app/x", &["JSESSIONID=\"abc.node2\""]), Some("node2"));
        assert_eq!(route(&s, "/app/x", &["other=1", "JSESSIONID=abc.n1.x"]), Some("n1.x"), "the first separator splits");
        assert_eq!(route(&s, "/app/x", &["JSESSIONID=abc"]), None, "no separator, no route");
        assert_eq!(route(&s, "/app/x", &["JSESSIONID=abc."]), None, "empty route");
        assert_eq!(route(&s, "/app/x", &["jsessionid=abc.n1"]), None, "cookie names are case-sensitive");
        assert_eq!(route(&s, "/app/x", &[]), None);
    }

    #[test]
    fn url_parameter_wins_over_the_cookie() {
        let s = sticky("JSESSIONID|jsessionid", Some('.'), false);
        assert_eq!(route(&s, "/app?jsessionid=x.n3", &["JSESSIONID=y.n1"]), Some("n3"));
        assert_eq!(route(&s, "/app?a=1&jsessionid=x.n3&b=2", &[]), Some("n3"));
        assert_eq!(route(&s, "/app;jsessionid=x.n3?a=1", &[]), Some("n3"));
        assert_eq!(route(&s, "/app/xjsessionid=x.n3", &[]), None, "a parameter starts after ; ? or &");
        assert_eq!(route(&s, "/app?jsessionid=&x=1", &["JSESSIONID=y.n1"]), Some("n1"), "an empty parameter is absent");
    }

    #[test]
    fn semicolon_ends_a_parameter_only_when_asked() {
        let plain = sticky("sid", Some('.'), false);
        assert_eq!(route(&plain, "/a;sid=x.n2;v=1", &[]), Some("n2;v=1"));
        let scolon = sticky("sid", Some('.'), true);
        assert_eq!(route(&scolon, "/a;sid=x.n2;v=1", &[]), Some("n2"));
    }

    #[test]
    fn separator_off_takes_the_whole_value() {
        let s = sticky("ROUTEID", None, false);
        assert_eq!(route(&s, "/", &["ROUTEID=node1"]), Some("node1"));
        let bang = sticky("JSESSIONID", Some('!'), false);
        assert_eq!(route(&bang, "/", &["JSESSIONID=abc!w2"]), Some("w2"));
    }

    #[test]
    fn inserted_cookie() {
        let mut s = sticky("ROUTEID", Some('.'), false);
        assert_eq!(route_cookie(&s, "n1"), None);
        s.insert = Some(RouteCookie { path: "/".into(), secure: false, http_only: true, same_site: None, max_age: None });
        assert_eq!(route_cookie(&s, "n1").as_deref(), Some("ROUTEID=.n1; Path=/; HttpOnly"));
        s.insert = Some(RouteCookie {
            path: "/app".into(),
            secure: true,
            http_only: false,
            same_site: Some("Lax".into()),
            max_age: Some(Duration::from_secs(3600)),
        });
        assert_eq!(route_cookie(&s, "n1").as_deref(), Some("ROUTEID=.n1; Path=/app; Max-Age=3600; Secure; SameSite=Lax"));
        let c = route_cookie(&s, "n1").expect("cookie");
        assert_eq!(route(&s, "/", &[c.split(';').next().expect("pair")]), Some("n1"), "the cookie routes back");
    }
}
