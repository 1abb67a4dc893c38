//! The instances of one loaded plugin, whatever its kind: a pool of ready stores, the CPU
//! deadline and memory cap on every call, trap handling and the circuit breaker.
//!
//! Instances are interchangeable because plugins keep no state the host relies on: a call
//! checks one out of the pool (making a new one if none is idle), and checks it back in when
//! the call returned normally. A trap leaves a store poisoned, so a trapped instance is
//! dropped, never reused; the next call makes a fresh one. Calls are synchronous (see `wasi`
//! for why that is safe): a call is a plain function call into the guest, bounded by the CPU
//! deadline.
//!
//! Each thread keeps the instance it used last beside the pool and takes it back on its next
//! call without the pool's lock: locking and unlocking a shared mutex on checkout and again
//! on checkin were four atomic read-modify-writes of one cache line per call, about 8 % of an
//! lbmethod call over 16 members. The pool holds the rest (at most `max_idle`), so a thread
//! that calls for the first time, or whose instance trapped, still finds one ready.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use thread_local::ThreadLocal;
use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::{Engine, Store};

use super::PluginError;
use super::breaker::Breaker;
use super::engine::EpochTicker;
use super::state::PluginState;
use crate::config::PluginLimits;
use crate::observe::{CALL_BUCKETS, Latency};

/// Setup calls (instantiation, `configure`, `reset`, and a plugin's self-test when it is
/// loaded) may parse config or start a language runtime, and run wherever a reload runs, so
/// they get this much on top of the per-call deadline.
pub(crate) const SETUP_ALLOWANCE: Duration = Duration::from_secs(1);

/// What the pool needs to know about a plugin world's generated bindings.
pub(crate) trait World: 'static {
    /// The world's name in the WIT package, for messages.
    const NAME: &'static str;
    /// The pre-instantiated component, typed for the world.
    type Pre: Send + Sync + 'static;
    /// An instance's exports.
    type Bindings: Send + 'static;
    /// What the world's calls keep per instance besides the store (an lbmethod: the member
    /// list and completions it has seen).
    type Local: Default + Send + 'static;
    /// Whether a call that finds no instance ready fails at once (its caller falls back, and
    /// the pool is refilled in the background) instead of making one: true for lbmethods,
    /// whose every call is on a request's path.
    const READY_ONLY: bool = false;
    /// Checks that the component fits the world.
    fn pre(pre: InstancePre<PluginState>) -> wasmtime::Result<Self::Pre>;
    /// Makes an instance in `store`.
    fn instantiate(pre: &Self::Pre, store: &mut Store<PluginState>) -> wasmtime::Result<Self::Bindings>;
    /// Calls the world's `configure` export.
    fn configure(bindings: &Self::Bindings, store: &mut Store<PluginState>, config: &str) -> wasmtime::Result<Result<(), String>>;
}

/// Counters of one plugin version in one role (a balancer's lbmethod, a health check, a
/// route's rewriter). The runtime keeps them by role and version, so a plugin loaded again
/// for a new build (a reload, a manager edit) counts on where the one before stopped.
#[derive(Debug)]
pub struct PluginStats {
    /// Calls that trapped (panic, deadline, memory cap).
    pub traps: AtomicU64,
    /// Times the circuit opened.
    pub circuit_opens: AtomicU64,
    /// Instances made (the first, and one after every trap).
    pub instances: AtomicU64,
    /// Each call's time, kept by health checks and header rewrites (an lbmethod's calls are
    /// timed by its balancer, with the pick: `BalancerStats::picks`).
    pub calls: Latency,
}

impl Default for PluginStats {
    fn default() -> Self {
        Self { traps: AtomicU64::new(0), circuit_opens: AtomicU64::new(0), instances: AtomicU64::new(0), calls: Latency::with_bounds(&CALL_BUCKETS) }
    }
}

/// Why a call into a plugin did not return an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The call trapped: a panic, the CPU deadline, the memory cap.
    #[error("plugin {plugin} trapped: {reason}")]
    Trapped {
        /// Which plugin.
        plugin: String,
        /// The trap, in a few words.
        reason: String,
    },
    /// The plugin trapped too often and is bypassed for a while.
    #[error("plugin {plugin} is circuit-broken after repeated traps")]
    CircuitOpen {
        /// Which plugin.
        plugin: String,
    },
    /// No instance could be made (e.g. `configure` failed on a fresh instance).
    #[error("plugin {plugin} has no usable instance: {reason}")]
    Unavailable {
        /// Which plugin.
        plugin: String,
        /// Why.
        reason: String,
    },
}

