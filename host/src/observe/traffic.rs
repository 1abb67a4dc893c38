//! Traffic counters for `/metrics`: latency histograms ([`Latency`], also kept per member by
//! the balancer) and, per route, requests by status class and the time until the answer's
//! head was ready. Lock-free atomics, a few per request; read when scraped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the request latency buckets, in seconds (the last bucket is everything
/// above).
pub const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// Upper bounds of the buckets for plugin calls, which take microseconds, in seconds.
pub const CALL_BUCKETS: [f64; 12] = [1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2];

/// A latency histogram: a count per bucket (its bounds, then one for longer) and the sum.
#[derive(Debug)]
pub struct Latency {
    bounds: &'static [f64; 12],
    buckets: [AtomicU64; BUCKETS.len() + 1],
    /// Sum of the latencies, in nanoseconds.
    sum_nanos: AtomicU64,
}

impl Default for Latency {
    /// Request-sized buckets ([`BUCKETS`]).
    fn default() -> Self {
        Self::with_bounds(&BUCKETS)
    }
}

/// What a scrape reads of a [`Latency`].
#[derive(Debug, Clone, PartialEq)]
pub struct LatencySnapshot {
    /// The buckets' upper bounds, in seconds.
    pub bounds: &'static [f64; 12],
    /// Observations per bucket (not cumulative), the last for `+Inf`.
    pub buckets: [u64; BUCKETS.len() + 1],
    /// Sum of the latencies, in seconds.
    pub sum_seconds: f64,
}

impl LatencySnapshot {
    /// Adds `other`'s observations (a histogram with the same bounds) to these.
    pub fn add(&mut self, other: &LatencySnapshot) {
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine += theirs;
        }
        self.sum_seconds += other.sum_seconds;
    }
}

impl Latency {
    /// An empty histogram with these bucket bounds (seconds).
    pub fn with_bounds(bounds: &'static [f64; 12]) -> Self {
        Self { bounds, buckets: Default::default(), sum_nanos: AtomicU64::new(0) }
    }

    /// Counts one observation.
    pub fn record(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let bucket = self.bounds.iter().position(|&b| seconds <= b).unwrap_or(self.bounds.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// The counts now.
    pub fn snapshot(&self) -> LatencySnapshot {
        LatencySnapshot {
            bounds: self.bounds,
            buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

/// How a plugin's calls went, for `/metrics`: their times (the count is the number of calls)
/// and how many trapped or found the plugin circuit-broken.
#[derive(Debug, Clone)]
pub struct PluginCalls {
    /// The version in service (`sha256:` and 12 hex digits).
    pub version: String,
    /// Each call's time.
    pub times: LatencySnapshot,
    /// Calls that trapped (a panic, the CPU deadline, the memory cap).
    pub traps: u64,
    /// Times the plugin's circuit opened after repeated traps.
    pub circuit_opens: u64,
}

/// One route's counters.
#[derive(Debug, Default)]
pub struct TrafficStats {
    /// Requests answered 1xx, 2xx, 3xx, 4xx, 5xx.
    by_class: [AtomicU64; 5],
    /// The time until the answer's head was ready.
    head: Latency,
}

/// What a scrape reads.
#[derive(Debug, Clone, PartialEq)]
pub struct TrafficSnapshot {
    /// Requests by status class (`1xx` … `5xx`).
    pub by_class: [u64; 5],
    /// The time until the answer's head was ready.
    pub head: LatencySnapshot,
}

impl TrafficStats {
    /// Counts one answer: its status and how long its head took.
    pub fn record(&self, status: u16, head_after: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
        self.head.record(head_after);
    }

    /// The counters now.
    pub fn snapshot(&self) -> TrafficSnapshot {
        TrafficSnapshot { by_class: std::array::from_fn(|i| self.by_class[i].load(Ordering::Relaxed)), head: self.head.snapshot() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_and_buckets() {
        let s = TrafficStats::default();
        s.record(200, Duration::from_micros(300));
        s.record(404, Duration::from_millis(3));
        s.record(502, Duration::from_secs(10));
        let snap = s.snapshot();
        assert_eq!(snap.by_class, [0, 1, 0, 1, 1]);
        assert_eq!((snap.head.buckets[0], snap.head.buckets[3], snap.head.buckets[BUCKETS.len()]), (1, 1, 1));
        assert!((snap.head.sum_seconds - 10.0033).abs() < 1e-6);
    }
}
