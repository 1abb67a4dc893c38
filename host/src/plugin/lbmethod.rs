//! Load-balancing methods as Wasm components: the `lbmethod-plugin` world, member lists handed
//! over on change, and the load-time self-test.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use wasmtime::Store;
use wasmtime::component::{Component, HasSelf, InstancePre, Linker};

use super::PluginError;
use super::instances::{CallError, Instance, Instances, LoadParams, PluginStats, World};
use super::state::{PluginState, log_enabled, log_line};
use crate::balancer::{CandidateTable, Decision, LbMethod, LbMethodError, MemberInfo};

pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "lbmethod-plugin",
        ownership: Borrowing { duplicate_if_necessary: false },
    });
}

use bindings::exports::switchyard::plugin::lbmethod as wit;
use bindings::switchyard::plugin::types::LogLevel;
use bindings::{LbmethodPlugin, LbmethodPluginPre};

impl bindings::switchyard::plugin::types::Host for PluginState {}

impl bindings::switchyard::plugin::log::Host for PluginState {
    fn enabled(&mut self, level: LogLevel) -> bool {
        log_enabled(level as u8)
    }

    fn write(&mut self, level: LogLevel, message: String) {
        log_line(&self.label, level as u8, &message);
    }
}

/// Adds the imports every plugin world shares (the log) to a linker that already has WASI.
/// The other worlds' bindings reuse these, so one implementation serves them all.
pub(crate) fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    LbmethodPlugin::add_to_linker::<PluginState, HasSelf<PluginState>>(linker, |s| s)
}

/// The `lbmethod-plugin` world.
pub(crate) struct LbWorld;

impl World for LbWorld {
    const NAME: &'static str = "lbmethod-plugin";
    type Pre = LbmethodPluginPre<PluginState>;
    type Bindings = LbmethodPlugin;

    fn pre(pre: InstancePre<PluginState>) -> wasmtime::Result<Self::Pre> {
        LbmethodPluginPre::new(pre)
    }

    fn instantiate(pre: &Self::Pre, store: &mut Store<PluginState>) -> wasmtime::Result<Self::Bindings> {
        pre.instantiate(store)
    }

    fn configure(bindings: &Self::Bindings, store: &mut Store<PluginState>, config: &str) -> wasmtime::Result<Result<(), String>> {
        bindings.switchyard_plugin_lbmethod().call_configure(store, config)
    }
}

/// The members as last handed over, with a generation so instances know when to `reset`.
struct MemberList {
    generation: u64,
    infos: Arc<[MemberInfo]>,
}

/// A load-balancing method backed by a Wasm component.
pub struct WasmLbMethod {
    instances: Instances<LbWorld>,
    members: ArcSwap<MemberList>,
    /// Copy of `members.generation`, so the hot path checks one atomic instead of the swap.
    generation: AtomicU64,
}

impl WasmLbMethod {
    /// Links, instantiates, configures and self-tests a component; the plugin is returned only
    /// when all of that worked.
    pub(crate) fn load(component: &Component, params: LoadParams<'_>) -> Result<Arc<Self>, PluginError> {
        let method = Arc::new(Self {
            instances: Instances::new(component, params)?,
            members: ArcSwap::from_pointee(MemberList { generation: 0, infos: Arc::from(Vec::new()) }),
            generation: AtomicU64::new(0),
        });
        method.self_test()?;
        Ok(method)
    }

    /// The plugin's counters.
    pub fn stats(&self) -> &PluginStats {
        &self.instances.stats
    }

