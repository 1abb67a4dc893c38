//! Switchyard: a reverse proxy and load balancer with httpd's semantics whose policy parts
//! (load-balancing methods) are sandboxed WebAssembly components.
//!
//! # Layout
//! Dependencies point one way, top to bottom:
//! - [`config`]: the TOML file, checked into a typed model.
//! - [`balancer`]: members, flags, failover tiers, counters; asks an [`balancer::LbMethod`].
//! - [`plugin`]: the Wasm runtime; implements [`balancer::LbMethod`] with components.
//! - [`edge`]: below HTTP on client connections: raw-head checks, head and idle deadlines.
//! - [`proxy`]: the request path: strict checks, routing, forwarding, the error responses.
//! - [`server`]: workers, listeners, connection limit, graceful shutdown; [`reload`] swaps in
//!   a new config without refusing a connection.

#![forbid(unsafe_code)]

pub mod balancer;
pub mod config;
mod deadline;
pub mod edge;
#[doc(hidden)]
pub mod fuzzing;
pub mod plugin;
pub mod proxy;
pub mod reload;
pub mod server;
