//! Load-balancing methods as Wasm components: the `lbmethod-plugin` world in both versions
//! of the contract, member lists handed over on change, completion feedback for methods
//! that ask, and the load-time self-test.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use arc_swap::ArcSwap;
use wasmtime::Store;
use wasmtime::component::Component;

use super::PluginError;
use super::bindings::{Version, v0_1, v0_2, versioned_world};
use super::feedback::{Cursor, FeedbackLog, Taken};
use super::instances::{CallError, Instance, Instances, LoadParams, PluginStats};
use super::state::PluginState;
use crate::balancer::{Candidate, Completion, Decision, LbMethod, LbMethodError, MemberInfo, Plan};

use v0_1::lbmethod::exports::switchyard::plugin::lbmethod as wit1;
use v0_2::lbmethod::exports::switchyard::plugin::lbmethod as wit2;

versioned_world! {
    /// The `lbmethod-plugin` world, 0.2.0 or 0.1.0, whichever the component exports.
    world LbWorld = "lbmethod-plugin", exporting "lbmethod" from lbmethod;
    pre LbPre = LbmethodPluginPre;
    bindings LbBindings = LbmethodPlugin, reached by switchyard_plugin_lbmethod;
    local LbLocal;
    ready only true;
}

/// What an lbmethod instance has seen: the member list's generation and the completions.
pub(crate) struct LbLocal {
    generation: u64,
    cursor: Cursor,
    /// The candidate table as the contract sends it, reused from call to call.
    columns: Vec<i64>,
}

impl Default for LbLocal {
    fn default() -> Self {
        Self { generation: u64::MAX, cursor: Cursor::default(), columns: Vec::new() }
    }
}

/// Candidates as the contract's `candidates` record carries them: `count` rows, column-major
/// in the `member-field` order. Packed by [`switchyard_sdk::Candidates::write_columns`], the
/// one writer of the layout the guest's SDK reads.
#[derive(Clone, Copy)]
struct Columns<'a> {
    count: u32,
    values: &'a [i64],
}

impl<'a> Columns<'a> {
    /// Packs `candidates` into `buffer` and views it.
    fn pack(candidates: &[Candidate], buffer: &'a mut Vec<i64>) -> Self {
        switchyard_sdk::Candidates::write_columns(candidates, buffer);
        Self { count: u32::try_from(candidates.len()).unwrap_or(u32::MAX), values: buffer }
    }
}

/// The feedback handed to one pick: the clock and the completions since the last.
struct Feedback<'a> {
    taken: Taken,
    values: &'a [i64],
}

/// The calls of the world, the same whatever the version; a 0.1.0 method wants no feedback.
impl LbBindings {
    fn version(&self) -> Version {
        match self {
            LbBindings::V0_1(_) => Version::V0_1,
            LbBindings::V0_2(_) => Version::V0_2,
        }
    }

    /// What the method wants: completions, plans (a 0.1.0 method wants neither).
    fn wants(&self, store: &mut Store<PluginState>) -> wasmtime::Result<Wants> {
        match self {
            LbBindings::V0_1(_) => Ok(Wants::default()),
            LbBindings::V0_2(b) => {
                let interest = b.switchyard_plugin_lbmethod().call_wants(store)?;
                Ok(Wants { completions: interest.completions, plannable: interest.plannable && !interest.completions })
            }
        }
    }

    fn plan(&self, store: &mut Store<PluginState>, table: Columns<'_>, picks: usize) -> wasmtime::Result<Plan> {
        let Columns { count, values } = table;
        let picks = u32::try_from(picks).unwrap_or(u32::MAX);
        match self {
            // Never asked: a 0.1.0 method is not plannable.
            LbBindings::V0_1(_) => Ok(Plan::default()),
            LbBindings::V0_2(b) => {
                let plan = b.switchyard_plugin_lbmethod().call_plan(store, wit2::Candidates { count, values }, picks)?;
                Ok(Plan { chosen: plan.chosen.into_iter().map(|c| c as usize).collect(), lbstatus_delta: plan.lbstatus_delta })
            }
        }
    }

