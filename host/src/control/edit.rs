//! The changes the balancer manager asks for, each turned into a new overlay (checked later,
//! whole, with the file). Flags that are live state rather than configuration — in error (E)
//! and health-check failed (C) — are not kept in the overlay: they are set on the running
//! member once the change is published, as httpd's manager sets them in shared memory.

use std::collections::BTreeMap;

use serde_json::Value;

use super::ControlError;
use super::dirs::PluginStore;
use super::overlay::{LbMethodChoice, Overlay, Rollback, ShadowChange, same_url};
use crate::config::{BUILTIN_LBMETHODS, Config, StatusFlags};
use crate::proxy::Proxy;

/// The flags an operator sets in the config file's sense: kept in the overlay.
const CONFIG_FLAGS: StatusFlags = StatusFlags::CONFIGURED;

/// The member keys an edit may set: its place in the balancer, and its health check
/// (httpd's `hc*` keys, as the file writes them).
const MEMBER_KEYS: [&str; 11] = ["loadfactor", "lbset", "route", "redirect", "hcmethod", "hcuri", "hcexpr", "hcinterval", "hctimeout", "hcpasses", "hcfails"];

/// The balancer keys an edit may set.
pub const BALANCER_KEYS: [&str; 10] = [
    "maxattempts",
    "timeout",
    "nofailover",
    "forcerecovery",
    "failonstatus",
    "failontimeout",
    "stickysession",
    "stickysessionsep",
    "scolonpathdelim",
    "hashkey",
];

/// Which member: its index in the balancer (as listed) or its URL.
#[derive(Debug, Clone)]
pub enum MemberRef {
    /// Position in the balancer's member list, from 0.
    Index(usize),
    /// Its URL (a trailing slash does not matter).
    Url(String),
}

/// A change to one member.
#[derive(Debug, Clone, Default)]
pub struct MemberChange {
    /// `loadfactor`, `lbset`, `route`, `redirect` (`null` or `""` for route and redirect:
    /// none).
    pub keys: BTreeMap<String, Value>,
    /// httpd status letters to set and clear (`"+D-S"`).
    pub status: Option<String>,
}

/// One change to the running state.
#[derive(Debug, Clone)]
pub enum Change {
    /// Read the config file again (SIGHUP, `POST /api/reload`); the overlay stays.
    ReloadFile,
    /// Edit a member.
    Member {
        /// The balancer's name.
        balancer: String,
        /// Which member.
        member: MemberRef,
        /// What to change.
        change: MemberChange,
    },
    /// Add a member, given as the file would write it (`url` and any member key).
    AddMember {
        /// The balancer's name.
        balancer: String,
        /// Its keys.
        member: BTreeMap<String, Value>,
    },
    /// Remove a member; its requests in flight finish.
    RemoveMember {
        /// The balancer's name.
        balancer: String,
        /// Which member.
        member: MemberRef,
    },
    /// Set balancer keys ([`BALANCER_KEYS`]; `null`: back to the file's).
    Balancer {
        /// The balancer's name.
        balancer: String,
        /// The keys.
        settings: BTreeMap<String, Value>,
    },
    /// Choose the balancer's lbmethod (a hot swap); the one before is kept for a rollback.
    LbMethod {
        /// The balancer's name.
        balancer: String,
        /// The method.
        choice: LbMethodChoice,
    },
    /// Run a method in shadow beside the balancer's own (`None`: no shadow).
    Shadow {
        /// The balancer's name.
        balancer: String,
        /// The method.
        choice: Option<LbMethodChoice>,
    },
    /// Go back to the lbmethod before the last change.
    Rollback {
        /// The balancer's name.
        balancer: String,
    },
    /// Forget every runtime change: back to the file.
    DropOverrides,
    /// Several changes made as one: all of them, or none.
    Batch(Vec<Change>),
}

/// Live flags to set on a member once the change is published.
#[derive(Debug)]
pub(super) struct LiveFlags {
    balancer: String,
    url: String,
    set: StatusFlags,
    clear: StatusFlags,
}

impl LiveFlags {
    pub(super) fn apply(&self, proxy: &Proxy) {
        let member = proxy.balancers().iter().find(|b| b.name() == self.balancer).and_then(|b| b.members().iter().find(|m| same_url(&m.config.url, &self.url)));
        if let Some(m) = member {
            m.set_status(self.set, true);
            m.set_status(self.clear, false);
        }
    }
}

/// What a change is checked against: the proxy in service, the config file alone, the
/// plugin store.
pub(super) struct Context<'a> {
    pub(super) running: &'a Proxy,
    pub(super) file: &'a Config,
    pub(super) store: Option<&'a PluginStore>,
}

