//! Balancers: members, status flags, failover tiers and counters — pure logic, no I/O.
//!
//! A [`Balancer`] answers "which member gets this request": it applies httpd's tiers
//! ([`tiers`]), asks the load-balancing method (any [`LbMethod`], normally a Wasm plugin) to
//! choose within the tier, checks the answer, applies the lbstatus deltas and counts. When the
//! method fails (trap, circuit open) or answers nonsense, the request goes to the first
//! candidate instead and the failure is counted, so a broken plugin never fails a request.

mod lbmethod;
mod member;
mod tiers;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use arc_swap::ArcSwap;

pub use lbmethod::{CandidateTable, Decision, LbMethod, LbMethodError, MemberInfo};
pub use member::{BusyGuard, Member, MemberSnapshot};

use crate::config;

/// A balancer: named members and the method that picks among them.
pub struct Balancer<C> {
    name: String,
    members: Vec<Arc<Member<C>>>,
    lbmethod: ArcSwap<Arc<dyn LbMethod>>,
    maxattempts: u32,
    hashkey: config::HashKey,
    stats: BalancerStats,
}

/// Counters about the balancer's method, shown in the manager and logs.
#[derive(Debug, Default)]
pub struct BalancerStats {
    /// Calls that trapped or found the plugin circuit-broken.
    pub method_failures: AtomicU64,
    /// Answers refused: index out of range, wrong number of deltas.
    pub refused_answers: AtomicU64,
    /// Requests sent to the first candidate because of either of the above.
    pub fallbacks: AtomicU64,
}

/// The member a request goes to.
pub struct Picked<C> {
    /// The member.
    pub member: Arc<Member<C>>,
    /// Its index in the balancer (to exclude it from a retry).
    pub index: usize,
}

/// Why no member was picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NoMember {
    /// Every member is unusable (or was already tried by this request).
    #[error("no usable member")]
    NoneUsable,
    /// The method looked at the candidates and refused them all.
    #[error("the lbmethod refused every candidate")]
    Refused,
}

impl<C> Balancer<C> {
    /// Builds a balancer from its config; `conn` makes each member's proxy-side state.
    pub fn new(config: &config::Balancer, lbmethod: Arc<dyn LbMethod>, mut conn: impl FnMut(&config::Member) -> C) -> Self {
        let members: Vec<Arc<Member<C>>> =
            config.members.iter().map(|m| Arc::new(Member::new(m.clone(), conn(m)))).collect();
        let balancer = Self {
            name: config.name.clone(),
            members,
            lbmethod: ArcSwap::from_pointee(lbmethod),
            maxattempts: config.maxattempts,
            hashkey: config.hashkey.clone(),
            stats: BalancerStats::default(),
        };
        balancer.lbmethod().set_members(balancer.member_infos());
        balancer
    }

    /// The balancer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The members in config order.
    pub fn members(&self) -> &[Arc<Member<C>>] {
        &self.members
    }

    /// How many more members a failed request may try.
    pub fn maxattempts(&self) -> u32 {
        self.maxattempts
    }

    /// What the request key is hashed from.
    pub fn hashkey(&self) -> &config::HashKey {
        &self.hashkey
    }

    /// The method's counters.
    pub fn stats(&self) -> &BalancerStats {
        &self.stats
    }

    /// The current load-balancing method.
    pub fn lbmethod(&self) -> Arc<dyn LbMethod> {
        Arc::clone(&self.lbmethod.load())
    }

    /// Replaces the method atomically; requests already picking finish with the old one.
    pub fn set_lbmethod(&self, method: Arc<dyn LbMethod>) {
        method.set_members(self.member_infos());
        self.lbmethod.store(Arc::new(method));
    }

    fn member_infos(&self) -> Arc<[MemberInfo]> {
        self.members
            .iter()
            .map(|m| MemberInfo { url: m.config.url.clone(), route: m.config.route.clone(), lbset: m.config.lbset })
            .collect()
    }

    /// Picks the member for a request with hash `key`, skipping the members in `tried`.
    pub fn pick(&self, key: u64, tried: &[usize], now: Instant) -> Result<Picked<C>, NoMember> {
        let candidates = tiers::first_tier(&self.members, tried, now);
        if candidates.is_empty() {
            return Err(NoMember::NoneUsable);
        }
        let table = tiers::table(&self.members, &candidates);
        let method = self.lbmethod();
        let chosen = match method.pick(key, &table) {
            Ok(Some(decision)) => self.accept(&method, &candidates, decision),
            Ok(None) => return Err(NoMember::Refused),
            Err(e) => {
                self.stats.method_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(balancer = %self.name, error = %e, "lbmethod failed; using the first candidate");
                None
            }
        };
        let index = chosen.unwrap_or_else(|| {
            self.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
            candidates[0]
        });
        let member = Arc::clone(&self.members[index]);
        member.count_elected();
        Ok(Picked { member, index })
    }

    /// Checks a decision and applies its deltas; `None` when it must be refused.
    fn accept(&self, method: &Arc<dyn LbMethod>, candidates: &[usize], decision: Decision) -> Option<usize> {
        let Decision { chosen, lbstatus_delta } = decision;
        let valid_deltas = lbstatus_delta.is_empty() || lbstatus_delta.len() == candidates.len();
        if chosen >= candidates.len() || !valid_deltas {
            self.stats.refused_answers.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                balancer = %self.name,
                lbmethod = method.name(),
                chosen,
                candidates = candidates.len(),
                deltas = lbstatus_delta.len(),
                "lbmethod answer refused: index out of range or wrong number of deltas"
            );
            return None;
        }
        for (&i, &delta) in candidates.iter().zip(&lbstatus_delta) {
            if delta != 0 {
                self.members[i].add_lbstatus(delta);
            }
        }
        Some(candidates[chosen])
    }
}
