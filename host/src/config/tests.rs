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
url = "https://h:2"
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
            "test.toml:9: balancer.a.member[1].url: `https://h:2`: https members are not supported yet; use http://",
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
