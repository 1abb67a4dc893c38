//! Writing the translated configuration as TOML a human keeps editing: sections in the order
//! of the reference, each block headed by the httpd line it came from, values that came from
//! elsewhere (a server-wide directive) with a comment naming it.

use std::fmt::Write;
use std::path::Path;

use super::Severity;
use super::model::{Output, Table, Value, quote};

pub(crate) fn emit(out: &Output, source: &Path) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "# Switchyard configuration converted from {} by `switchyard import-httpd`.", source.display());
    let open = out.findings.iter().filter(|f| f.severity != Severity::Ignored).count();
    if open == 0 {
        let _ = writeln!(t, "# Everything of the reverse proxy was translated; see the report for what was left out as");
        let _ = writeln!(t, "# unrelated to proxying.");
    } else {
        let _ = writeln!(t, "# {open} directive(s) were not translated exactly: they are listed at the end of this file.");
    }
    for l in &out.listeners {
        let _ = writeln!(t, "\n[[listen]]\n# {}", l.from);
        let _ = writeln!(t, "addr = {}", quote(&l.addr));
        if let Some(tls) = &l.tls {
            let _ = writeln!(t, "[listen.tls]");
            table(&mut t, tls);
            for sni in &l.sni {
                let _ = writeln!(t, "[[listen.tls.sni]]");
                table(&mut t, sni);
            }
        }
    }
    if !out.limits.0.is_empty() {
        let _ = writeln!(t, "\n[limits]");
        table(&mut t, &out.limits);
    }
    if !out.timeouts.0.is_empty() {
        let _ = writeln!(t, "\n[timeouts]");
        table(&mut t, &out.timeouts);
    }
    if let Some(log) = &out.access_log {
        let _ = writeln!(t, "\n[access_log]");
        table(&mut t, log);
    }
    if let Some(admin) = &out.admin {
        let _ = writeln!(t, "\n[admin]");
        table(&mut t, admin);
    }
    for r in &out.routes {
        let _ = writeln!(t, "\n[[route]]\n# {}", r.from);
        table(&mut t, &r.keys);
    }
    for (name, template) in &out.hctemplates {
        let _ = writeln!(t, "\n[hctemplate.{}]", key(name));
        table(&mut t, template);
    }
    for (name, b) in &out.balancers {
        let _ = writeln!(t, "\n[balancer.{}]\n# {}", key(name), b.from);
        table(&mut t, &b.keys);
        for m in &b.members {
            let _ = writeln!(t, "\n[[balancer.{}.member]]\n# {}", key(name), m.from);
            table(&mut t, &m.keys);
        }
    }
    let notes: Vec<_> = out.findings.iter().filter(|f| f.severity != Severity::Ignored).collect();
    if !notes.is_empty() {
        let _ = writeln!(t, "\n# Not translated exactly:");
        for f in notes {
            let _ = writeln!(t, "#   {} {} ({}): {}", f.at, f.directive, f.severity, f.why);
        }
    }
    t
}

fn table(t: &mut String, table: &Table) {
    for e in &table.0 {
        let value = match &e.value {
            Value::Str(s) => quote(s),
            Value::Int(n) => n.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Raw(r) => r.clone(),
        };
        match &e.from {
            Some(from) => {
                let _ = writeln!(t, "{} = {value}    # {from}", key(&e.key));
            }
            None => {
                let _ = writeln!(t, "{} = {value}", key(&e.key));
            }
        }
    }
}

/// A bare key when it can be one, else quoted.
fn key(k: &str) -> String {
    if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') { k.to_string() } else { quote(k) }
}
