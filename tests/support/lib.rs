//! Support for the end-to-end tests: real member servers on 127.0.0.1:0, the real proxy
//! started from a config string, and HTTP clients. Everything binds to loopback, every wait
//! is bounded, and everything started here is stopped when its handle is dropped.

pub mod browser;
pub mod client;
pub mod js;
pub mod member;
pub mod proxy;
pub mod python;
pub mod recorder;
pub mod tls;
pub mod websocket;

/// Path of the misbehaving test guest component.
pub const GUEST_MISBEHAVE: &str = env!("GUEST_MISBEHAVE");

/// Path of the header-rewrite test guest whose edits the host must refuse.
pub const GUEST_BADREWRITE: &str = env!("GUEST_BADREWRITE");

/// Path of the health-check test guest that traps in `probe` or `judge`.
pub const GUEST_BADCHECK: &str = env!("GUEST_BADCHECK");

/// Path of the Rust example plugin's component (`examples/plugins/rendezvous-rs`).
pub const GUEST_RENDEZVOUS_RS: &str = env!("GUEST_RENDEZVOUS_RS");

/// Path of the peak-EWMA example plugin's component (`examples/plugins/peak-ewma-rs`).
pub const GUEST_PEAK_EWMA: &str = env!("GUEST_PEAK_EWMA");

/// Components built against version 0.1.0 of the plugin contract, kept as they were built
/// (byrequests, hcheck, proxypassreverse): the host must keep loading them unchanged.
pub const FIXTURES_WIT_0_1_0: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/wit-0.1.0");

/// Prints `note: {message}` straight to the process's stderr. The test harness captures what
/// `eprintln!` prints and shows it only for a failing test, so a note that a test was skipped
/// (a tool it needs is not installed) would never be seen when `cargo test` passes; this
/// one is, whatever the harness captures.
pub fn note(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "note: {message}");
}

/// Waits (bounded: 5 s) until `check` holds; panics naming `what` when it never does.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..500 {
        if check() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("never: {what}");
}
