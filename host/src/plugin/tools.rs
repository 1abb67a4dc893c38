//! What `switchyard plugin check` and `plugin compile` do: a plugin author's
//! look at a component before a proxy loads it, through the same loading code the proxy uses.

use std::path::Path;

use wasmtime::component::Component;

use super::{PluginError, PluginRuntime};
use crate::config::{PluginLimits, PluginSource, PluginSpec};

/// What `plugin check` found.
#[derive(Debug)]
pub struct CheckReport {
    /// The component's SHA-256.
    pub sha256: String,
    /// Its size in bytes.
    pub size: usize,
    /// The interfaces it imports (what it asks the host for).
    pub imports: Vec<String>,
    /// The interfaces it exports.
    pub exports: Vec<String>,
    /// The plugin kind its exports name (`lbmethod`, `health-check`, `header-rewrite`) and the
    /// WIT package version, e.g. `0.1.0`.
    pub world: Option<(&'static str, String)>,
    /// Loading it as that kind: configured with the given config, self-tested over synthetic
    /// members. `Ok` when every step passed.
    pub load: Result<(), PluginError>,
}

impl CheckReport {
    /// Whether a proxy would load it.
    pub fn passed(&self) -> bool {
        self.world.is_some() && self.load.is_ok()
    }
}

/// The plugin kinds, by the name of the interface each exports.
const KINDS: [&str; 3] = ["lbmethod", "health-check", "header-rewrite"];

/// Checks the component at `path` as the proxy would load it, with `config_json` as its config.
pub async fn check(path: &Path, config_json: &str) -> Result<CheckReport, PluginError> {
    let bytes = std::fs::read(path).map_err(|source| PluginError::Read { path: path.display().to_string(), source })?;
    let runtime = PluginRuntime::new(PluginLimits::default())?;
    let source = PluginSource::File(path.to_path_buf());
    let name = super::plugin_name(&source);
    let (component, _) = runtime.component(&source, &name).await?;
    let ty = component.component_type();
    let imports: Vec<String> = ty.imports(&runtime.engine).map(|(n, _)| n.to_string()).collect();
    let exports: Vec<String> = ty.exports(&runtime.engine).map(|(n, _)| n.to_string()).collect();
    let world = exports.iter().find_map(|e| {
        let (package, version) = e.split_once('@')?;
        let kind = KINDS.into_iter().find(|k| package == format!("switchyard:plugin/{k}"))?;
        Some((kind, version.to_string()))
    });
    let spec = PluginSpec { source, config_json: config_json.to_string(), origin: path.display().to_string() };
    let load = match world.as_ref().map(|(kind, _)| *kind) {
        Some("lbmethod") => runtime.lbmethod(&spec, "check").await.map(drop),
        Some("health-check") => runtime.health_check(&spec, "check").await.map(drop),
        Some("header-rewrite") => runtime.header_rewrite(&spec, "check").await.map(drop),
        _ => Err(PluginError::Link {
            plugin: name,
            world: "any plugin",
            reason: format!("it exports none of switchyard:plugin/{{{}}}; it exports: {}", KINDS.join(","), exports.join(", ")),
        }),
    };
    Ok(CheckReport { sha256: super::sha256_hex(&bytes), size: bytes.len(), imports, exports, world, load })
}

/// Compiles the component at `path` into the compiled-plugin cache `cache` (what start-up,
/// `--check`, reloads and hot swaps load from); returns its SHA-256 and whether it was
/// compiled now (`false`: it was in the cache already).
pub async fn compile(path: &Path, cache: &Path) -> Result<(String, bool), PluginError> {
    let bytes = std::fs::read(path).map_err(|source| PluginError::Read { path: path.display().to_string(), source })?;
    let runtime = PluginRuntime::with_cache(PluginLimits::default(), Some(cache))?;
    let sha = super::sha256_hex(&bytes);
    let cached = runtime.disk.as_ref().is_some_and(|d| d.load(&runtime.engine, &sha).is_some());
    if !cached {
        let source = PluginSource::File(path.to_path_buf());
        let _: (Component, String) = runtime.component(&source, &super::plugin_name(&source)).await?;
    }
    Ok((sha, !cached))
}
