//! One balancer member: its settings, status flags and the counters the host owns.
//!
//! Everything that changes at run time is an atomic in a [`MemberState`], so requests read
//! and update members without locks. A rebuilt proxy (a reload, a manager edit) hands the
//! same `MemberState` to the new member of the same URL ([`Member::carry_over`]), so requests
//! still in flight on the old proxy and new ones on the rebuilt one count into the same
//! counters. `C` is whatever per-member state the proxy attaches (its connection pool); the
//! balancer never looks inside it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::lbmethod::{AttemptOutcome, Completion, MethodSlot};
use crate::config::{self, StatusFlags};
use crate::observe::{Latency, LatencySnapshot};

/// A member: its settings and its live state.
#[derive(Debug)]
pub struct Member<C> {
    /// The member's settings as configured.
    pub config: config::Member,
    /// The proxy's per-member state (e.g. a connection pool).
    pub conn: C,
    live: Arc<MemberState>,
    /// Where this member's attempts report how they ended: its position in its balancer
    /// and the balancer's method. `None` outside a balancer.
    report: Option<(usize, Arc<MethodSlot>)>,
}

/// A member's flags and counters, shared by every build of the proxy the member stays in.
#[derive(Debug)]
pub struct MemberState {
    status: AtomicU32,
    lbfactor: AtomicU32,
    lbstatus: AtomicI64,
    busy: AtomicU64,
    elected: AtomicU64,
    transferred: AtomicU64,
    read: AtomicU64,
    errors: AtomicU64,
    retries: AtomicU64,
    /// When E was last set, as nanoseconds after `epoch`.
    error_at: AtomicU64,
    epoch: Instant,
    /// Time from sending a request to the member until its answer's head arrived.
    response: Latency,
}

/// A consistent-enough copy of a member's counters, for display and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSnapshot {
    /// The member's URL.
    pub url: String,
    /// Current flags.
    pub status: StatusFlags,
    /// loadfactor × 100.
    pub lbfactor: u32,
    /// The lbmethod's scratch value.
    pub lbstatus: i64,
    /// Requests in flight.
    pub busy: u64,
    /// Times chosen.
    pub elected: u64,
    /// Bytes sent to it.
    pub transferred: u64,
    /// Bytes read from it.
    pub read: u64,
    /// Times it was put in error.
    pub errors: u64,
    /// Times it was taken out of error to be tried again (retry time passed, or forced).
    pub retries: u64,
}

impl<C> Member<C> {
    /// A member in its configured initial state.
    pub fn new(config: config::Member, conn: C) -> Self {
        let live = Arc::new(MemberState {
            status: AtomicU32::new(config.status.bits()),
            lbfactor: AtomicU32::new(config.lbfactor),
            lbstatus: AtomicI64::new(0),
            busy: AtomicU64::new(0),
            elected: AtomicU64::new(0),
            transferred: AtomicU64::new(0),
            read: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            error_at: AtomicU64::new(0),
            epoch: Instant::now(),
            response: Latency::default(),
        });
        Self { config, conn, live, report: None }
    }

    /// The member as part of a balancer, at `index`, reporting its attempts to `method`.
    pub(crate) fn reporting_to(mut self, index: usize, method: Arc<MethodSlot>) -> Self {
        self.report = Some((index, method));
        self
    }

    /// The same member in a rebuilt proxy (a reload or a manager edit), sharing `previous`'s
    /// live state: lbstatus, busy and the counters go on. The new config's flags and
    /// loadfactor take effect only with [`Member::take_configured`], once the rebuilt proxy is
    /// published (the live state is also the old proxy's, which serves until then).
    pub fn carry_over<D>(config: config::Member, conn: C, previous: &Member<D>) -> Self {
        Self { config, conn, live: Arc::clone(&previous.live), report: None }
    }

