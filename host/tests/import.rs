//! `switchyard import-httpd` on golden files: every configuration example of httpd's reverse
//! proxy guide, and a larger production-shaped configuration (virtual hosts, includes,
//! several balancers, sticky sessions, TLS, directives Switchyard does not have). Each
//! `tests/import/NAME.conf` must convert to exactly `NAME.toml` with exactly the report in
//! `NAME.report`, and the result must pass the proxy's own config check.
//!
//! After a deliberate change, `UPDATE_GOLDEN=1 cargo test -p switchyard --test import`
//! rewrites the golden files; review the diff.

use std::path::Path;

use switchyard::import::{Severity, import_httpd};

fn check(name: &str) -> switchyard::import::Import {
    // Relative paths keep the golden files free of this machine's folders (tests run in the
    // package's folder).
    let conf = format!("tests/import/{name}.conf");
    let toml_file = format!("tests/import/{name}.toml");
    let report_file = format!("tests/import/{name}.report");
    let import = import_httpd(Path::new(&conf), Path::new(&toml_file)).unwrap_or_else(|e| panic!("{name}: {e}"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&toml_file, &import.toml).expect("write golden toml");
        std::fs::write(&report_file, import.report()).expect("write golden report");
    }
    let want_toml = std::fs::read_to_string(&toml_file).unwrap_or_else(|e| panic!("{toml_file}: {e} (UPDATE_GOLDEN=1 makes it)"));
    let want_report = std::fs::read_to_string(&report_file).unwrap_or_else(|e| panic!("{report_file}: {e}"));
    assert_eq!(import.toml, want_toml, "{name}: the TOML differs from {toml_file}");
    assert_eq!(import.report(), want_report, "{name}: the report differs from {report_file}");
    switchyard::config::parse(&import.toml, Path::new(&toml_file)).unwrap_or_else(|e| panic!("{name}: the result fails the check:\n{e}"));
    import
}

/// The guide's examples translate with nothing missing but the balancer manager (not built
/// yet) and the IPv4-only note of a bare `Listen` port.
#[test]
fn the_guide_examples_convert() {
    for name in ["guide-simple", "guide-reverse", "guide-bytraffic", "guide-loadfactor", "guide-failover", "guide-health"] {
        let import = check(name);
        assert!(import.findings.iter().all(|f| f.severity != Severity::Untranslated), "{name}: {}", import.report());
    }
    let manager = check("guide-manager");
    assert!(!manager.complete());
    assert!(manager.report().contains("balancer manager"));
}

#[test]
fn a_production_shaped_config_converts_with_a_report() {
    let import = check("realworld");
    assert!(!import.complete(), "ajp://, heartbeat, regex routes and the manager cannot be carried over");
    let report = import.report();
    for expected in ["ajp://", "lbmethod=heartbeat", "no regex routes", "balancer manager", "merged", "BalancerPersist", "SSLProtocol"] {
        assert!(report.contains(expected), "the report names {expected}:\n{report}");
    }
    for translated in ["stickysession = \"JSESSIONID|jsessionid\"", "lbmethod = \"bybusyness\"", "[listen.tls]", "tls = { ca = ", "hcexpr = \"(status in 200..399 and body contains \\\"OK\\\")\"", "preserve_host = true", "path = \"/api/v1\""] {
        assert!(import.toml.contains(translated), "the result holds {translated}:\n{}", import.toml);
    }
}
