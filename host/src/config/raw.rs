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
    pub limits: super::edge::RawLimits,
    #[serde(default)]
    pub timeouts: super::edge::RawTimeouts,
    #[serde(default)]
    pub forwarded: super::edge::RawForwarded,
}

/// `[[listen]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListen {
    pub addr: String,
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
    // Connection settings for a single `backend` (members set their own).
    pub timeout: Option<DurationValue>,
    pub connectiontimeout: Option<DurationValue>,
    pub max: Option<u32>,
    pub ttl: Option<DurationValue>,
    pub acquire: Option<DurationValue>,
    pub upgrade: Option<Vec<String>>,
}

/// `[balancer.NAME]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBalancer {
    pub lbmethod: Option<RawLbMethod>,
    pub maxattempts: Option<u32>,
    pub hashkey: Option<String>,
    #[serde(default)]
    pub member: Vec<RawMember>,
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
    pub timeout: Option<DurationValue>,
    pub connectiontimeout: Option<DurationValue>,
    pub max: Option<u32>,
    pub ttl: Option<DurationValue>,
    pub acquire: Option<DurationValue>,
    pub upgrade: Option<Vec<String>>,
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
}

/// `lbmethod = "byrequests"` or `lbmethod = { path = "x.wasm", config = { ... } }`.
#[derive(Debug)]
pub(crate) enum RawLbMethod {
    Name(String),
    Table(RawLbMethodTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLbMethodTable {
    pub name: Option<String>,
    pub path: Option<String>,
    pub config: Option<toml::Table>,
}

impl<'de> Deserialize<'de> for RawLbMethod {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawLbMethod;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a default method's name (\"byrequests\") or a table { path = \"x.wasm\", config = { ... } }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawLbMethod::Name(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawLbMethodTable::deserialize(de::value::MapAccessDeserializer::new(map)).map(RawLbMethod::Table)
            }
        }
        d.deserialize_any(V)
    }
}
