//! `peak-ewma`: latency-aware balancing as Finagle and linkerd do it — a peak-sensitive
//! moving average of each member's response time, and power of two choices.
//!
//! For every request two different candidates are drawn at random and the cheaper one gets
//! it. A member's cost is its latency estimate times (requests in flight + 1), divided by its
//! loadfactor: a slow member, a busy one and a light one all cost more.
//!
//! The estimate is kept from the host's completion feedback (contract 0.2): each answer's
//! time to the response head moves it, but a sample *above* the estimate replaces it at once
//! (the "peak"), so a member that turns slow is avoided from its first slow answer, and one
//! that turns fast again earns its traffic back gradually. With no samples the estimate
//! decays towards zero (time constant `decay_ms`), so a member left alone is tried again
//! after a while instead of being shunned forever. An attempt that failed (connect refused,
//! timed out, broken) counts as a sample of `failure_ms` (or its real duration, if longer).
//!
//! Config (the plugin's table in the proxy config; every key optional):
//!
//! ```toml
//! lbmethod = { path = "peak_ewma.wasm", config = { decay_ms = 10000, default_rtt_ms = 30, failure_ms = 5000 } }
//! ```
//!
//! The estimates are per instance (the host runs a few per balancer, each seeing every
//! completion), and start again after a hot swap or a trap: they are a cache of what the
//! completions said, rebuilt within a few requests.

use serde::Deserialize;
use switchyard_sdk::{AttemptOutcome, Candidates, Completions, Config, Decision, LbMethod, MemberInfo, Request};

/// The plugin's config table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// The estimate's time constant: how fast old samples lose weight, and how fast an idle
    /// member's estimate decays.
    #[serde(default = "default_decay_ms")]
    decay_ms: u64,
    /// The estimate of a member no answer has been seen from yet.
    #[serde(default = "default_rtt_ms")]
    default_rtt_ms: u64,
    /// The sample a failed attempt counts as (at least).
    #[serde(default = "default_failure_ms")]
    failure_ms: u64,
}

fn default_decay_ms() -> u64 {
    10_000
}

fn default_rtt_ms() -> u64 {
    30
}

fn default_failure_ms() -> u64 {
    5_000
}

/// One member's latency estimate, in microseconds, and when it was last brought up to date.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Estimate {
    rtt: f64,
    at: u64,
    seen: bool,
}

/// The peak-EWMA method.
#[derive(Debug)]
pub struct PeakEwma {
    decay_micros: f64,
    default_rtt_micros: f64,
    failure_micros: u64,
    /// By member position (the list given to `reset`).
    estimates: Vec<Estimate>,
    /// splitmix64 state for the two random choices.
    rng: u64,
}

impl PeakEwma {
    fn fresh(&self) -> Estimate {
        Estimate { rtt: self.default_rtt_micros, at: 0, seen: false }
    }

    /// The estimate of `member` decayed to `now` (and stored so).
    fn decayed(&mut self, member: usize, now: u64) -> f64 {
        let decay = self.decay_micros;
        let Some(e) = self.estimates.get_mut(member) else { return self.default_rtt_micros };
        if !e.seen {
            return e.rtt;
        }
        if now > e.at {
            e.rtt *= (-((now - e.at) as f64) / decay).exp();
            e.at = now;
        }
        e.rtt
    }

    /// Takes one sample of `rtt` microseconds for `member`, observed at `at`.
    fn observe(&mut self, member: usize, rtt: u64, at: u64) {
        let decay = self.decay_micros;
        let Some(e) = self.estimates.get_mut(member) else { return };
        let rtt = rtt as f64;
        if !e.seen {
            *e = Estimate { rtt, at, seen: true };
            return;
        }
        let elapsed = at.saturating_sub(e.at) as f64;
        let w = (-elapsed / decay).exp();
        e.rtt = if rtt > e.rtt { rtt } else { e.rtt * w + rtt * (1.0 - w) };
        e.at = e.at.max(at);
    }

    /// A member's cost: its estimate times (in flight + 1), per unit of loadfactor.
    fn cost(&mut self, candidates: &Candidates<'_>, i: usize, now: u64) -> f64 {
        let Some(c) = candidates.get(i) else { return f64::INFINITY };
        let rtt = self.decayed(c.member, now);
        // lbfactor is loadfactor × 100, at least 100.
        rtt * (c.busy as f64 + 1.0) * 100.0 / f64::from(c.lbfactor.max(1))
    }

    fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl LbMethod for PeakEwma {
    fn configure(config: &Config) -> Result<Self, String> {
        let s: Settings = config.parse().map_err(|e| format!("peak-ewma: {e}"))?;
        if s.decay_ms == 0 {
            return Err("peak-ewma: decay_ms must be at least 1".into());
        }
        Ok(Self {
            decay_micros: s.decay_ms as f64 * 1000.0,
            default_rtt_micros: s.default_rtt_ms as f64 * 1000.0,
            failure_micros: s.failure_ms.saturating_mul(1000),
            estimates: Vec::new(),
            rng: 0x5EED,
        })
    }

    fn reset(&mut self, members: &[MemberInfo]) {
        // Positions may have moved: start over (a few requests rebuild the estimates).
        self.estimates = vec![self.fresh(); members.len()];
    }

    fn wants_completions(&self) -> bool {
        true
    }

    fn complete(&mut self, completions: &Completions<'_>) {
        for c in completions.iter() {
            let rtt = match (c.outcome, c.head_micros) {
                (AttemptOutcome::Response, Some(head)) => head,
                _ => c.total_micros.max(self.failure_micros),
            };
            self.observe(c.member, rtt, c.finished_at);
        }
    }

    fn pick(&mut self, request: Request, candidates: &Candidates<'_>) -> Option<Decision> {
        let n = candidates.len();
        if n <= 1 {
            return (n == 1).then(|| Decision::to(0));
        }
        let a = (self.next_random() % n as u64) as usize;
        let mut b = (self.next_random() % (n as u64 - 1)) as usize;
        if b >= a {
            b += 1;
        }
        let (cost_a, cost_b) = (self.cost(candidates, a, request.now), self.cost(candidates, b, request.now));
        Some(Decision::to(if cost_b < cost_a { b } else { a }))
    }
}

switchyard_sdk::export_lbmethod!(PeakEwma);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::Completion;
    use switchyard_sdk::testing::Harness;

    fn harness(config: &str, members: &[&str]) -> Harness<PeakEwma> {
        members.iter().fold(Harness::new(config).expect("configure"), |h, name| h.member(name, 1.0))
    }

    fn share_of(h: &mut Harness<PeakEwma>, member: &str, n: usize) -> usize {
        h.sequence(n).iter().filter(|m| *m == member).count()
    }

    #[test]
    fn without_samples_the_choice_is_random_over_both() {
        let mut h = harness("{}", &["a", "b"]);
        let a = share_of(&mut h, "a", 200);
        assert!((60..=140).contains(&a), "a got {a} of 200");
    }

    #[test]
    fn a_slow_member_gets_almost_nothing() {
        let mut h = harness("{}", &["a", "b"]);
        h.answered(0, 50_000);
        h.answered(1, 1_000);
        assert_eq!(share_of(&mut h, "a", 100), 0, "two candidates: the fast one always wins");
    }

    #[test]
    fn one_slow_answer_is_enough_the_peak() {
        let mut h = harness("{}", &["a", "b"]);
        for _ in 0..50 {
            h.answered(0, 1_000);
            h.answered(1, 1_000);
            h.advance(1_000);
        }
        h.sequence(1);
        h.answered(0, 80_000);
        assert_eq!(share_of(&mut h, "a", 20), 0);
    }

    #[test]
    fn an_idle_slow_member_is_tried_again_after_a_while() {
        let mut h = harness(r#"{"decay_ms": 100}"#, &["a", "b"]);
        h.answered(0, 50_000);
        h.answered(1, 5_000);
        assert_eq!(share_of(&mut h, "a", 10), 0);
        // a's 50 ms decays below b's last 5 ms when b keeps being chosen without new samples:
        // after 1 s both have decayed, and the comparison is close again.
        h.advance(1_000_000);
        h.answered(1, 5_000);
        let a = share_of(&mut h, "a", 10);
        assert!(a > 0, "a is tried again once its estimate decayed");
    }

    #[test]
    fn requests_in_flight_count() {
        let mut h = harness("{}", &["a", "b"]);
        h.answered(0, 1_000);
        h.answered(1, 1_000);
        h.member_mut(0).busy = 5;
        assert_eq!(share_of(&mut h, "a", 20), 0);
    }

    #[test]
    fn a_failure_counts_as_a_slow_answer() {
        let mut h = harness(r#"{"failure_ms": 2000}"#, &["a", "b"]);
        h.answered(1, 10_000);
        let now = h.now();
        h.complete(Completion {
            member: 0,
            outcome: AttemptOutcome::ConnectFailed,
            status: 0,
            head_micros: None,
            total_micros: 200,
            received: 0,
            finished_at: now,
        });
        assert_eq!(share_of(&mut h, "a", 20), 0);
    }

    #[test]
    fn loadfactor_scales_the_cost() {
        let mut h = Harness::<PeakEwma>::new("{}").expect("configure").member("a", 10.0).member("b", 1.0);
        h.answered(0, 5_000);
        h.answered(1, 1_000);
        assert_eq!(share_of(&mut h, "b", 20), 0, "a is 5x slower but 10x heavier");
    }

    #[test]
    fn bad_config_is_refused() {
        assert!(Harness::<PeakEwma>::new(r#"{"decay_ms": 0}"#).is_err());
        let e = Harness::<PeakEwma>::new(r#"{"decay": 5}"#).expect_err("unknown key");
        assert!(e.contains("decay"), "{e}");
    }
}
