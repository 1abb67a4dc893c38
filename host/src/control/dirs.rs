//! The manager's two directories, each opened once as a capability ([`cap_std::fs::Dir`]) so
//! that no admin request can name a path outside it (`../`, absolute paths and symlinks that
//! lead out are refused by the handle itself):
//!
//! - [`StateDir`] (`[admin] persist`, httpd's BalancerPersist): the overlay in `state.json`,
//!   replaced atomically ([`crate::durable`]), so a crash at any instant leaves the old state
//!   or the new one.
//! - [`PluginStore`] (`[admin] plugins`): uploaded plugin versions, each named by the SHA-256
//!   of its bytes (`<hex>.wasm`), written the same way.

use std::path::{Path, PathBuf};

use cap_std::fs::Dir;

use super::overlay::{FORMAT_VERSION, Overlay};
use crate::plugin::sha256_hex;

const STATE_FILE: &str = "state.json";

/// Why a directory or a file in it could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    /// The directory could not be created or opened.
    #[error("{path}: {source}")]
    Open {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file in it could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The state file is broken or from a newer version: refused whole.
    #[error("{path}: {reason}; the file is left as it is (move it away to start from the config file alone)")]
    BadState {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A plugin name that is not a plain file name inside the plugins directory.
    #[error("`{0}` is not a file name inside the plugins directory")]
    Name(String),
    /// A name inside the plugins directory that is not a regular file (a directory, a pipe…).
    #[error("`{0}` in the plugins directory is not a regular file")]
    NotAFile(String),
    /// Bytes that are not a WebAssembly component: not kept.
    #[error("{0}")]
    NotAComponent(String),
    /// A version named by a prefix of its SHA-256 that names none, or more than one.
    #[error("{0}")]
    Version(String),
}

fn open(path: &Path) -> Result<Dir, DirError> {
    crate::durable::open_dir(path).map_err(|source| DirError::Open { path: path.to_path_buf(), source })
}

fn replace(dir: &Dir, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    crate::durable::replace(dir, name, &[bytes])
}

/// `[admin] persist`: where the overlay is kept.
#[derive(Debug)]
pub struct StateDir {
    dir: Dir,
    path: PathBuf,
}

impl StateDir {
    /// Opens (creating) the directory, and removes the temporary files of writes a crash cut
    /// short (the state file itself is always whole: it is replaced by a rename).
    pub fn open(path: &Path) -> Result<Self, DirError> {
        let dir = open(path)?;
        let leftovers: Vec<String> = dir
            .entries()
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.starts_with(&format!(".{STATE_FILE}.")) && n.ends_with(".tmp"))
            // `.state.json.PID.N.tmp`: only a process that is gone left it (another one, a
            // `--check` beside the daemon say, may be writing it now).
            .filter(|n| n[STATE_FILE.len() + 2..].split('.').next().and_then(|pid| pid.parse::<u32>().ok()).is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()))
            .collect();
        for name in leftovers {
            let _ = dir.remove_file(&name);
        }
        Ok(Self { dir, path: path.to_path_buf() })
    }

    /// The state file's path, for messages.
    pub fn file(&self) -> PathBuf {
        self.path.join(STATE_FILE)
    }

    /// The overlay kept here; empty when there is none yet.
    pub fn load(&self) -> Result<Overlay, DirError> {
        let bytes = match self.dir.read(STATE_FILE) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Overlay { version: FORMAT_VERSION, ..Overlay::default() }),
            Err(source) => return Err(DirError::Io { path: self.file(), source }),
        };
        let bad = |reason: String| DirError::BadState { path: self.file(), reason };
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| bad(format!("not a state file: {e}")))?;
        let version = value.get("version").and_then(serde_json::Value::as_u64).ok_or_else(|| bad("no version".into()))?;
        if version > u64::from(FORMAT_VERSION) {
            return Err(bad(format!("written by a newer Switchyard (state version {version}; this one reads up to {FORMAT_VERSION})")));
        }
        serde_json::from_value(value).map_err(|e| bad(format!("not a state file: {e}")))
    }

    /// Replaces the kept overlay with `overlay`, durably, before returning.
    pub fn save(&self, overlay: &Overlay) -> Result<(), DirError> {
        let mut text = serde_json::to_vec_pretty(overlay).map_err(|e| DirError::Io { path: self.file(), source: std::io::Error::other(e) })?;
        text.push(b'\n');
        replace(&self.dir, STATE_FILE, &text).map_err(|source| DirError::Io { path: self.file(), source })
    }
}

