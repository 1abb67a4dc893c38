//! Health-check plugins: the `health-check-plugin` world, in both versions of the contract,
//! behind [`health::HealthCheck`].

use std::sync::Arc;

use wasmtime::Store;
use wasmtime::component::Component;

use super::PluginError;
use super::bindings::versioned_world;
use super::instances::{Instances, LoadParams, PluginStats};
use super::state::PluginState;
use crate::observe::PluginCalls;
use crate::health::{self, CheckError, HealthCheck, HttpProbe, Outcome, Probe, Target, Verdict};

/// The calls of one version of the world, with the host's types. The two versions' WIT is
/// the same, so one body serves both.
macro_rules! calls {
    ($version:ident) => {
        pub(super) mod $version {
            use super::super::bindings::$version::health_check::exports::switchyard::plugin::health_check as wit;
            use super::super::bindings::$version::health_check::HealthCheckPlugin;
            use super::{Outcome, PluginState, Probe, Store, Target, Verdict};

            pub(super) fn describe_probe(b: &HealthCheckPlugin, store: &mut Store<PluginState>, target: &Target) -> wasmtime::Result<Probe> {
                let probe = b.switchyard_plugin_health_check().call_describe_probe(store, &member(target))?;
                Ok(match probe {
                    wit::Probe::Tcp => Probe::Tcp,
                    wit::Probe::Http(p) => Probe::Http(super::HttpProbe {
                        method: p.method,
                        path: p.path,
                        http10: matches!(p.version, wit::HttpVersion::Http10),
                        headers: p.headers.into_iter().map(|h| (h.name, h.value)).collect(),
                        body_limit: p.body_limit.min(super::health::MAX_BODY),
                    }),
                })
            }

            pub(super) fn judge(b: &HealthCheckPlugin, store: &mut Store<PluginState>, target: &Target, outcome: &Outcome) -> wasmtime::Result<Verdict> {
                let outcome = match outcome {
                    Outcome::Connected => wit::Outcome::Connected,
                    Outcome::Failed(why) => wit::Outcome::Failed(why.clone()),
                    Outcome::Response(r) => wit::Outcome::Response(wit::HttpResponse {
                        status: r.status,
                        headers: r.headers.iter().map(|(name, value)| wit::Header { name: name.clone(), value: value.clone() }).collect(),
                        body: r.body.clone(),
                    }),
                };
                let verdict = b.switchyard_plugin_health_check().call_judge(store, &member(target), &outcome)?;
                Ok(Verdict { healthy: verdict.healthy, reason: verdict.reason })
            }

            fn member(target: &Target) -> wit::Member {
                wit::Member { url: target.url.clone(), host: target.host.clone(), port: target.port, base_path: target.base_path.clone() }
            }
        }
    };
}

calls!(v0_1);
calls!(v0_2);

versioned_world! {
    /// The `health-check-plugin` world, 0.2.0 or 0.1.0, whichever the component exports.
    world HealthWorld = "health-check-plugin", exporting "health-check" from health_check;
    pre HealthPre = HealthCheckPluginPre;
    bindings HealthBindings = HealthCheckPlugin, reached by switchyard_plugin_health_check;
    local ();
    ready only false;
}

impl HealthBindings {
    fn describe_probe(&self, store: &mut Store<PluginState>, target: &Target) -> wasmtime::Result<Probe> {
        match self {
            HealthBindings::V0_1(b) => v0_1::describe_probe(b, store, target),
            HealthBindings::V0_2(b) => v0_2::describe_probe(b, store, target),
        }
    }

    fn judge(&self, store: &mut Store<PluginState>, target: &Target, outcome: &Outcome) -> wasmtime::Result<Verdict> {
        match self {
            HealthBindings::V0_1(b) => v0_1::judge(b, store, target, outcome),
            HealthBindings::V0_2(b) => v0_2::judge(b, store, target, outcome),
        }
    }
}

/// A health check backed by a Wasm component.
pub struct WasmHealthCheck {
    instances: Instances<HealthWorld>,
}

impl WasmHealthCheck {
    /// Links, instantiates and configures a component, and asks it for a probe of a synthetic
    /// member, so a plugin that cannot do its job is refused before it checks anything.
    pub(crate) fn load(component: &Component, params: LoadParams<'_>) -> Result<Arc<Self>, PluginError> {
        let check = Self { instances: Instances::new(component, params)? };
        let mut instance = check.instances.first_instance()?;
        let target = Target { url: "http://127.0.0.1:8080".into(), host: "127.0.0.1".into(), port: 8080, base_path: String::new() };
        check
            .instances
            .run(&mut instance, true, |b, store| b.describe_probe(store, &target))
            .map_err(|e| PluginError::SelfTest { plugin: check.instances.name.clone(), reason: format!("describe-probe trapped: {e:#}") })?;
        check.instances.checkin(instance);
        Ok(Arc::new(check))
    }

    /// The plugin's counters.
    pub fn stats(&self) -> &PluginStats {
        &self.instances.stats
    }
}

impl HealthCheck for WasmHealthCheck {
    fn name(&self) -> &str {
        &self.instances.name
    }

    fn probe(&self, target: &Target) -> Result<Probe, CheckError> {
        self.instances.timed_call(|b, store| b.describe_probe(store, target)).map_err(|e| CheckError(e.to_string()))
    }

    fn judge(&self, target: &Target, outcome: &Outcome) -> Result<Verdict, CheckError> {
        self.instances.timed_call(|b, store| b.judge(store, target, outcome)).map_err(|e| CheckError(e.to_string()))
    }

    fn calls(&self) -> Option<PluginCalls> {
        Some(self.instances.calls())
    }
}
