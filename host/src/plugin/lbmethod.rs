//! Load-balancing methods as Wasm components: the `lbmethod-plugin` world, a pool of instances
//! per balancer, deadlines, trap handling and the load-time self-test.
//!
//! Instances are interchangeable because the host owns all member state: a call checks one out
//! of the pool (making a new one if none is idle), and checks it back in when the call
//! returned normally. A trap leaves a store poisoned, so a trapped instance is dropped, never
//! reused; the next call makes a fresh one. Calls are synchronous (see `wasi` for why that is
//! safe): a pick is a plain function call into the guest, bounded by the CPU deadline.

use std::sync::atomic::{AtomicU64, Ordering};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, Store};

use super::PluginError;
use super::breaker::Breaker;
use super::state::{PluginState, log_enabled, log_line};
use crate::balancer::{CandidateTable, Decision, LbMethod, LbMethodError, MemberInfo};
use crate::config::PluginLimits;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "lbmethod-plugin",
        ownership: Borrowing { duplicate_if_necessary: false },
    });
}

use bindings::exports::switchyard::plugin::lbmethod as wit;
use bindings::switchyard::plugin::types::LogLevel;
use bindings::{LbmethodPlugin, LbmethodPluginPre};

/// Setup calls (instantiation, `configure`, `reset`) may parse config or start a language
/// runtime, so they get this much on top of the per-call deadline.
pub(crate) const SETUP_ALLOWANCE: Duration = Duration::from_secs(1);

impl bindings::switchyard::plugin::types::Host for PluginState {}

impl bindings::switchyard::plugin::log::Host for PluginState {
    fn enabled(&mut self, level: LogLevel) -> bool {
        log_enabled(level as u8)
    }

    fn write(&mut self, level: LogLevel, message: String) {
        log_line(&self.label, level as u8, &message);
    }
}

/// Adds the lbmethod world's own imports (the log) to a linker that already has WASI.
pub(crate) fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    LbmethodPlugin::add_to_linker::<PluginState, HasSelf<PluginState>>(linker, |s| s)
}

/// Counters of one loaded plugin.
#[derive(Debug, Default)]
pub struct PluginStats {
    /// Calls that trapped (panic, deadline, memory cap).
    pub traps: AtomicU64,
    /// Times the circuit opened.
    pub circuit_opens: AtomicU64,
    /// Instances made (the first, and one after every trap).
    pub instances: AtomicU64,
}

/// The members as last handed over, with a generation so instances know when to `reset`.
struct MemberList {
    generation: u64,
    infos: Arc<[MemberInfo]>,
}

/// One live instance and the member generation it has seen.
struct Instance {
    store: Store<PluginState>,
    plugin: LbmethodPlugin,
    generation: u64,
}

/// A load-balancing method backed by a Wasm component.
pub struct WasmLbMethod {
    name: String,
    label: Arc<str>,
    engine: Engine,
    pre: LbmethodPluginPre<PluginState>,
    config_json: String,
    limits: PluginLimits,
    call_ticks: u64,
    setup_ticks: u64,
    idle: Mutex<Vec<Instance>>,
    max_idle: usize,
    members: ArcSwap<MemberList>,
    /// Copy of `members.generation`, so the hot path checks one atomic instead of the swap.
    generation: AtomicU64,
    breaker: Breaker,
    stats: PluginStats,
    _ticker: Arc<super::engine::EpochTicker>,
}

/// What `WasmLbMethod::load` needs besides the component.
pub(crate) struct LoadParams<'a> {
    pub(crate) engine: &'a Engine,
    pub(crate) linker: &'a Linker<PluginState>,
    pub(crate) name: String,
    pub(crate) label: String,
    pub(crate) config_json: String,
    pub(crate) limits: PluginLimits,
    pub(crate) call_ticks: u64,
    pub(crate) setup_ticks: u64,
    /// Kept alive by every loaded plugin: without it, deadlines would never fire.
    pub(crate) ticker: Arc<super::engine::EpochTicker>,
}

