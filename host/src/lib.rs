//! Switchyard: a reverse proxy and load balancer with httpd's semantics whose policy parts
//! (load-balancing methods) are sandboxed WebAssembly components.
//!
//! # Layout
//! Dependencies point one way, top to bottom:
//! - [`config`]: the TOML file, checked into a typed model.
//! - [`balancer`]: members, flags, failover tiers, counters; asks an [`balancer::LbMethod`].
//! - [`plugin`]: the Wasm runtime; implements [`balancer::LbMethod`] with components.

#![forbid(unsafe_code)]

pub mod balancer;
pub mod config;
mod deadline;
pub mod edge;
pub mod plugin;
pub mod proxy;
pub mod server;
