//! Plugin references: a default plugin's name, or a table naming one or a `.wasm` file, with
//! the plugin's own config.

use std::path::Path;

use super::{Problems, key};
use crate::config::locate::Seg;
use crate::config::model::{PluginSource, PluginSpec};
use crate::config::raw::RawPlugin;

/// The default load-balancing methods built into the binary.
pub const BUILTIN_LBMETHODS: [&str; 3] = ["byrequests", "bytraffic", "bybusyness"];
/// The default health check built into the binary.
pub const BUILTIN_HEALTH_CHECKS: [&str; 1] = ["hcheck"];
/// The default header rewrite built into the binary.
pub const BUILTIN_REWRITES: [&str; 1] = ["proxypassreverse"];

/// Which kind of plugin a reference is for.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    LbMethod,
    HealthCheck,
    Rewrite,
}

impl Kind {
    fn builtins(self) -> &'static [&'static str] {
        match self {
            Kind::LbMethod => &BUILTIN_LBMETHODS,
            Kind::HealthCheck => &BUILTIN_HEALTH_CHECKS,
            Kind::Rewrite => &BUILTIN_REWRITES,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Kind::LbMethod => "lbmethod",
            Kind::HealthCheck => "health check",
            Kind::Rewrite => "header rewrite",
        }
    }
}

/// Checks a plugin reference at `here`.
pub(super) fn plugin_spec(
    here: &[Seg],
    raw: &RawPlugin,
    kind: Kind,
    base_dir: &Path,
    origin_of: &dyn Fn(&[Seg]) -> String,
    p: &mut Problems,
) -> Option<PluginSpec> {
    let builtin = |name: &str, p: &mut Problems| {
        if kind.builtins().contains(&name) {
            Some(PluginSource::Builtin(name.to_string()))
        } else {
            p.push(
                here,
                format!(
                    "unknown {} `{name}`: the default {} {}, or give {{ path = \"x.wasm\" }}",
                    kind.noun(),
                    if kind.builtins().len() == 1 { "one is" } else { "ones are" },
                    kind.builtins().join(", ")
                ),
            );
            None
        }
    };
    let (source, config) = match raw {
        RawPlugin::Name(name) => (builtin(name, p)?, None),
        RawPlugin::Table(t) => {
            let source = match (&t.name, &t.path) {
                (Some(name), None) => builtin(name, p)?,
                (None, Some(path)) => {
                    let full = base_dir.join(path);
                    if !full.is_file() {
                        p.push(&key(here, "path"), format!("no such file: {}", full.display()));
                        return None;
                    }
                    PluginSource::File(full)
                }
                _ => {
                    p.push(here, format!("give exactly one of name (a default {}) or path (a .wasm component)", kind.noun()));
                    return None;
                }
            };
            (source, t.config.as_ref())
        }
    };
    let config_json = match config {
        Some(table) => match serde_json::to_string(table) {
            Ok(json) => json,
            Err(e) => {
                p.push(&key(here, "config"), format!("cannot be handed to the plugin as JSON: {e}"));
                return None;
            }
        },
        None => "{}".to_string(),
    };
    Some(PluginSpec { source, config_json, origin: origin_of(here) })
}
