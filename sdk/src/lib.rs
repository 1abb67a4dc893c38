//! The Switchyard plugin SDK: write a plugin in plain Rust, test it with `cargo test`
//! natively, and build it for `wasm32-wasip2` to get a component the proxy loads.
//!
//! There are three kinds of plugin, each a trait and an export macro:
//!
//! | kind | trait | export | WIT world |
//! | --- | --- | --- | --- |
//! | load-balancing method | [`LbMethod`] | [`export_lbmethod!`] | `lbmethod-plugin` |
//! | health check | [`HealthCheck`] | [`export_health_check!`] | `health-check-plugin` |
//! | header rewrite | [`HeaderRewrite`] | [`export_header_rewrite!`] | `header-rewrite-plugin` |
//!
//! A crate exports one kind: the component then exports that kind's interface only, and
//! imports only the proxy's `log` (plus the WASI interfaces Rust's standard library needs,
//! which the host provides with every capability denied).
//!
//! A load-balancing method:
//!
//! ```
//! use switchyard_sdk::{Candidates, Config, Decision, LbMethod, Request};
//!
//! /// Always the least busy candidate; ties go to the first.
//! pub struct LeastBusy;
//!
//! impl LbMethod for LeastBusy {
//!     fn configure(_config: &Config) -> Result<Self, String> { Ok(LeastBusy) }
//!     fn pick(&mut self, _request: Request, candidates: &Candidates<'_>) -> Option<Decision> {
//!         let best = candidates.iter().enumerate().min_by_key(|(_, c)| c.busy)?.0;
//!         Some(Decision::to(best))
//!     }
//! }
//! switchyard_sdk::export_lbmethod!(LeastBusy);
//! ```
//!
//! A health check (`judge` defaults to httpd's: 2xx and 3xx pass):
//!
//! ```
//! use switchyard_sdk::{Config, HealthCheck, HttpProbe, Probe, health_check::Member};
//!
//! pub struct Ping;
//!
//! impl HealthCheck for Ping {
//!     fn configure(_config: &Config) -> Result<Self, String> { Ok(Ping) }
//!     fn probe(&mut self, member: &Member) -> Probe {
//!         Probe::Http(HttpProbe::new("GET", member.path("/ping")))
//!     }
//! }
//! switchyard_sdk::export_health_check!(Ping);
//! ```
//!
//! A header rewrite:
//!
//! ```
//! use switchyard_sdk::{Config, Context, Edit, Header, HeaderRewrite, Interest, PhaseInterest};
//!
//! /// Removes `Server` from every response that has one.
//! pub struct HideServer;
//!
//! impl HeaderRewrite for HideServer {
//!     fn configure(_config: &Config) -> Result<Self, String> { Ok(HideServer) }
//!     fn interest(&self) -> Interest {
//!         Interest { response: PhaseInterest::headers(["server"]), ..Interest::default() }
//!     }
//!     fn on_response(&mut self, _: &Context, _status: u16, _: &[Header]) -> Vec<Edit> {
//!         vec![Edit::remove("server")]
//!     }
//! }
//! switchyard_sdk::export_header_rewrite!(HideServer);
//! ```
//!
//! # Layout
//! - [`lbmethod`]: the [`LbMethod`] trait and the plain types it sees ([`Candidates`],
//!   [`Decision`], [`MemberInfo`], [`Request`]).
//! - [`completion`]: [`Completions`], how the balancer's attempts ended, for methods that
//!   ask (latency- and error-aware balancing).
//! - [`health_check`]: the [`HealthCheck`] trait, the [`Probe`] it describes and the
//!   [`Outcome`] it judges into a [`Verdict`].
//! - [`header_rewrite`]: the [`HeaderRewrite`] trait, its [`Interest`], the [`Context`] of a
//!   message and the [`Edit`]s it returns.
//! - [`header`]: [`Header`], shared by the last two.
//! - [`config`]: [`Config`], the plugin's own TOML table, ready to deserialize.
//! - [`log`]: lines to the proxy's log, from any kind of plugin.
//! - [`rules`]: the checks the host applies to plugins' answers.
//! - [`alloc`]: [`Recycling`], a global allocator a plugin may opt into, which hands the
//!   blocks one call freed to the next.
//! - [`testing`]: native stand-ins for the host, one per kind, so a plugin's tests run
//!   without Wasm and refuse what the host would refuse.
//! - [`export_lbmethod!`], [`export_health_check!`], [`export_header_rewrite!`]: turn a type
//!   into the component's exports.
//!
//! The WIT contract these types mirror is in `wit/`; its `///` comments say who owns which
//! state, how often each function is called and what the host does with an invalid answer.

#![deny(unsafe_code)] // only the generated bindings in `wit` use it
#![deny(missing_docs)]

pub mod alloc;
pub mod completion;
pub mod config;
mod export;
pub mod header;
pub mod header_rewrite;
pub mod health_check;
pub mod lbmethod;
pub mod log;
pub mod rules;
pub mod testing;

pub use alloc::Recycling;
pub use completion::{AttemptOutcome, Completion, Completions};
pub use config::Config;
pub use header::Header;
pub use header_rewrite::{Context, Edit, HeaderRewrite, Interest, PhaseInterest};
pub use health_check::{HealthCheck, HttpProbe, HttpResponse, HttpVersion, Outcome, Probe, Verdict};
pub use lbmethod::{Candidate, Candidates, Decision, Field, LbMethod, MemberInfo, Plan, Request, plan_by_picking};

/// Generated bindings for the WIT package, one module per world. Not a stable API: use the
/// SDK's own types.
///
/// Each `generate!` has `pub_export_macro`, so its module carries only the world's imports
/// (a custom section describing `log` and `types`), and the world's exports are described by
/// its export macro: a plugin crate gets the exports of the macro it invokes and no others.
#[doc(hidden)]
#[allow(missing_docs, unreachable_pub, unsafe_code, clippy::all)]
pub mod wit {
    pub mod lbmethod {
        wit_bindgen::generate!({
            path: "wit",
            world: "lbmethod-plugin",
            pub_export_macro: true,
            export_macro_name: "__export_lbmethod_world",
            default_bindings_module: "switchyard_sdk::wit::lbmethod",
        });
    }

    pub mod health_check {
        wit_bindgen::generate!({
            path: "wit",
            world: "health-check-plugin",
            pub_export_macro: true,
            export_macro_name: "__export_health_check_world",
            default_bindings_module: "switchyard_sdk::wit::health_check",
        });
    }

    pub mod header_rewrite {
        wit_bindgen::generate!({
            path: "wit",
            world: "header-rewrite-plugin",
            pub_export_macro: true,
            export_macro_name: "__export_header_rewrite_world",
            default_bindings_module: "switchyard_sdk::wit::header_rewrite",
        });
    }
}

#[doc(hidden)]
pub mod __private {
    //! What the export macros expand to; not an API.
    pub use crate::export::{header_rewrite, health_check, lbmethod};
}
