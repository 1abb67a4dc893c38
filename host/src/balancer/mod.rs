//! Balancers: members, status flags, failover tiers and counters — pure logic, no I/O.
//!
//! A [`Balancer`] answers "which member gets this request" ([`choose`]): a sticky session's
//! member if it is usable (or its redirect), else httpd's failover tiers ([`tiers`]) and the
//! load-balancing method (any [`LbMethod`], normally a Wasm plugin) choosing within the tier.
//! It checks the method's answer, applies the lbstatus deltas and counts. When the method
//! fails (trap, circuit open) or answers nonsense, the request goes to the method used before
//! the last swap, if the balancer has one, else to byrequests over the same tier, and the
//! failure is counted, so a broken plugin never fails a request. [`sticky`]
//! finds a request's route in its URL or cookies. A [`Shadow`] method may pick beside the
//! balancer's own, on its own thread, to be compared with it.

mod choose;
mod lbmethod;
mod member;
mod plan;
mod record;
mod shadow;
pub mod sticky;
mod tiers;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

pub use lbmethod::{AttemptOutcome, Candidate, Completion, Decision, LbMethod, LbMethodError, MemberInfo, Plan};
use lbmethod::MethodSlot;
pub use member::{BusyGuard, Member, MemberSnapshot, MemberState};
pub use record::{MemberRecord, PickObserver, PickRecord};
pub use shadow::{Shadow, ShadowStats};

use crate::config;
use crate::observe::{CALL_BUCKETS, Latency};

/// A balancer: named members and the method that picks among them.
pub struct Balancer<C> {
    name: String,
    members: Vec<Arc<Member<C>>>,
    lbmethod: Arc<MethodSlot>,
    /// What the current method was loaded from.
    method_spec: config::PluginSpec,
    /// The method this balancer used before its current one was swapped in, if any (and
    /// what it was loaded from): where requests go while the current one fails.
    previous_method: Option<(config::PluginSpec, Arc<dyn LbMethod>)>,
    /// A second method picking beside this one, counted and never enacted.
    shadow: Option<Shadow>,
    maxattempts: u32,
    hashkey: config::HashKey,
    failover: config::Failover,
    sticky: Option<config::StickySession>,
    /// Member index by sticky route.
    routes: HashMap<String, usize>,
    /// Picks planned ahead, for a plannable method.
    plan: plan::PlanSlot,
    /// Shared with the balancer of the same name in the build before, when its method is the
    /// same version: the counters go on across reloads and edits.
    stats: Arc<BalancerStats>,
}

/// Counters about the balancer's method, shown in the manager and logs.
#[derive(Debug)]
pub struct BalancerStats {
    /// Calls that trapped or found the plugin circuit-broken.
    pub method_failures: AtomicU64,
    /// Answers refused: index out of range, wrong number of deltas.
    pub refused_answers: AtomicU64,
    /// Requests the method did not place because of either of the above: they went to the
    /// previous version of the method, else to byrequests over the same tier.
    pub fallbacks: AtomicU64,
    /// Of `fallbacks`, those the previous version of the method placed.
    pub fallbacks_to_previous: AtomicU64,
    /// Requests sent to their sticky session's member (or its redirect).
    pub sticky_hits: AtomicU64,
    /// Requests placed by a plan of the method's (a plannable method's picks made ahead).
    pub planned_picks: AtomicU64,
    /// Times every member was in error and all were put back in service (forcerecovery).
    pub forced_recoveries: AtomicU64,
    /// How long each call of the method's `pick` (or `plan`) took (its count is the number of
    /// calls).
    pub picks: Latency,
}

impl Default for BalancerStats {
    fn default() -> Self {
        Self {
            method_failures: AtomicU64::new(0),
            refused_answers: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
            fallbacks_to_previous: AtomicU64::new(0),
            sticky_hits: AtomicU64::new(0),
            planned_picks: AtomicU64::new(0),
            forced_recoveries: AtomicU64::new(0),
            picks: Latency::with_bounds(&CALL_BUCKETS),
        }
    }
}

/// What the balancer needs to know about one attempt of a request.
#[derive(Debug, Clone, Copy, Default)]
pub struct PickRequest<'a> {
    /// The hash of the balancer's `hashkey` source (0 without one).
    pub key: u64,
    /// The route of the request's sticky session, if it carries one.
    pub route: Option<&'a str>,
    /// Members this request already tried; they are not chosen again.
    pub tried: &'a [usize],
}

/// The member a request goes to.
pub struct Picked<C> {
    /// The member.
    pub member: Arc<Member<C>>,
    /// Its index in the balancer (to exclude it from a retry).
    pub index: usize,
    /// Whether a sticky session chose it.
    pub sticky: bool,
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
    /// The sticky session's member and its redirect are unusable, and the balancer does not
    /// fail over (`nofailover`).
    #[error("the sticky session's member is unavailable and nofailover is set")]
    StickyUnavailable,
}