impl Context<'_> {
    /// Whether the config file itself has member `url` in `balancer`.
    fn in_file(&self, balancer: &str, url: &str) -> bool {
        self.file.balancers.iter().find(|b| b.name == balancer).is_some_and(|b| b.members.iter().any(|m| same_url(&m.url, url)))
    }
}

/// Lays `change` into `overlay`, checked against `cx`; returns live flags to set.
pub(super) fn apply(change: Change, overlay: &mut Overlay, cx: &Context<'_>) -> Result<Vec<LiveFlags>, ControlError> {
    match change {
        Change::Batch(changes) => {
            let mut live = Vec::new();
            for change in changes {
                live.extend(apply(change, overlay, cx)?);
            }
            Ok(live)
        }
        other => Ok(apply_one(other, overlay, cx)?.into_iter().collect()),
    }
}

fn is_url(url: &str) -> impl Fn(&BTreeMap<String, Value>) -> bool + '_ {
    move |m| m.get("url").and_then(Value::as_str).is_some_and(|u| same_url(u, url))
}

fn apply_one(change: Change, overlay: &mut Overlay, cx: &Context<'_>) -> Result<Option<LiveFlags>, ControlError> {
    let running = cx.running;
    match change {
        Change::ReloadFile | Change::Batch(_) => Ok(None),
        Change::DropOverrides => {
            *overlay = Overlay { version: super::overlay::FORMAT_VERSION, ..Overlay::default() };
            Ok(None)
        }
        Change::Member { balancer, member, change } => {
            let m = find_member(running, &balancer, &member)?;
            let url = m.config.url.clone();
            if change.keys.is_empty() && change.status.is_none() {
                return Err(ControlError::Invalid(format!("nothing to change: give any of {}, status", MEMBER_KEYS.join(", "))));
            }
            // Only what differs from the running member is kept: a form that sends every
            // field back does not pin the unchanged ones over later file edits.
            let mut keys = BTreeMap::new();
            for (key, value) in change.keys {
                if !MEMBER_KEYS.contains(&key.as_str()) {
                    return Err(ControlError::Invalid(format!("unknown member field `{key}` (editable: {}, status)", MEMBER_KEYS.join(", "))));
                }
                let value = member_value(&key, value)?;
                if !same_as_running(&key, &value, &m.config) {
                    keys.insert(key, value);
                }
            }
            let mut live = None;
            if let Some(spec) = &change.status {
                let (set, clear) = StatusFlags::changes(spec).map_err(ControlError::Invalid)?;
                let configured = m.config.status.intersection(CONFIG_FLAGS);
                let flags = configured.union(set.intersection(CONFIG_FLAGS)).without(clear.intersection(CONFIG_FLAGS));
                if flags != configured {
                    keys.insert("status".into(), if flags == StatusFlags::empty() { Value::Null } else { Value::String(flags.to_string()) });
                }
                let now = m.status();
                let (set, clear) = (set.without(CONFIG_FLAGS).without(now), clear.without(CONFIG_FLAGS).intersection(now));
                if set != StatusFlags::empty() || clear != StatusFlags::empty() {
                    live = Some(LiveFlags { balancer: balancer.clone(), url: url.clone(), set, clear });
                }
            }
            if !keys.is_empty() {
                let in_file = cx.in_file(&balancer, &url);
                let b = overlay.balancer_mut(&balancer);
                match b.added.iter_mut().find(|m| is_url(&url)(m)) {
                    Some(added) if !in_file => added.extend(keys),
                    _ => b.members.entry(url).or_default().extend(keys),
                }
            }
            Ok(live)
        }
        Change::AddMember { balancer, member } => {
            find_balancer(running, &balancer)?;
            let Some(url) = member.get("url").and_then(Value::as_str).map(str::to_string) else {
                return Err(ControlError::Invalid("a new member needs a url".into()));
            };
            if find_member(running, &balancer, &MemberRef::Url(url.clone())).is_ok() {
                return Err(ControlError::Invalid(format!("{url} is already a member of balancer {balancer}")));
            }
            let in_file = cx.in_file(&balancer, &url);
            let b = overlay.balancer_mut(&balancer);
            b.added.retain(|m| !is_url(&url)(m));
            if in_file {
                // A file member removed earlier comes back, with these keys as edits.
                b.removed.retain(|r| !same_url(r, &url));
                b.members.insert(url, member.into_iter().filter(|(k, _)| k != "url").collect());
            } else {
                b.added.push(member);
            }
            Ok(None)
        }
        Change::RemoveMember { balancer, member } => {
            let url = find_member(running, &balancer, &member)?.config.url.clone();
            let in_file = cx.in_file(&balancer, &url);
            let b = overlay.balancer_mut(&balancer);
            b.added.retain(|m| !is_url(&url)(m));
            b.members.retain(|u, _| !same_url(u, &url));
            if in_file {
                b.removed.insert(url);
            }
            Ok(None)
        }
        Change::Balancer { balancer, settings } => {
            find_balancer(running, &balancer)?;
            if settings.is_empty() {
                return Err(ControlError::Invalid(format!("nothing to change: give any of {}", BALANCER_KEYS.join(", "))));
            }
            if let Some(key) = settings.keys().find(|k| !BALANCER_KEYS.contains(&k.as_str())) {
                return Err(ControlError::Invalid(format!("unknown balancer field `{key}` (editable: {}; the lbmethod has its own call)", BALANCER_KEYS.join(", "))));
            }
            let running_balancer = find_balancer(running, &balancer)?;
            let kept = &mut overlay.balancer_mut(&balancer).settings;
            for (key, value) in settings {
                // A form sending every setting back pins only what it changed.
                if !kept.contains_key(&key) && balancer_same_as_running(&key, &value, running_balancer) {
                    continue;
                }
                // `null`: back to the file's value.
                if value.is_null() {
                    kept.remove(&key);
                } else {
                    kept.insert(key, value);
                }
            }
            Ok(None)
        }
        Change::LbMethod { balancer, choice } => {
            find_balancer(running, &balancer)?;
            let choice = checked_choice(choice, cx)?;
            let b = overlay.balancer_mut(&balancer);
            // httpd's form sends the method in use with every balancer edit: not a swap.
            let file_config = cx.file.balancers.iter().find(|f| f.name == balancer).and_then(|f| serde_json::from_str::<Value>(&f.lbmethod.config_json).ok());
            let unchanged = match (&choice, &b.lbmethod) {
                (LbMethodChoice::Builtin { name, config }, None) => {
                    find_balancer(running, &balancer)?.lbmethod().name() == name
                        && (config.as_object().is_some_and(serde_json::Map::is_empty) || Some(config) == file_config.as_ref())
                }
                (choice, Some(current)) => choice == current,
                _ => false,
            };
            if !unchanged {
                b.rollback = Some(Rollback { lbmethod: b.lbmethod.replace(choice) });
            }
            Ok(None)
        }
        Change::Shadow { balancer, choice } => {
            find_balancer(running, &balancer)?;
            let choice = choice.map(|c| checked_choice(c, cx)).transpose()?;
            overlay.balancer_mut(&balancer).shadow = Some(match choice {
                Some(choice) => ShadowChange::Set(choice),
                None => ShadowChange::Removed,
            });
            Ok(None)
        }
        Change::Rollback { balancer } => {
            find_balancer(running, &balancer)?;
            let b = overlay.balancer_mut(&balancer);
            let Some(previous) = b.rollback.take() else {
                return Err(ControlError::Unavailable(format!("balancer {balancer} has no earlier lbmethod to roll back to")));
            };
            b.rollback = Some(Rollback { lbmethod: std::mem::replace(&mut b.lbmethod, previous.lbmethod) });
            Ok(None)
        }
    }
}

