//! The Rust project: a crate of its own depending on `switchyard-sdk` (which carries the WIT
//! contract), a working plugin of the asked kind with a native test, and a README.

use std::path::Path;

use super::Kind;

/// The project's files.
pub(super) fn files(name: &str, kind: Kind, ty: &str, sdk: &Path) -> Vec<(String, String)> {
    vec![
        ("Cargo.toml".into(), cargo_toml(name, sdk)),
        ("src/lib.rs".into(), lib_rs(kind, ty)),
        ("README.md".into(), readme(name, kind)),
        (".gitignore".into(), "/target\n".to_string()),
    ]
}

fn cargo_toml(name: &str, sdk: &Path) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"

# cdylib: the Wasm component (`cargo build --target wasm32-wasip2 --release`);
# rlib: the native tests (`cargo test`).
[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
switchyard-sdk = {{ path = "{sdk}" }}

[profile.release]
opt-level = "s"
lto = true

# A workspace of its own, wherever this directory is.
[workspace]
"#,
        sdk = sdk.display().to_string().replace('\\', "/")
    )
}

fn lib_rs(kind: Kind, ty: &str) -> String {
    match kind {
        Kind::LbMethod => format!(
            r#"//! A load-balancing method for Switchyard: the least busy candidate, ties to the first.

use switchyard_sdk::{{Candidates, Config, Decision, LbMethod, Request}};

/// The method. Its state lives in the host (lbstatus, busy…), so it keeps none.
pub struct {ty};

impl LbMethod for {ty} {{
    fn configure(_config: &Config) -> Result<Self, String> {{
        Ok({ty})
    }}

    fn pick(&mut self, _request: Request, candidates: &Candidates<'_>) -> Option<Decision> {{
        let best = candidates.iter().enumerate().min_by_key(|(_, c)| c.busy)?.0;
        Some(Decision::to(best))
    }}
}}

switchyard_sdk::export_lbmethod!({ty});

// Each call gets the blocks the last one freed instead of going to dlmalloc for them.
#[global_allocator]
static ALLOCATOR: switchyard_sdk::Recycling = switchyard_sdk::Recycling::new();

#[cfg(test)]
mod tests {{
    use super::*;
    use switchyard_sdk::testing::Harness;

    #[test]
    fn picks_the_least_busy() {{
        let mut h = Harness::<{ty}>::new("{{}}").expect("configure").member("a", 1.0).member("b", 1.0);
        h.member_mut(0).busy = 3;
        assert_eq!(h.pick(), Some(1));
    }}
}}
"#
        ),
        Kind::HealthCheck => format!(
            r#"//! A health check for Switchyard: `GET /ping`; 2xx and 3xx pass (httpd's rule).

use switchyard_sdk::health_check::Member;
use switchyard_sdk::{{Config, HealthCheck, HttpProbe, Probe}};

/// The check.
pub struct {ty};

impl HealthCheck for {ty} {{
    fn configure(_config: &Config) -> Result<Self, String> {{
        Ok({ty})
    }}

    fn probe(&mut self, member: &Member) -> Probe {{
        Probe::Http(HttpProbe::new("GET", member.path("/ping")))
    }}
}}

switchyard_sdk::export_health_check!({ty});

// Each call gets the blocks the last one freed instead of going to dlmalloc for them.
#[global_allocator]
static ALLOCATOR: switchyard_sdk::Recycling = switchyard_sdk::Recycling::new();

#[cfg(test)]
mod tests {{
    use super::*;
    use switchyard_sdk::testing::HealthCheckHarness;

    #[test]
    fn probes_ping_under_the_member_path() {{
        let mut h = HealthCheckHarness::<{ty}>::new("{{}}").expect("configure");
        let member = Member::from_url("http://10.0.0.1:8080/app").expect("a member URL");
        let Probe::Http(probe) = h.probe(&member) else {{ panic!("an HTTP probe") }};
        assert_eq!(probe.path, "/app/ping");
    }}
}}
"#
        ),
        Kind::HeaderRewrite => format!(
            r#"//! A header rewrite for Switchyard: removes `Server` from every response.

use switchyard_sdk::{{Config, Context, Edit, Header, HeaderRewrite, Interest, PhaseInterest}};

/// The rewrite.
pub struct {ty};

impl HeaderRewrite for {ty} {{
    fn configure(_config: &Config) -> Result<Self, String> {{
        Ok({ty})
    }}

    fn interest(&self) -> Interest {{
        Interest {{ response: PhaseInterest::headers(["server"]), ..Interest::default() }}
    }}

    fn on_response(&mut self, _: &Context, _status: u16, _: &[Header]) -> Vec<Edit> {{
        vec![Edit::remove("server")]
    }}
}}

switchyard_sdk::export_header_rewrite!({ty});

// Each call gets the blocks the last one freed instead of going to dlmalloc for them.
#[global_allocator]
static ALLOCATOR: switchyard_sdk::Recycling = switchyard_sdk::Recycling::new();

#[cfg(test)]
mod tests {{
    use super::*;
    use switchyard_sdk::testing::HeaderRewriteHarness;

    #[test]
    fn removes_server_and_nothing_else() {{
        let mut h = HeaderRewriteHarness::<{ty}>::new("{{}}").expect("configure");
        let out = h.response(200, &[("server", "nginx"), ("content-type", "text/plain")]);
        assert_eq!(out.get("server"), None);
        assert_eq!(out.get("content-type"), Some("text/plain"));
    }}
}}
"#
        ),
    }
}

fn readme(name: &str, kind: Kind) -> String {
    let wasm = name.replace('-', "_");
    let load = match kind {
        Kind::LbMethod => format!("[balancer.web]\nlbmethod = {{ path = \"{wasm}.wasm\", config = {{}} }}"),
        Kind::HealthCheck => format!("[[balancer.web.member]]\nurl = \"http://10.0.0.1:8080\"\nhealthcheck = {{ path = \"{wasm}.wasm\" }}"),
        Kind::HeaderRewrite => format!("[[route]]\npath = \"/\"\nbalancer = \"web\"\nrewrite = [{{ path = \"{wasm}.wasm\" }}]"),
    };
    format!(
        r#"# {name}

A Switchyard plugin.

```sh
cargo test                                        # natively, through the SDK's test harness
cargo build --target wasm32-wasip2 --release      # the component
switchyard plugin check target/wasm32-wasip2/release/{wasm}.wasm   # will a proxy load it?
```

(`rustup target add wasm32-wasip2` once, if the target is missing.) Then, in the proxy's config:

```toml
{load}
```
"#
    )
}
