//! Golden tests for the edge: routes, TLS, logs, limits and timeouts, route rewrites.

use std::path::Path;
use std::time::Duration;

use super::super::*;
use super::errors;

#[test]
fn routes_are_checked() {
    let text = r#"[[listen]]
addr = "127.0.0.1:1"
[[route]]
path = "x"
backend = "http://h:1/"
[[route]]
path = "/a"
balancer = "nope"
[[route]]
path = "/b"
backend = "http://h:1/"
balancer = "nope"
"#;
    assert_eq!(
        errors(text),
        [
            "test.toml:4: route[0].path: `x` must start with /",
            "test.toml:8: route[1].balancer: no [balancer.nope] is defined",
            "test.toml:9: route[2]: a route needs exactly one of backend, balancer or exclude = true",
        ]
    );
}

#[test]
fn route_prefixes_must_be_canonical() {
    let text = r#"[[listen]]
addr = "127.0.0.1:1"
[[route]]
path = "/%73tatic/"
exclude = true
[[route]]
path = "/a/../b"
backend = "http://h:1/"
[[route]]
path = "/c/%2"
backend = "http://h:1/"
[[route]]
path = "/d"
exclude = true
nocanon = true
"#;
    assert_eq!(
        errors(text),
        [
            "test.toml:4: route[0].path: `/%73tatic/` is not in canonical form (requests are routed on their canonical path): write `/static/`",
            "test.toml:7: route[1].path: `/a/../b` is not in canonical form (requests are routed on their canonical path): write `/b`",
            "test.toml:10: route[2].path: `/c/%2`: the path holds a `%` not followed by two hex digits",
            "test.toml:12: route[3]: an excluded route forwards nothing: nocanon and allow_encoded_slashes do not apply",
        ]
    );
}

#[test]
fn tls_settings_are_checked() {
    let text = r#"[[listen]]
addr = "127.0.0.1:1"
[listen.tls]
cert = "a.pem"
[[listen]]
addr = "127.0.0.1:2"
[listen.tls]
cert = "certs/b.pem"
key = "certs/b.key"
handshake_timeout = "3s"
[[listen.tls.sni]]
names = ["API.example.com", "*.example.org"]
cert = "c.pem"
key = "c.key"
[[listen.tls.sni]]
names = ["bad name"]
cert = "d.pem"
key = "d.key"
[balancer.b]
tls = { ca = "ca.pem" }
[[balancer.b.member]]
url = "https://m.internal:8443"
tls = { cert = "client.pem" }
[[balancer.b.member]]
url = "http://m.internal"
tls = { verify = false }
"#;
    assert_eq!(
        errors(text),
        [
            "test.toml:3: listen[0].tls: a TLS listener needs both cert and key (PEM files)",
            "test.toml:16: listen[1].tls.sni[1].names: `bad name` is not a host name (a wildcard is `*.` and a name)",
            "test.toml:23: balancer.b.member[0].tls: a client certificate needs both cert and key",
            "test.toml:26: balancer.b.member[1].tls: tls settings apply to https:// members only",
        ]
    );
    let valid = text
        .replace("[listen.tls]\ncert = \"a.pem\"\n", "")
        .replace("[[listen.tls.sni]]\nnames = [\"bad name\"]\ncert = \"d.pem\"\nkey = \"d.key\"\n", "")
        .replace("tls = { cert = \"client.pem\" }", "tls = { cert = \"client.pem\", key = \"client.key\" }")
        .replace("tls = { verify = false }\n", "");
    let c = parse(&valid, Path::new("/etc/sy/test.toml")).expect("valid");
    let tls = c.listeners[1].tls.as_ref().expect("tls");
    assert_eq!(tls.cert.cert, Path::new("/etc/sy/certs/b.pem"));
    assert_eq!(tls.handshake_timeout, Duration::from_secs(3));
    assert_eq!(tls.sni[0].names, ["api.example.com", "*.example.org"], "names are lower-cased");
    assert!(c.listeners[0].tls.is_none());
    let m = &c.balancers[0].members[0];
    let mt = m.tls.as_ref().expect("an https member has tls");
    assert_eq!((m.authority.as_str(), mt.server_name.as_str(), mt.verify), ("m.internal:8443", "m.internal", true));
    assert_eq!(mt.ca.as_deref(), Some(Path::new("/etc/sy/ca.pem")), "the balancer's ca is the member's default");
    assert_eq!(mt.client_cert.as_ref().map(|c| c.key.clone()), Some("/etc/sy/client.key".into()));
    assert!(c.balancers[0].members[1].tls.is_none());
}

