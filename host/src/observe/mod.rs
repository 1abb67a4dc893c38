//! Observability below the request path: the access log, the request id, and the per-route
//! traffic counters that `/metrics` reads.
//!
//! The request path fills an [`Entry`]; when its answer ends, the worker formats the line
//! into a batch of its own, and a writer thread of the log's own writes every worker's batch
//! in rounds. A full batch drops the line (counted), never slows a request.

mod access;
mod render;
mod request_id;
mod traffic;
mod writer;

pub use access::{AccessLog, Entry, PendingEntry};
pub use writer::AccessLogError;
pub use request_id::new_request_id;
pub use traffic::{BUCKETS, CALL_BUCKETS, Latency, LatencySnapshot, PluginCalls, TrafficSnapshot, TrafficStats};