    fn reset(&self, store: &mut Store<PluginState>, members: &[MemberInfo]) -> wasmtime::Result<()> {
        match self {
            LbBindings::V0_1(b) => {
                let infos: Vec<wit1::MemberInfo> =
                    members.iter().map(|m| wit1::MemberInfo { url: &m.url, route: &m.route, lbset: m.lbset }).collect();
                b.switchyard_plugin_lbmethod().call_reset(store, &infos)
            }
            LbBindings::V0_2(b) => {
                let infos: Vec<wit2::MemberInfo> =
                    members.iter().map(|m| wit2::MemberInfo { url: &m.url, route: &m.route, lbset: m.lbset }).collect();
                b.switchyard_plugin_lbmethod().call_reset(store, &infos)
            }
        }
    }

    fn pick(
        &self,
        store: &mut Store<PluginState>,
        key: u64,
        table: Columns<'_>,
        feedback: Option<Feedback<'_>>,
    ) -> wasmtime::Result<Option<Decision>> {
        let Columns { count, values } = table;
        let decision = |chosen: u32, lbstatus_delta: Vec<i64>| Decision { chosen: chosen as usize, lbstatus_delta };
        match self {
            LbBindings::V0_1(b) => {
                let candidates = wit1::Candidates { count, values };
                let d = b.switchyard_plugin_lbmethod().call_pick(store, key, candidates)?;
                Ok(d.map(|d| decision(d.chosen, d.lbstatus_delta)))
            }
            LbBindings::V0_2(b) => {
                let candidates = wit2::Candidates { count, values };
                let feedback = feedback.map(|f| wit2::Feedback {
                    now: f.taken.now,
                    count: f.taken.count,
                    values: f.values,
                    missed: f.taken.missed,
                });
                let d = b.switchyard_plugin_lbmethod().call_pick(store, key, candidates, feedback)?;
                Ok(d.map(|d| decision(d.chosen, d.lbstatus_delta)))
            }
        }
    }

    fn sticky_hit(&self, store: &mut Store<PluginState>, usable: Columns<'_>, chosen: usize) -> wasmtime::Result<Vec<i64>> {
        let Columns { count, values } = usable;
        let chosen = u32::try_from(chosen).unwrap_or(u32::MAX);
        match self {
            LbBindings::V0_1(b) => b.switchyard_plugin_lbmethod().call_sticky_hit(store, wit1::Candidates { count, values }, chosen),
            LbBindings::V0_2(b) => b.switchyard_plugin_lbmethod().call_sticky_hit(store, wit2::Candidates { count, values }, chosen),
        }
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
    /// The contract version the component speaks.
    version: Version,
    /// Whether the method asked for completion feedback (asked once, at load).
    wants_completions: bool,
    /// Whether the method said its picks may be planned ahead (asked once, at load).
    plannable: bool,
    /// The balancer's ended attempts, when the method asked for them.
    completions: FeedbackLog,
}

impl WasmLbMethod {
    /// Links, instantiates, configures and self-tests a component; the plugin is returned only
    /// when all of that worked.
    pub(crate) fn load(component: &Component, params: LoadParams<'_>) -> Result<Arc<Self>, PluginError> {
        let instances = Instances::<LbWorld>::new(component, params)?;
        let mut first = instances.first_instance()?;
        let version = first.bindings.version();
        let wants = instances
            .run(&mut first, true, |b, store| b.wants(store))
            .map_err(|e| PluginError::SelfTest { plugin: instances.name.clone(), reason: format!("wants trapped: {e:#}") })?;
        let method = Self {
            instances,
            members: ArcSwap::from_pointee(MemberList { generation: 0, infos: Arc::from(Vec::new()) }),
            generation: AtomicU64::new(0),
            version,
            wants_completions: wants.completions,
            plannable: wants.plannable,
            completions: FeedbackLog::default(),
        };
        method.self_test(first)?;
        method.instances.prewarm()?;
        Ok(Arc::new(method))
    }

    /// The plugin's counters.
    pub fn stats(&self) -> &PluginStats {
        &self.instances.stats
    }

    /// The version of the plugin contract the component speaks, e.g. `0.2.0`.
    pub fn contract_version(&self) -> &'static str {
        self.version.as_str()
    }

