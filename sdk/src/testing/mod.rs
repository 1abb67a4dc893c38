//! Native stand-ins for the host, so a plugin's logic runs under plain `cargo test`, no Wasm.
//!
//! One harness per plugin kind. Each calls the plugin's trait directly, does what the host
//! does with the answer, and checks the answer as strictly as the host does (with the same
//! [`rules`](crate::rules)), so a test catches an answer the proxy would refuse:
//!
//! - [`Harness`] runs an [`LbMethod`](crate::LbMethod) against simulated members and their
//!   counters.
//! - [`HealthCheckHarness`] configures a [`HealthCheck`](crate::HealthCheck), asks it for the
//!   probe of a member, checks that probe and judges an outcome.
//! - [`HeaderRewriteHarness`] configures a [`HeaderRewrite`](crate::HeaderRewrite), passes it
//!   a message's headers filtered by its interest (or skips it, as the host would), and
//!   applies the edits it returns, keeping the ones the host would refuse apart.

mod header_rewrite;
mod health_check;
mod lbmethod;

pub use header_rewrite::{HeaderRewriteHarness, Refused, Rewritten};
pub use health_check::{HealthCheckHarness, check_probe};
pub use lbmethod::{Harness, SimMember, lbfactor_of};