/// One live instance. The pool hands instances out boxed: a store, its bindings and the
/// world's local state come to several hundred bytes, and an instance moves out of the pool
/// and back on every call.
pub(crate) struct Instance<W: World> {
    pub(crate) store: Store<PluginState>,
    pub(crate) bindings: W::Bindings,
    pub(crate) local: W::Local,
}

/// What loading a plugin needs besides the component.
pub(crate) struct LoadParams<'a> {
    pub(crate) engine: &'a Engine,
    pub(crate) linker: &'a Linker<PluginState>,
    pub(crate) name: String,
    /// The component's version ([`super::version_of`]).
    pub(crate) version: Arc<str>,
    /// Its counters, carried from an earlier load of the same version in the same role.
    pub(crate) stats: Arc<PluginStats>,
    pub(crate) label: String,
    pub(crate) config_json: String,
    pub(crate) limits: PluginLimits,
    pub(crate) call_ticks: u64,
    pub(crate) setup_ticks: u64,
    /// Kept alive by every loaded plugin: without it, deadlines would never fire.
    pub(crate) ticker: Arc<EpochTicker>,
    /// How many threads call at once (each keeps an instance between its calls).
    pub(crate) callers: usize,
}

/// Why an instance could not be made.
pub(crate) enum SetupError {
    /// `configure` returned an error: the plugin's own message.
    Configure(String),
    /// Instantiation or `configure` trapped.
    Trap(String),
}

/// The pool of instances of one plugin version with one config.
pub(crate) struct Instances<W: World> {
    pub(crate) name: String,
    /// The component's version ([`super::version_of`]).
    pub(crate) version: Arc<str>,
    pub(crate) label: Arc<str>,
    factory: Arc<Factory<W>>,
    pub(crate) limits: PluginLimits,
    call_ticks: u64,
    idle: Arc<Mutex<Vec<Box<Instance<W>>>>>,
    max_idle: usize,
    /// Each calling thread's last instance, when it returned normally (see the module's
    /// header); on top of the `max_idle` in the pool. A thread that ends leaves its instance
    /// to the next thread started (thread ids are reused), never to nobody.
    own: ThreadLocal<Cell<Option<Box<Instance<W>>>>>,
    /// How many instances the pool keeps ready: one per thread that may call at once (each
    /// takes one from the pool on its first call and keeps it).
    ready: usize,
    /// Set while a thread is making instances for the pool.
    refilling: Arc<AtomicBool>,
    breaker: Breaker,
    pub(crate) stats: Arc<PluginStats>,
    _ticker: Arc<EpochTicker>,
}

/// What makes instances, shared with the thread that refills the pool.
struct Factory<W: World> {
    engine: Engine,
    pre: W::Pre,
    config_json: String,
    label: Arc<str>,
    limits: PluginLimits,
    setup_ticks: u64,
    stats: Arc<PluginStats>,
}

impl<W: World> Factory<W> {
    /// Makes and configures a fresh instance.
    fn make(&self) -> Result<Box<Instance<W>>, SetupError> {
        self.stats.instances.fetch_add(1, Ordering::Relaxed);
        let mut store = Store::new(&self.engine, PluginState::new(Arc::clone(&self.label), self.limits.memory_limit));
        store.limiter(|s| s.limiter());
        store.set_epoch_deadline(self.setup_ticks);
        let bindings =
            guarded(|| W::instantiate(&self.pre, &mut store)).map_err(|e| SetupError::Trap(format!("instantiation failed: {e:#}")))?;
        store.set_epoch_deadline(self.setup_ticks);
        guarded(|| W::configure(&bindings, &mut store, &self.config_json))
            .map_err(|e| SetupError::Trap(format!("configure trapped: {e:#}")))?
            .map_err(SetupError::Configure)?;
        Ok(Box::new(Instance { store, bindings, local: W::Local::default() }))
    }
}

