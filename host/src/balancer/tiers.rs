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
    let mut candidates = Vec::with_capacity(members.len());
    let Some(mut lbset) = members.iter().map(|m| m.config.lbset).min() else {
        return candidates;
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
        if candidates.is_empty() {
            candidates = standbys;
        }
        match next_lbset {
            _ if !candidates.is_empty() => return candidates,
            Some(next) => lbset = next,
            None => return candidates,
        }
    }
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
