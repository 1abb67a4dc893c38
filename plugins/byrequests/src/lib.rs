//! `byrequests`: httpd's request-counting method (smooth weighted round robin).
//!
//! For each candidate `lbstatus += lbfactor` and `total += lbfactor`; the candidate with the
//! highest lbstatus wins, ties going to the first in order (a strict `>`); the winner's
//! lbstatus drops by `total`. Bit-exact with httpd 2.4's `mod_lbmethod_byrequests`.

use switchyard_sdk::{Candidates, Config, Decision, LbMethod, Plan, Request};

/// The byrequests method. Keeps no state of its own: all of it is the host's lbstatus.
#[derive(Debug, Default)]
pub struct ByRequests;

impl LbMethod for ByRequests {
    fn configure(config: &Config) -> Result<Self, String> {
        config.expect_empty("byrequests")?;
        Ok(ByRequests)
    }

    /// Nothing but lbfactor and lbstatus decides: the host may plan picks ahead.
    fn plannable(&self) -> bool {
        true
    }

    /// `pick` `picks` times over a running copy of the lbstatus column, without a
    /// decision (and its allocation) per pick: the same answers as the SDK's default.
    fn plan(&mut self, candidates: &Candidates<'_>, picks: usize) -> Plan {
        let factors = candidates.lbfactors();
        let mut statuses = candidates.lbstatuses().to_vec();
        let n = factors.len();
        let total: i64 = factors.iter().sum();
        let mut plan = Plan { chosen: Vec::with_capacity(picks), lbstatus_delta: Vec::with_capacity(picks * n) };
        if n == 0 {
            return plan;
        }
        for _ in 0..picks {
            for (status, &factor) in statuses.iter_mut().zip(factors) {
                *status = status.wrapping_add(factor);
            }
            // The highest, ties to the first (a strict `>`), as `pick`.
            let mut best = 0;
            for (i, &status) in statuses.iter().enumerate().skip(1) {
                if status > statuses[best] {
                    best = i;
                }
            }
            statuses[best] = statuses[best].wrapping_sub(total);
            plan.chosen.push(best);
            let at = plan.lbstatus_delta.len() + best;
            plan.lbstatus_delta.extend_from_slice(factors);
            plan.lbstatus_delta[at] -= total;
        }
        plan
    }

    fn pick(&mut self, _request: Request, candidates: &Candidates<'_>) -> Option<Decision> {
        let factors = candidates.lbfactors();
        let statuses = candidates.lbstatuses();
        // The highest lbstatus after each gains its lbfactor, ties to the first (a strict `>`),
        // and the total, in one pass.
        let (mut best, mut best_status, mut total) = (0, i64::MIN, 0i64);
        for (i, (&factor, &status)) in factors.iter().zip(statuses).enumerate() {
            let status = status.wrapping_add(factor);
            if i == 0 || status > best_status {
                (best, best_status) = (i, status);
            }
            total = total.wrapping_add(factor);
        }
        let mut deltas = factors.to_vec();
        *deltas.get_mut(best)? -= total;
        Some(Decision::to(best).with_lbstatus_delta(deltas))
    }
}

switchyard_sdk::export_lbmethod!(ByRequests);

// Each call gets the blocks the last one freed (the candidate table, the answer's lists)
// instead of going to dlmalloc for them.
#[global_allocator]
static ALLOCATOR: switchyard_sdk::Recycling = switchyard_sdk::Recycling::new();

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::testing::Harness;

    fn harness(members: &[(&str, f64)]) -> Harness<ByRequests> {
        members
            .iter()
            .fold(Harness::new("{}").expect("configure"), |h, &(name, lf)| h.member(name, lf))
    }

    #[test]
    fn httpd_docs_70_30_example() {
        let mut h = harness(&[("a", 70.0), ("b", 30.0)]);
        assert_eq!(h.sequence(10), ["a", "b", "a", "a", "a", "b", "a", "a", "b", "a"]);
    }

    #[test]
    fn loadfactors_1_2_3() {
        let mut h = harness(&[("a", 1.0), ("b", 2.0), ("c", 3.0)]);
        assert_eq!(h.sequence(6), ["c", "b", "a", "c", "b", "c"]);
        // The cycle repeats and every lbstatus is back to zero.
        assert_eq!(h.sequence(6), ["c", "b", "a", "c", "b", "c"]);
        assert!(h.members().iter().all(|m| m.lbstatus == 0));
    }

    #[test]
    fn equal_weights_alternate_from_the_first() {
        let mut h = harness(&[("a", 1.0), ("b", 1.0), ("c", 1.0)]);
        assert_eq!(h.sequence(6), ["a", "b", "c", "a", "b", "c"]);
    }

    #[test]
    fn decimal_loadfactor_counts() {
        let mut h = harness(&[("a", 2.5), ("b", 1.0)]);
        let seq = h.sequence(7);
        assert_eq!(seq.iter().filter(|s| *s == "a").count(), 5);
        assert_eq!(h.members()[0].lbfactor, 250);
    }

    #[test]
    fn sticky_hit_uses_httpd_default_bookkeeping() {
        let mut h = harness(&[("a", 1.0), ("b", 1.0)]);
        h.sticky_hit(1);
        assert_eq!(h.members()[0].lbstatus, 100);
        assert_eq!(h.members()[1].lbstatus, -100);
        assert_eq!(h.sequence(2), ["a", "a"]);
    }

    #[test]
    fn a_plan_is_the_picks_in_a_row() {
        use switchyard_sdk::Candidate;
        let rows: Vec<Candidate> = [100, 200, 300]
            .iter()
            .enumerate()
            .map(|(member, &lbfactor)| Candidate { member, lbfactor, lbstatus: 0, busy: 0, transferred: 0, read: 0 })
            .collect();
        let mut values = Vec::new();
        Candidates::write_columns(&rows, &mut values);
        let plan = ByRequests.plan(&Candidates::from_columns(3, &values), 6);
        assert_eq!(plan.chosen, [2, 1, 0, 2, 1, 2], "httpd's 1:2:3 cycle, as six picks give it");
        assert_eq!(plan.lbstatus_delta.len(), 18);
        let net: Vec<i64> = (0..3).map(|i| (0..6).map(|p| plan.lbstatus_delta[p * 3 + i]).sum()).collect();
        assert_eq!(net, [0, 0, 0], "a whole cycle leaves every lbstatus where it was");
    }

    #[test]
    fn its_own_plan_is_the_sdk_default_plan() {
        use switchyard_sdk::{Candidate, plan_by_picking};
        // Assorted weights and starting lbstatuses, ties included.
        for seed in 0..40u64 {
            let n = 1 + (seed % 7) as usize;
            let rows: Vec<Candidate> = (0..n)
                .map(|i| {
                    let x = seed.wrapping_mul(0x9E37_79B9).wrapping_add(i as u64 * 7919);
                    Candidate { member: i, lbfactor: 100 * (1 + (x % 5) as u32), lbstatus: (x % 900) as i64 - 450, busy: 0, transferred: 0, read: 0 }
                })
                .collect();
            let mut values = Vec::new();
            Candidates::write_columns(&rows, &mut values);
            let view = Candidates::from_columns(n, &values);
            assert_eq!(ByRequests.plan(&view, 50), plan_by_picking(&mut ByRequests, &view, 50), "seed {seed}");
        }
    }

    #[test]
    fn rejects_config_keys() {
        assert!(Harness::<ByRequests>::new(r#"{"x": 1}"#).is_err());
    }
}
