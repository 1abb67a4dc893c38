//! The runtime overlay: every change the balancer manager accepted, kept apart from the
//! config file and laid over it whenever the running state is built (at start, at a reload,
//! at each edit).
//!
//! The overlay is applied to the file's TOML *table*, and the result goes through the same
//! checks as the file itself: a member added from the manager is checked exactly as one
//! written in the file (URL, loadfactor, lbset, route, duplicates…), and nothing can be set at
//! run time that the file could not say. Members are named by URL, so an edit still finds its
//! member after the file was reordered; runtime edits win over the file for members in both
//! (as httpd's persisted balancer state does), members added at run time stay, and members
//! removed at run time stay removed.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The version of the overlay's format, written in the state file. A newer one is refused.
pub const FORMAT_VERSION: u32 = 1;

/// Everything changed at run time, by balancer name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overlay {
    /// [`FORMAT_VERSION`] when written.
    pub version: u32,
    /// Changes per balancer.
    #[serde(default)]
    pub balancers: BTreeMap<String, BalancerOverlay>,
}

/// The changes to one balancer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BalancerOverlay {
    /// Balancer keys set at run time (`maxattempts`, `timeout`, `nofailover`…), as the file
    /// would write them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: BTreeMap<String, Value>,
    /// The lbmethod chosen at run time, when one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lbmethod: Option<LbMethodChoice>,
    /// What a rollback returns to; absent when there is nothing to roll back to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<Rollback>,
    /// The shadow lbmethod set or removed at run time, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowChange>,
    /// Keys of members of the file, by URL.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub members: BTreeMap<String, BTreeMap<String, Value>>,
    /// Members added at run time, as the file would write them (each has a `url`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub added: Vec<BTreeMap<String, Value>>,
    /// URLs of members of the file removed at run time.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub removed: BTreeSet<String>,
}

/// A balancer's shadow lbmethod changed at run time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum ShadowChange {
    /// Run this method in shadow.
    Set(LbMethodChoice),
    /// No shadow, whatever the file says.
    Removed,
}

/// The lbmethod before the last change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    /// It; `None`: the file's.
    pub lbmethod: Option<LbMethodChoice>,
}

/// A balancer's lbmethod chosen at run time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum LbMethodChoice {
    /// A default plugin by name.
    Builtin {
        /// `byrequests`, `bytraffic`, `bybusyness`…
        name: String,
        /// Its config (`{}` when none).
        #[serde(default = "empty_object")]
        config: Value,
    },
    /// A version kept in the plugins directory, by the SHA-256 of its bytes.
    Stored {
        /// Lowercase hex.
        sha256: String,
        /// Its config (`{}` when none).
        #[serde(default = "empty_object")]
        config: Value,
    },
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// Why the overlay could not be laid over the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OverlayError(pub String);

impl Overlay {
    /// Whether nothing was changed at run time.
    pub fn is_empty(&self) -> bool {
        self.balancers.values().all(|b| *b == BalancerOverlay::default())
    }

