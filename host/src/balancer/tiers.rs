//! Failover tiers: which members one request may go to, exactly as httpd 2.4's
//! `ap_proxy_balancer_get_best_worker` orders them.
//!
//! For each lbset from lowest to highest: the usable regular members in config order, then as
//! many usable hot spares (R, in config order) as there are unusable or draining regular
//! members; if that is empty, the usable hot standbys (H); only then the next lbset. Members
//! already tried by this request count as unusable.

use std::sync::Arc;
use std::time::Instant;

use super::lbmethod::CandidateTable;
use super::member::Member;
use crate::config::StatusFlags;

/// Indices (into `members`) of the first non-empty tier; empty when no member is usable.
pub(crate) fn first_tier<C>(members: &[Arc<Member<C>>], tried: &[usize], now: Instant) -> Vec<usize> {
    let mut lbsets: Vec<u32> = members.iter().map(|m| m.config.lbset).collect();
    lbsets.sort_unstable();
    lbsets.dedup();
    for lbset in lbsets {
        let mut candidates = Vec::new();
        let mut spares = Vec::new();
        let mut standbys = Vec::new();
        let mut unusable_regulars = 0usize;
        for (i, m) in members.iter().enumerate().filter(|(_, m)| m.config.lbset == lbset) {
            let status = m.status();
            let spare = status.contains(StatusFlags::HOT_SPARE);
            let standby = status.contains(StatusFlags::HOT_STANDBY);
            let regular = !spare && !standby;
            if m.draining() || tried.contains(&i) || !m.usable(now) {
                if regular {
                    unusable_regulars += 1;
                }
                continue;
            }
            if spare {
                spares.push(i);
            } else if standby {
                standbys.push(i);
            } else {
                candidates.push(i);
            }
        }
        candidates.extend(spares.into_iter().take(unusable_regulars));
        if candidates.is_empty() {
            candidates = standbys;
        }
        if !candidates.is_empty() {
            return candidates;
        }
    }
    Vec::new()
}

/// Packs the candidates' state the way the lbmethod contract expects.
pub(crate) fn table<C>(members: &[Arc<Member<C>>], candidates: &[usize]) -> CandidateTable {
    let n = candidates.len();
    let mut values = vec![0i64; CandidateTable::FIELDS * n];
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    for (row, &i) in candidates.iter().enumerate() {
        let m = &members[i];
        values[row] = i as i64;
        values[n + row] = i64::from(m.lbfactor());
        values[2 * n + row] = m.lbstatus();
        values[3 * n + row] = clamp(m.busy());
        let s = m.snapshot_traffic();
        values[4 * n + row] = clamp(s.0);
        values[5 * n + row] = clamp(s.1);
    }
    CandidateTable { count: n, values }
}
