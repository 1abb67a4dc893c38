//! The config file as written: serde structs that mirror the TOML, unknown keys refused.
//!
//! Nothing here is validated beyond types; `validate` turns these into the checked model.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};

use super::units::{DurationValue, SizeValue};

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    #[serde(default)]
    pub listen: Vec<RawListen>,
    #[serde(default)]
    pub route: Vec<RawRoute>,
    #[serde(default)]
    pub balancer: BTreeMap<String, RawBalancer>,
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub plugins: RawPlugins,
    #[serde(default)]
    pub hctemplate: BTreeMap<String, RawHealthKeys>,
    #[serde(default)]
    pub limits: super::edge::RawLimits,
    #[serde(default)]
    pub timeouts: super::edge::RawTimeouts,
    #[serde(default)]
    pub forwarded: super::edge::RawForwarded,
    pub access_log: Option<super::logging::RawAccessLog>,
    pub admin: Option<super::admin::RawAdmin>,
    #[serde(default)]
    pub log: super::logging::RawLog,
}

/// `[[listen]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListen {
    pub addr: String,
    pub tls: Option<super::tls::RawListenTls>,
}

/// `[[route]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    pub path: String,
    pub backend: Option<String>,
    pub balancer: Option<String>,
    #[serde(default)]
    pub exclude: bool,
    #[serde(default)]
    pub preserve_host: bool,
    #[serde(default)]
    pub allow_encoded_slashes: bool,
    #[serde(default)]
    pub nocanon: bool,
    // Connection settings for a single `backend` (members set their own).
    pub timeout: Option<DurationValue>,
    pub connectiontimeout: Option<DurationValue>,
    pub max: Option<u32>,
    pub ttl: Option<DurationValue>,
    pub acquire: Option<DurationValue>,
    // Header rewriting.
    pub reverse: Option<bool>,
    pub reverse_cookie_domain: Option<BTreeMap<String, String>>,
    pub reverse_cookie_path: Option<BTreeMap<String, String>>,
    pub rewrite: Option<Vec<RawPlugin>>,
    pub upgrade: Option<Vec<String>>,
    pub tls: Option<super::tls::RawMemberTls>,
}

/// `[balancer.NAME]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBalancer {
    pub lbmethod: Option<RawPlugin>,
    pub shadow: Option<RawPlugin>,
    pub record: Option<String>,
    pub maxattempts: Option<u32>,
    pub hashkey: Option<String>,
    pub nofailover: Option<bool>,
    pub forcerecovery: Option<bool>,
    pub failonstatus: Option<Vec<i64>>,
    pub failontimeout: Option<bool>,
    pub stickysession: Option<RawSticky>,
    pub stickysessionsep: Option<String>,
    pub scolonpathdelim: Option<bool>,
    pub timeout: Option<DurationValue>,
    pub tls: Option<super::tls::RawMemberTls>,
    #[serde(default)]
    pub member: Vec<RawMember>,
}

/// `stickysession = "JSESSIONID|jsessionid"` or `stickysession = { name = "ROUTEID", insert = true, ... }`.
#[derive(Debug)]
pub(crate) enum RawSticky {
    Name(String),
    Table(RawStickyTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStickyTable {
    pub name: String,
    pub insert: Option<bool>,
    pub path: Option<String>,
    pub secure: Option<bool>,
    pub httponly: Option<bool>,
    pub samesite: Option<String>,
    pub max_age: Option<DurationValue>,
}

impl<'de> Deserialize<'de> for RawSticky {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        string_or_table(
            d,
            "a cookie name (\"JSESSIONID\" or \"JSESSIONID|jsessionid\") or a table { name = \"ROUTEID\", insert = true }",
            RawSticky::Name,
            RawSticky::Table,
        )
    }
}

/// `[[balancer.NAME.member]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMember {
    pub url: String,
    pub loadfactor: Option<f64>,
    pub lbset: Option<u32>,
    pub status: Option<String>,
    pub retry: Option<DurationValue>,
    pub route: Option<String>,
    pub redirect: Option<String>,
    pub ping: Option<DurationValue>,
    pub timeout: Option<DurationValue>,
    pub connectiontimeout: Option<DurationValue>,
    pub max: Option<u32>,
    pub ttl: Option<DurationValue>,
    pub acquire: Option<DurationValue>,
    pub hctemplate: Option<String>,
    // The health keys repeat `RawHealthKeys` on purpose: `#[serde(flatten)]` cannot be combined
    // with `deny_unknown_fields`, and an unknown member key must stay an error.
    pub hcmethod: Option<String>,
    pub hcuri: Option<String>,
    pub hcexpr: Option<String>,
    pub hcinterval: Option<DurationValue>,
    pub hcpasses: Option<u32>,
    pub hcfails: Option<u32>,
    pub hctimeout: Option<DurationValue>,
    pub healthcheck: Option<RawPlugin>,
    pub upgrade: Option<Vec<String>>,
    pub tls: Option<super::tls::RawMemberTls>,
}

