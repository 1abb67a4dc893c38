//! A health check that traps, to prove a broken check only fails its probes: for the member
//! on `port`, with `{ "at": "probe", "port": N }` it panics describing the probe (nothing
//! reaches the member), with `{ "at": "judge", "port": N }` it sends `GET /health` and panics
//! judging the answer. Other members (the host's load-time self-test) get a plain probe.

use serde::Deserialize;
use switchyard_sdk::health_check::Member;
use switchyard_sdk::{Config, HealthCheck, HttpProbe, Outcome, Probe, Verdict};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    at: String,
    port: u16,
}

/// The trapping check.
pub struct BadCheck {
    at: String,
    port: u16,
}

impl HealthCheck for BadCheck {
    fn configure(config: &Config) -> Result<Self, String> {
        let s: Settings = config.parse()?;
        match s.at.as_str() {
            "probe" | "judge" => Ok(BadCheck { at: s.at, port: s.port }),
            other => Err(format!("badcheck: `at` is probe or judge, not {other}")),
        }
    }

    fn probe(&mut self, member: &Member) -> Probe {
        if self.at == "probe" && member.port == self.port {
            panic!("badcheck: trapping in probe on purpose");
        }
        Probe::Http(HttpProbe::new("GET", member.path("/health")))
    }

    fn judge(&mut self, member: &Member, outcome: &Outcome) -> Verdict {
        if member.port == self.port {
            panic!("badcheck: trapping in judge on purpose");
        }
        switchyard_sdk::health_check::default_verdict(outcome)
    }
}

switchyard_sdk::export_health_check!(BadCheck);
