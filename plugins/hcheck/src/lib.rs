//! `hcheck`: httpd's mod_proxy_hcheck as a health-check plugin.
//!
//! Configured with `{"method": "GET", "uri": "/health", "expr": "...", "body_limit": 4096}`,
//! every key optional:
//!
//! - `method`: httpd's `hcmethod`, any case: `TCP` (connect and close; the default, as in
//!   httpd's ProxyHCTemplate), `OPTIONS`, `HEAD`, `GET` (HTTP/1.0) and `OPTIONS11`, `HEAD11`,
//!   `GET11` (HTTP/1.1).
//! - `uri`: httpd's `hcuri`, appended to the member's path with one slash (`/app` and
//!   `/health` give `/app/health`); empty by default, which probes the member's path itself
//!   (`/` when it has none). httpd sends `OPTIONS *`; a probe here must be in origin form, so
//!   `OPTIONS` goes to that path instead.
//! - `expr`: like httpd's `hcexpr`, a condition on the response (the language is below).
//!   Without it a probe passes on a 2xx or 3xx status, as in httpd.
//! - `body_limit`: how many body bytes an `expr` that reads `body` sees (default 4096, at most
//!   65536). No body is read unless `expr` reads it.
//!
//! Settings that could not take effect are errors at config load: `uri` or `expr` with
//! `TCP`, an `expr` reading the body of a `HEAD` or `OPTIONS` response (which has none).
//!
//! # The `expr` language
//!
//! ```text
//! expr       = or
//! or         = and { ("or" | "||") and }
//! and        = unary { ("and" | "&&") unary }
//! unary      = ("not" | "!") unary | primary
//! primary    = "(" expr ")" | status | header | body
//! status     = "status" cmp CODE
//!            | "status" "in" CODE ".." CODE
//!            | "status" "in" "[" item { "," item } "]"
//! item       = CODE [ ".." CODE ]
//! header     = "header" "(" STRING ")" ( "exists" | strop STRING )
//! body       = "body" strop STRING
//! cmp        = "==" | "!=" | "<" | "<=" | ">" | ">="
//! strop      = "==" | "!=" | "contains" | "starts_with" | "ends_with"
//! CODE       = a status code, 100..999
//! STRING     = '"' { any character but '"' and '\', or '\"', or '\\' } '"'
//! ```
//!
//! `not` binds tighter than `and`, `and` tighter than `or`. Ranges are inclusive. Keywords are
//! lowercase. Header names are compared ignoring case; a header sent more than once is
//! tested on its values joined with `", "`; an absent header `exists` is false, `!=` true and
//! every other test false. `body` is the first `body_limit` bytes, compared byte for byte.
//! A failed check says which part failed (`status 503 not in 200..399`,
//! `body does not contain "UP"`).

mod expr;

use serde::Deserialize;
use switchyard_sdk::health_check::{Member, default_verdict};
use switchyard_sdk::{Config, HealthCheck, HttpProbe, HttpVersion, Outcome, Probe, Verdict};

use expr::Expr;

/// The body bytes an `expr` reading the body sees unless `body_limit` says otherwise.
pub const DEFAULT_BODY_LIMIT: u32 = 4096;

/// The most body bytes the host reads.
pub const MAX_BODY_LIMIT: u32 = switchyard_sdk::health_check::MAX_BODY_LIMIT;

/// The plugin's config table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    method: Option<String>,
    uri: Option<String>,
    expr: Option<String>,
    body_limit: Option<u32>,
}

