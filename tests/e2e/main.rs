//! End-to-end tests: the real proxy, real members on 127.0.0.1:0, real clients, real Wasm
//! components (the embedded default plugins and the test guests).

mod abandon;
mod access_log;
mod admin;
mod bodies;
mod browser;
mod canonical;
mod contract;
mod errors;
mod examples;
mod failover;
mod framing;
mod headers;
mod http1;
mod import;
mod health;
mod lbmethods;
mod limits;
mod manager;
mod manager_http;
mod parking;
mod pinned;
mod plugins;
mod reload;
mod rewrite;
mod shadow;
mod sticky;
mod tls;
mod timeouts;
mod trace;
mod upgrade;