/// `[admin] plugins`: uploaded plugin versions by SHA-256.
#[derive(Debug)]
pub struct PluginStore {
    dir: Dir,
    path: PathBuf,
}

impl PluginStore {
    /// Opens (creating) the directory.
    pub fn open(path: &Path) -> Result<Self, DirError> {
        let dir = open(path)?;
        // Absolute: versions are named to the plugin loader by their path.
        let path = std::fs::canonicalize(path).map_err(|source| DirError::Open { path: path.to_path_buf(), source })?;
        Ok(Self { dir, path })
    }

    /// Keeps `bytes` as a version; returns its SHA-256 (lowercase hex). Keeping the same
    /// bytes twice writes nothing the second time.
    pub fn put(&self, bytes: &[u8]) -> Result<String, DirError> {
        crate::plugin::component_header(bytes).map_err(|reason| DirError::NotAComponent(reason.to_string()))?;
        let sha = sha256_hex(bytes);
        let name = file_name(&sha);
        if !self.dir.is_file(&name) {
            replace(&self.dir, &name, bytes).map_err(|source| DirError::Io { path: self.path.join(&name), source })?;
        }
        Ok(sha)
    }

    /// Keeps the file `name` of this directory as a version (a file copied there by other
    /// means); returns its SHA-256.
    pub fn import(&self, name: &str) -> Result<String, DirError> {
        let plain = Path::new(name).components().count() == 1 && !name.is_empty() && !name.starts_with('.') && !name.chars().any(char::is_control);
        if !plain {
            return Err(DirError::Name(name.to_string()));
        }
        // Looked at before it is opened: opening a pipe would wait for a writer.
        let meta = self.dir.metadata(name).map_err(|source| DirError::Io { path: self.path.join(name), source })?;
        if !meta.is_file() {
            return Err(DirError::NotAFile(name.to_string()));
        }
        let bytes = self.dir.read(name).map_err(|source| DirError::Io { path: self.path.join(name), source })?;
        self.put(&bytes)
    }

    /// The full SHA-256 of the version `given` names: the whole hex, or (as the page shows it)
    /// `sha256:` and/or a prefix of at least 12 hex digits that names exactly one version.
    pub fn resolve(&self, given: &str) -> Result<String, DirError> {
        let hex = given.strip_prefix("sha256:").unwrap_or(given).to_ascii_lowercase();
        if self.path_of(&hex).is_some() {
            return Ok(hex);
        }
        if hex.len() < 12 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(DirError::Version(format!("no plugin version {given} in the plugins directory (name one by its SHA-256, or at least its first 12 hex digits)")));
        }
        let matching: Vec<String> = self.versions().into_iter().map(|(sha, _)| sha).filter(|sha| sha.starts_with(&hex)).collect();
        match matching.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(DirError::Version(format!("no plugin version {given} in the plugins directory"))),
            _ => Err(DirError::Version(format!("{given} names {} versions: give more of its SHA-256", matching.len()))),
        }
    }

    /// The versions kept here (SHA-256 and size), sorted.
    pub fn versions(&self) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = self
            .dir
            .entries()
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let sha = name.strip_suffix(".wasm")?;
                let size = e.metadata().ok()?.len();
                self.path_of(sha).map(|_| (sha.to_string(), size))
            })
            .collect();
        out.sort();
        out
    }

    /// Forgets version `sha` (the whole SHA-256): its file is removed.
    pub fn remove(&self, sha: &str) -> Result<(), DirError> {
        if self.path_of(sha).is_none() {
            return Err(DirError::Version(format!("no plugin version {sha} in the plugins directory")));
        }
        let name = file_name(sha);
        self.dir.remove_file(&name).map_err(|source| DirError::Io { path: self.path.join(name), source })
    }

    /// Where version `sha` is, when it is here.
    pub fn path_of(&self, sha: &str) -> Option<PathBuf> {
        let valid = sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let name = file_name(sha);
        (valid && self.dir.is_file(&name)).then(|| self.path.join(name))
    }
}

