//! Golden tests: valid and invalid files, with the exact messages an operator sees.

use std::path::Path;
use std::time::Duration;

use super::*;

mod balancers;
mod edge;

pub(super) const QUICKSTART_SHAPE: &str = r#"
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

pub(super) fn errors(text: &str) -> Vec<String> {
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
