//! The load-balancing method trait and the plain types it works with.
//!
//! These mirror `wit/lbmethod.wit` without exposing generated bindings. The host owns every
//! counter and the `lbstatus` scratch value; a method reads them from [`Candidates`] and changes
//! `lbstatus` only through the deltas in its [`Decision`].

use crate::completion::Completions;
use crate::config::Config;

/// A load-balancing method: picks which candidate member gets a request.
///
/// Only [`configure`](LbMethod::configure) and [`pick`](LbMethod::pick) are required. One value
/// of the type lives in each Wasm instance; the host may run several instances for one balancer
/// and throw one away at any time, so private state is a cache, never the truth.
pub trait LbMethod: Sized + 'static {
    /// Builds the method from its config table (empty when the operator gave none). An error
    /// refuses the plugin with this message.
    fn configure(config: &Config) -> Result<Self, String>;

    /// Called after `configure` and whenever members are added, removed or edited, with every
    /// member in config order. Drop private per-member state here. The default does nothing.
    fn reset(&mut self, members: &[MemberInfo]) {
        let _ = members;
    }

    /// Whether the method wants to hear how the balancer's attempts ended (see
    /// [`complete`](LbMethod::complete)); asked once, after `configure`. The default is no,
    /// which costs nothing per request.
    fn wants_completions(&self) -> bool {
        false
    }

    /// The attempts that ended since this instance's last pick (possibly none), called just
    /// before each `pick` when [`wants_completions`](LbMethod::wants_completions) said yes.
    /// The default does nothing.
    fn complete(&mut self, completions: &Completions<'_>) {
        let _ = completions;
    }

    /// Chooses one of `candidates` (never empty) for a request, or `None` to refuse them all
    /// (the client gets 503). Called for every request that is not a sticky hit.
    fn pick(&mut self, request: Request, candidates: &Candidates<'_>) -> Option<Decision>;

    /// Whether the method's choice depends on nothing but the candidates' lbfactor and
    /// lbstatus (not on the key, busy counts, bytes, time or completions): the host may then
    /// ask for [`plan`](LbMethod::plan)s, several picks at once, which makes each request's
    /// pick a fraction of a call. Asked once, after `configure`. The default is no.
    fn plannable(&self) -> bool {
        false
    }

    /// What `pick` would answer `picks` times in a row, each answer's lbstatus deltas added to
    /// the candidates before the next (asked only when [`plannable`](LbMethod::plannable)).
    /// The default does exactly that with [`pick`](LbMethod::pick); a method rarely needs
    /// its own.
    fn plan(&mut self, candidates: &Candidates<'_>, picks: usize) -> Plan {
        plan_by_picking(self, candidates, picks)
    }

    /// A sticky session sent a request to `usable[chosen]` without asking `pick`; return the
    /// lbstatus deltas to apply (one per usable member, or empty). The default is httpd's: every
    /// usable member's lbstatus grows by its lbfactor and the chosen one loses the total.
    fn sticky_hit(&mut self, usable: &Candidates<'_>, chosen: usize) -> Vec<i64> {
        let mut deltas: Vec<i64> = usable.iter().map(|c| i64::from(c.lbfactor)).collect();
        let total: i64 = deltas.iter().sum();
        if let Some(d) = deltas.get_mut(chosen) {
            *d -= total;
        }
        deltas
    }
}

/// What the host tells `pick` about the request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Request {
    /// The 64-bit FNV-1a hash of the balancer's `hashkey` source (the client address's bytes,
    /// a header's or a cookie's value, the path), for hashing methods; 0 when the balancer
    /// sets no `hashkey` or the request lacks the source. Stable across proxy versions.
    pub key: u64,
    /// The host's monotonic clock, in microseconds, for methods that asked for completions
    /// (the clock completions' `finished_at` is on); 0 for the others.
    pub now: u64,
}

/// A member as `reset` describes it: what is not a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    /// The member's URL as configured.
    pub url: String,
    /// Its sticky-session route; empty when it has none.
    pub route: String,
    /// Its lbset (0..99).
    pub lbset: u32,
}

