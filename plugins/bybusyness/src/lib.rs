//! `bybusyness`: httpd's pending-request-counting method.
//!
//! The candidate with the fewest requests in flight wins; ties are broken by the byrequests
//! score (`lbstatus += lbfactor` for every candidate, highest wins, ties to the first), and the
//! winner's lbstatus drops by the total. Bit-exact with httpd 2.4's `mod_lbmethod_bybusyness`.

use switchyard_sdk::{Candidates, Config, Decision, LbMethod, Request};

/// The bybusyness method. Stateless: busy counts and lbstatus are the host's.
#[derive(Debug, Default)]
pub struct ByBusyness;

impl LbMethod for ByBusyness {
    fn configure(config: &Config) -> Result<Self, String> {
        config.expect_empty("bybusyness")?;
        Ok(ByBusyness)
    }

    fn pick(&mut self, _request: Request, candidates: &Candidates<'_>) -> Option<Decision> {
        let mut deltas = Vec::with_capacity(candidates.len());
        let mut total: i64 = 0;
        // (index, busy, lbstatus after this request's increment)
        let mut best: Option<(usize, u64, i64)> = None;
        for (i, c) in candidates.iter().enumerate() {
            let factor = i64::from(c.lbfactor);
            let status = c.lbstatus.wrapping_add(factor);
            deltas.push(factor);
            total += factor;
            let better = match best {
                None => true,
                Some((_, best_busy, best_status)) => {
                    c.busy < best_busy || (c.busy == best_busy && status > best_status)
                }
            };
            if better {
                best = Some((i, c.busy, status));
            }
        }
        let (chosen, _, _) = best?;
        deltas[chosen] -= total;
        Some(Decision::to(chosen).with_lbstatus_delta(deltas))
    }
}

switchyard_sdk::export_lbmethod!(ByBusyness);

// Each call gets the blocks the last one freed (the candidate table, the answer's lists)
// instead of going to dlmalloc for them.
#[global_allocator]
static ALLOCATOR: switchyard_sdk::Recycling = switchyard_sdk::Recycling::new();

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::testing::Harness;

    fn harness(members: &[(&str, f64)]) -> Harness<ByBusyness> {
        members
            .iter()
            .fold(Harness::new("{}").expect("configure"), |h, &(name, lf)| h.member(name, lf))
    }

    #[test]
    fn idle_members_follow_byrequests() {
        let mut h = harness(&[("a", 70.0), ("b", 30.0)]);
        assert_eq!(h.sequence(10), ["a", "b", "a", "a", "a", "b", "a", "a", "b", "a"]);
        let mut h = harness(&[("a", 1.0), ("b", 2.0), ("c", 3.0)]);
        assert_eq!(h.sequence(6), ["c", "b", "a", "c", "b", "c"]);
    }

    #[test]
    fn fewest_in_flight_wins_whatever_the_weight() {
        let mut h = harness(&[("a", 1.0), ("b", 100.0)]);
        h.member_mut(1).busy = 3;
        h.member_mut(0).busy = 2;
        assert_eq!(h.sequence(3), ["a", "a", "a"]);
    }

    #[test]
    fn requests_held_open_spread_evenly() {
        // Each request stays in flight, as under a slow member: picks alternate by busy count.
        let mut h = harness(&[("a", 1.0), ("b", 1.0), ("c", 1.0)]);
        let mut seq = Vec::new();
        for _ in 0..6 {
            let i = h.pick().expect("a member");
            h.member_mut(i).busy += 1;
            seq.push(h.members()[i].url.clone());
        }
        assert_eq!(seq, ["a", "b", "c", "a", "b", "c"]);
    }
}
