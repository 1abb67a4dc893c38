//! `switchyard plugin new`: a plugin project that builds outside this repository, in Rust
//! ([`rust`]: its own `Cargo.toml`, a workspace of its own depending on `switchyard-sdk`,
//! which carries the WIT contract), Python or JavaScript ([`script`]: the WIT contract copied
//! in, the pinned build tool, a build script); each a working plugin with a test and a README
//! saying how to build, test, check and load it. Depends on nothing else in the crate.

mod rust;
mod script;

use std::path::{Path, PathBuf};

/// The languages a project can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// Rust, with the SDK.
    Rust,
    /// Python, built with componentize-py.
    Python,
    /// JavaScript, built with componentize-js.
    Js,
}

impl std::str::FromStr for Lang {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "rust" => Ok(Lang::Rust),
            "python" => Ok(Lang::Python),
            "js" | "javascript" => Ok(Lang::Js),
            other => Err(format!("`{other}` is not a language plugins are written in here (rust, python, js)")),
        }
    }
}

/// The plugin kinds a project can be made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A load-balancing method.
    LbMethod,
    /// A health check.
    HealthCheck,
    /// A header rewrite.
    HeaderRewrite,
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "lbmethod" => Ok(Kind::LbMethod),
            "health-check" => Ok(Kind::HealthCheck),
            "header-rewrite" => Ok(Kind::HeaderRewrite),
            other => Err(format!("`{other}` is not a plugin kind (lbmethod, health-check, header-rewrite)")),
        }
    }
}

/// Why no project was written.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name cannot be a crate name.
    #[error("`{0}` cannot name a plugin: use lowercase letters, digits, - and _, starting with a letter")]
    Name(String),
    /// A Rust project needs the SDK.
    #[error("say where switchyard-sdk is: --sdk /path/to/switchyard/sdk")]
    NoSdk,
    /// Only lbmethod projects are written in Python and JavaScript.
    #[error("{lang} projects are written for lbmethods; write a {kind} in Rust (--lang rust)")]
    Unsupported {
        /// The kind asked for.
        kind: &'static str,
        /// The language asked for.
        lang: &'static str,
    },
    /// The directory exists already.
    #[error("{0} exists already; choose another name or directory")]
    Exists(PathBuf),
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Writes the project `name` of `kind` in `lang` in `dir/name` (a Rust one depending on the
/// SDK at `sdk`, a directory); returns the project's directory.
pub fn new_project(dir: &Path, name: &str, kind: Kind, lang: Lang, sdk: Option<&Path>) -> Result<PathBuf, ScaffoldError> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        return Err(ScaffoldError::Name(name.to_string()));
    }
    let root = dir.join(name);
    if root.exists() {
        return Err(ScaffoldError::Exists(root));
    }
    let files = match lang {
        Lang::Rust => rust::files(name, kind, &type_name(name), sdk.ok_or(ScaffoldError::NoSdk)?),
        Lang::Python | Lang::Js if kind != Kind::LbMethod => {
            let kind = if kind == Kind::HealthCheck { "health check" } else { "header rewrite" };
            let lang = if lang == Lang::Python { "Python" } else { "JavaScript" };
            return Err(ScaffoldError::Unsupported { kind, lang });
        }
        Lang::Python => script::python(name),
        Lang::Js => script::js(name),
    };
    for (file, text) in files {
        let path = root.join(file);
        let write = path.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| std::fs::write(&path, text));
        write.map_err(|source| ScaffoldError::Io { path, source })?;
    }
    Ok(root)
}

/// `my-method` → `MyMethod`.
fn type_name(name: &str) -> String {
    name.split(['-', '_']).filter(|p| !p.is_empty()).map(|p| p[..1].to_ascii_uppercase() + &p[1..]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_types() {
        assert_eq!(type_name("my-fast_method"), "MyFastMethod");
        let dir = std::env::temp_dir().join(format!("switchyard-scaffold-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for bad in ["", "My", "9x", "a b", "../x"] {
            assert!(matches!(new_project(&dir, bad, Kind::LbMethod, Lang::Rust, Some(Path::new("/sdk"))), Err(ScaffoldError::Name(_))), "{bad}");
        }
        let root = new_project(&dir, "my-method", Kind::HeaderRewrite, Lang::Rust, Some(Path::new("/sdk"))).expect("written");
        assert!(std::fs::read_to_string(root.join("src/lib.rs")).expect("lib").contains("export_header_rewrite!(MyMethod)"));
        assert!(matches!(new_project(&dir, "my-method", Kind::LbMethod, Lang::Rust, Some(Path::new("/sdk"))), Err(ScaffoldError::Exists(_))));
        assert!(matches!(new_project(&dir, "py-check", Kind::HealthCheck, Lang::Python, None), Err(ScaffoldError::Unsupported { .. })));
        let py = new_project(&dir, "py-method", Kind::LbMethod, Lang::Python, None).expect("written");
        assert!(py.join("wit/lbmethod.wit").is_file() && py.join("app.py").is_file());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