impl WasmLbMethod {
    /// Links, instantiates, configures and self-tests a component; the plugin is returned only
    /// when all of that worked.
    pub(crate) fn load(component: &Component, params: LoadParams<'_>) -> Result<Arc<Self>, PluginError> {
        let LoadParams { engine, linker, name, label, config_json, limits, call_ticks, setup_ticks, ticker } = params;
        let instance_pre = linker
            .instantiate_pre(component)
            .map_err(|e| PluginError::Link { plugin: name.clone(), reason: format!("{e:#}") })?;
        let pre = LbmethodPluginPre::new(instance_pre)
            .map_err(|e| PluginError::Link { plugin: name.clone(), reason: format!("not an lbmethod plugin: {e:#}") })?;
        let max_idle = std::thread::available_parallelism().map_or(2, |n| n.get()) * 2;
        let method = Arc::new(Self {
            label: label.into(),
            name,
            engine: engine.clone(),
            pre,
            config_json,
            limits,
            call_ticks,
            setup_ticks,
            idle: Mutex::new(Vec::new()),
            max_idle,
            members: ArcSwap::from_pointee(MemberList { generation: 0, infos: Arc::from(Vec::new()) }),
            generation: AtomicU64::new(0),
            breaker: Breaker::new(limits.trap_limit, limits.trap_cooldown),
            stats: PluginStats::default(),
            _ticker: ticker,
        });
        method.self_test()?;
        Ok(method)
    }

    /// The plugin's counters.
    pub fn stats(&self) -> &PluginStats {
        &self.stats
    }

    /// Picks over three synthetic members and checks the answers, so a plugin that cannot do
    /// its one job is refused before it serves a request. The instance it made is kept.
    fn self_test(&self) -> Result<(), PluginError> {
        let refuse = |reason: String| PluginError::SelfTest { plugin: self.name.clone(), reason };
        let mut instance = self.make_instance().map_err(|e| match e {
            SetupError::Configure(message) => PluginError::Configure { plugin: self.name.clone(), message },
            SetupError::Trap(reason) => refuse(reason),
        })?;
        let values = synthetic_values(3);
        let table = wit::Candidates { count: 3, values: &values };
        instance.store.set_epoch_deadline(self.call_ticks);
        let lb = instance.plugin.switchyard_plugin_lbmethod();
        let decision = guarded(|| lb.call_pick(&mut instance.store, 0, table)).map_err(|e| refuse(format!("pick trapped: {e:#}")))?;
        if let Some(d) = &decision {
            if d.chosen >= 3 {
                return Err(refuse(format!("pick chose candidate {} of 3", d.chosen)));
            }
            if !matches!(d.lbstatus_delta.len(), 0 | 3) {
                return Err(refuse(format!("pick returned {} lbstatus deltas for 3 candidates", d.lbstatus_delta.len())));
            }
        }
        instance.store.set_epoch_deadline(self.call_ticks);
        let sticky = wit::Candidates { count: 3, values: &values };
        let deltas =
            guarded(|| lb.call_sticky_hit(&mut instance.store, sticky, 1)).map_err(|e| refuse(format!("sticky-hit trapped: {e:#}")))?;
        if !matches!(deltas.len(), 0 | 3) {
            return Err(refuse(format!("sticky-hit returned {} lbstatus deltas for 3 members", deltas.len())));
        }
        self.checkin(instance);
        Ok(())
    }

    fn make_instance(&self) -> Result<Instance, SetupError> {
        self.stats.instances.fetch_add(1, Ordering::Relaxed);
        let mut store = Store::new(&self.engine, PluginState::new(Arc::clone(&self.label), self.limits.memory_limit));
        store.limiter(|s| s.limiter());
        store.set_epoch_deadline(self.setup_ticks);
        let plugin = guarded(|| self.pre.instantiate(&mut store)).map_err(|e| SetupError::Trap(format!("instantiation failed: {e:#}")))?;
        store.set_epoch_deadline(self.setup_ticks);
        let lb = plugin.switchyard_plugin_lbmethod();
        guarded(|| lb.call_configure(&mut store, &self.config_json))
            .map_err(|e| SetupError::Trap(format!("configure trapped: {e:#}")))?
            .map_err(SetupError::Configure)?;
        Ok(Instance { store, plugin, generation: u64::MAX })
    }

