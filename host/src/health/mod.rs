//! Health checks (httpd's mod_proxy_hcheck): each checked member is probed on its own
//! schedule, the outcome is judged by a [`HealthCheck`] (normally a Wasm plugin), and after
//! `hcfails` failures in a row the member gets C (not chosen) — after `hcpasses` passes in a
//! row C and E are cleared.
//!
//! The host owns the schedule and the I/O ([`schedule`], [`probe`]); the check owns the
//! decisions. httpd counts passes and failures without resetting on the opposite result; we
//! count them consecutively (a flapping member is not taken out by scattered failures).
//!
//! # Layout
//! - [`counter`]: the pass/fail state machine, pure.
//! - [`probe`]: sends one probe (a TCP connect or an HTTP request) with a timeout.
//! - [`schedule`]: the per-member loop, and the counters the manager shows.

mod counter;
mod probe;
mod schedule;

pub use counter::{Counter, Transition};
pub use schedule::{HealthState, HealthStatus, Settings, spawn};

/// The member a probe goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The member's URL as configured.
    pub url: String,
    /// Host to connect to.
    pub host: String,
    /// Port to connect to.
    pub port: u16,
    /// The member URL's path without a trailing slash.
    pub base_path: String,
}

/// What to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// A TCP connect.
    Tcp,
    /// An HTTP request.
    Http(HttpProbe),
}

/// An HTTP probe request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpProbe {
    /// The method.
    pub method: String,
    /// The origin-form target.
    pub path: String,
    /// HTTP/1.0 rather than HTTP/1.1.
    pub http10: bool,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// How many body bytes to read for the judgement (capped at [`MAX_BODY`]).
    pub body_limit: u32,
}

/// The most body bytes a probe reads.
pub const MAX_BODY: u32 = 64 * 1024;

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A TCP probe connected.
    Connected,
    /// The probe could not be completed; why.
    Failed(String),
    /// An HTTP probe got a response.
    Response(HttpResponse),
}

/// A probe's response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers in order (values lossily UTF-8).
    pub headers: Vec<(String, String)>,
    /// The first `body_limit` bytes of the body.
    pub body: Vec<u8>,
}

/// A judgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the probe passed.
    pub healthy: bool,
    /// Why.
    pub reason: String,
}

/// Why a check gave no answer (it then counts as a failed probe).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CheckError(pub String);

/// Health-check logic: describes probes and judges outcomes. Shared by the members that use
/// it; calls may be concurrent.
pub trait HealthCheck: Send + Sync + 'static {
    /// A name for logs.
    fn name(&self) -> &str;
    /// The probe to send to `target` now.
    fn probe(&self, target: &Target) -> Result<Probe, CheckError>;
    /// Judges what a probe of `target` came to.
    fn judge(&self, target: &Target, outcome: &Outcome) -> Result<Verdict, CheckError>;
    /// How its calls went, for `/metrics`; `None` for a check that does not count them.
    fn calls(&self) -> Option<crate::observe::PluginCalls> {
        None
    }
}
