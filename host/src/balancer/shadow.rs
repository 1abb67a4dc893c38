//! Shadow mode: a second lbmethod picking beside the active one on live traffic, with its own
//! lbstatus scratch values, whose choices are counted and never enacted.
//!
//! The shadow runs on a thread of its own, after the real pick: the request thread only pushes
//! the candidate table it has finished with (a move, no copy) onto a bounded queue, under a
//! lock held for the push alone, and never wakes the shadow's thread (a wake-up is a system
//! call: measured, it tripled what the hand-over cost). The thread drains the queue every
//! millisecond while there is work, less often when idle. So a shadow that is slow, loops or
//! traps never delays or fails a request; its calls have the plugin deadline and circuit
//! breaker like any; and when it falls behind, the queue is full and requests skip it,
//! counted as dropped.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::lbmethod::{Candidate, LbMethod, MemberInfo};

/// Picks waiting for the shadow; more are dropped.
const QUEUE: usize = 1024;

/// How often the shadow's thread looks for work while busy, and at most while idle.
const POLL: Duration = Duration::from_millis(1);
const IDLE_POLL: Duration = Duration::from_millis(20);

/// A balancer's shadow lbmethod and what it would have done.
pub struct Shadow {
    method: Arc<dyn LbMethod>,
    queue: Arc<Queue>,
    stats: Arc<ShadowStats>,
}

/// Picks handed over and not yet redone.
#[derive(Default)]
struct Queue {
    jobs: Mutex<Vec<Job>>,
    /// Set when the balancer goes: the thread ends.
    closed: AtomicBool,
}

/// What a shadow would have done, counted since the balancer was built.
#[derive(Debug)]
pub struct ShadowStats {
    /// Picks where the shadow chose the member the active method chose.
    pub agreed: AtomicU64,
    /// Picks where it chose another member, or refused every candidate.
    pub disagreed: AtomicU64,
    /// Calls that trapped, found the shadow circuit-broken, or answered nonsense.
    pub failed: AtomicU64,
    /// Picks the shadow never saw: it was behind by a full queue.
    pub dropped: AtomicU64,
    /// Per member (config order): how many requests the shadow would have sent it.
    pub would_pick: Box<[AtomicU64]>,
    /// Per member: the shadow's own lbstatus scratch value.
    pub lbstatus: Box<[AtomicI64]>,
}

/// One real pick, for the shadow to redo.
struct Job {
    key: u64,
    table: Vec<Candidate>,
    /// Member indices of the table's rows.
    candidates: Vec<usize>,
    /// The member the active method chose.
    chosen: usize,
    /// When the request was placed.
    now: Instant,
}

impl Shadow {
    /// Starts the shadow's thread for a balancer named `balancer` with these members.
    pub(crate) fn start(method: Arc<dyn LbMethod>, balancer: &str, members: Arc<[MemberInfo]>) -> std::io::Result<Self> {
        method.set_members(Arc::clone(&members));
        let stats = Arc::new(ShadowStats {
            agreed: AtomicU64::new(0),
            disagreed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            would_pick: members.iter().map(|_| AtomicU64::new(0)).collect(),
            lbstatus: members.iter().map(|_| AtomicI64::new(0)).collect(),
        });
        let queue = Arc::new(Queue::default());
        let worker = (Arc::clone(&method), Arc::clone(&stats), Arc::clone(&queue));
        std::thread::Builder::new()
            .name(format!("shadow-{balancer}"))
            .spawn(move || run(&*worker.0, &worker.1, &worker.2))?;
        Ok(Self { method, queue, stats })
    }

    /// The shadow method.
    pub fn method(&self) -> &Arc<dyn LbMethod> {
        &self.method
    }

    /// What it would have done.
    pub fn stats(&self) -> &ShadowStats {
        &self.stats
    }

    /// Hands a finished pick to the shadow, or counts it dropped when the shadow is behind.
    pub(crate) fn offer(&self, key: u64, table: Vec<Candidate>, candidates: Vec<usize>, chosen: usize, now: Instant) {
        let job = Job { key, table, candidates, chosen, now };
        let queued = match self.queue.jobs.lock() {
            Ok(mut jobs) if jobs.len() < QUEUE => {
                jobs.push(job);
                true
            }
            _ => false,
        };
        if !queued {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Shadow {
    fn drop(&mut self) {
        self.queue.closed.store(true, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Shadow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shadow").field("method", &self.method.name()).field("stats", &self.stats).finish()
    }
}

/// The shadow's thread: drains the queue until the balancer goes.
fn run(method: &dyn LbMethod, stats: &ShadowStats, queue: &Queue) {
    let mut pause = POLL;
    while !queue.closed.load(Ordering::Relaxed) {
        let batch = queue.jobs.lock().map(|mut jobs| std::mem::take(&mut *jobs)).unwrap_or_default();
        if batch.is_empty() {
            std::thread::sleep(pause);
            pause = (pause * 2).min(IDLE_POLL);
            continue;
        }
        pause = POLL;
        for job in batch {
            redo(method, stats, job);
        }
    }
}

/// Redoes one pick with the shadow's own lbstatus, and counts.
fn redo(method: &dyn LbMethod, stats: &ShadowStats, job: Job) {
    let Job { key, mut table, candidates, chosen, now } = job;
    let count = table.len();
    for (candidate, &member) in table.iter_mut().zip(&candidates) {
        candidate.lbstatus = stats.lbstatus.get(member).map_or(0, |s| s.load(Ordering::Relaxed));
    }
    match method.pick(key, &table, now) {
        Ok(Some(d)) if d.chosen < count && (d.lbstatus_delta.is_empty() || d.lbstatus_delta.len() == count) => {
            for (&member, &delta) in candidates.iter().zip(&d.lbstatus_delta) {
                if let Some(s) = stats.lbstatus.get(member) {
                    s.fetch_add(delta, Ordering::Relaxed);
                }
            }
            let would = candidates[d.chosen];
            if let Some(n) = stats.would_pick.get(would) {
                n.fetch_add(1, Ordering::Relaxed);
            }
            let counter = if would == chosen { &stats.agreed } else { &stats.disagreed };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        Ok(None) => {
            stats.disagreed.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Some(_)) | Err(_) => {
            stats.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}
