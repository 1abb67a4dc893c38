//! Health-check plugins: the `health-check-plugin` world behind [`health::HealthCheck`].

use std::sync::Arc;

use wasmtime::Store;
use wasmtime::component::{Component, InstancePre};

use super::PluginError;
use super::instances::{Instances, LoadParams, PluginStats, World};
use super::state::PluginState;
use crate::health::{self, CheckError, HealthCheck, HttpProbe, Outcome, Probe, Target, Verdict};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "health-check-plugin",
        with: {
            "switchyard:plugin/log": crate::plugin::lbmethod::bindings::switchyard::plugin::log,
            "switchyard:plugin/types": crate::plugin::lbmethod::bindings::switchyard::plugin::types,
        },
    });
}

use bindings::exports::switchyard::plugin::health_check as wit;
use bindings::{HealthCheckPlugin, HealthCheckPluginPre};

/// The `health-check-plugin` world.
pub(crate) struct HealthWorld;

impl World for HealthWorld {
    const NAME: &'static str = "health-check-plugin";
    type Pre = HealthCheckPluginPre<PluginState>;
    type Bindings = HealthCheckPlugin;

    fn pre(pre: InstancePre<PluginState>) -> wasmtime::Result<Self::Pre> {
        HealthCheckPluginPre::new(pre)
    }

    fn instantiate(pre: &Self::Pre, store: &mut Store<PluginState>) -> wasmtime::Result<Self::Bindings> {
        pre.instantiate(store)
    }

    fn configure(bindings: &Self::Bindings, store: &mut Store<PluginState>, config: &str) -> wasmtime::Result<Result<(), String>> {
        bindings.switchyard_plugin_health_check().call_configure(store, config)
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
        let member = wit_member(&target);
        check
            .instances
            .run(&mut instance, false, |b, store| b.switchyard_plugin_health_check().call_describe_probe(store, &member))
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
        let member = wit_member(target);
        let probe = self
            .instances
            .call(|b, store| b.switchyard_plugin_health_check().call_describe_probe(store, &member))
            .map_err(|e| CheckError(e.to_string()))?;
        Ok(match probe {
            wit::Probe::Tcp => Probe::Tcp,
            wit::Probe::Http(p) => Probe::Http(HttpProbe {
                method: p.method,
                path: p.path,
                http10: matches!(p.version, wit::HttpVersion::Http10),
                headers: p.headers.into_iter().map(|h| (h.name, h.value)).collect(),
                body_limit: p.body_limit.min(health::MAX_BODY),
            }),
        })
    }

    fn judge(&self, target: &Target, outcome: &Outcome) -> Result<Verdict, CheckError> {
        let member = wit_member(target);
        let outcome = match outcome {
            Outcome::Connected => wit::Outcome::Connected,
            Outcome::Failed(why) => wit::Outcome::Failed(why.clone()),
            Outcome::Response(r) => wit::Outcome::Response(wit::HttpResponse {
                status: r.status,
                headers: r.headers.iter().map(|(name, value)| wit::Header { name: name.clone(), value: value.clone() }).collect(),
                body: r.body.clone(),
            }),
        };
        let verdict = self
            .instances
            .call(|b, store| b.switchyard_plugin_health_check().call_judge(store, &member, &outcome))
            .map_err(|e| CheckError(e.to_string()))?;
        Ok(Verdict { healthy: verdict.healthy, reason: verdict.reason })
    }
}

fn wit_member(target: &Target) -> wit::Member {
    wit::Member { url: target.url.clone(), host: target.host.clone(), port: target.port, base_path: target.base_path.clone() }
}
