//! Traces of a balancer's decisions: recorded by a running proxy (`record = "FILE"` on a
//! balancer), replayed offline through any lbmethod (`switchyard plugin replay`).
//!
//! - [`format`]: the file format (JSON lines), documented there and in the README.
//! - [`record`]: the [`balancer::PickObserver`](crate::balancer::PickObserver) that writes one.
//! - [`replay`]: a trace through a method, with the balancer and tier code the proxy runs.
//! - [`report`]: what `plugin replay` prints (a table, CSV or JSON).
//! - [`tool`]: `plugin replay` itself: a method loaded, a trace file read and replayed.

pub mod format;
pub mod record;
pub mod replay;
pub mod report;
pub mod tool;

pub use record::{RecordError, Recorder};
pub use replay::{Replay, ReplayError, Segment, replay};
pub use tool::{ReplayToolError, replay_file};