impl RawMember {
    /// The member's own health-check keys.
    pub(crate) fn health_keys(&self) -> RawHealthKeys {
        RawHealthKeys {
            hcmethod: self.hcmethod.clone(),
            hcuri: self.hcuri.clone(),
            hcexpr: self.hcexpr.clone(),
            hcinterval: self.hcinterval,
            hcpasses: self.hcpasses,
            hcfails: self.hcfails,
            hctimeout: self.hctimeout,
            healthcheck: self.healthcheck.clone(),
        }
    }
}

/// Health-check keys, of a member or an `[hctemplate.NAME]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHealthKeys {
    pub hcmethod: Option<String>,
    pub hcuri: Option<String>,
    pub hcexpr: Option<String>,
    pub hcinterval: Option<DurationValue>,
    pub hcpasses: Option<u32>,
    pub hcfails: Option<u32>,
    pub hctimeout: Option<DurationValue>,
    pub healthcheck: Option<RawPlugin>,
}

impl RawHealthKeys {
    /// These keys, with `base`'s filling the gaps (a member's keys over its template's).
    pub(crate) fn over(self, base: &RawHealthKeys) -> RawHealthKeys {
        RawHealthKeys {
            hcmethod: self.hcmethod.or_else(|| base.hcmethod.clone()),
            hcuri: self.hcuri.or_else(|| base.hcuri.clone()),
            hcexpr: self.hcexpr.or_else(|| base.hcexpr.clone()),
            hcinterval: self.hcinterval.or(base.hcinterval),
            hcpasses: self.hcpasses.or(base.hcpasses),
            hcfails: self.hcfails.or(base.hcfails),
            hctimeout: self.hctimeout.or(base.hctimeout),
            healthcheck: self.healthcheck.or_else(|| base.healthcheck.clone()),
        }
    }

    /// Whether any key is set (health checking is on for a member with any).
    pub(crate) fn any(&self) -> bool {
        self.hcmethod.is_some()
            || self.hcuri.is_some()
            || self.hcexpr.is_some()
            || self.hcinterval.is_some()
            || self.hcpasses.is_some()
            || self.hcfails.is_some()
            || self.hctimeout.is_some()
            || self.healthcheck.is_some()
    }
}

/// `[server]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    pub workers: Option<usize>,
    pub shutdown_timeout: Option<DurationValue>,
}

/// `[plugins]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPlugins {
    pub memory_limit: Option<SizeValue>,
    pub deadline: Option<DurationValue>,
    pub trap_limit: Option<u32>,
    pub trap_cooldown: Option<DurationValue>,
    pub cache: Option<String>,
}

/// A plugin: a default one's name (`lbmethod = "byrequests"`) or a table
/// (`{ path = "x.wasm", config = { ... } }`, `{ name = "hcheck", config = { ... } }`).
#[derive(Debug, Clone)]
pub(crate) enum RawPlugin {
    Name(String),
    Table(RawPluginTable),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPluginTable {
    pub name: Option<String>,
    pub path: Option<String>,
    pub config: Option<toml::Table>,
}

impl<'de> Deserialize<'de> for RawPlugin {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        string_or_table(
            d,
            "a default method's name (\"byrequests\") or a table { path = \"x.wasm\", config = { ... } }",
            RawPlugin::Name,
            RawPlugin::Table,
        )
    }
}

/// Deserializes a key that is a string or a table (`lbmethod`, `healthcheck`,
/// `stickysession`), with `expecting` in the error for anything else.
fn string_or_table<'de, D, T, Table>(d: D, expecting: &'static str, name: fn(String) -> T, table: fn(Table) -> T) -> Result<T, D::Error>
where
    D: de::Deserializer<'de>,
    Table: Deserialize<'de>,
{
    struct V<T, Table> {
        expecting: &'static str,
        name: fn(String) -> T,
        table: fn(Table) -> T,
    }
    impl<'de, T, Table: Deserialize<'de>> Visitor<'de> for V<T, Table> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            Ok((self.name)(v.to_string()))
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            Table::deserialize(de::value::MapAccessDeserializer::new(map)).map(self.table)
        }
    }
    d.deserialize_any(V { expecting, name, table })
}
