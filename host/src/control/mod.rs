//! The running state's one way to change: the config file with the runtime overlay laid over
//! it ([`overlay`]), built completely, kept ([`dirs`], when `[admin] persist` is set), then
//! published at once. A SIGHUP, `POST /api/reload` and every balancer-manager edit go through
//! [`Control::change`]; a refused change — a bad value, a plugin that does not load, a state
//! file that cannot be written — leaves the running state, the overlay and the state file as
//! they were.
//!
//! The overlay starts as the state file's (or empty) and lives across reloads, so runtime
//! edits win over the file until `DELETE /api/overrides` ([`Change::DropOverrides`]) drops them.
//!
//! # Layout
//! - `overlay`: what changed at run time, and how it is laid over the file's TOML.
//! - `dirs`: the state directory and the plugin store (cap-std handles).
//! - `edit`: the changes the manager asks for, turned into a new overlay.

pub mod dirs;
mod edit;
pub mod overlay;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;

pub use dirs::{DirError, PluginStore, StateDir};
pub use edit::{BALANCER_KEYS, Change, MemberChange, MemberRef};
pub use overlay::{LbMethodChoice, Overlay, OverlayError};

use crate::config::{self, Config, ConfigErrors};
use crate::proxy::Proxy;
use crate::server::Reloader;

/// Why a change was refused; the running state is as it was.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No such balancer or member.
    #[error("{0}")]
    NotFound(String),
    /// The change asks for something invalid (the reason says what).
    #[error("{0}")]
    Invalid(String),
    /// The change needs what is not set up (`[admin] plugins` for uploads, a version to roll
    /// back to).
    #[error("{0}")]
    Unavailable(String),
    /// The config file could not be read or is invalid.
    #[error("{0}")]
    File(ConfigErrors),
    /// The new state could not be built or kept (a plugin that does not load, a state file
    /// that cannot be written…).
    #[error("{0}")]
    Refused(String),
    /// The change could not be kept in the state directory; nothing was changed.
    #[error("the change could not be kept: {0}")]
    NotKept(String),
    /// Something still uses what the change would take away.
    #[error("{0}")]
    InUse(String),
    /// A directory could not be opened or the state file read.
    #[error(transparent)]
    Dir(#[from] DirError),
}

/// What the manager shows next to the running proxy: the file as read and what differs.
#[derive(Debug)]
pub struct View {
    /// The config file alone.
    pub file: Arc<Config>,
    /// The runtime changes laid over it.
    pub overlay: Overlay,
    /// Changes kept in the overlay that name what the file no longer has.
    pub passed_over: Vec<String>,
}

/// Counts of changes, for `/metrics`.
#[derive(Debug, Default)]
pub struct ControlStats {
    /// Config file reloads that were applied / refused.
    pub reloads: [AtomicU64; 2],
    /// Manager edits applied / refused (lbmethod changes not included).
    pub edits: [AtomicU64; 2],
    /// lbmethod changes and rollbacks (hot swaps) applied / refused.
    pub swaps: [AtomicU64; 2],
}

/// Everything needed before the proxy starts: the file, the directories, the overlay.
pub struct Boot {
    path: PathBuf,
    text: String,
    file: Config,
    overlay: Overlay,
    /// The kept changes [`Boot::config`] passed over.
    passed_over: Vec<String>,
    state: Option<StateDir>,
    store: Option<PluginStore>,
}

impl Boot {
    /// Reads the config file, opens `[admin]`'s directories and reads the kept overlay.
    pub fn open(path: &Path) -> Result<Self, ControlError> {
        let (text, file) = read_file(path)?;
        let admin = file.admin.as_ref();
        let state = admin.and_then(|a| a.persist.as_deref()).map(StateDir::open).transpose()?;
        let store = admin.and_then(|a| a.plugins.as_deref()).map(PluginStore::open).transpose()?;
        let overlay = match &state {
            Some(state) => state.load()?,
            None => Overlay { version: overlay::FORMAT_VERSION, ..Overlay::default() },
        };
        Ok(Self { path: path.to_path_buf(), text, file, overlay, passed_over: Vec::new(), state, store })
    }

