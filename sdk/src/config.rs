//! A plugin's configuration: the table given for it in the proxy's TOML file.
//!
//! The host hands it over as JSON once per instance (`configure` in the WIT contract). Plugins
//! normally deserialize it into a struct of their own with [`Config::parse`]; serde's messages
//! (unknown field, wrong type) become the load error the operator sees.

use serde::de::DeserializeOwned;

/// The plugin's own table from the proxy config; an empty table when none was given.
#[derive(Debug, Clone, Default)]
pub struct Config {
    value: serde_json::Value,
}

impl Config {
    /// Parses the JSON text the host sends. An empty string counts as an empty table.
    pub fn from_json(json: &str) -> Result<Self, String> {
        if json.trim().is_empty() {
            return Ok(Self::default());
        }
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| format!("config is not valid JSON: {e}"))?;
        if !value.is_object() {
            return Err("config must be a table".to_string());
        }
        Ok(Self { value })
    }

    /// Deserializes the whole table into `T` (use `#[serde(deny_unknown_fields)]` to reject
    /// misspelt keys).
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, String> {
        let value = if self.value.is_null() {
            serde_json::Value::Object(Default::default())
        } else {
            self.value.clone()
        };
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    /// One key of the table, if present.
    pub fn get(&self, key: &str) -> Option<&serde_json::Value> {
        self.value.get(key)
    }

    /// Whether the table has no keys.
    pub fn is_empty(&self) -> bool {
        self.value.as_object().is_none_or(|m| m.is_empty())
    }

    /// Fails with a clear message when the table has any key: for plugins that take no config.
    pub fn expect_empty(&self, plugin: &str) -> Result<(), String> {
        match self.value.as_object().and_then(|m| m.keys().next()) {
            Some(key) => Err(format!("{plugin} takes no configuration, but got key `{key}`")),
            None => Ok(()),
        }
    }
}
