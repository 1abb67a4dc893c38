//! The load-balancing method harness.
//!
//! [`Harness`] keeps members and their counters the way the proxy does, calls the plugin's
//! [`LbMethod`] directly (no Wasm), applies the lbstatus deltas it returns and counts elections.
//! It checks every answer as strictly as the host does and panics with a clear message on one
//! the host would refuse, so a test catches it.
//!
//! ```
//! use switchyard_sdk::{Candidates, Config, Decision, LbMethod, Request, testing::Harness};
//! struct First;
//! impl LbMethod for First {
//!     fn configure(_: &Config) -> Result<Self, String> { Ok(First) }
//!     fn pick(&mut self, _: Request, _: &Candidates<'_>) -> Option<Decision> { Some(Decision::to(0)) }
//! }
//! let mut h = Harness::<First>::new("{}").unwrap().member("a", 1.0).member("b", 1.0);
//! assert_eq!(h.sequence(3), ["a", "a", "a"]);
//! ```

use crate::completion::{AttemptOutcome, Completion, Completions, to_columns};
use crate::config::Config;
use crate::lbmethod::{Candidate, Candidates, Decision, LbMethod, MemberInfo, Request};

/// One simulated member with the counters the host keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimMember {
    /// The member's URL (any name works in tests).
    pub url: String,
    /// Its sticky route.
    pub route: String,
    /// Its lbset.
    pub lbset: u32,
    /// loadfactor × 100.
    pub lbfactor: u32,
    /// The scratch value the plugin changes through deltas.
    pub lbstatus: i64,
    /// Requests in flight.
    pub busy: u64,
    /// Bytes sent to the member.
    pub transferred: u64,
    /// Bytes read from the member.
    pub read: u64,
    /// Times the member was chosen.
    pub elected: u64,
}

/// Runs an [`LbMethod`] natively against simulated members.
#[derive(Debug)]
pub struct Harness<M: LbMethod> {
    method: M,
    members: Vec<SimMember>,
    /// The simulated host clock, in microseconds.
    now: u64,
    /// Completions not yet handed to the method.
    pending: Vec<Completion>,
}

/// The host's conversion of a loadfactor (1..100, decimals allowed) to an lbfactor, as httpd
/// does it: ×100, truncated.
pub fn lbfactor_of(loadfactor: f64) -> u32 {
    (loadfactor * 100.0) as u32
}

impl<M: LbMethod> Harness<M> {
    /// Configures the method with a JSON config table, as the host would.
    pub fn new(config_json: &str) -> Result<Self, String> {
        let config = Config::from_json(config_json)?;
        let method = M::configure(&config)?;
        Ok(Self { method, members: Vec::new(), now: 1, pending: Vec::new() })
    }

    /// Adds a member with a loadfactor (1..100) and calls `reset` with the new list.
    pub fn member(mut self, url: &str, loadfactor: f64) -> Self {
        self.members.push(SimMember {
            url: url.to_string(),
            route: String::new(),
            lbset: 0,
            lbfactor: lbfactor_of(loadfactor),
            lbstatus: 0,
            busy: 0,
            transferred: 0,
            read: 0,
            elected: 0,
        });
        self.reset();
        self
    }

    /// Calls the method's `reset` with the current member list.
    pub fn reset(&mut self) {
        let info: Vec<MemberInfo> = self
            .members
            .iter()
            .map(|m| MemberInfo { url: m.url.clone(), route: m.route.clone(), lbset: m.lbset })
            .collect();
        self.method.reset(&info);
    }

    /// The members and their counters.
    pub fn members(&self) -> &[SimMember] {
        &self.members
    }

    /// Mutable access to member `i`, to set busy, traffic or lbstatus.
    ///
    /// # Panics
    /// When `i` is out of range.
    pub fn member_mut(&mut self, i: usize) -> &mut SimMember {
        &mut self.members[i]
    }

