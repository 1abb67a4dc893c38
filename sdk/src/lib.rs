//! The Switchyard plugin SDK: write a load-balancing method in plain Rust, test it with
//! `cargo test` natively, and build it for `wasm32-wasip2` to get a component the proxy loads.
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
//! # Layout
//! - [`lbmethod`]: the [`LbMethod`] trait and the plain types it sees ([`Candidates`],
//!   [`Decision`], [`MemberInfo`], [`Request`]).
//! - [`config`]: [`Config`], the plugin's own TOML table, ready to deserialize.
//! - [`log`]: lines to the proxy's log.
//! - [`testing`]: a native stand-in for the host, so a plugin's tests run without Wasm.
//! - [`export_lbmethod!`]: turns a type into the component's exports.
//!
//! The WIT contract these types mirror is `wit/lbmethod.wit`; its `///` comments say who owns
//! which state and what the host does with an invalid answer.

#![deny(unsafe_code)] // only the generated bindings in `wit` use it

pub mod config;
mod export;
pub mod lbmethod;
pub mod log;
pub mod testing;

pub use config::Config;
pub use lbmethod::{Candidate, Candidates, Decision, Field, LbMethod, MemberInfo, Request};

/// Generated bindings for the WIT package. Not a stable API: use the SDK's own types.
#[doc(hidden)]
#[allow(missing_docs, unreachable_pub, unsafe_code, clippy::all)]
pub mod wit {
    wit_bindgen::generate!({
        path: "../wit",
        world: "lbmethod-plugin",
        pub_export_macro: true,
        export_macro_name: "__export_lbmethod_world",
        default_bindings_module: "switchyard_sdk::wit",
    });
}

#[doc(hidden)]
pub mod __private {
    //! What the export macros expand to; not an API.
    pub use crate::export::lbmethod;
}
