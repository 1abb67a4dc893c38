//! What the translation builds before it is written out: the sections of a Switchyard file,
//! each value with the httpd line it came from.

use std::collections::BTreeMap;

use super::Finding;

/// A TOML value, as it will be written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Already TOML (an array or inline table).
    Raw(String),
}

/// A key, its value, and where it came from (`file:line: text`), shown as a comment.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub key: String,
    pub value: Value,
    pub from: Option<String>,
}

/// Keys in the order they were set; a key set again replaces the earlier value.
#[derive(Debug, Clone, Default)]
pub(crate) struct Table(pub Vec<Entry>);

impl Table {
    pub(crate) fn set(&mut self, key: &str, value: Value, from: Option<String>) {
        match self.0.iter_mut().find(|e| e.key == key) {
            Some(e) => {
                e.value = value;
                e.from = from;
            }
            None => self.0.push(Entry { key: key.to_string(), value, from }),
        }
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.0.iter().any(|e| e.key == key)
    }
}

/// A TOML basic string.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A `[[listen]]`.
#[derive(Debug, Clone)]
pub(crate) struct Listener {
    pub addr: String,
    pub from: String,
    /// `[listen.tls]` keys, and more certificates by name.
    pub tls: Option<Table>,
    pub sni: Vec<Table>,
}

/// A `[[route]]`.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub from: String,
    pub keys: Table,
    /// The virtual host it was written in (0: the main server).
    pub server: usize,
    /// Whether it came from a `<Location>` block.
    pub location: bool,
}

/// A `[balancer.NAME]`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Balancer {
    pub from: String,
    pub keys: Table,
    pub members: Vec<Member>,
}

/// A `[[balancer.NAME.member]]`.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub from: String,
    pub keys: Table,
    /// The virtual host its balancer was defined in.
    pub server: usize,
}

/// The whole translated configuration.
#[derive(Debug, Default)]
pub(crate) struct Output {
    pub listeners: Vec<Listener>,
    pub routes: Vec<Route>,
    pub balancers: BTreeMap<String, Balancer>,
    pub hctemplates: BTreeMap<String, Table>,
    pub limits: Table,
    pub timeouts: Table,
    pub access_log: Option<Table>,
    pub admin: Option<Table>,
    pub findings: Vec<Finding>,
}
