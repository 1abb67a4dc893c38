//! The configuration: one TOML file, read, checked and turned into a typed model.
//!
//! Unknown keys are errors, and every error names the file, the line and the key, e.g.
//! `proxy.toml:14: balancer.myset.member[1].loadfactor: must be between 1 and 100, got 300`.
//! All problems in a file are reported at once. Nothing is bound or started here.

mod admin;
mod edge;
mod error;
mod locate;
mod logging;
mod model;
mod problems;
mod raw;
mod status;
mod tls;
mod units;
mod validate;

use std::path::Path;

pub use admin::{Admin, TokenSource};
pub use edge::{Forwarded, IpNet, Limits, Timeouts, Upgrades};
pub use error::{ConfigError, ConfigErrors};
pub use logging::{AccessFormat, AccessLog, COMBINED, COMMON, LogFormat, LogItem, LogTarget, parse_format};
pub use model::{
    Balancer, Config, ConnectionSettings, Failover, HashKey, HealthCheckSpec, Listener, Member, PluginLimits, PluginSpec,
    PluginSource, Route, RouteCookie, RouteTarget, Server, StickySession,
};
pub use status::StatusFlags;
pub use tls::{CertFiles, DEFAULT_HANDSHAKE_TIMEOUT, ListenTls, MemberTls, SniCert};
pub use units::{parse_duration, parse_size};
pub use validate::{BUILTIN_HEALTH_CHECKS, BUILTIN_LBMETHODS, BUILTIN_REWRITES, lbfactor};

use locate::{Locator, display_path};

/// Reads and checks the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigErrors::whole_file(path.to_path_buf(), format!("cannot read: {e}")))?;
    parse(&text, path)
}

/// Checks config `text` as if read from `path` (relative plugin paths resolve against its folder).
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
    parse_with(text, path, true)
}

/// Checks `text`, the config file at `path` with runtime changes laid over it: as [`parse`],
/// but errors name keys only, since lines of `text` are not lines of the file.
pub fn parse_overlaid(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
    parse_with(text, path, false)
}

fn parse_with(text: &str, path: &Path, lines: bool) -> Result<Config, ConfigErrors> {
    let locator = Locator::new(text);
    let error_at = |path_segs: &[locate::Seg], line: Option<usize>, message: String| ConfigError {
        file: path.to_path_buf(),
        line: if lines { line.or_else(|| locator.line_of(path_segs)) } else { None },
        key: display_path(path_segs),
        message,
    };

    let raw: raw::RawConfig = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let (segs, line) = match e.span() {
                Some(span) => (locator.path_at(&span), Some(locator.line_of_offset(span.start))),
                None => (Vec::new(), None),
            };
            let message = e.message().trim().replace('\n', " ");
            return Err(ConfigErrors(vec![error_at(&segs, line, message)]));
        }
    };

    let origin_of = |segs: &[locate::Seg]| {
        let e = error_at(segs, None, String::new());
        match e.line {
            Some(line) => format!("{}:{line}: {}", e.file.display(), e.key),
            None => format!("{}: {}", e.file.display(), e.key),
        }
    };
    validate::validate(raw, path, &origin_of).map_err(|problems| {
        ConfigErrors(problems.0.into_iter().map(|(segs, message)| error_at(&segs, None, message)).collect())
    })
}

#[cfg(test)]
mod tests;
