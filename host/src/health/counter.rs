//! Consecutive passes and failures, and when they change a member's health.

/// What a probe result does to the member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Nothing changes.
    None,
    /// `hcfails` failures in a row: the member gets C.
    Failed,
    /// `hcpasses` passes in a row for a member with C or E: both are cleared.
    Recovered,
}

/// Counts one member's results in a row.
#[derive(Debug, Clone)]
pub struct Counter {
    passes_needed: u32,
    fails_needed: u32,
    passes: u32,
    fails: u32,
}

impl Counter {
    /// A counter that fails a member after `fails` failures in a row and recovers it after
    /// `passes` passes in a row (both at least 1).
    pub fn new(passes: u32, fails: u32) -> Self {
        Self { passes_needed: passes.max(1), fails_needed: fails.max(1), passes: 0, fails: 0 }
    }

    /// Records one result for a member whose flags are `health_failed` (C) and `in_error` (E).
    pub fn record(&mut self, healthy: bool, health_failed: bool, in_error: bool) -> Transition {
        if healthy {
            self.fails = 0;
            self.passes = self.passes.saturating_add(1);
            if (health_failed || in_error) && self.passes >= self.passes_needed {
                return Transition::Recovered;
            }
        } else {
            self.passes = 0;
            self.fails = self.fails.saturating_add(1);
            if !health_failed && self.fails >= self.fails_needed {
                return Transition::Failed;
            }
        }
        Transition::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds results (`+` pass, `-` fail) to a member, applying transitions to its C flag.
    fn run(counter: &mut Counter, c: &mut bool, results: &str) -> Vec<Transition> {
        let mut out = Vec::new();
        for r in results.chars() {
            let t = counter.record(r == '+', *c, false);
            match t {
                Transition::Failed => *c = true,
                Transition::Recovered => *c = false,
                Transition::None => {}
            }
            out.push(t);
        }
        out
    }

    #[test]
    fn fails_after_n_in_a_row_and_recovers_after_m_in_a_row() {
        use Transition::*;
        let mut counter = Counter::new(2, 3);
        let mut c = false;
        assert_eq!(run(&mut counter, &mut c, "--+--"), [None; 5], "failures must be consecutive (httpd's are not)");
        assert!(!c);
        assert_eq!(run(&mut counter, &mut c, "-"), [Failed]);
        assert!(c);
        assert_eq!(run(&mut counter, &mut c, "--+-+"), [None; 5], "a failed member stays failed until passes in a row");
        assert!(c);
        assert_eq!(run(&mut counter, &mut c, "+"), [Recovered]);
        assert!(!c);
    }

    #[test]
    fn passes_clear_an_error_set_by_traffic() {
        let mut counter = Counter::new(1, 1);
        assert_eq!(counter.record(true, false, true), Transition::Recovered);
        assert_eq!(counter.record(true, false, false), Transition::None, "nothing to clear");
    }
}
