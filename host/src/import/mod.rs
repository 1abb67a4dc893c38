//! `switchyard import-httpd`: an httpd reverse-proxy configuration turned into a Switchyard
//! TOML file, with a report of everything that could not be carried over exactly.
//!
//! `parse` reads the httpd files (includes followed) into a tree of directives;
//! `translate` walks it into an output — listeners, routes, balancers, members,
//! health-check templates, limits, timeouts, the access log — noting a [`Finding`] for each
//! directive it cannot translate or translates with a difference; `hcexpr` turns the common
//! shapes of `ProxyHCExpr` into our `hcexpr` language; `emit` writes the TOML for a human
//! to keep editing (each block names the httpd line it came from). The result is checked with
//! the proxy's own config loader before it is returned.

mod emit;
mod hcexpr;
mod model;
mod params;
mod parse;
mod translate;

use std::fmt;
use std::path::{Path, PathBuf};

/// Why a configuration could not be imported at all.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The httpd syntax is broken (an unclosed section…).
    #[error("{at}: {reason}")]
    Syntax {
        /// `file:line`.
        at: String,
        /// What is wrong.
        reason: String,
    },
}

/// How far a directive made it into the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Not part of a reverse proxy's configuration (modules, users, document roots…): left
    /// out, nothing lost.
    Ignored,
    /// Translated, but Switchyard behaves differently (said how).
    Different,
    /// Not translated: the result lacks it.
    Untranslated,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Ignored => "ignored",
            Severity::Different => "different",
            Severity::Untranslated => "NOT TRANSLATED",
        })
    }
}

/// One directive the result does not carry over exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `file:line` of the httpd directive.
    pub at: String,
    /// The directive's name.
    pub directive: String,
    /// How far it made it.
    pub severity: Severity,
    /// Why, and what to do.
    pub why: String,
}

/// The result of an import.
#[derive(Debug)]
pub struct Import {
    /// The Switchyard configuration, as TOML text.
    pub toml: String,
    /// What was not carried over exactly, in file order.
    pub findings: Vec<Finding>,
}

impl Import {
    /// Whether everything of the reverse proxy was translated exactly (only `Ignored`
    /// findings).
    pub fn complete(&self) -> bool {
        self.findings.iter().all(|f| f.severity == Severity::Ignored)
    }

    /// The findings as a table, for stderr.
    pub fn report(&self) -> String {
        let mut out = String::new();
        let width = self.findings.iter().map(|f| f.at.len()).max().unwrap_or(0);
        for f in &self.findings {
            out.push_str(&format!("{:width$}  {:14}  {:26}  {}\n", f.at, f.severity.to_string(), f.directive, f.why));
        }
        out
    }
}

/// Reads the httpd configuration at `path` (and what it includes) and translates it; `out`
/// is where the result will be written (relative paths in the result are as httpd had them).
pub fn import_httpd(path: &Path, out: &Path) -> Result<Import, ImportError> {
    let tree = parse::read(path)?;
    let mut output = translate::translate(&tree);
    let mut toml = emit::emit(&output, path);
    // The result must load: anything the proxy's own check refuses is reported, and noted
    // in the file.
    if let Err(errors) = crate::config::parse(&toml, out) {
        for e in &errors.0 {
            output.findings.push(Finding {
                at: format!("{}:{}", out.display(), e.line.unwrap_or(0)),
                directive: e.key.clone(),
                severity: Severity::Untranslated,
                why: format!("the result does not pass the check: {}", e.message),
            });
        }
        toml.push_str("\n# The config check refuses this file as it stands:\n");
        for e in &errors.0 {
            toml.push_str(&format!("#   {e}\n"));
        }
    }
    Ok(Import { toml, findings: output.findings })
}