/// One candidate's state, as read from [`Candidates`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Position of the member in the list last given to `reset`.
    pub member: usize,
    /// Weight: loadfactor × 100 (100..10000).
    pub lbfactor: u32,
    /// The method's scratch value, owned by the host.
    pub lbstatus: i64,
    /// Requests in flight to the member.
    pub busy: u64,
    /// Bytes sent to the member so far.
    pub transferred: u64,
    /// Bytes read from the member so far.
    pub read: u64,
}

/// The per-member fields, in the column order of the WIT `member-field` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Field {
    /// Position in the member list given to `reset`.
    Member = 0,
    /// loadfactor × 100.
    Lbfactor = 1,
    /// The host-owned scratch value.
    Lbstatus = 2,
    /// Requests in flight.
    Busy = 3,
    /// Bytes sent to the member.
    Transferred = 4,
    /// Bytes read from the member.
    Read = 5,
}

impl Field {
    /// How many fields version 0.1 of the contract sends.
    pub const COUNT: usize = 6;
}

/// The members a request may go to: a table with one column per [`Field`], one row per
/// candidate. Column accessors return slices of `len()` values.
#[derive(Debug, Clone, Copy)]
pub struct Candidates<'a> {
    count: usize,
    values: &'a [i64],
}

impl<'a> Candidates<'a> {
    /// Views a column-major table of `count` rows, as the host packs it. A `values` list too
    /// short for `count` rows of every field is cut to the rows it can hold.
    pub fn from_columns(count: usize, values: &'a [i64]) -> Self {
        let count = count.min(values.len() / Field::COUNT);
        Self { count, values }
    }

    /// Packs `rows` into `out` as the host sends them: column-major, one column per
    /// [`Field`] in its order (the layout [`Candidates::from_columns`] reads). `out` is
    /// cleared first, and keeps its allocation for the next table.
    pub fn write_columns(rows: &[Candidate], out: &mut Vec<i64>) {
        out.clear();
        out.reserve(Field::COUNT * rows.len());
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        // A column at a time, in `Field` order: each pass appends in sequence (no zeroing
        // first, no index checks), which is what the host pays on every pick.
        out.extend(rows.iter().map(|c| clamp(c.member as u64)));
        out.extend(rows.iter().map(|c| i64::from(c.lbfactor)));
        out.extend(rows.iter().map(|c| c.lbstatus));
        out.extend(rows.iter().map(|c| clamp(c.busy)));
        out.extend(rows.iter().map(|c| clamp(c.transferred)));
        out.extend(rows.iter().map(|c| clamp(c.read)));
    }

    /// Number of candidates.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are no candidates (the host never calls `pick` with none).
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// One field of every candidate.
    pub fn column(&self, field: Field) -> &'a [i64] {
        let start = field as usize * self.count;
        &self.values[start..start + self.count]
    }

    /// The lbfactor column.
    pub fn lbfactors(&self) -> &'a [i64] {
        self.column(Field::Lbfactor)
    }

    /// The lbstatus column.
    pub fn lbstatuses(&self) -> &'a [i64] {
        self.column(Field::Lbstatus)
    }

    /// The busy column.
    pub fn busies(&self) -> &'a [i64] {
        self.column(Field::Busy)
    }

    /// Candidate `i`, if in range.
    pub fn get(&self, i: usize) -> Option<Candidate> {
        (i < self.count).then(|| self.row(i))
    }

    /// The candidates in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Candidate> + '_ {
        // The six columns zipped, so a row is six loads: indexing each field of each row
        // checked six bounds per row, and was most of a pick over 16 members inside Wasm.
        let [member, lbfactor, lbstatus, busy, transferred, read] = self.columns();
        member.iter().zip(lbfactor).zip(lbstatus).zip(busy).zip(transferred).zip(read).map(
            |(((((&member, &lbfactor), &lbstatus), &busy), &transferred), &read)| {
                row([member, lbfactor, lbstatus, busy, transferred, read])
            },
        )
    }

    fn row(&self, i: usize) -> Candidate {
        row(self.columns().map(|column| column[i]))
    }

    /// Every field's column, in [`Field`] order.
    fn columns(&self) -> [&'a [i64]; Field::COUNT] {
        let (count, values) = (self.count, self.values);
        std::array::from_fn(|field| &values[field * count..(field + 1) * count])
    }
}