    /// Lays the overlay over the file's `table`. `stored` gives the path of a stored plugin
    /// version. Changes to balancers or members the file no longer has are passed over (and
    /// listed in the result's second part).
    pub fn apply(&self, table: &mut toml::Table, stored: &dyn Fn(&str) -> Option<String>) -> Result<Vec<String>, OverlayError> {
        let mut passed_over = Vec::new();
        for (name, changes) in &self.balancers {
            let Some(balancer) = table.get_mut("balancer").and_then(|b| b.get_mut(name.as_str())).and_then(toml::Value::as_table_mut) else {
                if *changes != BalancerOverlay::default() {
                    passed_over.push(format!("balancer {name} is no longer in the config file"));
                }
                continue;
            };
            for (key, value) in &changes.settings {
                set_key(balancer, key, value)?;
            }
            match changes.lbmethod.as_ref().map(|c| c.to_toml(stored)) {
                Some(Some(lbmethod)) => drop(balancer.insert("lbmethod".into(), lbmethod?)),
                Some(None) => passed_over.push(format!("balancer {name}: its lbmethod version is no longer in the plugins directory; the file's is used")),
                None => {}
            }
            match &changes.shadow {
                Some(ShadowChange::Set(choice)) => match choice.to_toml(stored) {
                    Some(shadow) => drop(balancer.insert("shadow".into(), shadow?)),
                    None => passed_over.push(format!("balancer {name}: its shadow version is no longer in the plugins directory; the file's is used")),
                },
                Some(ShadowChange::Removed) => drop(balancer.remove("shadow")),
                None => {}
            }
            let members = balancer.entry("member").or_insert_with(|| toml::Value::Array(Vec::new()));
            let toml::Value::Array(members) = members else { return Err(OverlayError("balancer member is not an array".into())) };
            for gone in changes.removed.iter().filter(|r| !members.iter().any(|m| url_of(m).is_some_and(|u| same_url(u, r)))) {
                passed_over.push(format!("member {gone} removed from balancer {name} at run time is no longer in the config file"));
            }
            members.retain(|m| !url_of(m).is_some_and(|u| changes.removed.iter().any(|r| same_url(r, u))));
            for (url, keys) in &changes.members {
                let Some(member) = members.iter_mut().find(|m| url_of(m).is_some_and(|u| same_url(u, url))) else {
                    passed_over.push(format!("member {url} of balancer {name} is no longer in the config file"));
                    continue;
                };
                let Some(member) = member.as_table_mut() else { continue };
                for (key, value) in keys {
                    set_key(member, key, value)?;
                }
            }
            for added in &changes.added {
                let url = added.get("url").and_then(Value::as_str).unwrap_or_default();
                if members.iter().any(|m| url_of(m).is_some_and(|u| same_url(u, url))) {
                    passed_over.push(format!("member {url} added to balancer {name} at run time is in the config file now; the file's is used"));
                    continue;
                }
                let mut member = toml::Table::new();
                for (key, value) in added {
                    set_key(&mut member, key, value)?;
                }
                members.push(toml::Value::Table(member));
            }
        }
        Ok(passed_over)
    }

    /// The changes to balancer `name`, made on first use.
    pub fn balancer_mut(&mut self, name: &str) -> &mut BalancerOverlay {
        self.balancers.entry(name.to_string()).or_default()
    }

    /// Drops empty entries, so an overlay whose changes were undone compares empty.
    pub fn tidy(&mut self) {
        for b in self.balancers.values_mut() {
            b.members.retain(|_, keys| !keys.is_empty());
        }
        self.balancers.retain(|_, b| *b != BalancerOverlay::default());
    }
}

impl LbMethodChoice {
    /// As the file would write it; `None` when it is a stored version no longer stored.
    fn to_toml(&self, stored: &dyn Fn(&str) -> Option<String>) -> Option<Result<toml::Value, OverlayError>> {
        let mut table = toml::Table::new();
        let config = match self {
            Self::Builtin { name, config } => {
                table.insert("name".into(), toml::Value::String(name.clone()));
                config
            }
            Self::Stored { sha256, config } => {
                table.insert("path".into(), toml::Value::String(stored(sha256)?));
                config
            }
        };
        if config.as_object().is_some_and(|c| !c.is_empty()) {
            match to_toml(config, "config") {
                Ok(c) => drop(table.insert("config".into(), c)),
                Err(e) => return Some(Err(e)),
            }
        }
        Some(Ok(toml::Value::Table(table)))
    }

    /// Its config.
    pub fn config(&self) -> &Value {
        match self {
            Self::Builtin { config, .. } | Self::Stored { config, .. } => config,
        }
    }

    /// How the page and the API show it: a default plugin's name, or `sha256:` and the first
    /// 12 hex digits.
    pub fn label(&self) -> String {
        match self {
            Self::Builtin { name, .. } => name.clone(),
            Self::Stored { sha256, .. } => format!("sha256:{}", &sha256[..sha256.len().min(12)]),
        }
    }
}

