//! Choosing a member for one attempt of a request, in httpd's order: forced recovery, the
//! sticky session's member (or its redirect), then the failover tiers and the lbmethod.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::lbmethod::{Candidate, Decision, LbMethod};
use super::record::{MemberRecord, PickRecord};
use super::{Balancer, NoMember, PickRequest, Picked, plan, tiers};
use crate::config::StatusFlags;

impl<C> Balancer<C> {
    /// Picks the member for one attempt of a request.
    pub fn pick(&self, request: &PickRequest<'_>, now: Instant) -> Result<Picked<C>, NoMember> {
        if self.failover.forcerecovery {
            self.force_recovery(now);
        }
        if let Some(route) = request.route {
            match self.sticky_member(route, request.tried, now) {
                Some(index) => return Ok(self.sticky_hit(request, index, now)),
                None if self.failover.nofailover => return Err(NoMember::StickyUnavailable),
                None => {}
            }
        }
        self.pick_by_method(request, now)
    }

    /// Tells the observer, if any, what a pick saw and chose: the members in `table` (rows
    /// `rows`) as the method saw them, the others as they are.
    fn record(&self, request: &PickRequest<'_>, chosen: usize, rows: &[usize], table: &[Candidate]) {
        let Some(observer) = self.lbmethod.observer() else { return };
        let members = self
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let seen = rows.iter().position(|&r| r == i).and_then(|row| table.get(row)).map(|c| (c.busy, c.transferred, c.read));
                let (busy, transferred, read) = seen.unwrap_or_else(|| {
                    let (transferred, read) = m.snapshot_traffic();
                    (m.busy(), transferred, read)
                });
                MemberRecord { status: m.status(), busy, transferred, read }
            })
            .collect();
        let route = request.route.map(str::to_string);
        observer.picked(PickRecord { key: request.key, route, chosen, tried: request.tried.to_vec(), members });
    }

    /// The lbmethod's choice within the first non-empty tier.
    fn pick_by_method(&self, request: &PickRequest<'_>, now: Instant) -> Result<Picked<C>, NoMember> {
        let (key, tried) = (request.key, request.tried);
        let candidates = tiers::first_tier(&self.members, tried, now);
        if candidates.is_empty() {
            return Err(NoMember::NoneUsable);
        }
        let current = self.lbmethod.current();
        let method: &Arc<dyn LbMethod> = &current;
        // A plannable method's picks come from its plan (unless each pick's table is wanted:
        // a recorder or a shadow sees every one).
        if self.shadow.is_none() && self.lbmethod.observer().is_none() && method.plannable() {
            match self.planned(method, &candidates) {
                Some(plan::Planned::Chosen(index)) => return Ok(self.elect(index, false)),
                Some(plan::Planned::Refused) => return Err(NoMember::Refused),
                None => {}
            }
        }
        let table = tiers::table(&self.members, &candidates);
        let called = Instant::now();
        let answer = method.pick(key, &table, now);
        self.stats.picks.record(called.elapsed());
        let chosen = match answer {
            Ok(Some(decision)) => self.accept(method, &candidates, decision),
            Ok(None) => return Err(NoMember::Refused),
            Err(e) => {
                self.stats.method_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(balancer = %self.name, error = %e, "lbmethod failed; falling back");
                None
            }
        };
        let index = match chosen {
            Some(index) => index,
            None => self.fall_back(key, &candidates, &table, now),
        };
        self.record(request, index, &candidates, &table);
        if let Some(shadow) = &self.shadow {
            shadow.offer(key, table, candidates.into_vec(), index, now);
        }
        Ok(self.elect(index, false))
    }

    /// Places a request the method failed to: with the previous version of the method when
    /// the balancer has one and it answers, else with byrequests over the same tier — never
    /// always the first candidate, which would send all of them to one member.
    fn fall_back(&self, key: u64, candidates: &[usize], table: &[Candidate], now: Instant) -> usize {
        self.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
        if let Some((_, previous)) = &self.previous_method {
            match previous.pick(key, table, now) {
                Ok(Some(decision)) => {
                    if let Some(index) = self.accept(previous, candidates, decision) {
                        self.stats.fallbacks_to_previous.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(balancer = %self.name, lbmethod = previous.name(), "request placed by the previous lbmethod");
                        return index;
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::debug!(balancer = %self.name, error = %e, "the previous lbmethod failed too"),
            }
        }
        let (chosen, deltas) = byrequests(table);
        self.apply(candidates, &deltas);
        candidates[chosen]
    }

    fn elect(&self, index: usize, sticky: bool) -> Picked<C> {
        let member = Arc::clone(&self.members[index]);
        member.count_elected();
        Picked { member, index, sticky }
    }

    /// The member a sticky route leads to, if it can take the request: the member with that
    /// route (draining members still take their sessions), else the member its `redirect`
    /// names. Members already tried count as unusable.
    fn sticky_member(&self, route: &str, tried: &[usize], now: Instant) -> Option<usize> {
        let usable = |i: usize| !tried.contains(&i) && self.members[i].usable(now);
        let &index = self.routes.get(route)?;
        if usable(index) {
            return Some(index);
        }
        let redirect = &self.members[index].config.redirect;
        let &target = self.routes.get(redirect.as_str()).filter(|_| !redirect.is_empty())?;
        usable(target).then_some(target)
    }

    /// Sends the request to `index` for its sticky session, letting the lbmethod account for
    /// it over every usable member (httpd's default: all gain their lbfactor, the chosen one
    /// loses the total). A failed or refused answer changes no lbstatus.
    fn sticky_hit(&self, request: &PickRequest<'_>, index: usize, now: Instant) -> Picked<C> {
        let tried = request.tried;
        self.stats.sticky_hits.fetch_add(1, Ordering::Relaxed);
        let usable: Vec<usize> =
            (0..self.members.len()).filter(|&i| i == index || (!tried.contains(&i) && self.members[i].usable(now))).collect();
        let position = usable.iter().position(|&i| i == index).unwrap_or(0);
        let table = tiers::table(&self.members, &usable);
        let current = self.lbmethod.current();
        let method: &Arc<dyn LbMethod> = &current;
        match method.sticky_hit(&table, position) {
            Ok(deltas) if deltas.is_empty() || deltas.len() == usable.len() => self.apply(&usable, &deltas),
            Ok(deltas) => {
                self.stats.refused_answers.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    balancer = %self.name,
                    lbmethod = method.name(),
                    deltas = deltas.len(),
                    members = usable.len(),
                    "lbmethod sticky-hit answer refused: wrong number of deltas"
                );
            }
            Err(e) => {
                self.stats.method_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(balancer = %self.name, error = %e, "lbmethod sticky-hit failed; lbstatus unchanged");
            }
        }
        self.record(request, index, &usable, &table);
        self.elect(index, true)
    }

    /// httpd's `forcerecovery`: when every member is in error (and none is due for a retry),
    /// all are taken out of error, so the balancer tries them again instead of answering 503
    /// until the first retry time passes. A member that is only disabled, stopped or failing
    /// its health check is not in error and prevents this.
    fn force_recovery(&self, now: Instant) {
        // Usually the first member settles it: one status load.
        if self.members.iter().any(|m| m.retry_if_due(now)) {
            return;
        }
        for m in &self.members {
            m.force_recover();
        }
        self.stats.forced_recoveries.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(balancer = %self.name, members = self.members.len(), "every member was in error: forcing recovery");
    }

    /// When the next member in error may be retried (for a request waiting for a member).
    pub fn next_retry_at(&self) -> Option<Instant> {
        self.members
            .iter()
            .filter(|m| m.status().contains(StatusFlags::IN_ERROR))
            .map(|m| m.retry_at())
            .min()
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
        self.apply(candidates, &lbstatus_delta);
        Some(candidates[chosen])
    }

    fn apply(&self, members: &[usize], deltas: &[i64]) {
        for (&i, &delta) in members.iter().zip(deltas) {
            if delta != 0 {
                self.members[i].add_lbstatus(delta);
            }
        }
    }
}

/// httpd's byrequests over a candidate table (the fallback method, in the host so it cannot
/// fail): every candidate's lbstatus grows by its lbfactor, the highest wins (ties to the
/// first) and gives back the total. Returns the chosen position and the deltas.
fn byrequests(table: &[Candidate]) -> (usize, Vec<i64>) {
    let mut deltas: Vec<i64> = table.iter().map(|c| i64::from(c.lbfactor)).collect();
    let score = |c: &Candidate| c.lbstatus.wrapping_add(i64::from(c.lbfactor));
    let mut best = 0;
    for (i, c) in table.iter().enumerate().skip(1) {
        if score(c) > score(&table[best]) {
            best = i;
        }
    }
    let total: i64 = deltas.iter().sum();
    if let Some(d) = deltas.get_mut(best) {
        *d -= total;
    }
    (best, deltas)
}