/// One candidate from its fields' values, in [`Field`] order.
#[inline]
fn row([member, lbfactor, lbstatus, busy, transferred, read]: [i64; Field::COUNT]) -> Candidate {
    // Counters and indices are never negative; clamp rather than wrap if a host lies.
    let unsigned = |v: i64| u64::try_from(v).unwrap_or(0);
    Candidate {
        member: unsigned(member) as usize,
        lbfactor: u32::try_from(lbfactor).unwrap_or(0),
        lbstatus,
        busy: unsigned(busy),
        transferred: unsigned(transferred),
        read: unsigned(read),
    }
}

/// Picks planned ahead: what [`LbMethod::plan`] answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The candidate chosen by each pick, in order; empty refuses every candidate.
    pub chosen: Vec<usize>,
    /// Empty (no pick changed lbstatus), or one delta per candidate for each pick, pick after
    /// pick: candidate `i`'s delta from pick `p` is `lbstatus_delta[p * candidates + i]`.
    pub lbstatus_delta: Vec<i64>,
}

/// [`LbMethod::plan`]'s default: `pick` over a copy of the candidates, `picks` times, each
/// answer's deltas added to the copy's lbstatus column. Stops early at a refusal or an answer
/// the host would refuse.
pub fn plan_by_picking<M: LbMethod>(method: &mut M, candidates: &Candidates<'_>, picks: usize) -> Plan {
    let n = candidates.len();
    let mut values = candidates.values[..Field::COUNT * n].to_vec();
    let lbstatus = Field::Lbstatus as usize * n;
    let mut plan = Plan { chosen: Vec::with_capacity(picks), lbstatus_delta: Vec::with_capacity(picks * n) };
    let mut any_delta = false;
    for _ in 0..picks {
        let Some(decision) = method.pick(Request::default(), &Candidates::from_columns(n, &values)) else { break };
        let deltas = decision.lbstatus_delta;
        if decision.chosen >= n || !(deltas.is_empty() || deltas.len() == n) {
            break;
        }
        plan.chosen.push(decision.chosen);
        if deltas.is_empty() {
            plan.lbstatus_delta.resize(plan.lbstatus_delta.len() + n, 0);
        } else {
            any_delta = true;
            for (status, delta) in values[lbstatus..lbstatus + n].iter_mut().zip(&deltas) {
                *status = status.wrapping_add(*delta);
            }
            plan.lbstatus_delta.extend_from_slice(&deltas);
        }
    }
    if !any_delta {
        plan.lbstatus_delta.clear();
    }
    plan
}

/// The answer to `pick`: the chosen candidate and optional lbstatus deltas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Index into the candidates.
    pub chosen: usize,
    /// Empty (no change) or one delta per candidate, added to its lbstatus by the host.
    pub lbstatus_delta: Vec<i64>,
}

impl Decision {
    /// Sends the request to candidate `chosen`, changing no lbstatus.
    pub fn to(chosen: usize) -> Self {
        Self { chosen, lbstatus_delta: Vec::new() }
    }

    /// Adds lbstatus deltas, one per candidate.
    pub fn with_lbstatus_delta(mut self, deltas: Vec<i64>) -> Self {
        self.lbstatus_delta = deltas;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_round_trip() {
        let rows = [
            Candidate { member: 2, lbfactor: 100, lbstatus: -5, busy: 1, transferred: 10, read: 20 },
            Candidate { member: 0, lbfactor: 300, lbstatus: 7, busy: 0, transferred: u64::MAX, read: 0 },
        ];
        let mut values = vec![99; 3];
        Candidates::write_columns(&rows, &mut values);
        assert_eq!(values.len(), Field::COUNT * 2);
        assert_eq!(Candidates::from_columns(2, &values).column(Field::Lbfactor), &[100, 300]);
        let back: Vec<Candidate> = Candidates::from_columns(2, &values).iter().collect();
        assert_eq!(back[0], rows[0]);
        assert_eq!(back[1].transferred, i64::MAX as u64, "clamped, never wrapped");
        assert_eq!(Candidates::from_columns(2, &values).get(1), Some(back[1]));
        // A later contract version may append columns: rows read the same.
        values.extend([1, 2]);
        let later = Candidates::from_columns(2, &values);
        assert_eq!(later.iter().collect::<Vec<_>>(), back);
        assert_eq!(later.get(2), None);
        // Too few values for the rows claimed: cut to the rows they hold.
        assert_eq!(Candidates::from_columns(3, &values).len(), 2);
    }
}