/// Sets `key` of a balancer's or member's table; `null` removes it (back to the default).
fn set_key(table: &mut toml::Table, key: &str, value: &Value) -> Result<(), OverlayError> {
    if value.is_null() {
        table.remove(key);
    } else {
        table.insert(key.to_string(), to_toml(value, key)?);
    }
    Ok(())
}

fn to_toml(value: &Value, key: &str) -> Result<toml::Value, OverlayError> {
    toml::Value::try_from(value).map_err(|e| OverlayError(format!("{key}: {e}")))
}

fn url_of(member: &toml::Value) -> Option<&str> {
    member.get("url").and_then(toml::Value::as_str)
}

/// Member URLs compare without a trailing slash (`http://a:1` is `http://a:1/`).
pub fn same_url(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FILE: &str = r#"
[balancer.web]
lbmethod = "byrequests"
[[balancer.web.member]]
url = "http://a:1"
[[balancer.web.member]]
url = "http://b:1/"
loadfactor = 3
"#;

    fn applied(overlay: &Overlay) -> (toml::Table, Vec<String>) {
        let mut table: toml::Table = toml::from_str(FILE).expect("toml");
        let passed = overlay.apply(&mut table, &|sha| Some(format!("/plugins/{sha}.wasm"))).expect("applies");
        (table, passed)
    }

    #[test]
    fn edits_adds_and_removals_land_on_the_file_members() {
        let mut o = Overlay::default();
        let b = o.balancer_mut("web");
        b.members.insert("http://b:1".into(), BTreeMap::from([("loadfactor".into(), json!(5)), ("status".into(), json!("D"))]));
        b.removed.insert("http://a:1/".into());
        b.added.push(BTreeMap::from([("url".into(), json!("http://c:1")), ("lbset".into(), json!(1))]));
        b.lbmethod = Some(LbMethodChoice::Stored { sha256: "ab".repeat(32), config: json!({"k": 1}) });
        b.settings.insert("maxattempts".into(), json!(0));
        let (t, passed) = applied(&o);
        assert!(passed.is_empty());
        let web = &t["balancer"]["web"];
        let members = web["member"].as_array().expect("array");
        assert_eq!(members.len(), 2);
        assert_eq!(members[0]["url"].as_str(), Some("http://b:1/"));
        assert_eq!(members[0]["loadfactor"].as_integer(), Some(5));
        assert_eq!(members[0]["status"].as_str(), Some("D"));
        assert_eq!(members[1]["lbset"].as_integer(), Some(1));
        assert_eq!(web["lbmethod"]["path"].as_str(), Some(format!("/plugins/{}.wasm", "ab".repeat(32)).as_str()));
        assert_eq!(web["lbmethod"]["config"]["k"].as_integer(), Some(1));
        assert_eq!(web["maxattempts"].as_integer(), Some(0));
    }

    #[test]
    fn changes_to_what_the_file_lost_are_passed_over() {
        let mut o = Overlay::default();
        o.balancer_mut("gone").removed.insert("http://x:1".into());
        o.balancer_mut("web").members.insert("http://z:1".into(), BTreeMap::from([("lbset".into(), json!(2))]));
        o.balancer_mut("web").added.push(BTreeMap::from([("url".into(), json!("http://a:1/"))]));
        let (t, passed) = applied(&o);
        assert_eq!(passed.len(), 3, "{passed:?}");
        assert_eq!(t["balancer"]["web"]["member"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn a_state_file_round_trips_and_tidies() {
        let mut o = Overlay { version: FORMAT_VERSION, ..Overlay::default() };
        o.balancer_mut("web").rollback = Some(Rollback { lbmethod: None });
        o.balancer_mut("other").members.insert("http://a:1".into(), BTreeMap::new());
        o.tidy();
        let text = serde_json::to_string(&o).expect("json");
        let back: Overlay = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, o);
        assert!(!back.balancers.contains_key("other"));
        assert!(serde_json::from_str::<Overlay>(r#"{"version":1,"colour":2}"#).is_err());
    }
}
