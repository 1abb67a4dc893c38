//! Golden tests: valid and invalid files, with the exact messages an operator sees.

use std::path::Path;
use std::time::Duration;

use super::*;

const QUICKSTART_SHAPE: &str = r#"
[[listen]]
addr = "127.0.0.1:8080"

[[route]]
path = "/images/"
balancer = "myset"

[[route]]
path = "/static/"
exclude = true

[[route]]
path = "/"
backend = "http://127.0.0.1:9000/"

[balancer.myset]
lbmethod = "bytraffic"            # a default plugin's name, or { path = "x.wasm", config = { ... } }
maxattempts = 2

[[balancer.myset.member]]
url = "http://127.0.0.1:9001"
[[balancer.myset.member]]
url = "http://127.0.0.1:9002"
loadfactor = 3
timeout = "1s"
"#;

fn errors(text: &str) -> Vec<String> {
    match parse(text, Path::new("test.toml")) {
        Ok(_) => panic!("expected errors"),
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn accepts_the_issue_shape() {
    let c = parse(QUICKSTART_SHAPE, Path::new("test.toml")).expect("valid");
    assert_eq!(c.listeners[0].addr.to_string(), "127.0.0.1:8080");
    assert_eq!(c.routes.len(), 3);
    assert!(matches!(c.routes[1].target, RouteTarget::Exclude));
    let RouteTarget::Balancer(b) = c.routes[0].target else { panic!("balancer route") };
    let b = &c.balancers[b];
    assert_eq!(b.name, "myset");
    assert_eq!(b.lbmethod.source, PluginSource::Builtin("bytraffic".into()));
    assert_eq!(b.maxattempts, 2);
    assert_eq!(b.members[1].lbfactor, 300);
    assert_eq!(b.members[1].connection.timeout, Duration::from_secs(1));
    assert_eq!(b.members[0].connection.timeout, Duration::from_secs(60));
    assert_eq!(b.members[0].authority.as_str(), "127.0.0.1:9001");
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let text = "[[listen]]\naddr = \"127.0.0.1:1\"\n\n[balancer.a]\n[[balancer.a.member]]\nurl = \"http://h:1\"\nloadfactr = 3\n";
    let errs = errors(text);
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("test.toml:7: balancer.a.member[0].loadfactr: unknown field `loadfactr`"), "{}", errs[0]);
}

#[test]
fn wrong_type_names_the_key() {
    let text = "[[listen]]\naddr = \"127.0.0.1:1\"\n[balancer.a]\nmaxattempts = \"two\"\n[[balancer.a.member]]\nurl = \"http://h:1\"\n";
    let errs = errors(text);
    assert!(errs[0].starts_with("test.toml:4: balancer.a.maxattempts: invalid type"), "{}", errs[0]);
}

#[test]
fn range_errors_are_all_reported_with_lines() {
    let text = r#"[[listen]]
addr = "127.0.0.1:1"
[balancer.a]
lbmethod = "roundrobin"
[[balancer.a.member]]
url = "http://h:1"
loadfactor = 300
[[balancer.a.member]]
url = "ftp://h:2"
[[balancer.a.member]]
url = "http://h:3"
status = "+X"
timeout = "soon"
"#;
    let errs = errors(text);
    assert_eq!(
        errs,
        [
            "test.toml:13: balancer.a.member[2].timeout: invalid duration `soon`: expected a number of seconds or a string such as \"500ms\", \"1s\", \"2m\"",
        ],
        "serde stops at the first type error"
    );
    let text = text.replace("timeout = \"soon\"\n", "");
    let errs = errors(&text);
    assert_eq!(
        errs,
        [
            "test.toml:7: balancer.a.member[0].loadfactor: must be between 1 and 100 (decimals allowed), got 300",
            "test.toml:9: balancer.a.member[1].url: `ftp://h:2` must be an absolute http:// or https:// URL",
            "test.toml:12: balancer.a.member[2].status: unknown status flag `X` in \"+X\" (flags are D S I R H E N C, with + or -)",
            "test.toml:4: balancer.a.lbmethod: unknown lbmethod `roundrobin`: the default ones are byrequests, bytraffic, bybusyness, or give { path = \"x.wasm\" }",
        ]
    );
}

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
}

