//! The plugin runtime: the only code that knows wasmtime.
//!
//! One [`wasmtime::Engine`] for the process, one [`Linker`] per plugin world (WASI, denied
//! everything, plus the world's own imports), a compiled [`Component`] per plugin source
//! (compiled once, off the async threads), and per loaded plugin — a balancer's
//! [`WasmLbMethod`], a [`WasmHealthCheck`], a route's [`WasmHeaderRewrite`] — the
//! pre-instantiated component, its config and a pool of instances (`instances`). Every call
//! runs under a CPU deadline (epoch interruption) and a memory cap; a trap fails that call
//! only.
//!
//! Calls are synchronous: the WASI plugins get never blocks (see `wasi`), so a call cannot
//! wait on the host and needs neither a fiber nor the tokio runtime.

mod bindings;
mod breaker;
mod builtin;
mod cache;
mod engine;
mod feedback;
mod header_rewrite;
mod health_check;
mod instances;
mod lbmethod;
mod state;
pub mod tools;
mod wasi;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

pub use cache::sha256_hex;
pub use header_rewrite::WasmHeaderRewrite;
pub use health_check::WasmHealthCheck;
pub use instances::{CallError, PluginStats};
pub use lbmethod::WasmLbMethod;

use crate::config::{PluginLimits, PluginSource, PluginSpec};
use cache::CompiledCache;
use engine::EpochTicker;
use instances::{LoadParams, SETUP_ALLOWANCE};
use state::PluginState;

/// Why a plugin could not be loaded. Messages name the plugin; callers add where it was
/// configured.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The engine could not be set up.
    #[error("wasm engine: {0}")]
    Engine(String),
    /// The component file could not be read.
    #[error("cannot read plugin {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The bytes are not a valid component for this engine.
    #[error("plugin {plugin} does not compile: {reason}")]
    Compile {
        /// Which plugin.
        plugin: String,
        /// The compiler's message.
        reason: String,
    },
    /// The component needs imports Switchyard does not provide, or lacks the world's exports.
    #[error("plugin {plugin} does not fit the {world} world: {reason}")]
    Link {
        /// Which plugin.
        plugin: String,
        /// The world it was loaded as.
        world: &'static str,
        /// What is missing.
        reason: String,
    },
    /// The plugin's `configure` refused its config.
    #[error("plugin {plugin} refused its config: {message}")]
    Configure {
        /// Which plugin.
        plugin: String,
        /// The plugin's own message.
        message: String,
    },
    /// The plugin trapped or answered nonsense while being tried out before use.
    #[error("plugin {plugin} failed its self-test: {reason}")]
    SelfTest {
        /// Which plugin.
        plugin: String,
        /// What went wrong.
        reason: String,
    },
}

/// Loads and runs plugins. One per process.
pub struct PluginRuntime {
    engine: Engine,
    lbmethod_linker: Linker<PluginState>,
    health_linker: Linker<PluginState>,
    rewrite_linker: Linker<PluginState>,
    limits: PluginLimits,
    ticker: Arc<EpochTicker>,
    /// Compiled components by the SHA-256 of their bytes.
    compiled: Mutex<HashMap<String, Component>>,
    /// The SHA-256 of each component read before, with what its file's metadata said then
    /// (`None` for a default plugin, whose bytes never change): a rebuild finds an unchanged
    /// file's compiled component without reading and hashing the file again.
    known: Mutex<HashMap<PluginSource, (Option<FileStamp>, String)>>,
    /// Each plugin's counters by role (`web/lbmethod/byrequests`), version and config, so a
    /// plugin loaded again for a new build counts on (and two loaded copies never share).
    stats: Mutex<HashMap<(String, String, String), Arc<PluginStats>>>,
    /// Compiled components on disk, when a cache directory is configured.
    disk: Option<Arc<CompiledCache>>,
    /// How many threads call plugins at once (the proxy's workers): each keeps an instance
    /// of every plugin it calls, so each plugin keeps this many ready.
    callers: usize,
}

impl PluginRuntime {
    /// Sets up the engine, the linkers and the deadline ticker.
    pub fn new(limits: PluginLimits) -> Result<Self, PluginError> {
        Self::with_cache(limits, None)
    }

