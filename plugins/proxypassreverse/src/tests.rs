//! The plugin through the SDK's harness: the host's filtering by interest, edit checks and
//! edit application included.

use super::*;
use switchyard_sdk::testing::{HeaderRewriteHarness, Rewritten};

const TWO_MEMBERS: [&str; 2] = ["http://10.0.0.1:9001", "http://10.0.0.2:9002/app/"];

fn harness(config: &str) -> HeaderRewriteHarness<ProxyPassReverse> {
    HeaderRewriteHarness::new(config).unwrap_or_else(|e| panic!("{config}: {e}"))
}

/// `reverse` on the route `/images/` reached as `www.example.com`, balancing over two members.
fn reverse() -> HeaderRewriteHarness<ProxyPassReverse> {
    harness("{}").public("http", "www.example.com", "/images/").targets(&TWO_MEMBERS)
}

fn location(h: &mut HeaderRewriteHarness<ProxyPassReverse>, value: &str) -> Option<String> {
    let out = h.response(302, &[("Location", value)]);
    assert!(out.refused.is_empty(), "{:?}", out.refused);
    out.get("location").map(str::to_string)
}

#[test]
fn interest_is_only_the_headers_it_rewrites() {
    let h = harness("{}");
    assert_eq!(h.interest().response, PhaseInterest::headers(["location", "content-location", "uri"]));
    assert_eq!(h.interest().request, PhaseInterest::headers(["destination"]));
    let h = harness(r#"{"reverse": false, "cookie_path": {"/a/": "/"}}"#);
    assert_eq!(h.interest().response, PhaseInterest::headers(["set-cookie"]));
    assert_eq!(h.interest().request, PhaseInterest::none());
    let h = harness(r#"{"cookie_domain": {"a": "b"}}"#);
    assert_eq!(h.interest().response.headers.len(), 4);
    assert!(!h.interest().response.always && !h.interest().request.always);
    let h = harness(r#"{"reverse": false}"#);
    assert_eq!(*h.interest(), Interest::default(), "nothing to do: never called");
}

#[test]
fn not_called_for_messages_without_those_headers() {
    let mut h = reverse();
    assert!(!h.response(200, &[("content-type", "text/html"), ("x-location", "http://10.0.0.1:9001/")]).called);
    assert!(!h.request("GET", "/images/", &[("host", "www.example.com")]).called);
    assert!(h.response(302, &[("Location", "/elsewhere")]).called);
}

#[test]
fn location_from_a_member_without_a_path() {
    let mut h = reverse();
    for (from, to) in [
        ("http://10.0.0.1:9001/x/y.png", "http://www.example.com/images/x/y.png"),
        ("http://10.0.0.1:9001/x?size=2&q=a%20b", "http://www.example.com/images/x?size=2&q=a%20b"),
        ("http://10.0.0.1:9001/x#top", "http://www.example.com/images/x#top"),
        ("http://10.0.0.1:9001/", "http://www.example.com/images/"),
        ("http://10.0.0.1:9001", "http://www.example.com/images/"),
        ("http://10.0.0.1:9001?q", "http://www.example.com/images/?q"),
    ] {
        assert_eq!(location(&mut h, from).as_deref(), Some(to), "{from}");
    }
}

#[test]
fn location_from_a_member_with_a_path_matches_at_a_segment_boundary() {
    let mut h = reverse();
    for (from, to) in [
        ("http://10.0.0.2:9002/app/x", "http://www.example.com/images/x"),
        ("http://10.0.0.2:9002/app/", "http://www.example.com/images/"),
        ("http://10.0.0.2:9002/app", "http://www.example.com/images/"),
        ("http://10.0.0.2:9002/app?q=1", "http://www.example.com/images/?q=1"),
        ("http://10.0.0.2:9002/apple", "http://10.0.0.2:9002/apple"),
        ("http://10.0.0.2:9002/other/x", "http://10.0.0.2:9002/other/x"),
        ("http://10.0.0.2:9002/APP/x", "http://10.0.0.2:9002/APP/x"),
    ] {
        assert_eq!(location(&mut h, from).as_deref(), Some(to), "{from}");
    }
}

#[test]
fn scheme_and_host_ignore_case_and_default_ports_count() {
    let mut h = harness("{}").public("https", "www.example.com:8443", "/").targets(&["http://Backend.Internal", "http://10.0.0.3:80/"]);
    for (from, to) in [
        ("HTTP://backend.internal/x", "https://www.example.com:8443/x"),
        ("http://BACKEND.internal:80/x", "https://www.example.com:8443/x"),
        ("http://10.0.0.3/y", "https://www.example.com:8443/y"),
        ("http://10.0.0.3:80", "https://www.example.com:8443/"),
        ("https://backend.internal/x", "https://backend.internal/x"),
        ("http://backend.internal:8080/x", "http://backend.internal:8080/x"),
        ("http://backend.internal.evil/x", "http://backend.internal.evil/x"),
    ] {
        assert_eq!(location(&mut h, from).as_deref(), Some(to), "{from}");
    }
}

#[test]
fn every_member_is_tried_in_order() {
    let mut h = harness("{}").public("http", "p", "/r/").targets(&[
        "http://10.0.0.1:9001/a/",
        "http://10.0.0.1:9001/",
        "http://10.0.0.2:9001",
        "http://[::1]:9003",
    ]);
    assert_eq!(location(&mut h, "http://10.0.0.1:9001/a/x").as_deref(), Some("http://p/r/x"));
    assert_eq!(location(&mut h, "http://10.0.0.1:9001/b/x").as_deref(), Some("http://p/r/b/x"));
    assert_eq!(location(&mut h, "http://10.0.0.2:9001/c").as_deref(), Some("http://p/r/c"));
    assert_eq!(location(&mut h, "http://[::1]:9003/d").as_deref(), Some("http://p/r/d"));
    // The member the response came from does not matter: any target maps.
    let mut h = h.member("http://10.0.0.2:9001");
    assert_eq!(location(&mut h, "http://10.0.0.1:9001/a/x").as_deref(), Some("http://p/r/x"));
}

#[test]
fn values_that_match_no_target_are_left_alone() {
    let mut h = reverse();
    for value in [
        "/relative/path",
        "relative",
        "http://www.example.com/images/x",
        "http://10.0.0.1:9002/x",
        "https://10.0.0.1:9001/x",
        "http://10.0.0.9:9001/x",
        "mailto:someone@example.com",
        "http://user@10.0.0.1:9001/x",
        "",
    ] {
        let out = h.response(302, &[("Location", value)]);
        assert!(out.edits.is_empty(), "{value}: {:?}", out.edits);
        assert_eq!(out.get("location"), Some(value));
    }
}

#[test]
fn without_a_public_host_the_value_becomes_a_path() {
    let mut h = harness("{}").public("http", "", "/images/").targets(&TWO_MEMBERS);
    assert_eq!(location(&mut h, "http://10.0.0.1:9001/x?y").as_deref(), Some("/images/x?y"));
    let mut h = harness("{}").public("http", "", "/").targets(&TWO_MEMBERS);
    assert_eq!(location(&mut h, "http://10.0.0.2:9002/app/x").as_deref(), Some("/x"));
    assert_eq!(location(&mut h, "http://10.0.0.2:9002/app").as_deref(), Some("/"));
}

#[test]
fn route_prefixes_join_with_one_slash() {
    for prefix in ["/images/", "/images"] {
        let mut h = harness("{}").public("http", "h", prefix).targets(&["http://b:1/app/"]);
        assert_eq!(location(&mut h, "http://b:1/app/x").as_deref(), Some("http://h/images/x"), "{prefix}");
    }
    let mut h = harness("{}").public("http", "h", "/").targets(&["http://b:1/app"]);
    assert_eq!(location(&mut h, "http://b:1/app/x").as_deref(), Some("http://h/x"));
    assert_eq!(location(&mut h, "http://b:1/app/").as_deref(), Some("http://h/"));
}

#[test]
fn content_location_and_uri_too_but_no_other_header() {
    let mut h = reverse();
    let out = h.response(
        201,
        &[
            ("Location", "http://10.0.0.1:9001/a"),
            ("Content-Location", "http://10.0.0.2:9002/app/b"),
            ("URI", "http://10.0.0.1:9001/c"),
            ("Refresh", "0; url=http://10.0.0.1:9001/d"),
            ("Link", "<http://10.0.0.1:9001/e>; rel=next"),
        ],
    );
    assert_eq!(out.get("location"), Some("http://www.example.com/images/a"));
    assert_eq!(out.get("content-location"), Some("http://www.example.com/images/b"));
    assert_eq!(out.get("uri"), Some("http://www.example.com/images/c"));
    assert_eq!(out.get("refresh"), Some("0; url=http://10.0.0.1:9001/d"));
    assert_eq!(out.get("link"), Some("<http://10.0.0.1:9001/e>; rel=next"));
    assert_eq!(out.edits.len(), 3);
}

#[test]
fn destination_maps_to_the_member() {
    let mut h = reverse().member("http://10.0.0.2:9002/app/");
    let dest = |h: &mut HeaderRewriteHarness<ProxyPassReverse>, value: &str| {
        let out = h.request("MOVE", "/images/a", &[("Destination", value)]);
        assert!(out.refused.is_empty());
        out.get("destination").map(str::to_string)
    };
    for (from, to) in [
        ("http://www.example.com/images/b", "http://10.0.0.2:9002/app/b"),
        ("http://WWW.EXAMPLE.COM:80/images/b?x#y", "http://10.0.0.2:9002/app/b?x#y"),
        ("http://www.example.com/images/", "http://10.0.0.2:9002/app/"),
        ("http://www.example.com/images", "http://10.0.0.2:9002/app/"),
        ("/images/b/c", "/app/b/c"),
        ("/images?q", "/app/?q"),
        ("http://www.example.com/imagesx/b", "http://www.example.com/imagesx/b"),
        ("http://www.example.com/other", "http://www.example.com/other"),
        ("https://www.example.com/images/b", "https://www.example.com/images/b"),
        ("http://other.example.com/images/b", "http://other.example.com/images/b"),
        ("/other/b", "/other/b"),
    ] {
        assert_eq!(dest(&mut h, from).as_deref(), Some(to), "{from}");
    }
    let mut h = h.member("http://10.0.0.1:9001");
    assert_eq!(dest(&mut h, "http://www.example.com/images/b").as_deref(), Some("http://10.0.0.1:9001/b"));
    assert_eq!(dest(&mut h, "http://www.example.com/images/").as_deref(), Some("http://10.0.0.1:9001/"));
    assert_eq!(dest(&mut h, "/images/b").as_deref(), Some("/b"));
    // Without a Host header from the client, only a path can be recognised.
    let mut h = harness("{}").public("http", "", "/images/").targets(&TWO_MEMBERS);
    assert_eq!(dest(&mut h, "http://www.example.com/images/b").as_deref(), Some("http://www.example.com/images/b"));
    assert_eq!(dest(&mut h, "/images/b").as_deref(), Some("/b"));
}

#[test]
fn reverse_off_leaves_urls_alone() {
    let mut h = harness(r#"{"reverse": false, "cookie_path": {"/a/": "/b/"}}"#).public("http", "h", "/").targets(&TWO_MEMBERS);
    let out = h.response(302, &[("Location", "http://10.0.0.1:9001/x"), ("Set-Cookie", "a=1; Path=/a/x")]);
    assert_eq!(out.get("location"), Some("http://10.0.0.1:9001/x"));
    assert_eq!(out.get("set-cookie"), Some("a=1; Path=/b/x"));
    assert!(!h.request("MOVE", "/x", &[("Destination", "http://h/x")]).called);
}

fn cookies(config: &str, set_cookies: &[&str]) -> Rewritten {
    let mut h = harness(config).public("http", "www.example.com", "/shop/").targets(&["http://10.0.0.1:9001/"]);
    let headers: Vec<(&str, &str)> = set_cookies.iter().map(|c| ("Set-Cookie", *c)).collect();
    let out = h.response(200, &headers);
    assert!(out.refused.is_empty(), "{:?}", out.refused);
    out
}

#[test]
fn every_set_cookie_is_rewritten_in_order() {
    let out = cookies(
        r#"{"cookie_domain": {"backend.internal": "www.example.com"}, "cookie_path": {"/app/": "/shop/"}}"#,
        &[
            "sid=abc.1; Domain=backend.internal; Path=/app/x; HttpOnly",
            "theme=dark;path=/;domain=other.example",
            "lang=en; path=/app/; SameSite=Lax; domain=.BACKEND.internal; Secure",
        ],
    );
    assert_eq!(
        out.get_all("set-cookie"),
        [
            "sid=abc.1; Domain=www.example.com; Path=/shop/x; HttpOnly",
            "theme=dark;path=/;domain=other.example",
            "lang=en; path=/shop/; SameSite=Lax; domain=www.example.com; Secure",
        ]
    );
}

#[test]
fn the_longest_internal_path_wins_whatever_the_order() {
    let config = r#"{"cookie_path": {"/": "/root/", "/app/": "/shop/", "/app/admin": "/admin/", "/b": "/c"}}"#;
    let out = cookies(config, &["a=1; Path=/app/admin/x", "b=2; Path=/app/x", "c=3; Path=/x", "d=4; Path=/b"]);
    assert_eq!(out.get_all("set-cookie"), ["a=1; Path=/admin/x", "b=2; Path=/shop/x", "c=3; Path=/root/x", "d=4; Path=/c"]);
}

#[test]
fn cookies_that_map_nothing_make_no_edits() {
    let out = cookies(
        r#"{"cookie_domain": {"backend.internal": "www.example.com"}, "cookie_path": {"/app/": "/"}}"#,
        &["a=1; Path=/other; Domain=example.org", "b=2", "c=3; Expires=Wed, 21 Oct 2026 07:28:00 GMT"],
    );
    assert!(out.called && out.edits.is_empty());
}

#[test]
fn cookie_values_and_other_attributes_are_kept_byte_for_byte() {
    let cookie = "x=\"a b=c\";  Max-Age=3600 ;PATH= /app/deep/er ;\tdomain =backend.internal;Priority=High;Partitioned";
    let out = cookies(r#"{"cookie_domain": {"backend.internal": "w.example"}, "cookie_path": {"/app": "/"}}"#, &[cookie]);
    assert_eq!(
        out.get("set-cookie"),
        Some("x=\"a b=c\";  Max-Age=3600 ;PATH= /deep/er ;\tdomain =w.example;Priority=High;Partitioned")
    );
}

#[test]
fn a_header_with_undecodable_bytes_is_left_alone() {
    let out = cookies(r#"{"cookie_path": {"/app/": "/"}}"#, &["a=1; Path=/app/x", "b=\u{FFFD}; Path=/app/y"]);
    assert!(out.edits.is_empty());
}

#[test]
fn config_errors() {
    for (config, want) in [
        (r#"{"revers": true}"#, "unknown field `revers`, expected one of `reverse`, `cookie_domain`, `cookie_path`"),
        (r#"{"reverse": "yes"}"#, "invalid type: string \"yes\", expected a boolean"),
        (r#"{"cookie_domain": {"a b": "c"}}"#, r#"cookie_domain: "a b" is not a domain"#),
        (r#"{"cookie_domain": {"a": ""}}"#, r#"cookie_domain: "" is not a domain"#),
        (r#"{"cookie_domain": {"a": "b;c"}}"#, r#"cookie_domain: "b;c" is not a domain"#),
        (r#"{"cookie_path": {"app": "/"}}"#, r#"cookie_path: "app" is not a path starting with `/`"#),
        (r#"{"cookie_path": {"/": "/a;Domain=evil"}}"#, r#"cookie_path: "/a;Domain=evil" is not a path starting with `/`"#),
        (r#"{"cookie_path": ["/"]}"#, "invalid type: sequence, expected a map"),
    ] {
        let got = HeaderRewriteHarness::<ProxyPassReverse>::new(config).expect_err(config);
        assert!(got.starts_with(want), "{config}\n got: {got}\nwant: {want}");
    }
}