    /// The simulated clock, in microseconds (what [`Request::now`] carries).
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Moves the simulated clock on.
    pub fn advance(&mut self, micros: u64) {
        self.now += micros;
    }

    /// Queues a completion for the next pick (handed over only if the method wants them).
    pub fn complete(&mut self, completion: Completion) {
        self.pending.push(completion);
    }

    /// Queues a 200 answer from member `i` that took `micros` to its head, ending now.
    pub fn answered(&mut self, i: usize, micros: u64) {
        self.complete(Completion {
            member: i,
            outcome: AttemptOutcome::Response,
            status: 200,
            head_micros: Some(micros),
            total_micros: micros,
            received: 0,
            finished_at: self.now,
        });
    }

    /// Picks among all members as one tier; returns the chosen member's index.
    pub fn pick(&mut self) -> Option<usize> {
        let all: Vec<usize> = (0..self.members.len()).collect();
        self.pick_among(&all, 0)
    }

    /// Picks among the given members (a tier the host would build), with a request key.
    ///
    /// # Panics
    /// When the method answers something the host would refuse.
    pub fn pick_among(&mut self, members: &[usize], key: u64) -> Option<usize> {
        let lists = Lists::of(&self.members, members);
        let now = if self.method.wants_completions() {
            let done = std::mem::take(&mut self.pending);
            let values = to_columns(&done);
            self.method.complete(&Completions::from_columns(done.len(), &values, 0));
            self.now
        } else {
            self.pending.clear();
            0
        };
        let decision = self.method.pick(Request { key, now }, &lists.view())?;
        let Decision { chosen, lbstatus_delta } = decision;
        assert!(chosen < members.len(), "pick chose {chosen}, but there are {} candidates", members.len());
        self.apply(members, &lbstatus_delta);
        let winner = members[chosen];
        self.members[winner].elected += 1;
        Some(winner)
    }

    /// Picks `n` times among all members, simulating each request finishing before the next
    /// (busy is untouched), and returns the chosen members' URLs.
    pub fn sequence(&mut self, n: usize) -> Vec<String> {
        let mut urls = Vec::with_capacity(n);
        for _ in 0..n {
            if let Some(i) = self.pick() {
                urls.push(self.members[i].url.clone());
            }
        }
        urls
    }

    /// Simulates a sticky hit on member `chosen` with all members usable.
    ///
    /// # Panics
    /// When the method answers something the host would refuse.
    pub fn sticky_hit(&mut self, chosen: usize) {
        let all: Vec<usize> = (0..self.members.len()).collect();
        let lists = Lists::of(&self.members, &all);
        let deltas = self.method.sticky_hit(&lists.view(), chosen);
        self.apply(&all, &deltas);
        self.members[chosen].elected += 1;
    }

    fn apply(&mut self, members: &[usize], deltas: &[i64]) {
        if deltas.is_empty() {
            return;
        }
        assert_eq!(
            deltas.len(),
            members.len(),
            "lbstatus deltas must be empty or one per candidate"
        );
        for (&m, &d) in members.iter().zip(deltas) {
            self.members[m].lbstatus = self.members[m].lbstatus.wrapping_add(d);
        }
    }
}

/// The column-major table the host would send for a set of members.
struct Lists {
    count: usize,
    values: Vec<i64>,
}

impl Lists {
    fn of(all: &[SimMember], members: &[usize]) -> Self {
        let rows: Vec<Candidate> = members
            .iter()
            .map(|&i| {
                let m = &all[i];
                Candidate { member: i, lbfactor: m.lbfactor, lbstatus: m.lbstatus, busy: m.busy, transferred: m.transferred, read: m.read }
            })
            .collect();
        let mut values = Vec::new();
        Candidates::write_columns(&rows, &mut values);
        Self { count: members.len(), values }
    }

    fn view(&self) -> Candidates<'_> {
        Candidates::from_columns(self.count, &self.values)
    }
}
