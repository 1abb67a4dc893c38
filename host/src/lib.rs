//! Switchyard: a reverse proxy and load balancer with httpd's semantics whose policy parts
//! (load-balancing methods, health checks, header rewriting) are sandboxed WebAssembly
//! components.
//!
//! # Layout
//! Dependencies point one way, top to bottom:
//! - [`canon`]: the canonical request path (decoded, dot segments resolved, slashes merged);
//!   depends on nothing.
//! - `spare`: small vectors kept by each thread between uses; depends on nothing.
//! - `spare_box`: boxes whose memory each thread keeps for the next box of the same size (a
//!   request's answering future, its head, a member's body reader); depends on nothing.
//! - [`codec`]: HTTP/1 on the wire, once — framing rules, the body decoder, chunk encoding,
//!   response heads, hop-by-hop headers, names compared in any case; depends on nothing but
//!   `spare`.
//! - `splice`: bytes moved from one TCP socket to another through a pipe, never copied
//!   through user space (large answers from plain members to plain clients).
//! - [`worker`]: which worker thread this is (per-worker state is indexed by it).
//! - `head_buffer`: buffers that heads are written into, kept by each thread between uses.
//! - `deadline`: a deadline that arms no timer when the work finishes at once.
//! - [`durable`]: directories opened once as capabilities, files replaced atomically.
//! - [`config`]: the TOML file, checked into a typed model.
//! - [`observe`]: the access log (lines made and gathered by each worker, written by a
//!   thread of its own), request ids, latency histograms and traffic counters.
//! - [`scaffold`]: `switchyard plugin new`, a plugin project that builds outside this
//!   repository (depends on nothing).
//! - [`import`]: `switchyard import-httpd`, an httpd configuration turned into ours (uses
//!   [`config`] to check its result; nothing on the request path uses it).
//! - [`tls`]: rustls acceptors for TLS listeners and connectors to `https://` members.
//! - [`balancer`]: members, flags, failover tiers, counters; asks an [`balancer::LbMethod`].
//! - [`upstream`]: the member client — pools, connects (over [`tls`] for https members),
//!   writes requests, reads answers with [`codec`], streams bodies, joins tunnels; counts into
//!   [`balancer`] members. Knows nothing of the proxy above it.
//! - [`health`]: health-check scheduling and probes (a connection of [`upstream`]'s, answers
//!   read with [`codec`]); asks a [`health::HealthCheck`].
//! - [`rewrite`]: header-rewrite chains; ask [`rewrite::HeaderRewriter`]s.
//! - [`plugin`]: the Wasm runtime; implements those three seams with components.
//! - [`trace`]: a balancer's decisions recorded to a file (a [`balancer::PickObserver`]) and
//!   replayed offline through any [`balancer::LbMethod`].
//! - [`edge`]: below HTTP on client connections: the stream (plain or TLS), raw-head checks,
//!   head and idle deadlines.
//! - [`proxy`]: the request path: strict checks, routing, failover, member connections, the
//!   error responses.
//! - [`server`]: workers, listeners, connection limit, health-check tasks, graceful shutdown,
//!   and reload: a new config's proxy built, its listeners bound, then swapped in without
//!   refusing a connection.
//! - [`control`]: the running state's one way to change — the config file with the runtime
//!   overlay laid over it, built, persisted, published through [`server::Reloader`] — for
//!   SIGHUP and the manager alike.
//! - [`admin`]: the balancer manager (page, JSON API, metrics) on a listener of its own; every
//!   change it makes is a [`control::Change`].
//! - `fuzzing`: the entry points of the fuzz targets (`host/fuzz`), over the layers above.
//!
//! A test (`layout`) holds every `crate::` path in the sources to this order.

// Few `unsafe` places in the whole crate, each with its safety argument written down where
// it is: loading a compiled plugin from the cache on disk (`plugin::cache`), registering the
// parked connections' epoll set with tokio (`server::park`), glibc's `malloc_trim`
// (`server::trim`), and the kept blocks of `spare_box` (a box's raw memory, as `Box` holds
// it inside; tested there).
#![deny(unsafe_code)]

pub mod admin;
pub mod balancer;
pub mod canon;
pub mod codec;
pub mod config;
pub mod control;
mod deadline;
pub mod durable;
pub mod edge;
#[doc(hidden)]
pub mod fuzzing;
mod head_buffer;
pub mod health;
pub mod import;
#[cfg(test)]
mod layout;
pub mod observe;
pub mod plugin;
pub mod proxy;
pub mod rewrite;
pub mod scaffold;
pub mod server;
mod spare;
mod spare_box;
mod splice;
pub mod tls;
pub mod trace;
pub mod upstream;
pub mod worker;