    /// Hands over three synthetic members, picks over them (with one synthetic completion,
    /// for a method that wants them) and checks the answers, so a plugin that cannot do its
    /// one job is refused before it serves a request. `instance` is the first one made; it is
    /// kept (it gets the real members before its first real call). Its calls run under the
    /// setup deadline: they check what the answers are, not how fast they come, and a load
    /// runs on every reload and manager edit, where a machine busy enough to deschedule the
    /// thread for the per-call deadline's 10 ms must not refuse the change. A runaway plugin
    /// is still refused, a second later.
    fn self_test(&self, mut instance: Box<Instance<LbWorld>>) -> Result<(), PluginError> {
        let name = &self.instances.name;
        let refuse = |reason: String| PluginError::SelfTest { plugin: name.clone(), reason };
        let infos: Vec<MemberInfo> =
            (1..=3).map(|i| MemberInfo { url: format!("http://self-test-{i}.invalid"), route: String::new(), lbset: 0 }).collect();
        self.instances
            .run(&mut instance, true, |b, store| b.reset(store, &infos))
            .map_err(|e| refuse(format!("reset trapped: {e:#}")))?;
        let mut buffer = Vec::new();
        let table = Columns::pack(&synthetic_candidates(3), &mut buffer);
        let mut cursor = Cursor::default();
        let synthetic = FeedbackLog::default();
        synthetic.push(&synthetic_completion());
        let taken = synthetic.take(&mut cursor, Instant::now());
        let feedback = self.wants_completions.then_some(Feedback { taken, values: &cursor.values });
        let decision = self
            .instances
            .run(&mut instance, true, |b, store| b.pick(store, 0, table, feedback))
            .map_err(|e| refuse(format!("pick trapped: {e:#}")))?;
        if let Some(d) = &decision {
            if d.chosen >= 3 {
                return Err(refuse(format!("pick chose candidate {} of 3", d.chosen)));
            }
            if !matches!(d.lbstatus_delta.len(), 0 | 3) {
                return Err(refuse(format!("pick returned {} lbstatus deltas for 3 candidates", d.lbstatus_delta.len())));
            }
        }
        let deltas = self
            .instances
            .run(&mut instance, true, |b, store| b.sticky_hit(store, table, 1))
            .map_err(|e| refuse(format!("sticky-hit trapped: {e:#}")))?;
        if !matches!(deltas.len(), 0 | 3) {
            return Err(refuse(format!("sticky-hit returned {} lbstatus deltas for 3 members", deltas.len())));
        }
        if self.plannable {
            let plan = self
                .instances
                .run(&mut instance, true, |b, store| b.plan(store, table, 4))
                .map_err(|e| refuse(format!("plan trapped: {e:#}")))?;
            if let Err(reason) = plan.check(3, 4) {
                return Err(refuse(format!("plan: {reason}")));
            }
        }
        self.instances.checkin(instance);
        Ok(())
    }

    /// An instance brought up to date with the member list.
    fn checkout(&self) -> Result<Box<Instance<LbWorld>>, CallError> {
        let mut instance = self.instances.checkout()?;
        if instance.local.generation != self.generation.load(Ordering::Acquire) {
            let members = self.members.load();
            // A setup call that worked says nothing about the plugin's health: only pick and
            // sticky-hit returning normally close the circuit.
            let reset = self.instances.run(&mut instance, true, |b, store| b.reset(store, &members.infos));
            if let Err(e) = reset {
                return Err(self.instances.trapped(&e));
            }
            instance.local.generation = members.generation;
        }
        Ok(instance)
    }
}

impl LbMethod for WasmLbMethod {
    fn name(&self) -> &str {
        &self.instances.name
    }

    fn version(&self) -> &str {
        &self.instances.version
    }

    fn traps(&self) -> (u64, u64) {
        let stats = &self.instances.stats;
        (stats.traps.load(Ordering::Relaxed), stats.circuit_opens.load(Ordering::Relaxed))
    }

    fn pick(&self, key: u64, candidates: &[Candidate], now: Instant) -> Result<Option<Decision>, LbMethodError> {
        let mut instance = self.checkout().map_err(lb_error)?;
        // The tables move out for the call (the instance is borrowed by it) and back after.
        let mut buffer = std::mem::take(&mut instance.local.columns);
        let table = Columns::pack(candidates, &mut buffer);
        let result = if self.wants_completions {
            let taken = self.completions.take(&mut instance.local.cursor, now);
            let values = std::mem::take(&mut instance.local.cursor.values);
            let feedback = Feedback { taken, values: &values };
            let result = self.instances.run(&mut instance, false, |b, store| b.pick(store, key, table, Some(feedback)));
            instance.local.cursor.values = values;
            result
        } else {
            self.instances.run(&mut instance, false, |b, store| b.pick(store, key, table, None))
        };
        instance.local.columns = buffer;
        self.instances.finish(result, instance).map_err(lb_error)
    }

