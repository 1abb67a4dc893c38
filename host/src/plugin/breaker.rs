//! A circuit breaker for a plugin that keeps trapping.
//!
//! After `limit` traps in a row the plugin is bypassed for `cooldown` (the balancer uses its
//! fallback). When the cooldown ends calls go through again; one success closes the circuit,
//! one more trap opens it again at once.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Trap counting and the open/closed state, lock-free so the hot path pays one atomic load.
#[derive(Debug)]
pub(crate) struct Breaker {
    limit: u32,
    cooldown: Duration,
    consecutive: AtomicU32,
    /// Nanoseconds after `epoch` until which the circuit is open; 0 when closed.
    open_until: AtomicU64,
    epoch: Instant,
}

impl Breaker {
    pub(crate) fn new(limit: u32, cooldown: Duration) -> Self {
        Self { limit, cooldown, consecutive: AtomicU32::new(0), open_until: AtomicU64::new(0), epoch: Instant::now() }
    }

    /// Whether calls must be skipped now. `now` is only asked for when the circuit has been
    /// opened, so a healthy plugin's calls never read the clock here.
    pub(crate) fn is_open(&self, now: impl FnOnce() -> Instant) -> bool {
        let until = self.open_until.load(Ordering::Relaxed);
        until != 0 && self.nanos(now()) < until
    }

    /// Records a successful call.
    pub(crate) fn success(&self) {
        // Read first: a store on every call would bounce the cache line between threads.
        if self.consecutive.load(Ordering::Relaxed) != 0 {
            self.consecutive.store(0, Ordering::Relaxed);
            self.open_until.store(0, Ordering::Relaxed);
        }
    }

    /// Records a trap; returns true when this trap opened the circuit.
    pub(crate) fn failure(&self, now: Instant) -> bool {
        let traps = self.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
        if traps < self.limit {
            return false;
        }
        let was_open = self.is_open(|| now);
        self.open_until.store(self.nanos(now + self.cooldown), Ordering::Relaxed);
        !was_open
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_limit_and_recloses_on_success() {
        let b = Breaker::new(3, Duration::from_secs(10));
        let t = Instant::now();
        assert!(!b.failure(t));
        assert!(!b.failure(t));
        assert!(!b.is_open(|| t));
        assert!(b.failure(t), "third trap in a row opens");
        assert!(b.is_open(|| t + Duration::from_secs(9)));
        assert!(!b.is_open(|| t + Duration::from_secs(10)), "half-open after the cooldown");
        assert!(b.failure(t + Duration::from_secs(10)), "a trap while half-open reopens at once");
        b.success();
        assert!(!b.is_open(|| t + Duration::from_secs(11)));
        assert!(!b.failure(t), "count restarts after a success");
    }
}
