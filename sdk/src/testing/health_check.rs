//! The health-check harness.
//!
//! ```
//! use switchyard_sdk::{Config, HealthCheck, HttpProbe, Outcome, Probe, health_check::Member};
//! use switchyard_sdk::testing::HealthCheckHarness;
//!
//! struct Ping;
//! impl HealthCheck for Ping {
//!     fn configure(_: &Config) -> Result<Self, String> { Ok(Ping) }
//!     fn probe(&mut self, m: &Member) -> Probe { Probe::Http(HttpProbe::new("GET", m.path("/ping"))) }
//! }
//! let mut h = HealthCheckHarness::<Ping>::new("{}").unwrap();
//! let member = Member::from_url("http://10.0.0.5:8080/app").unwrap();
//! assert_eq!(h.probe(&member), Probe::Http(HttpProbe::new("GET", "/app/ping")));
//! assert!(h.check(&member, Outcome::response(204, &[], "")).healthy);
//! assert!(!h.check(&member, Outcome::response(503, &[], "")).healthy);
//! ```

use crate::config::Config;
use crate::health_check::{HealthCheck, MAX_BODY_LIMIT, Member, Outcome, Probe, Verdict};
use crate::rules;

/// Whether the host would send `probe`; `Err` says why not (the host then counts a failed
/// check with that reason).
pub fn check_probe(probe: &Probe) -> Result<(), String> {
    let Probe::Http(p) = probe else { return Ok(()) };
    rules::check_method(&p.method)?;
    rules::check_origin_form(&p.path)?;
    p.headers.iter().try_for_each(|h| rules::check_probe_header(&h.name, &h.value))
}

/// Runs a [`HealthCheck`] natively, as the host would.
#[derive(Debug)]
pub struct HealthCheckHarness<H: HealthCheck> {
    check: H,
}

impl<H: HealthCheck> HealthCheckHarness<H> {
    /// Configures the check with a JSON config table, as the host would; the error is the
    /// plugin's own message.
    pub fn new(config_json: &str) -> Result<Self, String> {
        let config = Config::from_json(config_json)?;
        Ok(Self { check: H::configure(&config)? })
    }

    /// The plugin value.
    pub fn plugin(&mut self) -> &mut H {
        &mut self.check
    }

    /// Asks for the probe of `member`, and checks it like the host: `Err` is the host's
    /// reason for refusing it.
    pub fn try_probe(&mut self, member: &Member) -> Result<Probe, String> {
        let probe = self.check.probe(member);
        check_probe(&probe).map(|()| probe)
    }

    /// Asks for the probe of `member`.
    ///
    /// # Panics
    /// When the host would refuse the probe, with the reason.
    pub fn probe(&mut self, member: &Member) -> Probe {
        self.try_probe(member).unwrap_or_else(|why| panic!("the host would refuse this probe: {why}"))
    }

    /// Judges `outcome` directly, without asking for a probe first.
    pub fn judge(&mut self, member: &Member, outcome: &Outcome) -> Verdict {
        self.check.judge(member, outcome)
    }

    /// One whole check, as the host runs it: asks for the probe, refuses it as the host would
    /// (a failed verdict naming the reason, without calling `judge`), cuts a response body to
    /// the probe's `body_limit` (at most [`MAX_BODY_LIMIT`]), and judges the outcome.
    ///
    /// # Panics
    /// When `outcome` cannot answer the probe: a response to a TCP probe, or `Connected` for
    /// an HTTP one (a mistake in the test).
    pub fn check(&mut self, member: &Member, outcome: Outcome) -> Verdict {
        let probe = match self.try_probe(member) {
            Ok(probe) => probe,
            Err(why) => return Verdict::fail(format!("invalid probe: {why}")),
        };
        let outcome = match (&probe, outcome) {
            (_, Outcome::Failed(why)) => Outcome::Failed(why),
            (Probe::Tcp, Outcome::Connected) => Outcome::Connected,
            (Probe::Http(p), Outcome::Response(mut r)) => {
                r.body.truncate(p.body_limit.min(MAX_BODY_LIMIT) as usize);
                Outcome::Response(r)
            }
            (Probe::Tcp, Outcome::Response(_)) => panic!("a TCP probe gets `Connected` or `Failed`, not a response"),
            (Probe::Http(_), Outcome::Connected) => panic!("an HTTP probe gets a response or `Failed`, not `Connected`"),
        };
        self.check.judge(member, &outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health_check::HttpProbe;

    /// Answers whatever probe it was configured with.
    struct Fixed(Probe);
    impl HealthCheck for Fixed {
        fn configure(config: &Config) -> Result<Self, String> {
            let method = config.get("method").and_then(|v| v.as_str()).unwrap_or("GET");
            let path = config.get("path").and_then(|v| v.as_str()).unwrap_or("/");
            let mut probe = HttpProbe::new(method, path).body_limit(4);
            if let Some(h) = config.get("header").and_then(|v| v.as_str()) {
                probe = probe.header(h, "1");
            }
            Ok(Fixed(if method == "TCP" { Probe::Tcp } else { Probe::Http(probe) }))
        }
        fn probe(&mut self, _: &Member) -> Probe {
            self.0.clone()
        }
        fn judge(&mut self, _: &Member, outcome: &Outcome) -> Verdict {
            match outcome {
                Outcome::Response(r) => Verdict::pass(String::from_utf8_lossy(&r.body)),
                other => crate::health_check::default_verdict(other),
            }
        }
    }

    fn member() -> Member {
        Member::from_url("http://127.0.0.1:9001").expect("valid")
    }

    #[test]
    fn refuses_what_the_host_refuses() {
        for (config, why) in [
            (r#"{"method": "G T"}"#, "not a valid HTTP method"),
            (r#"{"method": ""}"#, "not a valid HTTP method"),
            (r#"{"path": "*"}"#, "origin form"),
            (r#"{"path": "/a b"}"#, "not allowed"),
            (r#"{"header": "Host"}"#, "host writes it"),
            (r#"{"header": "Transfer-Encoding"}"#, "host writes it"),
            (r#"{"header": "bad name"}"#, "not a valid token"),
        ] {
            let mut h = HealthCheckHarness::<Fixed>::new(config).expect("configure");
            let err = h.try_probe(&member()).expect_err(config);
            assert!(err.contains(why), "{config}: {err}");
            let verdict = h.check(&member(), Outcome::response(200, &[], ""));
            assert!(!verdict.healthy && verdict.reason.starts_with("invalid probe: "), "{verdict:?}");
        }
    }

    #[test]
    fn cuts_the_body_to_the_limit() {
        let mut h = HealthCheckHarness::<Fixed>::new("{}").expect("configure");
        assert_eq!(h.check(&member(), Outcome::response(200, &[], "abcdef")).reason, "abcd");
    }

    #[test]
    fn tcp_probes_and_failures() {
        let mut h = HealthCheckHarness::<Fixed>::new(r#"{"method": "TCP"}"#).expect("configure");
        assert_eq!(h.probe(&member()), Probe::Tcp);
        assert!(h.check(&member(), Outcome::Connected).healthy);
        assert_eq!(h.check(&member(), Outcome::Failed("refused".into())), Verdict::fail("refused"));
    }

    #[test]
    #[should_panic(expected = "not a response")]
    fn a_response_to_a_tcp_probe_is_a_test_mistake() {
        let mut h = HealthCheckHarness::<Fixed>::new(r#"{"method": "TCP"}"#).expect("configure");
        h.check(&member(), Outcome::response(200, &[], ""));
    }
}
