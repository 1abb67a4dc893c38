//! Switchyard: a reverse proxy and load balancer with httpd's semantics whose policy parts
//! (load-balancing methods) are sandboxed WebAssembly components.
//!
//! # Layout
//! Dependencies point one way, top to bottom:
//! - [`config`]: the TOML file, checked into a typed model.

#![forbid(unsafe_code)]

pub mod config;
