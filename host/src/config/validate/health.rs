//! Health-check settings (httpd's `hcmethod`, `hcuri`, `hcexpr`, `hcinterval`, `hcpasses`,
//! `hcfails`, plus `hctimeout` and a custom `healthcheck` plugin), on members and in
//! `[hctemplate.NAME]` tables a member names with `hctemplate`.
//!
//! A member is checked when it has any of these keys, its own or from its template; its own
//! win. The default `hcheck` plugin gets `hcmethod`, `hcuri` and `hcexpr` as its config and
//! checks them itself when it loads, so a bad expression fails `--check` and the start with
//! the plugin's message at the key's line.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::plugin::{Kind, plugin_spec};
use super::{Problems, key};
use crate::config::locate::Seg;
use crate::config::model::{HealthCheckSpec, PluginSpec};
use crate::config::raw::{RawHealthKeys, RawMember};

/// httpd's default `hcinterval`.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// The fastest schedule accepted.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// The longest a probe may take by default (less when the interval is shorter).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Checks every `[hctemplate.NAME]` on its own, so a problem is reported once, at the template.
pub(super) fn templates(raw: &BTreeMap<String, RawHealthKeys>, p: &mut Problems) {
    for (name, keys) in raw {
        check_keys(&[Seg::Key("hctemplate".into()), Seg::Key(name.clone())], keys, p);
    }
}

/// The health check of member `m` at `here`, if it has one.
pub(super) fn member_health(
    here: &[Seg],
    m: &RawMember,
    templates: &BTreeMap<String, RawHealthKeys>,
    base_dir: &Path,
    origin_of: &dyn Fn(&[Seg]) -> String,
    p: &mut Problems,
) -> Option<HealthCheckSpec> {
    let own = m.health_keys();
    check_keys(here, &own, p);
    let keys = match &m.hctemplate {
        None => own,
        Some(name) => match templates.get(name) {
            Some(template) => own.over(template),
            None => {
                p.push(&key(here, "hctemplate"), format!("no [hctemplate.{name}] is defined"));
                return None;
            }
        },
    };
    if !keys.any() {
        return None;
    }
    let plugin = match &keys.healthcheck {
        Some(raw) => {
            if keys.hcmethod.is_some() || keys.hcuri.is_some() || keys.hcexpr.is_some() {
                p.push(&key(here, "healthcheck"), "hcmethod, hcuri and hcexpr configure the default check; give a custom check its settings in its own config");
            }
            plugin_spec(&key(here, "healthcheck"), raw, Kind::HealthCheck, base_dir, origin_of, p)?
        }
        None => {
            let mut config = serde_json::Map::new();
            for (name, value) in [("method", &keys.hcmethod), ("uri", &keys.hcuri), ("expr", &keys.hcexpr)] {
                if let Some(v) = value {
                    config.insert(name.to_string(), serde_json::Value::String(v.clone()));
                }
            }
            // The plugin's own complaints are about these keys: point at the likeliest one.
            let at = ["hcexpr", "hcmethod", "hcuri"]
                .into_iter()
                .zip([&keys.hcexpr, &keys.hcmethod, &keys.hcuri])
                .find(|(_, v)| v.is_some())
                .map_or_else(|| here.to_vec(), |(k, _)| key(here, k));
            PluginSpec::builtin("hcheck", &serde_json::Value::Object(config).to_string(), origin_of(&at))
        }
    };
    let interval = keys.hcinterval.map_or(DEFAULT_INTERVAL, |d| d.0);
    Some(HealthCheckSpec {
        plugin,
        interval,
        passes: keys.hcpasses.unwrap_or(1).max(1),
        fails: keys.hcfails.unwrap_or(1).max(1),
        timeout: keys.hctimeout.map_or(interval.min(DEFAULT_TIMEOUT), |d| d.0),
    })
}

/// Range checks of the keys set at `here` (a member's own, or a template's).
fn check_keys(here: &[Seg], keys: &RawHealthKeys, p: &mut Problems) {
    if let Some(interval) = keys.hcinterval
        && interval.0 < MIN_INTERVAL
    {
        p.push(&key(here, "hcinterval"), format!("must be at least {MIN_INTERVAL:?}"));
    }
    for (name, value) in [("hcpasses", keys.hcpasses), ("hcfails", keys.hcfails)] {
        if value == Some(0) {
            p.push(&key(here, name), "must be at least 1");
        }
    }
    if keys.hctimeout.is_some_and(|t| t.0.is_zero()) {
        p.push(&key(here, "hctimeout"), "must be more than 0");
    }
    // The probe's target is this appended to the member's path: it must make a valid one.
    if let Some(uri) = &keys.hcuri
        && (uri.is_empty() || switchyard_sdk::rules::check_origin_form(&format!("/{}", uri.trim_start_matches('/'))).is_err())
    {
        p.push(&key(here, "hcuri"), format!("`{uri}` must be a path without spaces, such as \"/health\""));
    }
}