    /// The config to start with: the file with the kept overlay laid over it.
    pub fn config(&mut self) -> Result<Config, ControlError> {
        // The file alone was checked when it was read: what is wrong now came with the kept
        // changes, so the state file is the one named.
        let (config, passed_over) = effective(&self.path, &self.text, &self.file, &self.overlay, self.store.as_ref()).map_err(|e| match (&self.state, e) {
            (Some(state), ControlError::Invalid(reason)) => {
                ControlError::Dir(DirError::BadState { path: state.file(), reason: format!("a kept change does not fit the config file: {reason}") })
            }
            (_, e) => e,
        })?;
        for note in &passed_over {
            tracing::warn!(state = %self.state.as_ref().map(|s| s.file().display().to_string()).unwrap_or_default(), "{note}");
        }
        self.passed_over = passed_over;
        Ok(config)
    }

    /// The config file alone.
    pub fn file(&self) -> &Config {
        &self.file
    }

    /// Takes charge of the proxy `reloader` drives, which was started with [`Boot::config`].
    pub fn into_control(self, reloader: Reloader) -> Arc<Control> {
        let view = View { file: Arc::new(self.file), overlay: self.overlay, passed_over: self.passed_over };
        Arc::new(Control {
            reloader,
            state: self.state,
            store: self.store,
            file_text: tokio::sync::Mutex::new((self.path, self.text)),
            view: ArcSwap::from_pointee(view),
            stats: ControlStats::default(),
        })
    }
}

/// The running state's owner; see the module docs.
pub struct Control {
    reloader: Reloader,
    state: Option<StateDir>,
    store: Option<PluginStore>,
    /// The config file's path and its text as last read; held while a change is made, so
    /// changes happen one at a time.
    file_text: tokio::sync::Mutex<(PathBuf, String)>,
    view: ArcSwap<View>,
    stats: ControlStats,
}

/// What a change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Members whose live state was carried over.
    pub members_kept: usize,
}

impl Control {
    /// The proxy in service now.
    pub fn current(&self) -> Arc<Proxy> {
        self.reloader.current()
    }

    /// The file and the overlay behind the proxy in service.
    pub fn view(&self) -> Arc<View> {
        self.view.load_full()
    }

    /// Counts of changes.
    pub fn stats(&self) -> &ControlStats {
        &self.stats
    }

    /// The plugin store, when `[admin] plugins` is set.
    pub fn store(&self) -> Option<&PluginStore> {
        self.store.as_ref()
    }

    /// How many idle client connections are parked now.
    pub fn parked_connections(&self) -> usize {
        self.reloader.parked_connections()
    }

    /// How many times memory freed by ended connection tasks was handed back to the system.
    pub fn memory_trims(&self) -> u64 {
        self.reloader.memory_trims()
    }

    /// The access log in service opens its file again (SIGUSR1).
    pub fn reopen_logs(&self) {
        self.reloader.reopen_logs();
    }

    /// Forgets the kept plugin version `given` names (as [`PluginStore::resolve`] reads it),
    /// unless something uses it: a balancer runs it, keeps it to roll back to, runs it in
    /// shadow, or falls back to it. Made between changes, never beside one. Returns its
    /// SHA-256.
    pub async fn forget_version(&self, given: &str) -> Result<String, ControlError> {
        let _one_at_a_time = self.file_text.lock().await;
        let store = self.store.as_ref().ok_or_else(|| ControlError::Unavailable("plugin uploads need `[admin] plugins` (a directory) in the config".into()))?;
        let sha = store.resolve(given)?;
        let version = crate::plugin::version_of(&sha);
        let named = |choice: Option<&LbMethodChoice>| matches!(choice, Some(LbMethodChoice::Stored { sha256, .. }) if *sha256 == sha);
        let view = self.view.load_full();
        let kept = view.overlay.balancers.iter().filter(|(_, b)| {
            named(b.lbmethod.as_ref()) || named(b.rollback.as_ref().and_then(|r| r.lbmethod.as_ref())) || matches!(&b.shadow, Some(overlay::ShadowChange::Set(c)) if named(Some(c)))
        });
        let running = self.reloader.current();
        let serving = running.balancers().iter().filter(|b| {
            b.lbmethod().version() == version || b.previous_method().is_some_and(|m| m.version() == version) || b.shadow().is_some_and(|s| s.method().version() == version)
        });
        let mut users: Vec<String> = kept.map(|(name, _)| name.clone()).chain(serving.map(|b| b.name().to_string())).collect();
        users.sort();
        users.dedup();
        if !users.is_empty() {
            return Err(ControlError::InUse(format!("version {version} is in use by balancer {} (as its lbmethod, the one to roll back to or fall back to, or its shadow)", users.join(", "))));
        }
        store.remove(&sha)?;
        Ok(sha)
    }