    /// Makes this member's configured flags (D S I R H N) and loadfactor the live ones,
    /// keeping the in-error flag E (with its retry clock) and, while the member is still
    /// health-checked, the health-check flag C.
    pub fn take_configured(&self) {
        let mut runtime = StatusFlags::IN_ERROR;
        if self.config.health.is_some() {
            runtime = runtime.union(StatusFlags::HEALTH_FAILED);
        }
        let kept = StatusFlags::from_bits(self.live.status.load(Ordering::Relaxed)).intersection(runtime);
        self.live.status.store(self.config.status.without(StatusFlags::RUNTIME).union(kept).bits(), Ordering::Relaxed);
        self.live.lbfactor.store(self.config.lbfactor, Ordering::Relaxed);
    }

    /// Current status flags.
    pub fn status(&self) -> StatusFlags {
        StatusFlags::from_bits(self.live.status.load(Ordering::Relaxed))
    }

    /// Sets or clears flags.
    pub fn set_status(&self, flags: StatusFlags, on: bool) {
        if on {
            self.live.status.fetch_or(flags.bits(), Ordering::Relaxed);
        } else {
            self.live.status.fetch_and(!flags.bits(), Ordering::Relaxed);
        }
    }

    /// Sets loadfactor × 100 (100..=10000, checked by the caller); the next pick uses it.
    pub fn set_lbfactor(&self, lbfactor: u32) {
        self.live.lbfactor.store(lbfactor, Ordering::Relaxed);
    }

    /// loadfactor × 100.
    pub fn lbfactor(&self) -> u32 {
        self.live.lbfactor.load(Ordering::Relaxed)
    }

    /// The lbmethod's scratch value.
    pub fn lbstatus(&self) -> i64 {
        self.live.lbstatus.load(Ordering::Relaxed)
    }

    /// Adds a delta to lbstatus (wrapping, as httpd's int arithmetic would not be asked to).
    pub(crate) fn add_lbstatus(&self, delta: i64) {
        self.live.lbstatus.fetch_add(delta, Ordering::Relaxed);
    }

    /// Requests in flight.
    pub fn busy(&self) -> u64 {
        self.live.busy.load(Ordering::Relaxed)
    }

    /// Counts a request in flight until the guard is dropped. When the balancer's method
    /// wants completions, the guard also times the attempt and reports it when dropped
    /// after [`BusyGuard::answered`]; an attempt that fails before a head is reported with
    /// [`BusyGuard::failed`].
    pub fn busy_guard(self: &Arc<Self>) -> BusyGuard<C> {
        self.live.busy.fetch_add(1, Ordering::Relaxed);
        let attempt = match &self.report {
            Some((_, method)) if method.wants_completions() => {
                Some(Box::new(Attempt { started: Instant::now(), head: None, status: 0, received: 0 }))
            }
            _ => None,
        };
        BusyGuard { member: Arc::clone(self), attempt }
    }

    fn report(&self, attempt: &Attempt, outcome: AttemptOutcome) {
        if let Some((index, method)) = &self.report {
            let finished = Instant::now();
            method.complete(&Completion {
                member: *index,
                outcome,
                status: attempt.status,
                head: attempt.head,
                total: finished.saturating_duration_since(attempt.started),
                received: attempt.received,
                finished,
            });
        }
    }