/// The method choice, its version named by its whole SHA-256; refused when it cannot be
/// loaded: an unknown default, a version not in the plugins directory (or a prefix naming
/// several), a config that is not an object.
fn checked_choice(choice: LbMethodChoice, cx: &Context<'_>) -> Result<LbMethodChoice, ControlError> {
    if !choice.config().is_object() {
        return Err(ControlError::Invalid("the plugin's config must be a JSON object".into()));
    }
    match choice {
        LbMethodChoice::Builtin { name, .. } if !BUILTIN_LBMETHODS.contains(&name.as_str()) => {
            Err(ControlError::Invalid(format!("no default lbmethod `{name}` (there are {})", BUILTIN_LBMETHODS.join(", "))))
        }
        LbMethodChoice::Stored { sha256, config } => {
            let store = cx.store.ok_or_else(|| ControlError::Unavailable("plugin uploads need `[admin] plugins` (a directory)".into()))?;
            let sha256 = store.resolve(&sha256).map_err(|e| ControlError::NotFound(e.to_string()))?;
            Ok(LbMethodChoice::Stored { sha256, config })
        }
        builtin => Ok(builtin),
    }
}

fn find_balancer<'a>(running: &'a Proxy, name: &str) -> Result<&'a crate::proxy::ProxyBalancer, ControlError> {
    running.balancers().iter().find(|b| b.name() == name).map(|b| &**b).ok_or_else(|| ControlError::NotFound(format!("no balancer named {name}")))
}

