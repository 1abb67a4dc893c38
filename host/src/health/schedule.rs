//! The per-member probe loop: probe every `hcinterval`, judge, count, flip C.
//!
//! One task per checked member, so probes of one member never overlap (the next waits for the
//! last to finish or time out) and a slow member delays only its own checks. Stopped (S)
//! members are skipped; disabled (D) members are still probed, so their health is current
//! when they are enabled again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::counter::{Counter, Transition};
use super::{HealthCheck, Outcome, Target, Verdict, probe};
use crate::tls::MemberConnector;
use crate::balancer::Member;
use crate::config::StatusFlags;

/// A member's check schedule (httpd's `hcinterval`, `hcpasses`, `hcfails`) and probe timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Time between the starts of two probes.
    pub interval: Duration,
    /// Passes in a row that clear C and E.
    pub passes: u32,
    /// Failures in a row that set C.
    pub fails: u32,
    /// How long one probe may take.
    pub timeout: Duration,
}

/// What the checks of one member have seen, for the manager and the logs.
#[derive(Debug, Default)]
pub struct HealthState {
    probes: AtomicU64,
    failures: AtomicU64,
    transitions: AtomicU64,
    last: Mutex<Option<Verdict>>,
}

/// A copy of a [`HealthState`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthStatus {
    /// Probes judged so far.
    pub probes: u64,
    /// Probes that failed.
    pub failures: u64,
    /// Times C was set or cleared.
    pub transitions: u64,
    /// The last verdict, if any.
    pub last: Option<Verdict>,
}

impl HealthState {
    /// A copy of the counters.
    pub fn status(&self) -> HealthStatus {
        HealthStatus {
            probes: self.probes.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            transitions: self.transitions.load(Ordering::Relaxed),
            last: self.last.lock().ok().and_then(|l| l.clone()),
        }
    }

    fn record(&self, verdict: &Verdict) {
        self.probes.fetch_add(1, Ordering::Relaxed);
        if !verdict.healthy {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        if let Ok(mut last) = self.last.lock() {
            *last = Some(verdict.clone());
        }
    }
}

/// Starts checking `member` with `check`; the task runs until aborted.
/// `tls` is how an https member is reached (probes go over TLS, like requests).
pub fn spawn<C: Send + Sync + 'static>(
    member: Arc<Member<C>>,
    check: Arc<dyn HealthCheck>,
    settings: Settings,
    state: Arc<HealthState>,
    tls: Option<Arc<MemberConnector>>,
) -> JoinHandle<()> {
    let target = Target {
        url: member.config.url.clone(),
        host: member.config.authority.host().trim_start_matches('[').trim_end_matches(']').to_string(),
        port: member.config.authority.port_u16().unwrap_or(if tls.is_some() { 443 } else { 80 }),
        base_path: member.config.base_path.trim_end_matches('/').to_string(),
    };
    tokio::spawn(async move {
        let mut counter = Counter::new(settings.passes, settings.fails);
        let mut ticks = tokio::time::interval(settings.interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if member.status().contains(StatusFlags::STOPPED) {
                continue;
            }
            let verdict = check_once(check.as_ref(), &target, settings.timeout, tls.as_deref()).await;
            state.record(&verdict);
            let status = member.status();
            let transition =
                counter.record(verdict.healthy, status.contains(StatusFlags::HEALTH_FAILED), status.contains(StatusFlags::IN_ERROR));
            match transition {
                Transition::Failed => {
                    member.set_status(StatusFlags::HEALTH_FAILED, true);
                    state.transitions.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(member = %target.url, check = check.name(), reason = %verdict.reason, fails = settings.fails, "member failed its health check: out of rotation");
                }
                Transition::Recovered => {
                    member.set_status(StatusFlags::HEALTH_FAILED.union(StatusFlags::IN_ERROR), false);
                    state.transitions.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(member = %target.url, check = check.name(), passes = settings.passes, "member passed its health check: back in rotation");
                }
                Transition::None => {
                    tracing::debug!(member = %target.url, healthy = verdict.healthy, reason = %verdict.reason, "health check");
                }
            }
        }
    })
}

/// One probe and its verdict; a check that fails to answer fails the probe.
async fn check_once(check: &dyn HealthCheck, target: &Target, timeout: Duration, tls: Option<&MemberConnector>) -> Verdict {
    let outcome = match check.probe(target) {
        Ok(p) => probe::run(target, &p, timeout, tls).await,
        Err(e) => return Verdict { healthy: false, reason: format!("the health check failed to describe a probe: {e}") },
    };
    match check.judge(target, &outcome) {
        Ok(verdict) => verdict,
        Err(e) => Verdict { healthy: false, reason: format!("the health check failed to judge ({}): {e}", describe(&outcome)) },
    }
}

fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Connected => "connected".into(),
        Outcome::Failed(why) => why.clone(),
        Outcome::Response(r) => format!("status {}", r.status),
    }
}