    /// Makes `change`: the new overlay, the new running state built from the file and it,
    /// the overlay kept, then both published. `ReloadFile` reads the file again.
    pub async fn change(&self, change: Change) -> Result<Applied, ControlError> {
        let counter = match &change {
            Change::ReloadFile => &self.stats.reloads,
            Change::LbMethod { .. } | Change::Rollback { .. } | Change::Shadow { .. } => &self.stats.swaps,
            Change::Batch(changes) if changes.iter().any(|c| matches!(c, Change::LbMethod { .. })) => &self.stats.swaps,
            _ => &self.stats.edits,
        };
        let outcome = self.change_inner(change).await;
        counter[usize::from(outcome.is_err())].fetch_add(1, Ordering::Relaxed);
        outcome
    }

    async fn change_inner(&self, change: Change) -> Result<Applied, ControlError> {
        let mut file_text = self.file_text.lock().await;
        let view = self.view.load_full();
        let (path, mut text) = (file_text.0.clone(), file_text.1.clone());
        let mut file = Arc::clone(&view.file);
        let mut overlay = view.overlay.clone();
        let mut live_flags = Vec::new();
        match change {
            Change::ReloadFile => {
                let (new_text, new_file) = read_file(&path)?;
                text = new_text;
                file = Arc::new(new_file);
            }
            other => {
                let running = self.reloader.current();
                let cx = edit::Context { running: &running, file: &file, store: self.store.as_ref() };
                live_flags = edit::apply(other, &mut overlay, &cx)?;
            }
        }
        overlay.tidy();
        let overlay_changed = overlay != view.overlay;
        let (config, passed_over) = effective(&path, &text, &file, &overlay, self.store.as_ref())?;
        let report = self
            .reloader
            .publish(config, |_| match &self.state {
                Some(state) if overlay_changed => state.save(&overlay).map_err(|e| e.to_string()),
                _ => Ok(()),
            })
            .await
            .map_err(|e| match e {
                crate::server::ReloadError::NotKept(reason) => ControlError::NotKept(reason),
                other => ControlError::Refused(other.to_string()),
            })?;
        let now = self.reloader.current();
        for flags in live_flags {
            flags.apply(&now);
        }
        file_text.1 = text;
        self.view.store(Arc::new(View { file, overlay, passed_over }));
        Ok(Applied { members_kept: report.members_kept })
    }
}

/// Reads and checks the config file.
fn read_file(path: &Path) -> Result<(String, Config), ControlError> {
    let text = std::fs::read_to_string(path).map_err(|e| ControlError::File(ConfigErrors::whole_file(path.to_path_buf(), format!("cannot read: {e}"))))?;
    let config = config::parse(&text, path).map_err(ControlError::File)?;
    Ok((text, config))
}

/// The file with `overlay` laid over it, checked as the file is.
fn effective(path: &Path, text: &str, file: &Config, overlay: &Overlay, store: Option<&PluginStore>) -> Result<(Config, Vec<String>), ControlError> {
    if overlay.is_empty() {
        return Ok((file.clone(), Vec::new()));
    }
    let mut table: toml::Table = toml::from_str(text).map_err(|e| ControlError::Invalid(e.to_string()))?;
    let stored = |sha: &str| store.and_then(|s| s.path_of(sha)).map(|p| p.display().to_string());
    let passed_over = overlay.apply(&mut table, &stored).map_err(|e| ControlError::Invalid(e.0))?;
    let text = toml::to_string(&table).map_err(|e| ControlError::Invalid(e.to_string()))?;
    let config = config::parse_overlaid(&text, path).map_err(|errors| {
        let reasons: Vec<String> = errors.0.iter().map(|e| if e.key.is_empty() { e.message.clone() } else { format!("{}: {}", e.key, e.message) }).collect();
        ControlError::Invalid(reasons.join("; "))
    })?;
    Ok((config, passed_over))
}
