//! Failover tiers: which members one request may go to, exactly as httpd 2.4's
//! `ap_proxy_balancer_get_best_worker` orders them.
//!
//! For each lbset from lowest to highest: the usable regular members in config order, then as
//! many usable hot spares (R, in config order) as there are unusable or draining regular
//! members; if that is empty, the usable hot standbys (H); only then the next lbset. Members
//! already tried by this request count as unusable.

use std::cell::RefCell;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;

use super::lbmethod::Candidate;
use super::member::Member;
use crate::config::StatusFlags;
use crate::spare;

/// Candidate vectors kept per thread.
const KEPT_CANDIDATES: usize = 8;
/// Vectors with room for more members than this are not kept.
const LARGEST_KEPT_CANDIDATES: usize = 1024;

thread_local! {
    static SPARE_CANDIDATES: RefCell<Vec<Vec<usize>>> = const { RefCell::new(Vec::new()) };
}

/// One pick's candidates: indices into the balancer's members. Every request's pick makes
/// one, so its vector is one of the thread's spares, given back when dropped (an allocation
/// and a free per request before).
#[derive(Debug)]
pub(crate) struct Candidates(Vec<usize>);

impl Candidates {
    /// The indices as a vector of their own (the spare is not given back).
    pub(crate) fn into_vec(mut self) -> Vec<usize> {
        std::mem::take(&mut self.0)
    }
}

impl Deref for Candidates {
    type Target = [usize];

    fn deref(&self) -> &[usize] {
        &self.0
    }
}

impl Drop for Candidates {
    fn drop(&mut self) {
        spare::keep(&SPARE_CANDIDATES, std::mem::take(&mut self.0), KEPT_CANDIDATES, LARGEST_KEPT_CANDIDATES);
    }
}

/// Indices (into `members`) of the first non-empty tier; empty when no member is usable.
pub(crate) fn first_tier<C>(members: &[Arc<Member<C>>], tried: &[usize], now: Instant) -> Candidates {
    let mut candidates = spare::take(&SPARE_CANDIDATES, members.len());
    let Some(mut lbset) = members.iter().map(|m| m.config.lbset).min() else {
        return Candidates(candidates);
    };
    loop {
        // Spares and standbys are rare: these stay unallocated unless there are some.
        let mut spares = Vec::new();
        let mut standbys = Vec::new();
        let mut unusable_regulars = 0usize;
        let mut next_lbset: Option<u32> = None;
        for (i, m) in members.iter().enumerate() {
            let set = m.config.lbset;
            if set != lbset {
                if set > lbset {
                    next_lbset = Some(next_lbset.map_or(set, |n| n.min(set)));
                }
                continue;
            }
            let status = m.status();
            let spare = status.contains(StatusFlags::HOT_SPARE);
            let standby = status.contains(StatusFlags::HOT_STANDBY);
            if status.contains(StatusFlags::DRAINING) || tried.contains(&i) || !m.usable(now) {
                if !spare && !standby {
                    unusable_regulars += 1;
                }
            } else if spare {
                spares.push(i);
            } else if standby {
                standbys.push(i);
            } else {
                candidates.push(i);
            }
        }
        candidates.extend(spares.into_iter().take(unusable_regulars));
        // Only when there are standbys: the spare vector is kept otherwise.
        if candidates.is_empty() && !standbys.is_empty() {
            candidates = standbys;
        }
        match next_lbset {
            _ if !candidates.is_empty() => return Candidates(candidates),
            Some(next) => lbset = next,
            None => return Candidates(candidates),
        }
    }
}

/// The members at `candidates` as a method sees them, now.
pub(crate) fn table<C>(members: &[Arc<Member<C>>], candidates: &[usize]) -> Vec<Candidate> {
    candidates
        .iter()
        .map(|&i| {
            let m = &members[i];
            let (transferred, read) = m.snapshot_traffic();
            Candidate { member: i, lbfactor: m.lbfactor(), lbstatus: m.lbstatus(), busy: m.busy(), transferred, read }
        })
        .collect()
}