    fn sticky_hit(&self, usable: &[Candidate], chosen: usize) -> Result<Vec<i64>, LbMethodError> {
        let mut instance = self.checkout().map_err(lb_error)?;
        let mut buffer = std::mem::take(&mut instance.local.columns);
        let table = Columns::pack(usable, &mut buffer);
        let result = self.instances.run(&mut instance, false, |b, store| b.sticky_hit(store, table, chosen));
        instance.local.columns = buffer;
        self.instances.finish(result, instance).map_err(lb_error)
    }

    fn set_members(&self, members: Arc<[MemberInfo]>) {
        let generation = self.members.load().generation + 1;
        self.members.store(Arc::new(MemberList { generation, infos: members }));
        self.generation.store(generation, Ordering::Release);
        self.completions.forget();
    }

    fn wants_completions(&self) -> bool {
        self.wants_completions
    }

    fn plannable(&self) -> bool {
        self.plannable
    }

    fn plan(&self, candidates: &[Candidate], picks: usize) -> Result<Plan, LbMethodError> {
        let mut instance = self.checkout().map_err(lb_error)?;
        let mut buffer = std::mem::take(&mut instance.local.columns);
        let table = Columns::pack(candidates, &mut buffer);
        let result = self.instances.run(&mut instance, false, |b, store| b.plan(store, table, picks));
        instance.local.columns = buffer;
        self.instances.finish(result, instance).map_err(lb_error)
    }

    fn complete(&self, completion: &Completion) {
        if self.wants_completions {
            self.completions.push(completion);
        }
    }
}

/// What a method asked for in its `interest`.
#[derive(Debug, Clone, Copy, Default)]
struct Wants {
    completions: bool,
    /// Only without completions: a method that learns from them is not plannable.
    plannable: bool,
}

/// The balancer's view of a failed call (it knows nothing of Wasm).
fn lb_error(e: CallError) -> LbMethodError {
    LbMethodError(e.to_string())
}

/// `n` equal, idle members, for the self-test.
fn synthetic_candidates(n: usize) -> Vec<Candidate> {
    (0..n).map(|member| Candidate { member, lbfactor: 100, lbstatus: 0, busy: 0, transferred: 0, read: 0 }).collect()
}

/// One quick answer from the first synthetic member.
fn synthetic_completion() -> Completion {
    use std::time::Duration;
    Completion {
        member: 0,
        outcome: crate::balancer::AttemptOutcome::Response,
        status: 200,
        head: Some(Duration::from_millis(1)),
        total: Duration::from_millis(2),
        received: 100,
        finished: Instant::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{PluginLimits, PluginSource, PluginSpec};
    use crate::plugin::PluginRuntime;

    #[test]
    fn each_calling_thread_keeps_its_instance_and_the_pool_serves_the_others() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let plugins = PluginRuntime::new(PluginLimits::default()).expect("runtime").calling_threads(3);
        let spec = PluginSpec { source: PluginSource::Builtin("byrequests".into()), config_json: "{}".into(), origin: "test".into() };
        let method = rt.block_on(plugins.lbmethod(&spec, "test")).expect("load");
        let ready = method.instances.pooled();
        assert!(ready >= 3, "one ready per calling thread: {ready}");
        let made = method.stats().instances.load(Ordering::Relaxed);
        let table = synthetic_candidates(3);
        let picks = || {
            for _ in 0..20 {
                method.pick(0, &table, Instant::now()).expect("a ready instance").expect("a member");
            }
        };
        picks();
        assert_eq!(method.instances.pooled(), ready - 1, "this thread keeps the one it took");
        // Both alive at once: a thread that ended leaves its instance to the next new thread.
        let both = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    picks();
                    both.wait();
                });
            }
        });
        assert_eq!(method.instances.pooled(), ready - 3, "so does every other thread that called");
        picks();
        assert_eq!(method.instances.pooled(), ready - 3, "and takes it back, not another");
        assert_eq!(method.stats().instances.load(Ordering::Relaxed), made, "no instance made on a call");
    }
}