/// The configured health check.
#[derive(Debug)]
pub struct Hcheck {
    /// The HTTP method and version; `None` for TCP.
    http: Option<(&'static str, HttpVersion)>,
    /// `uri`, as configured.
    uri: String,
    expr: Option<Expr>,
    /// Body bytes to read: 0 unless `expr` reads the body.
    body_limit: u32,
}

/// httpd's hcmethod values: name, HTTP method (`None` for TCP) and version.
const METHODS: [(&str, Option<&str>, HttpVersion); 7] = [
    ("TCP", None, HttpVersion::Http10),
    ("OPTIONS", Some("OPTIONS"), HttpVersion::Http10),
    ("HEAD", Some("HEAD"), HttpVersion::Http10),
    ("GET", Some("GET"), HttpVersion::Http10),
    ("OPTIONS11", Some("OPTIONS"), HttpVersion::Http11),
    ("HEAD11", Some("HEAD"), HttpVersion::Http11),
    ("GET11", Some("GET"), HttpVersion::Http11),
];

impl Hcheck {
    fn from_raw(raw: RawConfig) -> Result<Self, String> {
        let method = raw.method.as_deref().unwrap_or("TCP");
        let Some(&(_, http_method, version)) = METHODS.iter().find(|(name, ..)| name.eq_ignore_ascii_case(method))
        else {
            return Err(format!(
                "method: unknown hcmethod {method:?} (expected TCP, OPTIONS, HEAD, GET, OPTIONS11, HEAD11 or GET11)"
            ));
        };
        let http = http_method.map(|m| (m, version));

        let uri = raw.uri.unwrap_or_default();
        if !uri.is_empty() {
            let path = format!("/{}", uri.trim_start_matches('/'));
            switchyard_sdk::rules::check_origin_form(&path).map_err(|e| format!("uri: {e}"))?;
        }

        let expr = raw.expr.as_deref().map(Expr::parse).transpose()?;
        let reads_body = expr.as_ref().is_some_and(Expr::reads_body);
        match (http, &expr) {
            (None, _) if !uri.is_empty() => {
                return Err("uri has no effect with method TCP, which only connects: set method to GET, HEAD or OPTIONS".into());
            }
            (None, Some(_)) => {
                return Err("expr has no effect with method TCP, which only connects: set method to GET, HEAD or OPTIONS".into());
            }
            (Some((m @ ("HEAD" | "OPTIONS"), _)), Some(_)) if reads_body => {
                return Err(format!("expr reads the body, but the answer to {m} has none: set method to GET or GET11"));
            }
            _ => {}
        }

        let body_limit = raw.body_limit.unwrap_or(DEFAULT_BODY_LIMIT);
        if body_limit > MAX_BODY_LIMIT {
            return Err(format!("body_limit {body_limit} is over the maximum, {MAX_BODY_LIMIT}"));
        }
        if reads_body && body_limit == 0 {
            return Err("body_limit is 0, but expr reads the body".into());
        }
        Ok(Self { http, uri, expr, body_limit: if reads_body { body_limit } else { 0 } })
    }
}

impl HealthCheck for Hcheck {
    fn configure(config: &Config) -> Result<Self, String> {
        Self::from_raw(config.parse()?)
    }

    fn probe(&mut self, member: &Member) -> Probe {
        match self.http {
            None => Probe::Tcp,
            Some((method, version)) => Probe::Http(
                HttpProbe::new(method, member.path(&self.uri)).version(version).body_limit(self.body_limit),
            ),
        }
    }

    fn judge(&mut self, _member: &Member, outcome: &Outcome) -> Verdict {
        match (outcome, &self.expr) {
            (Outcome::Connected, _) if self.http.is_some() => Verdict::fail("connected, but got no HTTP response"),
            (Outcome::Response(r), Some(expr)) => {
                let j = expr.judge(r.status, &r.headers, &r.body);
                Verdict { healthy: j.ok, reason: j.reason }
            }
            _ => default_verdict(outcome),
        }
    }
}

switchyard_sdk::export_health_check!(Hcheck);

// Each call gets the blocks the last one freed (the candidate table, the answer's lists)
// instead of going to dlmalloc for them.
#[global_allocator]
static ALLOCATOR: switchyard_sdk::Recycling = switchyard_sdk::Recycling::new();

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::testing::HealthCheckHarness;

    fn harness(config: &str) -> HealthCheckHarness<Hcheck> {
        HealthCheckHarness::new(config).unwrap_or_else(|e| panic!("{config}: {e}"))
    }

    fn error(config: &str) -> String {
        HealthCheckHarness::<Hcheck>::new(config).expect_err(config)
    }