#[test]
fn missing_listener_and_members() {
    let errs = errors("[balancer.a]\n");
    assert_eq!(
        errs,
        [
            "test.toml: listen: at least one [[listen]] with an addr is required",
            "test.toml:1: balancer.a: a balancer needs at least one [[balancer.NAME.member]]",
        ]
    );
}

#[test]
fn syntax_error_has_a_line() {
    let errs = errors("[[listen]]\naddr = \n");
    assert!(errs[0].starts_with("test.toml:2"), "{}", errs[0]);
}

#[test]
fn plugin_path_and_config() {
    let dir = std::env::temp_dir().join(format!("switchyard-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("m.wasm"), b"not really").expect("write");
    let text = r#"[[listen]]
addr = "127.0.0.1:1"
[balancer.a]
lbmethod = { path = "m.wasm", config = { seed = 7, name = "x" } }
[[balancer.a.member]]
url = "http://h:1"
[balancer.b]
lbmethod = { path = "missing.wasm" }
[[balancer.b.member]]
url = "http://h:1"
"#;
    let file = dir.join("proxy.toml");
    let err = parse(text, &file).expect_err("missing plugin");
    assert_eq!(err.0.len(), 1);
    assert_eq!(err.0[0].key, "balancer.b.lbmethod.path");
    assert_eq!(err.0[0].line, Some(8));
    let ok = parse(&text.replace("missing.wasm", "m.wasm"), &file).expect("valid");
    assert_eq!(ok.balancers[0].lbmethod.source, PluginSource::File(dir.join("m.wasm")));
    assert_eq!(ok.balancers[0].lbmethod.config_json, r#"{"name":"x","seed":7}"#);
    assert_eq!(ok.balancers[0].lbmethod.origin, format!("{}:4: balancer.a.lbmethod", file.display()));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn failover_and_sticky_settings() {
    let text = r#"[[listen]]
addr = "127.0.0.1:1"
[balancer.a]
nofailover = true
forcerecovery = false
failonstatus = [502, 503]
failontimeout = true
timeout = "2s"
stickysession = "JSESSIONID|jsessionid"
stickysessionsep = "!"
scolonpathdelim = true
[[balancer.a.member]]
url = "http://h:1"
route = "n1"
redirect = "n2"
ping = "500ms"
[[balancer.a.member]]
url = "http://h:2"
route = "n2"
status = "+H"
"#;
    let c = parse(text, Path::new("test.toml")).expect("valid");
    let b = &c.balancers[0];
    assert_eq!(
        b.failover,
        Failover { nofailover: true, forcerecovery: false, failonstatus: vec![502, 503], failontimeout: true, timeout: Duration::from_secs(2) }
    );
    let sticky = b.sticky.as_ref().expect("sticky");
    assert_eq!((sticky.cookie.as_str(), sticky.param.as_str(), sticky.separator, sticky.scolon_path_delim), ("JSESSIONID", "jsessionid", Some('!'), true));
    assert!(sticky.insert.is_none());
    assert_eq!(b.members[0].ping, Some(Duration::from_millis(500)));
    assert_eq!(b.members[0].redirect, "n2");
    assert_eq!(b.maxattempts, 1, "members - 1 by default");

    let defaults = parse("[[listen]]\naddr = \"127.0.0.1:1\"\n[balancer.a]\n[[balancer.a.member]]\nurl = \"http://h:1\"\n", Path::new("t.toml")).expect("valid");
    assert_eq!(defaults.balancers[0].failover, Failover::default());
    assert!(defaults.balancers[0].failover.forcerecovery, "httpd's default");
}

#[test]
fn inserted_route_cookies() {
    let text = r#"[[listen]]
addr = "127.0.0.1:1"
[balancer.a]
stickysession = { name = "ROUTEID", insert = true, path = "/app", secure = true, samesite = "Lax" }
stickysessionsep = "Off"
[[balancer.a.member]]
url = "http://h:1"
route = "mine"
[[balancer.a.member]]
url = "http://h:2"
"#;
    let c = parse(text, Path::new("test.toml")).expect("valid");
    let b = &c.balancers[0];
    let sticky = b.sticky.as_ref().expect("sticky");
    assert_eq!(sticky.separator, None);
    assert_eq!(
        sticky.insert,
        Some(RouteCookie { path: "/app".into(), secure: true, http_only: true, same_site: Some("Lax".into()), max_age: None })
    );
    assert_eq!(b.members[0].route, "mine");
    assert_eq!(b.members[1].route.len(), 8, "a derived route for the member without one");
}

#[test]
fn failover_and_sticky_errors() {
    let text = r#"[[listen]]
addr = "127.0.0.1:1"
[balancer.a]
failonstatus = [503, 99]
stickysessionsep = "::"
stickysession = { name = "bad name", path = "/x", samesite = "Sometimes" }
[[balancer.a.member]]
url = "http://h:1"
route = "n1"
redirect = "nowhere"
ping = 0
[balancer.b]
scolonpathdelim = true
[[balancer.b.member]]
url = "http://h:1"
"#;
    assert_eq!(
        errors(text),
        [
            "test.toml:11: balancer.a.member[0].ping: must be more than 0 (leave it out to send no probe)",
            "test.toml:6: balancer.a.stickysession.path: describes the inserted cookie: set insert = true, or leave it out",
            "test.toml:6: balancer.a.stickysession.samesite: describes the inserted cookie: set insert = true, or leave it out",
            "test.toml:6: balancer.a.stickysession.samesite: `Sometimes` must be Strict, Lax or None",
            "test.toml:6: balancer.a.stickysession.name: `bad name`: a session name is a cookie name (letters, digits, !#$%&'*+-.^_`|~), optionally `COOKIE|param`",
            "test.toml:5: balancer.a.stickysessionsep: `::` must be one character such as \".\" or \"!\", or \"Off\"",
            "test.toml:10: balancer.a.member[0].redirect: no member of this balancer has route `nowhere`",
            "test.toml:4: balancer.a.failonstatus[1]: 99 is not an HTTP status (100..599)",
            "test.toml:13: balancer.b.scolonpathdelim: has no effect without stickysession",
        ]
    );
}

#[test]
fn health_checks_with_templates() {
    let text = r#"[[listen]]
addr = "127.0.0.1:1"
[hctemplate.web]
hcmethod = "GET11"
hcuri = "/health"
hcinterval = "200ms"
hcfails = 3
[balancer.a]
[[balancer.a.member]]
url = "http://h:1"
hctemplate = "web"
hcexpr = 'status in 200..399 and body contains "UP"'
hcpasses = 2
[[balancer.a.member]]
url = "http://h:2"
hcmethod = "TCP"
[[balancer.a.member]]
url = "http://h:3"
[[balancer.a.member]]
url = "http://h:4"
healthcheck = { path = "hc.wasm", config = { deep = true } }
hcinterval = 60
"#;
    let dir = std::env::temp_dir().join(format!("switchyard-hc-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("hc.wasm"), b"x").expect("write");
    let c = parse(text, &dir.join("p.toml")).expect("valid");
    let m = &c.balancers[0].members;
    let hc = m[0].health.as_ref().expect("checked");
    assert_eq!(hc.plugin.source, PluginSource::Builtin("hcheck".into()));
    let config: serde_json::Value = serde_json::from_str(&hc.plugin.config_json).expect("json");
    assert_eq!(config, serde_json::json!({"method": "GET11", "uri": "/health", "expr": "status in 200..399 and body contains \"UP\""}));
    assert_eq!((hc.interval, hc.passes, hc.fails, hc.timeout), (Duration::from_millis(200), 2, 3, Duration::from_millis(200)));
    assert!(hc.plugin.origin.ends_with("p.toml:12: balancer.a.member[0].hcexpr"), "{}", hc.plugin.origin);
    let tcp = m[1].health.as_ref().expect("checked");
    assert_eq!((tcp.interval, tcp.passes, tcp.fails, tcp.timeout), (Duration::from_secs(30), 1, 1, Duration::from_secs(5)), "httpd's defaults");
    assert!(m[2].health.is_none(), "no hc key: not checked");
    let custom = m[3].health.as_ref().expect("checked");
    assert_eq!(custom.plugin.source, PluginSource::File(dir.join("hc.wasm")));
    assert_eq!(custom.plugin.config_json, r#"{"deep":true}"#);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn health_check_errors() {
    let text = r#"[[listen]]
addr = "127.0.0.1:1"
[hctemplate.t]
hcinterval = "10ms"
[balancer.a]
[[balancer.a.member]]
url = "http://h:1"
hctemplate = "nope"
[[balancer.a.member]]
url = "http://h:2"
hcfails = 0
hcuri = "/a b"
healthcheck = "mycheck"
"#;
    assert_eq!(
        errors(text),
        [
            "test.toml:4: hctemplate.t.hcinterval: must be at least 100ms",
            "test.toml:8: balancer.a.member[0].hctemplate: no [hctemplate.nope] is defined",
            "test.toml:11: balancer.a.member[1].hcfails: must be at least 1",
            "test.toml:12: balancer.a.member[1].hcuri: `/a b` must be a path without spaces, such as \"/health\"",
            "test.toml:13: balancer.a.member[1].healthcheck: hcmethod, hcuri and hcexpr configure the default check; give a custom check its settings in its own config",
            "test.toml:13: balancer.a.member[1].healthcheck: unknown health check `mycheck`: the default one is hcheck, or give { path = \"x.wasm\" }",
        ]
    );
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
            "test.toml:16: route[0].upgrade[1]: unknown upgrade protocol `h2c`: only \"websocket\" is supported (h2c upgrades are never forwarded)",
            "test.toml:5: limits.header_fields: must be between 1 and 10000, got 0",
            "test.toml:9: timeouts.keepalive: must be at least 1ms",
            "test.toml:12: forwarded.trusted[1]: `10.0.0.0/40`: the prefix length must be 0..=32",
            "test.toml:12: forwarded.trusted[2]: `proxy.example` is not an address or a CIDR range such as \"10.0.0.0/8\"",
        ]
    );
    let text = text.replace("header_fields = 0\n", "").replace("keepalive = 0\n", "").replace(", \"10.0.0.0/40\", \"proxy.example\"", "").replace(", \"h2c\"", "");
    let c = parse(&text, Path::new("test.toml")).expect("valid");
    assert_eq!(c.limits.request_line, 4096);
    assert_eq!(c.limits.header_fields, 100, "default");
    assert_eq!(c.limits.body, None, "0 means no limit");
    assert_eq!(c.timeouts.header, Duration::from_secs(5));
    assert_eq!(c.timeouts.body_min_rate, 1024);
    assert!(c.forwarded.trusts("10.1.2.3".parse().expect("ip")));
    assert!(c.routes[0].upgrade.websocket);
    let unknown = errors("[[listen]]\naddr = \"127.0.0.1:1\"\n[limits]\nbodysize = 5\n");
    assert!(unknown[0].starts_with("test.toml:4: limits.bodysize: unknown field `bodysize`"), "{}", unknown[0]);
}

#[test]
fn a_shadow_is_an_lbmethod_checked_like_one() {
    let ok = parse("[[listen]]\naddr = \"127.0.0.1:1\"\n[balancer.a]\nshadow = \"bybusyness\"\n[[balancer.a.member]]\nurl = \"http://h:1\"\n", Path::new("test.toml"))
        .expect("valid");
    assert_eq!(ok.balancers[0].shadow.as_ref().map(|s| s.source.clone()), Some(PluginSource::Builtin("bybusyness".into())));
    let errs = errors("[[listen]]\naddr = \"127.0.0.1:1\"\n[balancer.a]\nshadow = \"roundrobin\"\n[[balancer.a.member]]\nurl = \"http://h:1\"\n");
    assert_eq!(
        errs,
        ["test.toml:4: balancer.a.shadow: unknown lbmethod `roundrobin`: the default ones are byrequests, bytraffic, bybusyness, or give { path = \"x.wasm\" }"]
    );
}
