//! Header-rewrite plugins: the `header-rewrite-plugin` world, in both versions of the
//! contract, behind [`rewrite::HeaderRewriter`].

use std::sync::Arc;

use wasmtime::Store;
use wasmtime::component::Component;

use super::PluginError;
use super::bindings::versioned_world;
use super::instances::{Instances, LoadParams, PluginStats};
use super::state::PluginState;
use crate::observe::PluginCalls;
use crate::rewrite::{Context, Edit, Header, HeaderRewriter, Interest, PhaseInterest, RewriteError};

/// The calls of one version of the world, with the host's types. The two versions' WIT is
/// the same, so one body serves both.
macro_rules! calls {
    ($version:ident) => {
        pub(super) mod $version {
            use super::super::bindings::$version::header_rewrite::exports::switchyard::plugin::header_rewrite as wit;
            use super::super::bindings::$version::header_rewrite::HeaderRewritePlugin;
            use super::{Context, Edit, Header, Interest, PhaseInterest, PluginState, Store};

            pub(super) fn wants(b: &HeaderRewritePlugin, store: &mut Store<PluginState>) -> wasmtime::Result<Interest> {
                let wants = b.switchyard_plugin_header_rewrite().call_wants(store)?;
                let phase = |p: wit::PhaseInterest| PhaseInterest {
                    headers: p.headers.into_iter().map(|h| h.to_ascii_lowercase()).collect(),
                    always: p.always,
                };
                Ok(Interest { request: phase(wants.request), response: phase(wants.response) })
            }

            pub(super) fn on_request(
                b: &HeaderRewritePlugin,
                store: &mut Store<PluginState>,
                context: &Context<'_>,
                method: &str,
                path: &str,
                headers: &[Header],
            ) -> wasmtime::Result<Vec<Edit>> {
                let edits = b.switchyard_plugin_header_rewrite().call_on_request(store, &wit_context(context), method, path, &wit_headers(headers))?;
                Ok(edits.into_iter().map(edit).collect())
            }

            pub(super) fn on_response(
                b: &HeaderRewritePlugin,
                store: &mut Store<PluginState>,
                context: &Context<'_>,
                status: u16,
                headers: &[Header],
            ) -> wasmtime::Result<Vec<Edit>> {
                let edits = b.switchyard_plugin_header_rewrite().call_on_response(store, &wit_context(context), status, &wit_headers(headers))?;
                Ok(edits.into_iter().map(edit).collect())
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
        }
    };
}

calls!(v0_1);
calls!(v0_2);

versioned_world! {
    /// The `header-rewrite-plugin` world, 0.2.0 or 0.1.0, whichever the component exports.
    world RewriteWorld = "header-rewrite-plugin", exporting "header-rewrite" from header_rewrite;
    pre RewritePre = HeaderRewritePluginPre;
    bindings RewriteBindings = HeaderRewritePlugin, reached by switchyard_plugin_header_rewrite;
    local ();
    ready only false;
}

impl RewriteBindings {
    fn wants(&self, store: &mut Store<PluginState>) -> wasmtime::Result<Interest> {
        match self {
            RewriteBindings::V0_1(b) => v0_1::wants(b, store),
            RewriteBindings::V0_2(b) => v0_2::wants(b, store),
        }
    }

    fn on_request(&self, store: &mut Store<PluginState>, context: &Context<'_>, method: &str, path: &str, headers: &[Header]) -> wasmtime::Result<Vec<Edit>> {
        match self {
            RewriteBindings::V0_1(b) => v0_1::on_request(b, store, context, method, path, headers),
            RewriteBindings::V0_2(b) => v0_2::on_request(b, store, context, method, path, headers),
        }
    }

    fn on_response(&self, store: &mut Store<PluginState>, context: &Context<'_>, status: u16, headers: &[Header]) -> wasmtime::Result<Vec<Edit>> {
        match self {
            RewriteBindings::V0_1(b) => v0_1::on_response(b, store, context, status, headers),
            RewriteBindings::V0_2(b) => v0_2::on_response(b, store, context, status, headers),
        }
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
        let interest = instances
            .run(&mut instance, true, |b, store| b.wants(store))
            .map_err(|e| PluginError::SelfTest { plugin: instances.name.clone(), reason: format!("wants trapped: {e:#}") })?;
        instances.checkin(instance);
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
        self.instances.timed_call(|b, store| b.on_request(store, context, method, path, headers)).map_err(|e| RewriteError(e.to_string()))
    }

    fn on_response(&self, context: &Context<'_>, status: u16, headers: &[Header]) -> Result<Vec<Edit>, RewriteError> {
        self.instances.timed_call(|b, store| b.on_response(store, context, status, headers)).map_err(|e| RewriteError(e.to_string()))
    }

    fn calls(&self) -> Option<PluginCalls> {
        Some(self.instances.calls())
    }
}
