//! What `switchyard plugin replay` does: load a method the way the proxy does, read a trace
//! file, replay it.

use std::path::Path;

use super::{Replay, ReplayError, replay};
use crate::config::{PluginLimits, PluginSource, PluginSpec};
use crate::plugin::{PluginError, PluginRuntime};

/// Why `plugin replay` could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayToolError {
    /// The method did not load.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// The trace could not be read.
    #[error("cannot read the trace {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The trace is not valid.
    #[error(transparent)]
    Trace(#[from] ReplayError),
}

/// Replays the trace at `trace` through `method` — a component file, or a default method's
/// name — configured with `config_json`.
pub async fn replay_file(method: &Path, trace: &Path, config_json: &str) -> Result<Replay, ReplayToolError> {
    let text = std::fs::read_to_string(trace).map_err(|source| ReplayToolError::Read { path: trace.display().to_string(), source })?;
    let runtime = PluginRuntime::new(PluginLimits::default())?;
    let name = method.to_string_lossy();
    let source = if crate::config::BUILTIN_LBMETHODS.contains(&name.as_ref()) {
        PluginSource::Builtin(name.into_owned())
    } else {
        PluginSource::File(method.to_path_buf())
    };
    let spec = PluginSpec { source, config_json: config_json.to_string(), origin: method.display().to_string() };
    let loaded: std::sync::Arc<dyn crate::balancer::LbMethod> = runtime.lbmethod(&spec, "replay").await?;
    Ok(replay(&text, &loaded)?)
}