impl<C> Balancer<C> {
    /// Builds a balancer from its config; `conn` makes each member's proxy-side state.
    pub fn new(config: &config::Balancer, lbmethod: Arc<dyn LbMethod>, mut conn: impl FnMut(&config::Member) -> C) -> Self {
        Self::with_members(config, lbmethod, |m| Member::new(m.clone(), conn(m)))
    }

    /// Builds a balancer from its config; `member` makes each member (new, or carried over
    /// from a previous build with [`Member::carry_over`]).
    pub fn with_members(config: &config::Balancer, lbmethod: Arc<dyn LbMethod>, member: impl FnMut(&config::Member) -> Member<C>) -> Self {
        let slot = Arc::new(MethodSlot::new(lbmethod));
        let members: Vec<Arc<Member<C>>> = config
            .members
            .iter()
            .map(member)
            .enumerate()
            .map(|(index, m)| Arc::new(m.reporting_to(index, Arc::clone(&slot))))
            .collect();
        let routes = config
            .members
            .iter()
            .enumerate()
            .filter(|(_, m)| !m.route.is_empty())
            .map(|(i, m)| (m.route.clone(), i))
            .collect();
        let balancer = Self {
            name: config.name.clone(),
            members,
            lbmethod: slot,
            method_spec: config.lbmethod.clone(),
            previous_method: None,
            shadow: None,
            maxattempts: config.maxattempts,
            hashkey: config.hashkey.clone(),
            failover: config.failover.clone(),
            sticky: config.sticky.clone(),
            routes,
            plan: plan::PlanSlot::default(),
            stats: Arc::default(),
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

    /// Failure handling settings.
    pub fn failover(&self) -> &config::Failover {
        &self.failover
    }

    /// Sticky-session settings, when configured.
    pub fn sticky(&self) -> Option<&config::StickySession> {
        self.sticky.as_ref()
    }

    /// The method's counters.
    pub fn stats(&self) -> &BalancerStats {
        &self.stats
    }

    /// The current load-balancing method.
    pub fn lbmethod(&self) -> Arc<dyn LbMethod> {
        self.lbmethod.load()
    }

    /// Counts into `before`'s counters (the same balancer with the same method version in the
    /// build this one replaces), so they go on rather than start again.
    pub fn with_stats_of<O>(mut self, before: &Balancer<O>) -> Self {
        self.stats = Arc::clone(&before.stats);
        self
    }

    /// Makes `method`, loaded from `spec` (the method used before a swap), where requests go
    /// while the current method fails; it gets this balancer's members.
    pub fn with_previous_method(mut self, spec: config::PluginSpec, method: Arc<dyn LbMethod>) -> Self {
        method.set_members(self.member_infos());
        self.previous_method = Some((spec, method));
        self
    }

    /// Runs `method` in shadow beside the balancer's own (see [`Shadow`]); fails only when its
    /// thread cannot be started.
    pub fn with_shadow(mut self, method: Arc<dyn LbMethod>) -> std::io::Result<Self> {
        self.shadow = Some(Shadow::start(method, &self.name, self.member_infos())?);
        Ok(self)
    }

    /// Records every pick and completion of this balancer with `observer` (a trace).
    pub fn with_observer(self, observer: Arc<dyn PickObserver>) -> Self {
        self.lbmethod.observe(observer);
        self
    }

    /// The shadow method and what it would have done, when there is one.
    pub fn shadow(&self) -> Option<&Shadow> {
        self.shadow.as_ref()
    }

    /// The method used before the current one, when requests fall back to it.
    pub fn previous_method(&self) -> Option<&Arc<dyn LbMethod>> {
        self.previous_method.as_ref().map(|(_, m)| m)
    }

    /// What a rebuild of this balancer with `next` as its method should fall back to: this
    /// balancer's method when `next` swaps it, else what this one falls back to.
    pub fn fallback_spec_for(&self, next: &config::PluginSpec) -> Option<&config::PluginSpec> {
        if *next != self.method_spec {
            Some(&self.method_spec)
        } else {
            self.previous_method.as_ref().map(|(spec, _)| spec)
        }
    }

    /// Replaces the method atomically; requests already picking finish with the old one.
    pub fn set_lbmethod(&self, method: Arc<dyn LbMethod>) {
        method.set_members(self.member_infos());
        self.lbmethod.store(method);
    }

    fn member_infos(&self) -> Arc<[MemberInfo]> {
        self.members
            .iter()
            .map(|m| MemberInfo { url: m.config.url.clone(), route: m.config.route.clone(), lbset: m.config.lbset })
            .collect()
    }
}
