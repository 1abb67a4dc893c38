//! The generated bindings of every plugin world, for each version of the WIT package the host
//! loads, and the one implementation of the `log` import behind all of them.
//!
//! `v0_2` is the current contract (`wit/` at the repository root). `v0_1` is the frozen 0.1.0
//! contract (`host/wit-0.1.0/`): components built against it keep loading, because the two
//! versions are different names to the component model and the linker serves both. Which one
//! a component speaks is read from its exports ([`exported_version`]).

use wasmtime::component::{Component, HasSelf, Linker};

use super::state::{PluginState, log_enabled, log_line};

/// The three worlds of one version of the package, generated from the WIT in `$path`, and
/// the `log` import's implementation for that version.
macro_rules! package {
    ($path:literal) => {
        /// The lbmethod world; its `log` and `types` serve the other worlds too.
        pub(crate) mod lbmethod {
            wasmtime::component::bindgen!({
                path: $path,
                world: "lbmethod-plugin",
                ownership: Borrowing { duplicate_if_necessary: false },
            });
        }

        /// The health-check world.
        pub(crate) mod health_check {
            wasmtime::component::bindgen!({
                path: $path,
                world: "health-check-plugin",
                with: {
                    "switchyard:plugin/log": super::lbmethod::switchyard::plugin::log,
                    "switchyard:plugin/types": super::lbmethod::switchyard::plugin::types,
                },
            });
        }

        /// The header-rewrite world.
        pub(crate) mod header_rewrite {
            wasmtime::component::bindgen!({
                path: $path,
                world: "header-rewrite-plugin",
                with: {
                    "switchyard:plugin/log": super::lbmethod::switchyard::plugin::log,
                    "switchyard:plugin/types": super::lbmethod::switchyard::plugin::types,
                },
            });
        }

        use super::{PluginState, log_enabled, log_line};
        use lbmethod::switchyard::plugin::{log, types};

        impl types::Host for PluginState {}

        impl log::Host for PluginState {
            fn enabled(&mut self, level: types::LogLevel) -> bool {
                log_enabled(level as u8)
            }

            fn write(&mut self, level: types::LogLevel, message: String) {
                log_line(&self.label, level as u8, &message);
            }
        }
    };
}

/// The current contract, `switchyard:plugin@0.2.0`.
pub(crate) mod v0_2 {
    package!("../wit");
}

/// The frozen contract, `switchyard:plugin@0.1.0`.
pub(crate) mod v0_1 {
    package!("wit-0.1.0");
}

/// A version of the WIT package the host speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    /// `switchyard:plugin@0.1.0`.
    V0_1,
    /// `switchyard:plugin@0.2.0`, the current one.
    V0_2,
}

impl Version {
    /// The version as the package names it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Version::V0_1 => "0.1.0",
            Version::V0_2 => "0.2.0",
        }
    }
}

/// Which version of `switchyard:plugin/{interface}` the component exports, if any it speaks.
pub(crate) fn exported_version(component: &Component, interface: &str) -> Option<Version> {
    let name = |v: Version| format!("switchyard:plugin/{interface}@{}", v.as_str());
    [Version::V0_2, Version::V0_1].into_iter().find(|&v| component.get_export_index(None, name(v)).is_some())
}

/// Adds the imports every plugin world shares (the log), in every version, to a linker that
/// already has WASI.
pub(crate) fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    v0_2::lbmethod::LbmethodPlugin::add_to_linker::<PluginState, HasSelf<PluginState>>(linker, |s| s)?;
    v0_1::lbmethod::LbmethodPlugin::add_to_linker::<PluginState, HasSelf<PluginState>>(linker, |s| s)
}

/// One world over both versions of the contract: `$world` (the [`World`] the instance pool
/// runs), `$pre` (a component pre-instantiated for the version it speaks), `$bindings` (an
/// instance's exports in that version). The version is read from the component's exports; a
/// component exporting neither is refused with what 0.2.0 expects.
///
/// [`World`]: super::instances::World
macro_rules! versioned_world {
    (
        $(#[$doc:meta])*
        world $world:ident = $name:literal, exporting $interface:literal from $module:ident;
        pre $pre:ident = $pre_ty:ident;
        bindings $bindings:ident = $ty:ident, reached by $accessor:ident;
        local $local:ty;
        ready only $ready:literal;
    ) => {
        $(#[$doc])*
        pub(crate) struct $world;

        /// A component pre-instantiated for the version it speaks.
        pub(crate) enum $pre {
            V0_1($crate::plugin::bindings::v0_1::$module::$pre_ty<$crate::plugin::state::PluginState>),
            V0_2($crate::plugin::bindings::v0_2::$module::$pre_ty<$crate::plugin::state::PluginState>),
        }

        /// An instance's exports, in the version the component speaks.
        pub(crate) enum $bindings {
            V0_1($crate::plugin::bindings::v0_1::$module::$ty),
            V0_2($crate::plugin::bindings::v0_2::$module::$ty),
        }

        impl $crate::plugin::instances::World for $world {
            const NAME: &'static str = $name;
            const READY_ONLY: bool = $ready;
            type Pre = $pre;
            type Bindings = $bindings;
            type Local = $local;

            fn pre(
                pre: ::wasmtime::component::InstancePre<$crate::plugin::state::PluginState>,
            ) -> ::wasmtime::Result<Self::Pre> {
                use $crate::plugin::bindings::{Version, exported_version, v0_1, v0_2};
                match exported_version(pre.component(), $interface) {
                    Some(Version::V0_1) => v0_1::$module::$pre_ty::new(pre).map($pre::V0_1),
                    _ => v0_2::$module::$pre_ty::new(pre).map($pre::V0_2),
                }
            }

            fn instantiate(
                pre: &Self::Pre,
                store: &mut ::wasmtime::Store<$crate::plugin::state::PluginState>,
            ) -> ::wasmtime::Result<Self::Bindings> {
                match pre {
                    $pre::V0_1(pre) => pre.instantiate(store).map($bindings::V0_1),
                    $pre::V0_2(pre) => pre.instantiate(store).map($bindings::V0_2),
                }
            }

            fn configure(
                bindings: &Self::Bindings,
                store: &mut ::wasmtime::Store<$crate::plugin::state::PluginState>,
                config: &str,
            ) -> ::wasmtime::Result<Result<(), String>> {
                match bindings {
                    $bindings::V0_1(b) => b.$accessor().call_configure(store, config),
                    $bindings::V0_2(b) => b.$accessor().call_configure(store, config),
                }
            }
        }
    };
}
pub(crate) use versioned_world;
