//! Finds where a key is in the TOML text, and which key a byte offset belongs to.
//!
//! Validation works on plain structs and names problems by key path (`route[2].path`); this
//! module turns a path into a line using toml's spanned parse tree, and turns the byte span of
//! a serde error back into a key path.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    /// A key in a table.
    Key(String),
    /// An element of an array (of tables).
    Index(usize),
}

/// Formats a path the way errors show it: `balancer.myset.member[1].url`.
pub(crate) fn display_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The parsed document, kept for locating keys.
pub(crate) struct Locator<'a> {
    text: &'a str,
    root: Option<DeTable<'a>>,
}

impl<'a> Locator<'a> {
    /// Parses `text`; a text that does not parse yields a locator that only knows lines.
    pub(crate) fn new(text: &'a str) -> Self {
        let root = DeTable::parse(text).ok().map(|t| t.into_inner());
        Self { text, root }
    }

    /// 1-based line of byte offset `at`.
    pub(crate) fn line_of_offset(&self, at: usize) -> usize {
        let at = at.min(self.text.len());
        self.text.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1
    }

    /// Line of the deepest part of `path` that exists in the document.
    pub(crate) fn line_of(&self, path: &[Seg]) -> Option<usize> {
        let root = self.root.as_ref()?;
        let mut best: Option<usize> = None;
        let mut table = Some(root);
        let mut value: Option<&DeValue<'a>> = None;
        for seg in path {
            match seg {
                Seg::Key(k) => {
                    let t = match (table, value) {
                        (Some(t), None) => t,
                        (_, Some(DeValue::Table(t))) => t,
                        _ => break,
                    };
                    let Some((key, v)) = t.iter().find(|(key, _)| key.get_ref().as_ref() == k) else {
                        break;
                    };
                    best = Some(key.span().start);
                    value = Some(v.get_ref());
                    table = None;
                }
                Seg::Index(i) => {
                    let Some(DeValue::Array(items)) = value else { break };
                    let Some(item) = items.get(*i) else { break };
                    best = Some(item.span().start);
                    value = Some(item.get_ref());
                }
            }
        }
        best.map(|at| self.line_of_offset(at))
    }

    /// The key path whose value contains `span`, as deep as it goes.
    pub(crate) fn path_at(&self, span: &Range<usize>) -> Vec<Seg> {
        let mut path = Vec::new();
        if let Some(root) = &self.root {
            walk_table(root, span, &mut path);
        }
        path
    }
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end
}

fn walk_table(table: &DeTable<'_>, span: &Range<usize>, path: &mut Vec<Seg>) {
    for (key, value) in table.iter() {
        // A key's own span, or its value's, may hold the error (unknown keys point at the key).
        if contains(&key.span(), span) {
            path.push(Seg::Key(key.get_ref().to_string()));
            return;
        }
        if contains(&value.span(), span) {
            path.push(Seg::Key(key.get_ref().to_string()));
            walk_value(value.get_ref(), span, path);
            return;
        }
    }
    // Tables declared with [header] syntax do not cover their whole body in one span: search
    // the children anyway.
    for (key, value) in table.iter() {
        let before = path.len();
        path.push(Seg::Key(key.get_ref().to_string()));
        walk_value(value.get_ref(), span, path);
        if path.len() > before + 1 {
            return;
        }
        path.truncate(before);
    }
}

fn walk_value(value: &DeValue<'_>, span: &Range<usize>, path: &mut Vec<Seg>) {
    match value {
        DeValue::Table(t) => walk_table(t, span, path),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let before = path.len();
                path.push(Seg::Index(i));
                if contains(&item.span(), span) {
                    walk_value(item.get_ref(), span, path);
                    return;
                }
                walk_value(item.get_ref(), span, path);
                if path.len() > before + 1 {
                    return;
                }
                path.truncate(before);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "[[listen]]\naddr = \"x\"\n\n[balancer.a]\nlbmethod = \"byrequests\"\n\n[[balancer.a.member]]\nurl = \"u1\"\n[[balancer.a.member]]\nurl = \"u2\"\nloadfactor = 300\n";

    fn key(k: &str) -> Seg {
        Seg::Key(k.to_string())
    }

    #[test]
    fn finds_lines_of_nested_keys() {
        let loc = Locator::new(DOC);
        assert_eq!(loc.line_of(&[key("listen"), Seg::Index(0), key("addr")]), Some(2));
        assert_eq!(loc.line_of(&[key("balancer"), key("a"), key("lbmethod")]), Some(5));
        let lf = [key("balancer"), key("a"), key("member"), Seg::Index(1), key("loadfactor")];
        assert_eq!(loc.line_of(&lf), Some(11));
        // A missing key falls back to the deepest part that exists.
        let missing = [key("balancer"), key("a"), key("member"), Seg::Index(1), key("timeout")];
        assert_eq!(loc.line_of(&missing), Some(9));
    }

    #[test]
    fn maps_an_offset_back_to_its_key() {
        let loc = Locator::new(DOC);
        let at = DOC.find("300").expect("in doc");
        let path = loc.path_at(&(at..at + 3));
        assert_eq!(display_path(&path), "balancer.a.member[1].loadfactor");
    }
}