    fn member(url: &str) -> Member {
        Member::from_url(url).expect("valid member URL")
    }

    fn http(method: &str, path: &str, version: HttpVersion, body_limit: u32) -> Probe {
        Probe::Http(HttpProbe::new(method, path).version(version).body_limit(body_limit))
    }

    #[test]
    fn defaults_to_tcp_like_httpds_template() {
        let mut h = harness("{}");
        let m = member("http://127.0.0.1:9001");
        assert_eq!(h.probe(&m), Probe::Tcp);
        assert_eq!(h.check(&m, Outcome::Connected), Verdict::pass("connected"));
        assert_eq!(h.check(&m, Outcome::Failed("connection refused".into())), Verdict::fail("connection refused"));
    }

    #[test]
    fn every_hcmethod_in_any_case() {
        use HttpVersion::{Http10, Http11};
        let m = member("http://10.0.0.5:8080/app/");
        for (method, probe) in [
            ("tcp", Probe::Tcp),
            ("OPTIONS", http("OPTIONS", "/app", Http10, 0)),
            ("head", http("HEAD", "/app", Http10, 0)),
            ("Get", http("GET", "/app", Http10, 0)),
            ("options11", http("OPTIONS", "/app", Http11, 0)),
            ("HEAD11", http("HEAD", "/app", Http11, 0)),
            ("get11", http("GET", "/app", Http11, 0)),
        ] {
            assert_eq!(harness(&format!(r#"{{"method": "{method}"}}"#)).probe(&m), probe, "{method}");
        }
    }

    #[test]
    fn uri_is_appended_to_the_member_path() {
        let mut h = harness(r#"{"method": "GET", "uri": "/health?deep=1"}"#);
        assert_eq!(h.probe(&member("http://10.0.0.5:8080/app")), http("GET", "/app/health?deep=1", HttpVersion::Http10, 0));
        assert_eq!(h.probe(&member("http://10.0.0.5:8080")), http("GET", "/health?deep=1", HttpVersion::Http10, 0));
        let mut h = harness(r#"{"method": "HEAD11", "uri": "status"}"#);
        assert_eq!(h.probe(&member("http://h/app/")), http("HEAD", "/app/status", HttpVersion::Http11, 0));
        let mut h = harness(r#"{"method": "GET"}"#);
        assert_eq!(h.probe(&member("http://h")), http("GET", "/", HttpVersion::Http10, 0));
        assert_eq!(h.probe(&member("http://h/app/")), http("GET", "/app", HttpVersion::Http10, 0));
        let mut h = harness(r#"{"method": "GET", "uri": "/"}"#);
        assert_eq!(h.probe(&member("http://h/app")), http("GET", "/app/", HttpVersion::Http10, 0));
    }

    #[test]
    fn without_expr_2xx_and_3xx_pass() {
        let mut h = harness(r#"{"method": "GET"}"#);
        let m = member("http://h");
        for (status, healthy) in [(100, false), (199, false), (200, true), (204, true), (302, true), (399, true), (400, false), (503, false)] {
            let v = h.check(&m, Outcome::response(status, &[], ""));
            assert_eq!(v.healthy, healthy, "{status}: {v:?}");
        }
        assert_eq!(h.check(&m, Outcome::response(503, &[], "")).reason, "status 503 not in 200..399");
        assert_eq!(h.check(&m, Outcome::response(200, &[], "")).reason, "status 200");
        assert_eq!(h.check(&m, Outcome::Failed("timed out".into())), Verdict::fail("timed out"));
    }

    #[test]
    fn an_expr_on_the_body_asks_for_the_body() {
        let config = r#"{"method": "GET11", "uri": "/health", "expr": "status in 200..399 and body contains \"UP\""}"#;
        let mut h = harness(config);
        let m = member("http://10.0.0.1/app");
        assert_eq!(h.probe(&m), http("GET", "/app/health", HttpVersion::Http11, DEFAULT_BODY_LIMIT));
        assert_eq!(
            h.check(&m, Outcome::response(200, &[], r#"{"status":"UP"}"#)),
            Verdict::pass(r#"status 200 in 200..399 and body contains "UP""#)
        );
        assert_eq!(h.check(&m, Outcome::response(503, &[], "UP")), Verdict::fail("status 503 not in 200..399"));
        assert_eq!(h.check(&m, Outcome::response(200, &[], "DOWN")), Verdict::fail(r#"body does not contain "UP""#));
        assert_eq!(h.check(&m, Outcome::Failed("reset".into())), Verdict::fail("reset"));
    }

    #[test]
    fn body_limit_is_honoured_and_only_asked_for_when_needed() {
        let m = member("http://h");
        let mut h = harness(r#"{"method": "GET", "expr": "body ends_with \"UP\"", "body_limit": 8}"#);
        assert_eq!(h.probe(&m), http("GET", "/", HttpVersion::Http10, 8));
        // The host reads 8 bytes: "status: " — the UP past them is not seen.
        assert!(!h.check(&m, Outcome::response(200, &[], "status: UP")).healthy);
        let mut h = harness(r#"{"method": "GET", "expr": "status == 200", "body_limit": 100}"#);
        assert_eq!(h.probe(&m), http("GET", "/", HttpVersion::Http10, 0));
        let mut h = harness(r#"{"method": "GET", "expr": "body contains \"x\"", "body_limit": 65536}"#);
        assert_eq!(h.probe(&m), http("GET", "/", HttpVersion::Http10, 65536));
    }

    #[test]
    fn header_expressions_work_with_head_and_options() {
        let mut h = harness(r#"{"method": "OPTIONS", "expr": "header(\"Allow\") contains \"GET\""}"#);
        let m = member("http://h");
        assert!(h.check(&m, Outcome::response(200, &[("allow", "GET, HEAD")], "")).healthy);
        assert_eq!(
            h.check(&m, Outcome::response(200, &[], "")),
            Verdict::fail("header Allow is absent")
        );
    }

    #[test]
    fn a_connect_without_a_response_fails_an_http_check() {
        let mut h = harness(r#"{"method": "GET"}"#);
        let verdict = h.judge(&member("http://h"), &Outcome::Connected);
        assert_eq!(verdict, Verdict::fail("connected, but got no HTTP response"));
    }

    #[test]
    fn config_errors() {
        let cases = [
            (r#"{"method": "POST"}"#, r#"method: unknown hcmethod "POST" (expected TCP, OPTIONS, HEAD, GET, OPTIONS11, HEAD11 or GET11)"#),
            (r#"{"metod": "GET"}"#, "unknown field `metod`, expected one of `method`, `uri`, `expr`, `body_limit`"),
            (r#"{"method": 1}"#, "invalid type: integer `1`, expected a string"),
            (r#"{"uri": "/x"}"#, "uri has no effect with method TCP, which only connects: set method to GET, HEAD or OPTIONS"),
            (r#"{"expr": "status == 200"}"#, "expr has no effect with method TCP, which only connects: set method to GET, HEAD or OPTIONS"),
            (r#"{"method": "HEAD", "expr": "body contains \"UP\""}"#, "expr reads the body, but the answer to HEAD has none: set method to GET or GET11"),
            (r#"{"method": "OPTIONS11", "expr": "not body == \"\""}"#, "expr reads the body, but the answer to OPTIONS has none: set method to GET or GET11"),
            (r#"{"method": "GET", "expr": "body contains \"UP\"", "body_limit": 0}"#, "body_limit is 0, but expr reads the body"),
            (r#"{"method": "GET", "body_limit": 65537}"#, "body_limit 65537 is over the maximum, 65536"),
            (r#"{"method": "GET", "uri": "/a b"}"#, r#"uri: path "/a b" contains ' ', which is not allowed in a request target"#),
            (r#"{"method": "GET", "expr": "status in abc"}"#, "hcexpr: expected a status code after `in` at column 11: status in abc"),
            (r#"{"method": "GET", "expr": ""}"#, "hcexpr: the expression is empty"),
        ];
        for (config, want) in cases {
            let got = error(config);
            assert!(got.starts_with(want), "{config}\n got: {got}\nwant: {want}");
        }
    }
}