impl<W: World> Instances<W> {
    /// Links and pre-instantiates `component` for world `W`; no instance is made yet.
    pub(crate) fn new(component: &Component, params: LoadParams<'_>) -> Result<Self, PluginError> {
        let LoadParams { engine, linker, name, version, stats, label, config_json, limits, call_ticks, setup_ticks, ticker, callers } = params;
        let instance_pre = linker
            .instantiate_pre(component)
            .map_err(|e| PluginError::Link { plugin: name.clone(), world: W::NAME, reason: format!("{e:#}") })?;
        let pre = W::pre(instance_pre)
            .map_err(|e| PluginError::Link { plugin: name.clone(), world: W::NAME, reason: format!("{e:#}") })?;
        let threads = callers.max(1);
        let label: Arc<str> = label.into();
        let factory = Arc::new(Factory { engine: engine.clone(), pre, config_json, label: Arc::clone(&label), limits, setup_ticks, stats: Arc::clone(&stats) });
        Ok(Self {
            label,
            name,
            version,
            factory,
            limits,
            call_ticks,
            idle: Arc::new(Mutex::new(Vec::new())),
            max_idle: threads * 2,
            own: ThreadLocal::new(),
            ready: threads,
            refilling: Arc::new(AtomicBool::new(false)),
            breaker: Breaker::new(limits.trap_limit, limits.trap_cooldown),
            stats,
            _ticker: ticker,
        })
    }

    /// How the calls went, for `/metrics`.
    pub(crate) fn calls(&self) -> crate::observe::PluginCalls {
        crate::observe::PluginCalls {
            version: self.version.to_string(),
            times: self.stats.calls.snapshot(),
            traps: self.stats.traps.load(Ordering::Relaxed),
            circuit_opens: self.stats.circuit_opens.load(Ordering::Relaxed),
        }
    }

    /// Makes and configures a fresh instance (for the load-time self-test, or the pool).
    pub(crate) fn make_instance(&self) -> Result<Box<Instance<W>>, SetupError> {
        self.factory.make()
    }

    /// Fills the pool up to one ready instance per thread that may call at once, now (at
    /// load, off the request path), so calls never wait for an instance to be made.
    pub(crate) fn prewarm(&self) -> Result<(), PluginError> {
        let have = self.idle.lock().map(|idle| idle.len()).unwrap_or(0);
        for _ in have..self.ready {
            let instance = self.first_instance()?;
            self.checkin(instance);
        }
        Ok(())
    }

    /// Makes instances for the pool on a thread of its own, up to `ready` (one refill at a
    /// time); used when a call found none ready, and after a trap threw one away.
    fn refill(&self) {
        if self.refilling.swap(true, Ordering::AcqRel) {
            return;
        }
        let (factory, idle, refilling, ready) = (Arc::clone(&self.factory), Arc::clone(&self.idle), Arc::clone(&self.refilling), self.ready);
        let spawned = std::thread::Builder::new().name("plugin-refill".into()).spawn(move || {
            while idle.lock().map(|i| i.len()).unwrap_or(ready) < ready {
                match factory.make() {
                    Ok(instance) => {
                        if let Ok(mut idle) = idle.lock() {
                            idle.push(instance);
                        }
                    }
                    Err(SetupError::Configure(reason) | SetupError::Trap(reason)) => {
                        tracing::warn!(plugin = %factory.label, reason, "no new instance for the pool");
                        break;
                    }
                }
            }
            refilling.store(false, Ordering::Release);
        });
        if spawned.is_err() {
            self.refilling.store(false, Ordering::Release);
        }
    }

    /// A fresh instance for loading: a refused config or a trap becomes the load error.
    pub(crate) fn first_instance(&self) -> Result<Box<Instance<W>>, PluginError> {
        self.make_instance().map_err(|e| match e {
            SetupError::Configure(message) => PluginError::Configure { plugin: self.name.clone(), message },
            SetupError::Trap(reason) => PluginError::SelfTest { plugin: self.name.clone(), reason },
        })
    }

    /// An idle instance; when there is none, a world whose callers can fall back
    /// ([`World::READY_ONLY`]) is told so at once while the pool is refilled in the
    /// background, and the others get a new instance made now.
    pub(crate) fn checkout(&self) -> Result<Box<Instance<W>>, CallError> {
        if self.breaker.is_open(Instant::now) {
            return Err(CallError::CircuitOpen { plugin: self.name.clone() });
        }
        if let Some(instance) = self.own.get().and_then(Cell::take) {
            return Ok(instance);
        }
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        match idle {
            Some(instance) => Ok(instance),
            None if W::READY_ONLY => {
                self.refill();
                Err(CallError::Unavailable { plugin: self.name.clone(), reason: "no instance ready; one is being made".into() })
            }
            None => self.make_instance().map_err(|e| {
                let reason = match e {
                    SetupError::Configure(m) => format!("configure refused: {m}"),
                    SetupError::Trap(m) => m,
                };
                self.record_trap(&reason);
                CallError::Unavailable { plugin: self.name.clone(), reason }
            }),
        }
    }

    /// Instances in the pool now (not counting those threads keep).
    #[cfg(test)]
    pub(crate) fn pooled(&self) -> usize {
        self.idle.lock().map_or(0, |idle| idle.len())
    }