fn file_name(sha: &str) -> String {
    format!("{sha}.wasm")
}


#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("switchyard-dirs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn state_round_trips_and_refuses_newer_or_broken_files() {
        let path = temp("state");
        let state = StateDir::open(&path).expect("opens");
        assert!(state.load().expect("empty").is_empty());
        let mut o = Overlay { version: FORMAT_VERSION, ..Overlay::default() };
        o.balancer_mut("web").removed.insert("http://a:1".into());
        state.save(&o).expect("saves");
        assert_eq!(state.load().expect("loads"), o);
        std::fs::write(path.join(STATE_FILE), r#"{"version": 99}"#).expect("write");
        let e = state.load().unwrap_err().to_string();
        assert!(e.contains("state.json") && e.contains("newer"), "{e}");
        std::fs::write(path.join(STATE_FILE), "{").expect("write");
        assert!(state.load().unwrap_err().to_string().contains("not a state file"));
        let _ = std::fs::remove_dir_all(&path);
    }

    #[test]
    fn the_plugin_store_keeps_versions_and_stays_inside() {
        let path = temp("store");
        let store = PluginStore::open(&path).expect("opens");
        let component = b"\0asm\x0d\0\x01\0one";
        let sha = store.put(component).expect("puts");
        assert_eq!(sha.len(), 64);
        assert_eq!(store.path_of(&sha), Some(std::fs::canonicalize(&path).expect("canonical").join(format!("{sha}.wasm"))));
        assert_eq!(store.path_of("../etc/passwd"), None);
        std::fs::write(path.join("mine.wasm"), b"\0asm\x0d\0\x01\0two").expect("write");
        assert_eq!(store.import("mine.wasm").expect("imports"), sha256_hex(b"\0asm\x0d\0\x01\0two"));
        assert_eq!(store.versions().len(), 2, "the two versions, not mine.wasm");
        // What is not a component is refused and not kept, whichever way it comes.
        std::fs::write(path.join("junk.wasm"), b"MZ junk").expect("write");
        assert!(matches!(store.import("junk.wasm"), Err(DirError::NotAComponent(_))));
        assert!(matches!(store.put(b"\0asm\x01\0\0\0core"), Err(DirError::NotAComponent(_))));
        assert_eq!(store.versions().len(), 2);
        // A pipe is refused without being opened (opening it would wait for a writer); so is
        // a directory; a NUL is not a file name.
        let made = std::process::Command::new("mkfifo").arg(path.join("pipe.wasm")).status().expect("mkfifo runs");
        assert!(made.success(), "mkfifo");
        assert!(matches!(store.import("pipe.wasm"), Err(DirError::NotAFile(_))));
        std::fs::create_dir(path.join("dir.wasm")).expect("dir");
        assert!(matches!(store.import("dir.wasm"), Err(DirError::NotAFile(_))));
        assert!(matches!(store.import("x\0.wasm"), Err(DirError::Name(_))));
        // A version is named by its whole SHA-256 or, as the page shows it, a prefix.
        assert_eq!(store.resolve(&format!("sha256:{}", &sha[..12])).expect("short form"), sha);
        assert_eq!(store.resolve(&sha.to_ascii_uppercase()).expect("any case"), sha);
        assert!(matches!(store.resolve(&sha[..6]), Err(DirError::Version(_))), "too short to name one");
        assert!(matches!(store.resolve(&"0".repeat(64)), Err(DirError::Version(_))));
        for bad in ["../x.wasm", "/etc/passwd", "sub/x.wasm", "", ".."] {
            assert!(matches!(store.import(bad), Err(DirError::Name(_))), "{bad}");
        }
        let outside = temp("outside");
        std::fs::create_dir_all(&outside).expect("dir");
        std::fs::write(outside.join("secret"), b"s").expect("write");
        std::os::unix::fs::symlink(outside.join("secret"), path.join("link.wasm")).expect("symlink");
        assert!(store.import("link.wasm").is_err(), "a symlink leading out is refused");
        let _ = std::fs::remove_dir_all(&path);
        let _ = std::fs::remove_dir_all(&outside);
    }
}
