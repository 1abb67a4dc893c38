//! Picks planned ahead, for a method whose choice depends on nothing but the candidates'
//! lbfactor and lbstatus (httpd's byrequests): one call of the method's `plan` places many
//! requests, each exactly where its own `pick` would have, so a request's share of the Wasm
//! call shrinks to a fraction.
//!
//! A plan holds while the candidates are the ones it was made for, with the same lbfactors,
//! and every lbstatus is what the plan's own deltas made it. Anything else — another tier, a
//! member in error, a sticky hit's bookkeeping, an edit, a swapped method — and the next
//! request plans again. The plan's deltas are applied pick by pick, so the manager's Load
//! column moves exactly as it would without planning.
//!
//! Plans grow while they are used up and shrink when they are dropped: traffic where every
//! other request is a sticky hit (each one's bookkeeping ends the plan) pays for plans of one
//! or two picks, not for picks nobody takes.

use std::sync::{Arc, Mutex};

use super::lbmethod::{LbMethod, Plan};
use super::{Balancer, tiers};

/// A balancer's current plan, if any (shared by every worker: the picks of a plan are
/// handed out in order, one at a time), and how many picks the next one asks for.
#[derive(Default)]
pub(crate) struct PlanSlot(Mutex<PlanState>);

struct PlanState {
    active: Option<ActivePlan>,
    /// Picks the next plan asks for.
    size: usize,
}

impl Default for PlanState {
    fn default() -> Self {
        Self { active: None, size: FIRST_PLAN }
    }
}

/// Picks the first plan of a balancer asks for.
const FIRST_PLAN: usize = 8;
/// The most picks one plan asks for.
const LONGEST_PLAN: usize = 256;

struct ActivePlan {
    /// The method that made it.
    method: Arc<dyn LbMethod>,
    /// The candidates it was made for (member indices), and their lbfactors then.
    candidates: Vec<usize>,
    lbfactors: Vec<u32>,
    /// Each candidate's lbstatus as the plan expects it before its next pick.
    expected: Vec<i64>,
    plan: Plan,
    next: usize,
}

/// What a planned pick came to.
pub(crate) enum Planned {
    /// The member at this index gets the request (its deltas are applied).
    Chosen(usize),
    /// The method refuses every candidate.
    Refused,
}

/// The most picks one plan over `candidates` asks for: few enough that its deltas stay
/// within 32 KiB.
fn longest_for(candidates: usize) -> usize {
    (4096 / candidates.max(1)).clamp(1, LONGEST_PLAN)
}

impl<C> Balancer<C> {
    /// The next planned pick over `candidates` (planning again when the plan is used up or no
    /// longer holds); `None` when the method could not plan (the caller then picks the usual
    /// way, where a failing method is counted and falls back).
    pub(super) fn planned(&self, method: &Arc<dyn LbMethod>, candidates: &[usize]) -> Option<Planned> {
        let mut state = self.plan.0.lock().ok()?;
        let state = &mut *state;
        if !state.active.as_ref().is_some_and(|active| self.holds(active, method, candidates)) {
            // A plan dropped before its end: ask for fewer next time.
            if state.active.take().is_some() {
                state.size = (state.size / 4).max(1);
            }
            let table = tiers::table(&self.members, candidates);
            let asked = state.size.min(longest_for(candidates.len()));
            let called = std::time::Instant::now();
            let plan = method.plan(&table, asked);
            self.stats.picks.record(called.elapsed());
            let plan = match plan {
                Ok(plan) => plan,
                Err(e) => {
                    tracing::debug!(balancer = %self.name, error = %e, "lbmethod could not plan");
                    return None;
                }
            };
            if let Err(reason) = plan.check(candidates.len(), asked) {
                self.stats.refused_answers.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(balancer = %self.name, lbmethod = method.name(), %reason, "lbmethod plan refused");
                return None;
            }
            if plan.chosen.is_empty() {
                return Some(Planned::Refused);
            }
            state.active = Some(ActivePlan {
                method: Arc::clone(method),
                candidates: candidates.to_vec(),
                lbfactors: table.iter().map(|c| c.lbfactor).collect(),
                expected: table.iter().map(|c| c.lbstatus).collect(),
                plan,
                next: 0,
            });
        }
        let active = state.active.as_mut()?;
        let step = active.next;
        let chosen = active.plan.chosen[step];
        let n = active.candidates.len();
        if let Some(deltas) = active.plan.lbstatus_delta.get(step * n..(step + 1) * n) {
            for ((&member, expected), &delta) in active.candidates.iter().zip(&mut active.expected).zip(deltas) {
                if delta != 0 {
                    self.members[member].add_lbstatus(delta);
                    *expected = expected.wrapping_add(delta);
                }
            }
        }
        active.next += 1;
        let index = active.candidates[chosen];
        if active.next == active.plan.chosen.len() {
            // Used up: the next plan may be longer.
            state.active = None;
            state.size = (state.size * 2).min(LONGEST_PLAN);
        }
        self.stats.planned_picks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some(Planned::Chosen(index))
    }

    /// Whether `active` still holds for `method` over `candidates`.
    fn holds(&self, active: &ActivePlan, method: &Arc<dyn LbMethod>, candidates: &[usize]) -> bool {
        Arc::ptr_eq(&active.method, method)
            && active.candidates == candidates
            && active.candidates.iter().zip(&active.lbfactors).zip(&active.expected).all(|((&i, &lbfactor), &lbstatus)| {
                let m = &self.members[i];
                m.lbfactor() == lbfactor && m.lbstatus() == lbstatus
            })
    }
}
