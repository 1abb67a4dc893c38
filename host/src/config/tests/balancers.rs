//! Golden tests for balancers: plugins, failover and sticky settings, health checks, shadows.

use std::path::Path;
use std::time::Duration;

use super::super::*;
use super::errors;

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
