//! The seam between the balancer and whatever implements a load-balancing method.
//!
//! The plugin runtime implements [`LbMethod`] for Wasm components; tests implement it natively.
//! Nothing here knows about Wasm.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use super::record::PickObserver;

/// One candidate of a request, as a method sees it: the member's index in its balancer and
/// its numbers at the time of the pick. The same type plugin authors read (the SDK's), so
/// the host and a guest cannot disagree on what a candidate is; how a list of them crosses
/// the Wasm boundary is the plugin runtime's business.
pub use switchyard_sdk::Candidate;

/// What `pick` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Index into the candidates.
    pub chosen: usize,
    /// Empty, or one lbstatus delta per candidate.
    pub lbstatus_delta: Vec<i64>,
}

/// Picks planned ahead by a plannable method ([`LbMethod::plan`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The candidate chosen by each pick, in order; empty refuses every candidate.
    pub chosen: Vec<usize>,
    /// Empty, or one delta per candidate for each pick, pick after pick.
    pub lbstatus_delta: Vec<i64>,
}

impl Plan {
    /// Why the plan must be refused for `candidates` candidates when `asked` picks were
    /// asked for: more picks than asked, an index out of range, deltas of the wrong length.
    pub fn check(&self, candidates: usize, asked: usize) -> Result<(), String> {
        if self.chosen.len() > asked {
            return Err(format!("{} picks where {asked} were asked for", self.chosen.len()));
        }
        if let Some(&bad) = self.chosen.iter().find(|&&c| c >= candidates) {
            return Err(format!("chose candidate {bad} of {candidates}"));
        }
        let deltas = self.lbstatus_delta.len();
        if deltas != 0 && deltas != self.chosen.len() * candidates {
            return Err(format!("{deltas} lbstatus deltas for {} picks of {candidates} candidates", self.chosen.len()));
        }
        Ok(())
    }
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
/// the plugin runtime words it. The balancer then falls back (the previous method, else
/// byrequests); like
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

    /// The version in service, for the manager and the metrics (`sha256:` and 12 hex digits
    /// for a plugin); empty for a method that has none.
    fn version(&self) -> &str {
        ""
    }

    /// Calls that trapped and times the circuit opened (a plugin's), for `/metrics`.
    fn traps(&self) -> (u64, u64) {
        (0, 0)
    }

    /// Chooses among `candidates` (never empty) for a request placed at `now` (the time
    /// methods that ask for completions are told). `Ok(None)` means the method refuses all of
    /// them; the answer is validated by the caller.
    fn pick(&self, key: u64, candidates: &[Candidate], now: Instant) -> Result<Option<Decision>, LbMethodError>;

    /// A sticky session chose `usable[chosen]`; returns lbstatus deltas (empty or one per entry).
    fn sticky_hit(&self, usable: &[Candidate], chosen: usize) -> Result<Vec<i64>, LbMethodError>;

    /// Whether the method's choice depends on nothing but the candidates' lbfactor and
    /// lbstatus, so that [`LbMethod::plan`] may place several requests at once. Asked when
    /// the method is installed.
    fn plannable(&self) -> bool {
        false
    }

    /// What `pick` would answer `picks` times in a row over `candidates`, each answer's deltas
    /// added before the next; asked only of a plannable method. Checked by the caller.
    fn plan(&self, candidates: &[Candidate], picks: usize) -> Result<Plan, LbMethodError> {
        let _ = (candidates, picks);
        Err(LbMethodError(format!("{} does not plan", self.name())))
    }

    /// The balancer's members changed; implementations pass this on before their next call.
    fn set_members(&self, members: Arc<[MemberInfo]>);

    /// Whether the method wants to hear how attempts ended ([`LbMethod::complete`]). Asked
    /// when the method is installed; methods that say no cost nothing per request.
    fn wants_completions(&self) -> bool {
        false
    }

    /// An attempt the balancer's method chose (or a sticky session sent) has ended. Called on
    /// whichever thread ended it, often while the method is picking elsewhere.
    fn complete(&self, completion: &Completion) {
        let _ = completion;
    }
}

/// How one attempt to a member ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// A response head came back; the attempt ended with its body.
    Response,
    /// The request never reached the member (connect failed, refused, ping timed out).
    ConnectFailed,
    /// The member took the request and sent no head within its timeout.
    TimedOut,
    /// The member took the request and broke the exchange before a head.
    Broken,
}

/// One ended attempt, as the balancer reports it to its method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    /// The member's position in the balancer (config order).
    pub member: usize,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// The response status; 0 without a head.
    pub status: u16,
    /// From the start of the attempt to the response head, when one came.
    pub head: Option<Duration>,
    /// From the start of the attempt to its end.
    pub total: Duration,
    /// Response body bytes read from the member.
    pub received: u64,
    /// When it ended.
    pub finished: Instant,
}

/// The balancer's current method, shared with its members so an attempt can report how it
/// ended without knowing the balancer. Swapped atomically (a hot swap).
pub(crate) struct MethodSlot {
    method: ArcSwap<Arc<dyn LbMethod>>,
    /// A copy of the method's `wants_completions`, so an attempt that will not report costs
    /// one load.
    wants: AtomicBool,
    /// Whoever records the balancer's decisions, when something does (set once, at build).
    observer: OnceLock<Arc<dyn PickObserver>>,
}

impl MethodSlot {
    pub(crate) fn new(method: Arc<dyn LbMethod>) -> Self {
        let wants = AtomicBool::new(method.wants_completions());
        Self { method: ArcSwap::from_pointee(method), wants, observer: OnceLock::new() }
    }

    /// Records the balancer's decisions with `observer` from now on (once).
    pub(crate) fn observe(&self, observer: Arc<dyn PickObserver>) {
        let _ = self.observer.set(observer);
    }

    pub(crate) fn observer(&self) -> Option<&Arc<dyn PickObserver>> {
        self.observer.get()
    }

    pub(crate) fn load(&self) -> Arc<dyn LbMethod> {
        Arc::clone(&self.method.load())
    }

    /// The current method for the length of one pick, without a new reference: cloning the
    /// `Arc` is two atomic read-modify-writes of a count every worker shares, on every request.
    pub(crate) fn current(&self) -> arc_swap::Guard<Arc<Arc<dyn LbMethod>>> {
        self.method.load()
    }

    pub(crate) fn store(&self, method: Arc<dyn LbMethod>) {
        self.wants.store(method.wants_completions(), Ordering::Relaxed);
        self.method.store(Arc::new(method));
    }

    /// Whether attempts should be timed and reported.
    pub(crate) fn wants_completions(&self) -> bool {
        self.wants.load(Ordering::Relaxed) || self.observer.get().is_some()
    }

    pub(crate) fn complete(&self, completion: &Completion) {
        if self.wants.load(Ordering::Relaxed) {
            self.method.load().complete(completion);
        }
        if let Some(observer) = self.observer.get() {
            observer.completed(completion);
        }
    }
}

impl std::fmt::Debug for MethodSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MethodSlot").field("method", &self.method.load().name()).finish()
    }
}
