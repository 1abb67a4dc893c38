//! Switchyard: a reverse proxy and load balancer with httpd's semantics whose policy parts
//! (load-balancing methods, health checks, header rewriting) are sandboxed WebAssembly
//! components.
//!
//! # Layout
//! Dependencies point one way, top to bottom:
//! - [`canon`]: the canonical request path (decoded, dot segments resolved, slashes merged);
//!   depends on nothing.
//! - [`config`]: the TOML file, checked into a typed model.
//! - [`tls`]: rustls acceptors for TLS listeners and connectors to `https://` members.
//! - [`balancer`]: members, flags, failover tiers, counters; asks an [`balancer::LbMethod`].
//! - [`health`]: health-check scheduling and probes; asks a [`health::HealthCheck`].
//! - [`rewrite`]: header-rewrite chains; ask [`rewrite::HeaderRewriter`]s.
//! - [`plugin`]: the Wasm runtime; implements those three seams with components.
//! - [`observe`]: the access log (written by a thread of its own) and request ids.
//! - [`edge`]: below HTTP on client connections: raw-head checks, head and idle deadlines.
//! - [`proxy`]: the request path: strict checks, routing, failover, member connections, the
//!   error responses.
//! - [`admin`]: the balancer manager (page, JSON API, metrics) on a listener of its own; uses
//!   the running server's handle ([`server::Reloader`]).
//! - [`import`]: `switchyard import-httpd`, an httpd configuration turned into ours (uses
//!   [`config`] to check its result; nothing on the request path uses it).
//! - [`server`]: workers, listeners, connection limit, health-check tasks, graceful shutdown;
//!   [`reload`] swaps in a new config without refusing a connection.

#![forbid(unsafe_code)]

pub mod admin;
pub mod balancer;
pub mod canon;
pub mod config;
mod deadline;
pub mod edge;
#[doc(hidden)]
pub mod fuzzing;
pub mod health;
pub mod import;
pub mod observe;
pub mod plugin;
pub mod proxy;
pub mod reload;
pub mod rewrite;
pub mod server;
pub mod tls;