    /// Like [`PluginRuntime::new`], keeping compiled components in `cache` (a directory) too.
    pub fn with_cache(limits: PluginLimits, cache: Option<&std::path::Path>) -> Result<Self, PluginError> {
        let engine = engine::engine()?;
        let linker = || -> Result<Linker<PluginState>, PluginError> {
            let mut linker = Linker::new(&engine);
            wasi::add_to_linker(&mut linker).map_err(|e| PluginError::Engine(format!("{e:#}")))?;
            bindings::add_to_linker(&mut linker).map_err(|e| PluginError::Engine(format!("{e:#}")))?;
            Ok(linker)
        };
        let (lbmethod_linker, health_linker, rewrite_linker) = (linker()?, linker()?, linker()?);
        let ticker = Arc::new(EpochTicker::start(&engine, limits.deadline)?);
        let disk = cache.map(|dir| CompiledCache::open(dir, &engine).map(Arc::new)).transpose()?;
        let callers = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Self { engine, lbmethod_linker, health_linker, rewrite_linker, limits, ticker, compiled: Mutex::new(HashMap::new()), known: Mutex::new(HashMap::new()), stats: Mutex::new(HashMap::new()), disk, callers })
    }

    /// Plugins loaded from now on keep an instance ready for each of `threads` calling threads
    /// (the proxy's workers), when that is more than one per CPU, the default.
    pub fn calling_threads(mut self, threads: usize) -> Self {
        self.callers = self.callers.max(threads);
        self
    }

    /// Loads the lbmethod `spec` for balancer `balancer`: compiles (or reuses) the component,
    /// instantiates it, configures it and self-tests it.
    pub async fn lbmethod(&self, spec: &PluginSpec, balancer: &str) -> Result<Arc<WasmLbMethod>, PluginError> {
        let name = plugin_name(&spec.source);
        let (component, sha) = self.component(&spec.source, &name).await?;
        WasmLbMethod::load(&component, self.params(&self.lbmethod_linker, name, &sha, format!("{balancer}/lbmethod"), spec))
    }

    /// Loads the health check `spec`, used by `users` (for log lines).
    pub async fn health_check(&self, spec: &PluginSpec, users: &str) -> Result<Arc<WasmHealthCheck>, PluginError> {
        let name = plugin_name(&spec.source);
        let (component, sha) = self.component(&spec.source, &name).await?;
        WasmHealthCheck::load(&component, self.params(&self.health_linker, name, &sha, format!("{users}/healthcheck"), spec))
    }

    /// Loads the header rewrite `spec` for route `route`.
    pub async fn header_rewrite(&self, spec: &PluginSpec, route: &str) -> Result<Arc<WasmHeaderRewrite>, PluginError> {
        let name = plugin_name(&spec.source);
        let (component, sha) = self.component(&spec.source, &name).await?;
        WasmHeaderRewrite::load(&component, self.params(&self.rewrite_linker, name, &sha, format!("{route}/rewrite"), spec))
    }

    fn params<'a>(&'a self, linker: &'a Linker<PluginState>, name: String, sha: &str, role: String, spec: &PluginSpec) -> LoadParams<'a> {
        let label = format!("{role}/{name}");
        let stats = match self.stats.lock() {
            Ok(mut kept) => {
                // Bounded: a long-lived proxy swapping in ever new versions must not keep them all.
                if kept.len() >= MAX_KEPT_STATS {
                    kept.clear();
                }
                Arc::clone(kept.entry((label.clone(), sha.to_string(), spec.config_json.clone())).or_default())
            }
            Err(_) => Arc::default(),
        };
        LoadParams {
            engine: &self.engine,
            linker,
            label,
            name,
            version: version_of(sha).into(),
            stats,
            config_json: spec.config_json.clone(),
            limits: self.limits,
            call_ticks: self.ticker.ticks_for(self.limits.deadline),
            setup_ticks: self.ticker.ticks_for(self.limits.deadline + SETUP_ALLOWANCE),
            ticker: Arc::clone(&self.ticker),
            callers: self.callers,
        }
    }

    /// The compiled component for `source`: from memory, else from the cache on disk, else
    /// compiled — both on a blocking thread, never on a worker. Components are keyed by the
    /// SHA-256 of their bytes, so a file that changed is compiled again and one loaded for
    /// several balancers (or again, unchanged) is compiled once.
    async fn component(&self, source: &PluginSource, name: &str) -> Result<(Component, String), PluginError> {
        let stamp = match source {
            PluginSource::Builtin(_) => None,
            PluginSource::File(path) => tokio::fs::metadata(path).await.ok().map(|m| FileStamp::of(&m)),
        };
        let known = self.known.lock().ok().and_then(|k| k.get(source).filter(|(then, _)| *then == stamp).map(|(_, sha)| sha.clone()));
        if let Some(sha) = known
            && let Some(c) = self.compiled.lock().ok().and_then(|c| c.get(&sha).cloned())
        {
            return Ok((c, sha));
        }
        let bytes: Arc<[u8]> = match source {
            PluginSource::Builtin(builtin) => builtin::component(builtin)
                .ok_or_else(|| PluginError::Compile { plugin: name.to_string(), reason: "no such default plugin".into() })?
                .into(),
            PluginSource::File(path) => tokio::fs::read(path)
                .await
                .map_err(|source| PluginError::Read { path: path.display().to_string(), source })?
                .into(),
        };
        let sha = sha256_hex(&bytes);
        // Kept only for a file that did not change while it was read and was not written in
        // the last seconds (a rewrite of the same length within one ctime tick would
        // otherwise go unnoticed) — or that is named by its own SHA-256, as the manager's
        // plugin store names its versions, and is written once, by rename.
        let settled = match source {
            PluginSource::Builtin(_) => true,
            PluginSource::File(path) => {
                let named_by_content = path.file_name().is_some_and(|n| *n == *format!("{sha}.wasm"));
                tokio::fs::metadata(path).await.ok().is_some_and(|m| Some(FileStamp::of(&m)) == stamp && (named_by_content || FileStamp::of(&m).settled()))
            }
        };
        if settled && let Ok(mut known) = self.known.lock() {
            if known.len() >= MAX_CACHED_COMPONENTS {
                known.clear();
            }
            known.insert(source.clone(), (stamp, sha.clone()));
        }
        if let Some(c) = self.compiled.lock().ok().and_then(|c| c.get(&sha).cloned()) {
            return Ok((c, sha));
        }
        let (engine, disk, key) = (self.engine.clone(), self.disk.clone(), sha.clone());
        let started = std::time::Instant::now();
        let (component, from_disk) = tokio::task::spawn_blocking(move || {
            if let Some(c) = disk.as_ref().and_then(|d| d.load(&engine, &key)) {
                return Ok((c, true));
            }
            let compiled = Component::new(&engine, &*bytes)?;
            if let Some(d) = &disk {
                d.store(&key, &compiled);
            }
            Ok::<_, wasmtime::Error>((compiled, false))
        })
        .await
        .map_err(|e| PluginError::Compile { plugin: name.to_string(), reason: e.to_string() })?
        .map_err(|e| PluginError::Compile { plugin: name.to_string(), reason: compile_reason(&e) })?;
        let how = if from_disk { "loaded compiled from the cache" } else { "compiled" };
        tracing::info!(plugin = name, sha256 = &sha[..12], elapsed_ms = started.elapsed().as_secs_f64() * 1e3, "plugin {how}");
        if let Ok(mut compiled) = self.compiled.lock() {
            // Bounded: a long-lived proxy loading ever new versions must not keep them all.
            if compiled.len() >= MAX_CACHED_COMPONENTS {
                compiled.clear();
            }
            compiled.insert(sha.clone(), component.clone());
        }
        Ok((component, sha))
    }
}

