//! Header-rewrite plugins: the `header-rewrite-plugin` world behind [`rewrite::HeaderRewriter`].

use std::sync::Arc;

use wasmtime::Store;
use wasmtime::component::{Component, InstancePre};

use super::PluginError;
use super::instances::{Instances, LoadParams, PluginStats, World};
use super::state::PluginState;
use crate::rewrite::{Context, Edit, Header, HeaderRewriter, Interest, PhaseInterest, RewriteError};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "header-rewrite-plugin",
        with: {
            "switchyard:plugin/log": crate::plugin::lbmethod::bindings::switchyard::plugin::log,
            "switchyard:plugin/types": crate::plugin::lbmethod::bindings::switchyard::plugin::types,
        },
    });
}

use bindings::exports::switchyard::plugin::header_rewrite as wit;
use bindings::{HeaderRewritePlugin, HeaderRewritePluginPre};

/// The `header-rewrite-plugin` world.
pub(crate) struct RewriteWorld;

impl World for RewriteWorld {
    const NAME: &'static str = "header-rewrite-plugin";
    type Pre = HeaderRewritePluginPre<PluginState>;
    type Bindings = HeaderRewritePlugin;

    fn pre(pre: InstancePre<PluginState>) -> wasmtime::Result<Self::Pre> {
        HeaderRewritePluginPre::new(pre)
    }

    fn instantiate(pre: &Self::Pre, store: &mut Store<PluginState>) -> wasmtime::Result<Self::Bindings> {
        pre.instantiate(store)
    }

    fn configure(bindings: &Self::Bindings, store: &mut Store<PluginState>, config: &str) -> wasmtime::Result<Result<(), String>> {
        bindings.switchyard_plugin_header_rewrite().call_configure(store, config)
    }
}

/// A header rewriter backed by a Wasm component.
pub struct WasmHeaderRewrite {
    instances: Instances<RewriteWorld>,
    interest: Interest,
}

impl WasmHeaderRewrite {
    /// Links, instantiates and configures a component and asks for its interest (asked once:
    /// the host decides per message whether to call the plugin at all).
    pub(crate) fn load(component: &Component, params: LoadParams<'_>) -> Result<Arc<Self>, PluginError> {
        let instances = Instances::<RewriteWorld>::new(component, params)?;
        let mut instance = instances.first_instance()?;
        let wants = instances
            .run(&mut instance, true, |b, store| b.switchyard_plugin_header_rewrite().call_wants(store))
            .map_err(|e| PluginError::SelfTest { plugin: instances.name.clone(), reason: format!("wants trapped: {e:#}") })?;
        instances.checkin(instance);
        let phase = |p: wit::PhaseInterest| PhaseInterest {
            headers: p.headers.into_iter().map(|h| h.to_ascii_lowercase()).collect(),
            always: p.always,
        };
        let interest = Interest { request: phase(wants.request), response: phase(wants.response) };
        Ok(Arc::new(Self { instances, interest }))
    }

    /// The plugin's counters.
    pub fn stats(&self) -> &PluginStats {
        &self.instances.stats
    }
}

impl HeaderRewriter for WasmHeaderRewrite {
    fn name(&self) -> &str {
        &self.instances.name
    }

    fn interest(&self) -> &Interest {
        &self.interest
    }

    fn on_request(&self, context: &Context<'_>, method: &str, path: &str, headers: &[Header]) -> Result<Vec<Edit>, RewriteError> {
        let context = wit_context(context);
        let headers = wit_headers(headers);
        let edits = self
            .instances
            .call(|b, store| b.switchyard_plugin_header_rewrite().call_on_request(store, &context, method, path, &headers))
            .map_err(|e| RewriteError(e.to_string()))?;
        Ok(edits.into_iter().map(edit).collect())
    }

    fn on_response(&self, context: &Context<'_>, status: u16, headers: &[Header]) -> Result<Vec<Edit>, RewriteError> {
        let context = wit_context(context);
        let headers = wit_headers(headers);
        let edits = self
            .instances
            .call(|b, store| b.switchyard_plugin_header_rewrite().call_on_response(store, &context, status, &headers))
            .map_err(|e| RewriteError(e.to_string()))?;
        Ok(edits.into_iter().map(edit).collect())
    }
}

fn wit_context(c: &Context<'_>) -> wit::Context {
    wit::Context {
        public_prefix: c.public_prefix.to_string(),
        public_scheme: c.public_scheme.to_string(),
        public_host: c.public_host.to_string(),
        targets: c.targets.to_vec(),
        member: c.member.to_string(),
        position: c.position,
    }
}

fn wit_headers(headers: &[Header]) -> Vec<wit::Header> {
    headers.iter().map(|h| wit::Header { name: h.name.clone(), value: h.value.clone() }).collect()
}

fn edit(e: wit::Edit) -> Edit {
    match e {
        wit::Edit::Set(h) => Edit::Set(Header { name: h.name, value: h.value }),
        wit::Edit::Append(h) => Edit::Append(Header { name: h.name, value: h.value }),
        wit::Edit::Remove(name) => Edit::Remove(name),
    }
}