/// The running member.
fn find_member<'a>(running: &'a Proxy, balancer: &str, member: &MemberRef) -> Result<&'a crate::upstream::ProxyMember, ControlError> {
    let b = find_balancer(running, balancer)?;
    let found = match member {
        MemberRef::Index(i) => b.members().get(*i),
        MemberRef::Url(url) => b.members().iter().find(|m| same_url(&m.config.url, url)),
    };
    found.map(|m| &**m).ok_or_else(|| match member {
        MemberRef::Index(i) => ControlError::NotFound(format!("balancer {balancer} has no member {i} (members are numbered from 0)")),
        MemberRef::Url(url) => ControlError::NotFound(format!("balancer {balancer} has no member {url}")),
    })
}

/// Whether a balancer key's new value is what the balancer has now (for the keys the page's
/// settings form sends; any other counts as a change).
fn balancer_same_as_running(key: &str, value: &Value, b: &crate::proxy::ProxyBalancer) -> bool {
    let failover = b.failover();
    match key {
        "maxattempts" => value.as_u64() == Some(u64::from(b.maxattempts())),
        "nofailover" => value.as_bool() == Some(failover.nofailover),
        "timeout" => duration_of(value) == Some(failover.timeout),
        "stickysession" => match (value, b.sticky()) {
            (Value::Null, None) => true,
            (Value::String(v), Some(s)) => *v == s.names(),
            _ => false,
        },
        _ => false,
    }
}

/// A duration as the config writes one: seconds, or a string with a unit.
fn duration_of(value: &Value) -> Option<std::time::Duration> {
    match value {
        Value::Number(n) => n.as_f64().and_then(|s| std::time::Duration::try_from_secs_f64(s).ok()),
        Value::String(s) => crate::config::parse_duration(s).ok(),
        _ => None,
    }
}

/// Whether a member key's new value is what the member has now. A key this cannot tell
/// (a health-check key of a member checked by a plugin of its own) counts as a change.
fn same_as_running(key: &str, value: &Value, m: &crate::config::Member) -> bool {
    let health = m.health.as_ref();
    // The default check's own config holds hcmethod, hcuri and hcexpr (as method, uri, expr).
    let check_key = |name: &str| {
        let spec = health.filter(|h| matches!(&h.plugin.source, crate::config::PluginSource::Builtin(b) if b == "hcheck"))?;
        let config: Value = serde_json::from_str(&spec.plugin.config_json).ok()?;
        Some(config.get(name).and_then(Value::as_str).map(str::to_string))
    };
    if health.is_none() && key.starts_with("hc") {
        return value.is_null();
    }
    match key {
        "loadfactor" => value.as_f64().is_some_and(|lf| (lf * 100.0).round() == f64::from(m.lbfactor)),
        "lbset" => value.as_u64() == Some(u64::from(m.lbset)),
        "route" => value.as_str().unwrap_or("") == m.route,
        "redirect" => value.as_str().unwrap_or("") == m.redirect,
        "hcpasses" => health.is_some_and(|h| value.as_u64() == Some(u64::from(h.passes))),
        "hcfails" => health.is_some_and(|h| value.as_u64() == Some(u64::from(h.fails))),
        "hcinterval" => health.is_some_and(|h| duration_of(value) == Some(h.interval)),
        "hctimeout" => health.is_some_and(|h| duration_of(value) == Some(h.timeout)),
        "hcmethod" | "hcuri" | "hcexpr" => check_key(&key[2..]).is_some_and(|running| match (running.as_deref(), value.as_str()) {
            // No method is TCP, the default.
            (now, Some(new)) if key == "hcmethod" => now.unwrap_or("TCP").eq_ignore_ascii_case(new),
            (now, new) => now == new,
        }),
        _ => false,
    }
}

/// A member key's value, type-checked (ranges are checked with the whole config).
fn member_value(key: &str, value: Value) -> Result<Value, ControlError> {
    let ok = match key {
        "loadfactor" => value.is_number(),
        "lbset" | "hcpasses" | "hcfails" => value.is_u64(),
        "hcinterval" | "hctimeout" => value.is_number() || value.is_string() || value.is_null(),
        _ => value.is_string() || value.is_null(),
    };
    if !ok {
        let expected = match key {
            "loadfactor" => "a number from 1 to 100",
            "lbset" => "a whole number from 0 to 99",
            "hcpasses" | "hcfails" => "a whole number, at least 1",
            "hcinterval" | "hctimeout" => "a duration: seconds, or a string such as \"500ms\" or \"5s\"",
            _ => "a string",
        };
        return Err(ControlError::Invalid(format!("{key} must be {expected}, got {value}")));
    }
    Ok(if value.as_str() == Some("") { Value::Null } else { value })
}