/// Refuses what is plainly not a component, in words, before any compiling (the compiler's
/// own message comes when the version is loaded).
pub fn component_header(bytes: &[u8]) -> Result<(), &'static str> {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', _, _, 1, 0]) => Ok(()),
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => Err("a core WebAssembly module, not a component: build for wasm32-wasip2 or run `wasm-tools component new`"),
        _ => Err("not a WebAssembly component (bad magic number)"),
    }
}

/// How the manager, the metrics and the logs name a version of a plugin: `sha256:` and the
/// first 12 hex digits of its component's SHA-256 (the plugins directory keeps the whole).
pub fn version_of(sha256: &str) -> String {
    format!("sha256:{}", &sha256[..sha256.len().min(12)])
}

/// What a file's metadata said when it was read: a file written since differs in one of
/// these (its change time moves on every write).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    inode: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl FileStamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self { len: meta.len(), inode: meta.ino(), modified: (meta.mtime(), meta.mtime_nsec()), changed: (meta.ctime(), meta.ctime_nsec()) }
    }

    /// Whether the file was last changed more than two seconds ago.
    fn settled(&self) -> bool {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        i64::try_from(now).is_ok_and(|now| now - self.changed.0 > 2)
    }
}

/// Most plugin counters kept by role and version.
const MAX_KEPT_STATS: usize = 4096;

/// Most compiled components kept in memory for reuse.
const MAX_CACHED_COMPONENTS: usize = 32;

/// The compiler's refusal in a sentence: what is plainly not a component says so, instead of
/// wasmtime's dump of the bytes it read.
fn compile_reason(e: &wasmtime::Error) -> String {
    let full = format!("{e:#}");
    if full.contains("magic header") || full.contains("bad magic") {
        return "not a WebAssembly component (bad magic number)".to_string();
    }
    if full.contains("expected a WebAssembly component but found a core module") || full.contains("found a core module") {
        return "a core WebAssembly module, not a component".to_string();
    }
    full.lines().next().unwrap_or_default().to_string()
}

/// A short name for a plugin: the default method's name, or the file name.
fn plugin_name(source: &PluginSource) -> String {
    match source {
        PluginSource::Builtin(name) => name.clone(),
        PluginSource::File(path) => path.file_name().map_or_else(|| path.display().to_string(), |f| f.to_string_lossy().into_owned()),
    }
}
