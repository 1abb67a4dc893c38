//! `bytraffic`: httpd's traffic-weighting method.
//!
//! The candidate with the lowest `transferred / lbfactor + read / lbfactor` (integer division,
//! each term separately) wins, ties going to the first in order. lbstatus is not used.
//! Bit-exact with httpd 2.4's `mod_lbmethod_bytraffic`.

use switchyard_sdk::{Candidates, Config, Decision, LbMethod, Request};

/// The bytraffic method. Stateless: byte counters are the host's.
#[derive(Debug, Default)]
pub struct ByTraffic;

impl LbMethod for ByTraffic {
    fn configure(config: &Config) -> Result<Self, String> {
        config.expect_empty("bytraffic")?;
        Ok(ByTraffic)
    }

    fn pick(&mut self, _request: Request, candidates: &Candidates<'_>) -> Option<Decision> {
        let mut best: Option<(usize, u64)> = None;
        for (i, c) in candidates.iter().enumerate() {
            // lbfactor is at least 100 for any member the host accepts; guard anyway.
            let factor = u64::from(c.lbfactor.max(1));
            let traffic = c.transferred / factor + c.read / factor;
            if best.is_none_or(|(_, min)| traffic < min) {
                best = Some((i, traffic));
            }
        }
        best.map(|(chosen, _)| Decision::to(chosen))
    }
}

switchyard_sdk::export_lbmethod!(ByTraffic);

// Each call gets the blocks the last one freed (the candidate table, the answer's lists)
// instead of going to dlmalloc for them.
#[global_allocator]
static ALLOCATOR: switchyard_sdk::Recycling = switchyard_sdk::Recycling::new();

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::testing::Harness;

    /// Picks `n` times, charging `bytes` sent and read to each chosen member.
    fn run(h: &mut Harness<ByTraffic>, n: usize, bytes: u64) -> Vec<String> {
        (0..n)
            .map(|_| {
                let i = h.pick().expect("a member");
                let m = h.member_mut(i);
                m.transferred += bytes;
                m.read += bytes;
                m.url.clone()
            })
            .collect()
    }

    #[test]
    fn loadfactors_1_2_3_with_equal_requests() {
        let mut h = Harness::<ByTraffic>::new("{}").expect("configure").member("a", 1.0).member("b", 2.0).member("c", 3.0);
        assert_eq!(run(&mut h, 6, 600), ["a", "b", "c", "c", "b", "c"]);
    }

    #[test]
    fn seventy_thirty_shares_traffic_by_weight() {
        let mut h = Harness::<ByTraffic>::new("{}").expect("configure").member("a", 70.0).member("b", 30.0);
        let seq = run(&mut h, 100, 1000);
        assert_eq!(seq.iter().filter(|s| *s == "a").count(), 70);
    }

    #[test]
    fn integer_division_is_per_term() {
        // a: 200/100 + 100/100 = 3. b: 199/100 + 199/100 = 2, where (199+199)/100 would be 3
        // and tie with a (so a would win). httpd divides each term: b wins.
        let mut h = Harness::<ByTraffic>::new("{}").expect("configure").member("a", 1.0).member("b", 1.0);
        h.member_mut(0).transferred = 200;
        h.member_mut(0).read = 100; // 2 + 1 = 3
        h.member_mut(1).transferred = 199;
        h.member_mut(1).read = 199; // 1 + 1 = 2
        assert_eq!(h.pick(), Some(1));
    }

    #[test]
    fn leaves_lbstatus_alone() {
        let mut h = Harness::<ByTraffic>::new("{}").expect("configure").member("a", 1.0).member("b", 1.0);
        run(&mut h, 4, 10);
        assert!(h.members().iter().all(|m| m.lbstatus == 0));
    }
}
