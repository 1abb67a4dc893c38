//! HTTP/1 on the wire, once: the rules every place that reads or writes HTTP/1 shares — the
//! raw-head scanner and strict checks on client requests, the fast path's answers, the member
//! client, the health probe, and the fuzz targets.
//!
//! - [`ascii`]: header names and tokens compared in any case, eight bytes at a time;
//! - [`fields`]: hop-by-hop headers, Connection tokens, writing a field line;
//! - [`framing`]: what Content-Length, Transfer-Encoding and Connection lines declare, and
//!   which combinations are refused;
//! - [`lines`]: header lines kept as they arrived, and one way to read them or a map;
//! - [`body`]: the body decoder (Content-Length, chunked, until close) and chunk encoding;
//! - [`response`]: parsing a response head into its status, lines and framing.
//!
//! No I/O happens here, and nothing here depends on the rest of the crate.

pub mod ascii;
pub mod body;
pub mod fields;
pub mod framing;
pub mod lines;
pub mod response;