#[test]
fn log_sections_are_checked() {
    let text = r#"[[listen]]
addr = "127.0.0.1:1"
[access_log]
path = "a.log"
format = "%h %Z"
buffer = 0
[log]
format = "xml"
"#;
    assert_eq!(
        errors(text),
        [
            "test.toml:5: access_log.format: `%Z` is not supported (supported: %h %a %l %u %t %r %m %U %q %H %s %>s %b %B %O %I %D %T %L %{Header}i %{Header}o %%)",
            "test.toml:8: log.format: `xml`: give \"text\" or \"json\"",
        ]
    );
    let c = parse("[[listen]]\naddr = \"127.0.0.1:1\"\n[access_log]\npath = \"logs/a.log\"\n", Path::new("/etc/sy/test.toml")).expect("valid");
    let log = c.access_log.expect("an access log");
    assert_eq!(log.target, crate::config::LogTarget::File("/etc/sy/logs/a.log".into()), "relative to the config's folder");
    assert_eq!(log.format, crate::config::AccessFormat::Text(crate::config::parse_format(crate::config::COMBINED).expect("combined")));
    assert!(log.request_id);
    assert!(errors("[[listen]]\naddr = \"127.0.0.1:1\"\n[access_log]\nformat = \"json\"\n")[0].ends_with("access_log.path: give a file, or \"stderr\""));
    assert_eq!(log.flush, Duration::from_millis(100), "flush's default");
    let flush = |value: &str| parse(&format!("[[listen]]\naddr = \"127.0.0.1:1\"\n[access_log]\npath = \"a.log\"\nflush = \"{value}\"\n"), Path::new("/etc/sy/test.toml"));
    assert_eq!(flush("0s").expect("zero: every line at once").access_log.map(|l| l.flush), Some(Duration::ZERO));
    assert_eq!(flush("2s").expect("valid").access_log.map(|l| l.flush), Some(Duration::from_secs(2)));
    assert_eq!(errors("[[listen]]\naddr = \"127.0.0.1:1\"\n[access_log]\npath = \"a.log\"\nflush = \"11s\"\n"), ["test.toml:5: access_log.flush: must be at most 10s"]);
}

#[test]
fn route_rewrites() {
    let text = r#"[[listen]]
addr = "127.0.0.1:1"
[[route]]
path = "/app/"
backend = "http://h:1/"
reverse = true
reverse_cookie_domain = { "backend.internal" = "www.example.com" }
reverse_cookie_path = { "/" = "/app/" }
rewrite = ["proxypassreverse"]
[[route]]
path = "/"
backend = "http://h:1/"
"#;
    let c = parse(text, Path::new("test.toml")).expect("valid");
    let chain = &c.routes[0].rewrite;
    assert_eq!(chain.len(), 2);
    let config: serde_json::Value = serde_json::from_str(&chain[0].config_json).expect("json");
    assert_eq!(
        config,
        serde_json::json!({"reverse": true, "cookie_domain": {"backend.internal": "www.example.com"}, "cookie_path": {"/": "/app/"}})
    );
    assert_eq!(chain[1].config_json, "{}");
    assert!(c.routes[1].rewrite.is_empty());

    let bad = r#"[[listen]]
addr = "127.0.0.1:1"
[[route]]
path = "/x"
exclude = true
reverse = true
[[route]]
path = "/"
backend = "http://h:1/"
reverse_cookie_path = { "relative" = "/app/" }
rewrite = [{ name = "nope" }]
"#;
    assert_eq!(
        errors(bad),
        [
            "test.toml:3: route[0]: an excluded route proxies nothing: it cannot rewrite headers",
            "test.toml:10: route[1].reverse_cookie_path.relative: `relative` is not a path starting with /",
            "test.toml:11: route[1].rewrite[0]: unknown header rewrite `nope`: the default one is proxypassreverse, or give { path = \"x.wasm\" }",
        ]
    );
}

#[test]
fn edge_sections_are_checked() {
    let text = r#"[[listen]]
addr = "127.0.0.1:1"
[limits]
request_line = "4KiB"
header_fields = 0
body = 0
[timeouts]
header = "5s"
keepalive = 0
park = "5ms"
body_min_rate = "1KiB"
[forwarded]
trusted = ["10.0.0.0/8", "10.0.0.0/40", "proxy.example"]
[[route]]
path = "/"
backend = "http://h:1/"
upgrade = ["websocket", "h2c"]
"#;
    assert_eq!(
        errors(text),
        [
            "test.toml:17: route[0].upgrade[1]: unknown upgrade protocol `h2c`: only \"websocket\" is supported (h2c upgrades are never forwarded)",
            "test.toml:5: limits.header_fields: must be between 1 and 10000, got 0",
            "test.toml:9: timeouts.keepalive: must be at least 1ms",
            "test.toml:10: timeouts.park: must be at least 10ms (set it to `keepalive` or more to never park)",
            "test.toml:13: forwarded.trusted[1]: `10.0.0.0/40`: the prefix length must be 0..=32",
            "test.toml:13: forwarded.trusted[2]: `proxy.example` is not an address or a CIDR range such as \"10.0.0.0/8\"",
        ]
    );
    let text = text.replace("header_fields = 0\n", "").replace("keepalive = 0\n", "").replace("park = \"5ms\"\n", "").replace(", \"10.0.0.0/40\", \"proxy.example\"", "").replace(", \"h2c\"", "");
    let c = parse(&text, Path::new("test.toml")).expect("valid");
    assert_eq!(c.limits.request_line, 4096);
    assert_eq!(c.limits.header_fields, 100, "default");
    assert_eq!(c.limits.body, None, "0 means no limit");
    assert_eq!(c.timeouts.header, Duration::from_secs(5));
    assert_eq!(c.timeouts.park, Duration::from_millis(100), "default");
    assert_eq!(c.timeouts.body_min_rate, 1024);
    assert!(c.forwarded.trusts("10.1.2.3".parse().expect("ip")));
    assert!(c.routes[0].upgrade.websocket);
    let unknown = errors("[[listen]]\naddr = \"127.0.0.1:1\"\n[limits]\nbodysize = 5\n");
    assert!(unknown[0].starts_with("test.toml:4: limits.bodysize: unknown field `bodysize`"), "{}", unknown[0]);
}
