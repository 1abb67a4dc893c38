//! The seam between the balancer and whatever implements a load-balancing method.
//!
//! The plugin runtime implements [`LbMethod`] for Wasm components; tests implement it natively.
//! Nothing here knows about Wasm.

use std::sync::Arc;

/// The candidates of one request as the contract packs them: one column per field
/// (member, lbfactor, lbstatus, busy, transferred, read), `count` values each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CandidateTable {
    /// Number of candidates.
    pub count: usize,
    /// `FIELDS × count` values, column-major.
    pub values: Vec<i64>,
}

impl CandidateTable {
    /// Fields per candidate in version 0.1 of the contract.
    pub const FIELDS: usize = 6;

    /// Column `field` (0 member … 5 read).
    pub fn column(&self, field: usize) -> &[i64] {
        &self.values[field * self.count..(field + 1) * self.count]
    }
}

/// What `pick` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Index into the candidates.
    pub chosen: usize,
    /// Empty, or one lbstatus delta per candidate.
    pub lbstatus_delta: Vec<i64>,
}

/// What a method knows about a member that is not a number (handed over on membership change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    /// The member's URL.
    pub url: String,
    /// Its sticky route.
    pub route: String,
    /// Its lbset.
    pub lbset: u32,
}

/// Why a method could not answer (a trap, a circuit-broken plugin, no usable instance), as
/// the plugin runtime words it. The balancer then falls back to the first candidate; like
/// the health-check and header-rewrite seams, it needs no more than the sentence to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LbMethodError(pub String);

/// A load-balancing method. Implementations are shared by every request of a balancer and
/// must allow concurrent calls. Calls are synchronous and short (a plugin call is bounded by
/// its CPU deadline and can never wait on I/O).
pub trait LbMethod: Send + Sync + 'static {
    /// A name for logs and the manager (e.g. `byrequests`, or a file name).
    fn name(&self) -> &str;

    /// Chooses among `candidates` (never empty). `Ok(None)` means the method refuses all of
    /// them; the answer is validated by the caller.
    fn pick(&self, key: u64, candidates: &CandidateTable) -> Result<Option<Decision>, LbMethodError>;

    /// A sticky session chose `usable[chosen]`; returns lbstatus deltas (empty or one per entry).
    fn sticky_hit(&self, usable: &CandidateTable, chosen: usize) -> Result<Vec<i64>, LbMethodError>;

    /// The balancer's members changed; implementations pass this on before their next call.
    fn set_members(&self, members: Arc<[MemberInfo]>);
}
