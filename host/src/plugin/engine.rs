//! The one wasmtime `Engine` and the ticker thread that gives every plugin call a CPU deadline.
//!
//! Deadlines use epoch interruption: a thread bumps the engine's epoch every `tick`, and each
//! call is allowed a number of ticks. That costs a counter check at loop heads and function
//! entries, far cheaper than fuel, and a trap when the deadline passes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Engine, WasmBacktraceDetails};

use super::PluginError;

/// Set (to anything) to have plugin code named in `perf` profiles.
pub(crate) const PERFMAP_VAR: &str = "SWITCHYARD_PLUGIN_PERFMAP";

/// Builds the engine with the settings every plugin runs under.
pub(crate) fn engine() -> Result<Engine, PluginError> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    // Plugins use no component-model concurrency; its per-store machinery costs every call.
    config.concurrency_support(false);
    // Backtraces are for the log line of a trap; DWARF parsing is not worth it.
    config.wasm_backtrace_details(WasmBacktraceDetails::Disable);
    config.max_wasm_stack(512 << 10);
    // For plugin authors profiling with `perf`: compiled plugin functions get their names in
    // /tmp/perf-<pid>.map instead of showing as anonymous JIT addresses.
    if std::env::var_os(PERFMAP_VAR).is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    Engine::new(&config).map_err(|e| PluginError::Engine(e.to_string()))
}

/// Bumps the engine epoch every `tick` until dropped.
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    tick: Duration,
}

impl EpochTicker {
    /// Starts the ticker thread. The tick is a quarter of the deadline (1 ms..100 ms), so a
    /// call is stopped between 4 and 5 ticks after it started.
    pub(crate) fn start(engine: &Engine, deadline: Duration) -> Result<Self, PluginError> {
        let tick = (deadline / 4).clamp(Duration::from_millis(1), Duration::from_millis(100));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn({
                let engine = engine.clone();
                let stop = Arc::clone(&stop);
                move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(tick);
                        engine.increment_epoch();
                    }
                }
            })
            .map_err(|e| PluginError::Engine(format!("cannot start the epoch ticker: {e}")))?;
        Ok(Self { stop, thread: Some(thread), tick })
    }

    /// How many ticks a call of `deadline` is allowed (at least 1, rounding up, plus one for
    /// the partial tick in which the call started).
    pub(crate) fn ticks_for(&self, deadline: Duration) -> u64 {
        let ticks = deadline.as_nanos().div_ceil(self.tick.as_nanos().max(1));
        u64::try_from(ticks).unwrap_or(u64::MAX).saturating_add(1)
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // The thread wakes within one tick; joining keeps shutdown tidy.
            let _ = thread.join();
        }
    }
}
