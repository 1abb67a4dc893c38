//! The client edge of a connection, below HTTP: the raw bytes a client sends are scanned for
//! what the HTTP parser would normalise away ([`rawhead`]), and head and idle deadlines are
//! kept where the bytes arrive ([`Guard`]), with when an idle connection is parked
//! ([`Parking`]). What the guard finds reaches the request
//! service through [`ConnShared`].
//!
//! Nothing here knows the proxy: answers the guard writes itself are handed to it ready-made.

pub mod rawhead;
mod guard;
mod h2frames;
mod parking;
mod state;
mod stream;

pub use guard::{Answers, Guard, GuardSettings};
pub use parking::Parking;
pub(crate) use guard::Waited;
pub use rawhead::{Finding, Phase, ScanLimits, Scanner, Violation};
pub use state::{ConnShared, InFlight, Tracked, TunnelGuard, Tunnels};
pub use stream::ClientStream;
