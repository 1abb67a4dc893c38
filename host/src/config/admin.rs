//! `[admin]`: the balancer manager's listener and its token — raw form, checked form and the
//! checks, kept together.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::locate::Seg;
use super::problems::{Problems, key};

/// `[admin]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    pub listen: Option<String>,
    pub token: Option<String>,
    pub persist: Option<String>,
    pub plugins: Option<String>,
}

/// `[admin]`: where the balancer manager listens and what it asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// The address (loopback unless a token is set).
    pub addr: SocketAddr,
    /// Where the bearer token is read from, when one is required.
    pub token: Option<TokenSource>,
    /// httpd's BalancerPersist: the directory runtime changes are kept in, when they are.
    pub persist: Option<PathBuf>,
    /// The directory uploaded plugin versions are kept in, when uploads are allowed.
    pub plugins: Option<PathBuf>,
}

/// Where the admin token comes from (never written in the config itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `file:PATH`: the file's content, trimmed.
    File(PathBuf),
    /// `env:NAME`: the environment variable's value.
    Env(String),
}

pub(crate) fn admin(raw: Option<&RawAdmin>, base_dir: &Path, p: &mut Problems) -> Option<Admin> {
    let raw = raw?;
    let here = [Seg::Key("admin".into())];
    let addr = match raw.listen.as_deref().unwrap_or("127.0.0.1:8081").parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => {
            p.push(&key(&here, "listen"), format!("`{}` is not an address such as \"127.0.0.1:8081\"", raw.listen.as_deref().unwrap_or_default()));
            return None;
        }
    };
    let token = match raw.token.as_deref() {
        None => None,
        Some(t) => match (t.strip_prefix("file:"), t.strip_prefix("env:")) {
            (Some(file), _) if !file.is_empty() => Some(TokenSource::File(base_dir.join(file))),
            (_, Some(var)) if !var.is_empty() => Some(TokenSource::Env(var.to_string())),
            _ => {
                p.push(&key(&here, "token"), "give \"file:PATH\" or \"env:NAME\" (the token itself does not belong in the config)");
                return None;
            }
        },
    };
    if token.is_none() && !addr.ip().is_loopback() {
        p.push(&key(&here, "listen"), format!("{addr} is reachable beyond this machine: set a token (\"file:PATH\" or \"env:NAME\")"));
        return None;
    }
    let dir = |key_name: &str, value: &Option<String>, p: &mut Problems| match value.as_deref() {
        None => None,
        Some("") => {
            p.push(&key(&here, key_name), "give a directory");
            None
        }
        Some(d) => Some(base_dir.join(d)),
    };
    let persist = dir("persist", &raw.persist, p);
    let plugins = dir("plugins", &raw.plugins, p);
    Some(Admin { addr, token, persist, plugins })
}
