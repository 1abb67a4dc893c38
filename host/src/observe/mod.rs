//! Observability below the request path: the access log (lines made off the request path
//! by a writer thread of its own), the request id, and the per-route traffic counters that
//! `/metrics` reads.
//!
//! The request path only fills an [`Entry`] and hands it over; formatting and writing
//! happen on the writer thread, and a full queue drops the line (counted), never slows a
//! request.

mod access;
mod render;
mod request_id;
mod traffic;

pub use access::{AccessLog, AccessLogError, Entry, PendingEntry};
pub use request_id::new_request_id;
pub use traffic::{BUCKETS, CALL_BUCKETS, Latency, LatencySnapshot, TrafficSnapshot, TrafficStats};