    /// Hands over three synthetic members, picks over them and checks the answers, so a plugin
    /// that cannot do its one job is refused before it serves a request. The instance it made
    /// is kept (it gets the real members before its first real call).
    fn self_test(&self) -> Result<(), PluginError> {
        let name = &self.instances.name;
        let refuse = |reason: String| PluginError::SelfTest { plugin: name.clone(), reason };
        let mut instance = self.instances.first_instance()?;
        let urls: Vec<String> = (1..=3).map(|i| format!("http://self-test-{i}.invalid")).collect();
        let infos: Vec<wit::MemberInfo> = urls.iter().map(|url| wit::MemberInfo { url, route: "", lbset: 0 }).collect();
        self.instances
            .run(&mut instance, true, |b, store| b.switchyard_plugin_lbmethod().call_reset(store, &infos))
            .map_err(|e| refuse(format!("reset trapped: {e:#}")))?;
        let values = synthetic_values(3);
        let table = wit::Candidates { count: 3, values: &values };
        let decision = self
            .instances
            .run(&mut instance, false, |b, store| b.switchyard_plugin_lbmethod().call_pick(store, 0, table))
            .map_err(|e| refuse(format!("pick trapped: {e:#}")))?;
        if let Some(d) = &decision {
            if d.chosen >= 3 {
                return Err(refuse(format!("pick chose candidate {} of 3", d.chosen)));
            }
            if !matches!(d.lbstatus_delta.len(), 0 | 3) {
                return Err(refuse(format!("pick returned {} lbstatus deltas for 3 candidates", d.lbstatus_delta.len())));
            }
        }
        let sticky = wit::Candidates { count: 3, values: &values };
        let deltas = self
            .instances
            .run(&mut instance, false, |b, store| b.switchyard_plugin_lbmethod().call_sticky_hit(store, sticky, 1))
            .map_err(|e| refuse(format!("sticky-hit trapped: {e:#}")))?;
        if !matches!(deltas.len(), 0 | 3) {
            return Err(refuse(format!("sticky-hit returned {} lbstatus deltas for 3 members", deltas.len())));
        }
        self.instances.checkin(instance);
        Ok(())
    }

    /// An instance brought up to date with the member list.
    fn checkout(&self) -> Result<Instance<LbWorld>, CallError> {
        let mut instance = self.instances.checkout()?;
        if instance.generation != self.generation.load(Ordering::Acquire) {
            let members = self.members.load();
            let infos: Vec<wit::MemberInfo> = members
                .infos
                .iter()
                .map(|m| wit::MemberInfo { url: &m.url, route: &m.route, lbset: m.lbset })
                .collect();
            // A setup call that worked says nothing about the plugin's health: only pick and
            // sticky-hit returning normally close the circuit.
            let reset = self.instances.run(&mut instance, true, |b, store| b.switchyard_plugin_lbmethod().call_reset(store, &infos));
            if let Err(e) = reset {
                return Err(self.instances.trapped(&e));
            }
            instance.generation = members.generation;
        }
        Ok(instance)
    }
}

impl LbMethod for WasmLbMethod {
    fn name(&self) -> &str {
        &self.instances.name
    }

    fn pick(&self, key: u64, candidates: &CandidateTable) -> Result<Option<Decision>, LbMethodError> {
        let mut instance = self.checkout().map_err(lb_error)?;
        let table = wit::Candidates { count: candidates.count as u32, values: &candidates.values };
        let result = self.instances.run(&mut instance, false, |b, store| b.switchyard_plugin_lbmethod().call_pick(store, key, table));
        let decision = self.instances.finish(result, instance).map_err(lb_error)?;
        Ok(decision.map(|d| Decision { chosen: d.chosen as usize, lbstatus_delta: d.lbstatus_delta }))
    }

    fn sticky_hit(&self, usable: &CandidateTable, chosen: usize) -> Result<Vec<i64>, LbMethodError> {
        let mut instance = self.checkout().map_err(lb_error)?;
        let table = wit::Candidates { count: usable.count as u32, values: &usable.values };
        let chosen = u32::try_from(chosen).unwrap_or(u32::MAX);
        let result =
            self.instances.run(&mut instance, false, |b, store| b.switchyard_plugin_lbmethod().call_sticky_hit(store, table, chosen));
        self.instances.finish(result, instance).map_err(lb_error)
    }

    fn set_members(&self, members: Arc<[MemberInfo]>) {
        let generation = self.members.load().generation + 1;
        self.members.store(Arc::new(MemberList { generation, infos: members }));
        self.generation.store(generation, Ordering::Release);
    }
}

/// The balancer's view of a failed call (it knows nothing of Wasm).
fn lb_error(e: CallError) -> LbMethodError {
    LbMethodError(e.to_string())
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