    /// Keeps an instance whose call returned normally for this thread's next call; the pool
    /// gets it when the thread already keeps one (it held two at once).
    fn keep(&self, instance: Box<Instance<W>>) {
        let own = self.own.get_or_default();
        if let Some(older) = own.replace(Some(instance)) {
            self.checkin(older);
        }
    }

    /// Puts an instance in the pool, for whichever thread calls next (instances made at load,
    /// and those a thread had no room to keep).
    pub(crate) fn checkin(&self, instance: Box<Instance<W>>) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < self.max_idle
        {
            idle.push(instance);
        }
    }

    /// Runs one call on `instance` under the per-call deadline (`setup`: the longer setup
    /// deadline), turning a host panic into an error like a trap.
    pub(crate) fn run<R>(
        &self,
        instance: &mut Instance<W>,
        setup: bool,
        call: impl FnOnce(&W::Bindings, &mut Store<PluginState>) -> wasmtime::Result<R>,
    ) -> wasmtime::Result<R> {
        instance.store.set_epoch_deadline(if setup { self.factory.setup_ticks } else { self.call_ticks });
        let Instance { store, bindings, .. } = instance;
        guarded(|| call(bindings, store))
    }

    /// Checks out an instance, runs `call` on it and returns it to the pool; a trap discards
    /// the instance, is counted and logged, and may open the circuit.
    pub(crate) fn call<R>(
        &self,
        call: impl FnOnce(&W::Bindings, &mut Store<PluginState>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        let mut instance = self.checkout()?;
        let result = self.run(&mut instance, false, call);
        self.finish(result, instance)
    }

    /// Like [`Instances::call`], and records the call's time in the plugin's `calls` (for the
    /// plugins the host does not time itself: health checks and header rewrites).
    pub(crate) fn timed_call<R>(
        &self,
        call: impl FnOnce(&W::Bindings, &mut Store<PluginState>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        let started = Instant::now();
        let result = self.call(call);
        self.stats.calls.record(started.elapsed());
        result
    }

    /// Returns the instance to the pool after a normal return; counts and logs a trap.
    pub(crate) fn finish<R>(&self, result: wasmtime::Result<R>, instance: Box<Instance<W>>) -> Result<R, CallError> {
        match result {
            Ok(value) => {
                self.breaker.success();
                self.keep(instance);
                Ok(value)
            }
            Err(e) => Err(self.trapped(&e)),
        }
    }

    /// Counts and logs a trap; the error to hand on. The trapped instance is gone: a world
    /// whose calls never wait gets a replacement made in the background.
    pub(crate) fn trapped(&self, e: &wasmtime::Error) -> CallError {
        let reason = describe_trap(e, self.limits.deadline);
        self.record_trap(&reason);
        if W::READY_ONLY {
            self.refill();
        }
        CallError::Trapped { plugin: self.name.clone(), reason }
    }

    fn record_trap(&self, reason: &str) {
        self.stats.traps.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(plugin = %self.label, reason, "plugin call trapped; its instance is discarded");
        if self.breaker.failure(Instant::now()) {
            self.stats.circuit_opens.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                plugin = %self.label,
                traps_in_a_row = self.limits.trap_limit,
                cooldown = ?self.limits.trap_cooldown,
                "plugin circuit-broken: its callers use their fallback until the cooldown ends"
            );
        }
    }
}

/// Runs a call into a plugin, turning a host panic during it (a WASI function failing in a way
/// the host did not foresee) into an error like a trap, so it fails only this call.
fn guarded<R>(call: impl FnOnce() -> wasmtime::Result<R>) -> wasmtime::Result<R> {
    catch_unwind(AssertUnwindSafe(call)).unwrap_or_else(|panic| {
        let what = panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
        Err(wasmtime::format_err!("host panic during a plugin call: {}", what.unwrap_or_default()))
    })
}

/// A short, operator-readable reason for a failed call.
fn describe_trap(e: &wasmtime::Error, deadline: Duration) -> String {
    match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => format!("exceeded its CPU deadline of {deadline:?}"),
        Some(wasmtime::Trap::UnreachableCodeReached) => "hit unreachable code (a panic or abort in the plugin)".to_string(),
        Some(wasmtime::Trap::AllocationTooLarge) => "went over its memory limit".to_string(),
        Some(trap) => format!("trapped: {trap}"),
        None => format!("{e:#}").lines().next().unwrap_or("unknown error").to_string(),
    }
}