    /// An idle instance, or a new one; brought up to date with the member list.
    fn checkout(&self) -> Result<Instance, LbMethodError> {
        if self.breaker.is_open(Instant::now) {
            return Err(LbMethodError::CircuitOpen { plugin: self.name.clone() });
        }
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let mut instance = match idle {
            Some(instance) => instance,
            None => self.make_instance().map_err(|e| {
                let reason = match e {
                    SetupError::Configure(m) => format!("configure refused: {m}"),
                    SetupError::Trap(m) => m,
                };
                self.record_trap(&reason);
                LbMethodError::Unavailable { plugin: self.name.clone(), reason }
            })?,
        };
        if instance.generation != self.generation.load(Ordering::Acquire) {
            let members = self.members.load();
            let infos: Vec<wit::MemberInfo> = members
                .infos
                .iter()
                .map(|m| wit::MemberInfo { url: &m.url, route: &m.route, lbset: m.lbset })
                .collect();
            instance.store.set_epoch_deadline(self.setup_ticks);
            let lb = instance.plugin.switchyard_plugin_lbmethod();
            let reset = guarded(|| lb.call_reset(&mut instance.store, &infos));
            // A setup call that worked says nothing about the plugin's health: only pick and
            // sticky-hit returning normally close the circuit.
            if let Err(e) = reset {
                let reason = format!("reset {}", describe_trap(&e, self.limits.deadline));
                self.record_trap(&reason);
                return Err(LbMethodError::Trapped { plugin: self.name.clone(), reason });
            }
            instance.generation = members.generation;
        }
        Ok(instance)
    }

    fn checkin(&self, instance: Instance) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < self.max_idle {
                idle.push(instance);
            }
    }

    /// Returns the instance to the pool after a normal return; counts and logs a trap.
    fn finish<R>(&self, result: wasmtime::Result<R>, instance: Option<Instance>) -> Result<R, LbMethodError> {
        match result {
            Ok(value) => {
                self.breaker.success();
                if let Some(instance) = instance {
                    self.checkin(instance);
                }
                Ok(value)
            }
            Err(e) => {
                let reason = describe_trap(&e, self.limits.deadline);
                self.record_trap(&reason);
                Err(LbMethodError::Trapped { plugin: self.name.clone(), reason })
            }
        }
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
                "plugin circuit-broken: requests use the fallback until the cooldown ends"
            );
        }
    }
}

impl LbMethod for WasmLbMethod {
    fn name(&self) -> &str {
        &self.name
    }

    fn pick(&self, key: u64, candidates: &CandidateTable) -> Result<Option<Decision>, LbMethodError> {
        let mut instance = self.checkout()?;
        let table = wit::Candidates { count: candidates.count as u32, values: &candidates.values };
        instance.store.set_epoch_deadline(self.call_ticks);
        let lb = instance.plugin.switchyard_plugin_lbmethod();
        let result = guarded(|| lb.call_pick(&mut instance.store, key, table));
        let decision = self.finish(result, Some(instance))?;
        Ok(decision.map(|d| Decision { chosen: d.chosen as usize, lbstatus_delta: d.lbstatus_delta }))
    }

    fn sticky_hit(&self, usable: &CandidateTable, chosen: usize) -> Result<Vec<i64>, LbMethodError> {
        let mut instance = self.checkout()?;
        let table = wit::Candidates { count: usable.count as u32, values: &usable.values };
        let chosen = u32::try_from(chosen).unwrap_or(u32::MAX);
        instance.store.set_epoch_deadline(self.call_ticks);
        let lb = instance.plugin.switchyard_plugin_lbmethod();
        let result = guarded(|| lb.call_sticky_hit(&mut instance.store, table, chosen));
        self.finish(result, Some(instance))
    }

    fn set_members(&self, members: Arc<[MemberInfo]>) {
        let generation = self.members.load().generation + 1;
        self.members.store(Arc::new(MemberList { generation, infos: members }));
        self.generation.store(generation, Ordering::Release);
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

/// Why an instance could not be made.
enum SetupError {
    /// `configure` returned an error: the plugin's own message.
    Configure(String),
    /// Instantiation or `configure` trapped.
    Trap(String),
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

/// Three equal, idle members, for the self-test.
fn synthetic_values(n: usize) -> Vec<i64> {
    let mut values = vec![0i64; CandidateTable::FIELDS * n];
    for i in 0..n {
        values[i] = i as i64;
        values[n + i] = 100;
    }
    values
}