    /// Counts one election.
    pub(crate) fn count_elected(&self) {
        self.live.elected.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds bytes sent to the member.
    pub fn add_transferred(&self, bytes: u64) {
        self.live.transferred.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts how long the member took to send its answer's head.
    pub fn record_response(&self, took: Duration) {
        self.live.response.record(took);
    }

    /// How long the member took to answer, as a histogram.
    pub fn response_latency(&self) -> LatencySnapshot {
        self.live.response.snapshot()
    }

    /// Adds bytes read from the member.
    pub fn add_read(&self, bytes: u64) {
        self.live.read.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Puts the member in error (E) unless it ignores errors (I). Returns whether E was set.
    pub fn mark_error(&self, now: Instant) -> bool {
        if self.status().contains(StatusFlags::IGNORE_ERRORS) {
            return false;
        }
        self.live.error_at.store(self.nanos_since_epoch(now), Ordering::Relaxed);
        self.set_status(StatusFlags::IN_ERROR, true);
        self.live.errors.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Whether the member may take a request now (draining members still may: the tiers keep
    /// new requests off them, sticky sessions do not). A member in error whose `retry` time
    /// has passed is taken out of error here and tried again, as httpd does.
    pub fn usable(&self, now: Instant) -> bool {
        let status = self.status();
        if status.contains(StatusFlags::IGNORE_ERRORS) {
            return !status.intersects(StatusFlags::DISABLED.union(StatusFlags::STOPPED));
        }
        if status.intersects(StatusFlags::DISABLED.union(StatusFlags::STOPPED).union(StatusFlags::HEALTH_FAILED)) {
            return false;
        }
        !status.contains(StatusFlags::IN_ERROR) || self.retry_if_due(now)
    }

    /// Clears E when the member's `retry` time has passed; returns whether it is out of error.
    pub(crate) fn retry_if_due(&self, now: Instant) -> bool {
        if !self.status().contains(StatusFlags::IN_ERROR) {
            return true;
        }
        if now < self.retry_at() {
            return false;
        }
        self.set_status(StatusFlags::IN_ERROR, false);
        self.live.retries.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// When a member in error may be tried again.
    pub fn retry_at(&self) -> Instant {
        self.live.epoch + Duration::from_nanos(self.live.error_at.load(Ordering::Relaxed)) + self.config.retry
    }

    /// Takes the member out of error at once (forced recovery).
    pub(crate) fn force_recover(&self) {
        self.set_status(StatusFlags::IN_ERROR, false);
        self.live.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the member is draining (N).
    pub fn draining(&self) -> bool {
        self.status().contains(StatusFlags::DRAINING)
    }

    /// Bytes (sent to, read from) the member.
    pub fn snapshot_traffic(&self) -> (u64, u64) {
        (self.live.transferred.load(Ordering::Relaxed), self.live.read.load(Ordering::Relaxed))
    }

    /// A copy of the counters.
    pub fn snapshot(&self) -> MemberSnapshot {
        MemberSnapshot {
            url: self.config.url.clone(),
            status: self.status(),
            lbfactor: self.lbfactor(),
            lbstatus: self.lbstatus(),
            busy: self.busy(),
            elected: self.live.elected.load(Ordering::Relaxed),
            transferred: self.live.transferred.load(Ordering::Relaxed),
            read: self.live.read.load(Ordering::Relaxed),
            errors: self.live.errors.load(Ordering::Relaxed),
            retries: self.live.retries.load(Ordering::Relaxed),
        }
    }

    fn nanos_since_epoch(&self, now: Instant) -> u64 {
        // Saturates at ~584 years of uptime.
        u64::try_from(now.saturating_duration_since(self.live.epoch).as_nanos()).unwrap_or(u64::MAX).max(1)
    }
}

/// Keeps a member's busy count raised while alive, and times the attempt when the
/// balancer's method wants to hear how it ended.
#[derive(Debug)]
pub struct BusyGuard<C> {
    member: Arc<Member<C>>,
    /// Boxed: only attempts of methods that asked are timed, and the guard travels inside
    /// every response body.
    attempt: Option<Box<Attempt>>,
}

/// What is known of an attempt being timed.
#[derive(Debug)]
struct Attempt {
    started: Instant,
    head: Option<Duration>,
    status: u16,
    received: u64,
}

impl<C> BusyGuard<C> {
    /// The member answered with a head of `status`: the attempt is reported as a response
    /// when the guard goes (with the body, normally).
    pub fn answered(&mut self, status: u16) {
        if let Some(a) = &mut self.attempt {
            a.head = Some(a.started.elapsed());
            a.status = status;
        }
    }

    /// Counts response body bytes read for this attempt.
    pub fn received(&mut self, bytes: u64) {
        if let Some(a) = &mut self.attempt {
            a.received += bytes;
        }
    }

    /// The attempt failed before a head: reports it now, as `outcome`.
    pub fn failed(mut self, outcome: AttemptOutcome) {
        if let Some(a) = self.attempt.take() {
            self.member.report(&a, outcome);
        }
    }
}

impl<C> Drop for BusyGuard<C> {
    fn drop(&mut self) {
        self.member.live.busy.fetch_sub(1, Ordering::Relaxed);
        if let Some(a) = self.attempt.take()
            && a.head.is_some()
        {
            self.member.report(&a, AttemptOutcome::Response);
        }
    }
}
