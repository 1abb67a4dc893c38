//! The trace file format: JSON lines, one object per line.
//!
//! A trace is one or more *segments*, each starting with a header naming the balancer and its
//! members (a segment per build of the balancer: a reload that changes it starts a new one):
//!
//! ```json
//! {"switchyard_trace":1,"balancer":"web","members":[{"url":"http://10.0.0.1:8080","loadfactor":1.0,"lbset":0,"route":"","status":""}]}
//! ```
//!
//! then events, each with `t`, microseconds since the segment began:
//!
//! - a pick — the request key, its sticky route if it had one, the members it had tried (a
//!   retry), the member chosen, and every member's requests in flight and bytes to and from
//!   it as the method saw them;
//!   `flags` (httpd's letters per member, `""` for none) when they changed since the last pick:
//!
//!   ```json
//!   {"t":1520,"pick":{"key":0,"chosen":1,"busy":[0,0],"transferred":[512,0],"read":[640,0],"flags":["","D"]}}
//!   ```
//!
//! - an attempt that ended — member, outcome (`response`, `connect-failed`, `timed-out`,
//!   `broken`), status, microseconds to the head (absent without one) and in all, body bytes:
//!
//!   ```json
//!   {"t":2480,"done":{"member":1,"outcome":"response","status":200,"head_us":830,"total_us":960,"received":2}}
//!   ```

use serde::{Deserialize, Serialize};

use crate::balancer::AttemptOutcome;

/// Outcomes as a trace names them.
const OUTCOMES: [(AttemptOutcome, &str); 4] = [
    (AttemptOutcome::Response, "response"),
    (AttemptOutcome::ConnectFailed, "connect-failed"),
    (AttemptOutcome::TimedOut, "timed-out"),
    (AttemptOutcome::Broken, "broken"),
];

/// The outcome's name in a trace.
pub fn outcome_name(outcome: AttemptOutcome) -> &'static str {
    OUTCOMES.iter().find(|(o, _)| *o == outcome).map_or("broken", |(_, n)| n)
}

/// The outcome a trace names, if it is one.
pub fn outcome_of(name: &str) -> Option<AttemptOutcome> {
    OUTCOMES.iter().find(|(_, n)| *n == name).map(|(o, _)| *o)
}

/// The format's version, in every header.
pub const VERSION: u32 = 1;

/// One line of a trace: a header or an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Line {
    /// Starts a segment.
    Header(Header),
    /// Something happened.
    Event(Event),
}

/// The start of a segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// [`VERSION`].
    pub switchyard_trace: u32,
    /// The balancer's name.
    pub balancer: String,
    /// Its members, in config order.
    pub members: Vec<TraceMember>,
}

/// A member as the header describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceMember {
    /// Its URL.
    pub url: String,
    /// Its loadfactor (1..100).
    pub loadfactor: f64,
    /// Its lbset.
    #[serde(default)]
    pub lbset: u32,
    /// Its sticky route.
    #[serde(default)]
    pub route: String,
    /// Its configured flags (httpd's letters), e.g. `"H"`.
    #[serde(default)]
    pub status: String,
}

/// An event: exactly one of `pick` and `done`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Microseconds since the segment began.
    pub t: u64,
    /// A request placed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pick: Option<Pick>,
    /// An attempt ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done: Option<Done>,
}

/// A request placed, and the members as the method saw them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pick {
    /// The request key.
    pub key: u64,
    /// The request's sticky route, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// The member chosen (position in the header's list).
    pub chosen: usize,
    /// Members this request had tried already (a retry), which could not be chosen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tried: Vec<usize>,
    /// Requests in flight, per member.
    pub busy: Vec<u64>,
    /// Bytes sent to each member so far.
    pub transferred: Vec<u64>,
    /// Bytes read from each member so far.
    pub read: Vec<u64>,
    /// Each member's flags, when they changed since the previous pick.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<Vec<String>>,
}

/// An attempt that ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Done {
    /// The member (position in the header's list).
    pub member: usize,
    /// `response`, `connect-failed`, `timed-out` or `broken`.
    pub outcome: String,
    /// The status; 0 without a head.
    #[serde(default)]
    pub status: u16,
    /// Microseconds to the response head, when one came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_us: Option<u64>,
    /// Microseconds in all.
    pub total_us: u64,
    /// Response body bytes.
    #[serde(default)]
    pub received: u64,
}
