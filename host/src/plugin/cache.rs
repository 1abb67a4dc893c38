//! Compiled components on disk, so a plugin is compiled once per version and engine, not at
//! every start, `--check`, reload or hot swap (a Python component takes seconds to compile;
//! loading its compiled form takes milliseconds).
//!
//! A file is named by the SHA-256 of the component's bytes and a hash of the engine's
//! settings (wasmtime's `precompile_compatibility_hash`: its version, target and every option
//! that changes the code), so a file is only ever loaded by an engine that could have written
//! it. The directory is opened once as a capability handle. Each file starts with the SHA-256
//! of the compiled bytes that follow; a file that does not match (a torn write, a disk error)
//! is passed over and the component compiled again. A directory another user owns, or others
//! may write to, is refused when opened.
//!
//! # Safety
//! Loading a compiled component runs no verifier: its machine code is trusted, which is why
//! wasmtime marks [`Component::deserialize`] `unsafe`. Files here are only ever written by
//! this process from components it compiled itself, through the handle opened on the
//! configured directory, which must be this user's and not writable by others; the checksum
//! catches corruption, and wasmtime refuses artefacts of another version or engine
//! configuration. Someone who can still write this directory (this user, root) can also
//! rewrite the config and the binary: keep it as private as both.

use std::hash::{Hash, Hasher};
use std::path::Path;

use cap_std::fs::Dir;
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::PluginError;

const MAGIC: &[u8; 8] = b"SWYCOMP1";

/// The SHA-256 of `bytes` in lowercase hex (how plugin versions are named).
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Refuses a directory another user owns or others may write to (owner compared with a file
/// this process creates there).
fn private_to_us(dir: &Dir) -> Result<(), String> {
    use cap_std::fs::{MetadataExt, PermissionsExt};
    let meta = dir.dir_metadata().map_err(|e| e.to_string())?;
    if meta.permissions().mode() & 0o022 != 0 {
        return Err(format!("others may write to it (mode {:o}): chmod go-w", meta.permissions().mode() & 0o777));
    }
    let probe = format!(".owner.{}", std::process::id());
    dir.write(&probe, b"").map_err(|e| e.to_string())?;
    let ours = dir.metadata(&probe).map(|m| m.uid());
    let _ = dir.remove_file(&probe);
    if ours.map_err(|e| e.to_string())? != meta.uid() {
        return Err("another user owns it".to_string());
    }
    Ok(())
}

/// The compiled-component directory.
pub(crate) struct CompiledCache {
    dir: Dir,
    engine: String,
}

impl CompiledCache {
    /// Opens (creating) `path` for `engine`'s artefacts. A directory another user owns, or
    /// that others may write to, is refused: what is in it would run as this process.
    pub(crate) fn open(path: &Path, engine: &Engine) -> Result<Self, PluginError> {
        let fail = |e: std::io::Error| PluginError::Engine(format!("compiled-plugin cache {}: {e}", path.display()));
        let dir = crate::durable::open_dir(path).map_err(fail)?;
        private_to_us(&dir).map_err(|reason| PluginError::Engine(format!("compiled-plugin cache {}: {reason}", path.display())))?;
        let mut hasher = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(Self { dir, engine: format!("{:016x}", hasher.finish()) })
    }

    fn name(&self, sha: &str) -> String {
        format!("{sha}-{}.cwasm", self.engine)
    }

    /// The compiled form of the component whose bytes hash to `sha`, when kept and intact.
    pub(crate) fn load(&self, engine: &Engine, sha: &str) -> Option<Component> {
        let file = self.dir.read(self.name(sha)).ok()?;
        let (digest, compiled) = file.strip_prefix(MAGIC.as_slice())?.split_at_checked(32)?;
        if Sha256::digest(compiled).as_slice() != digest {
            tracing::warn!(plugin = sha, "a compiled plugin in the cache is damaged; compiling again");
            return None;
        }
        // SAFETY: see the module docs — the bytes were written by this process from a
        // component it compiled (checked by digest), and wasmtime checks that they were
        // made by this engine version and configuration before using them.
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize(engine, compiled) };
        loaded.map_err(|e| tracing::warn!(plugin = sha, error = %e, "a compiled plugin in the cache was refused; compiling again")).ok()
    }

    /// Keeps the compiled form of `component` (whose source bytes hash to `sha`); a failure
    /// is logged and costs only a compile next time.
    pub(crate) fn store(&self, sha: &str, component: &Component) {
        let written = component
            .serialize()
            .map_err(|e| std::io::Error::other(format!("{e:#}")))
            .and_then(|compiled| crate::durable::replace(&self.dir, &self.name(sha), &[MAGIC, &Sha256::digest(&compiled), &compiled]));
        if let Err(e) = written {
            tracing::warn!(plugin = sha, error = %e, "a compiled plugin could not be kept in the cache");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compiled_component_comes_back_and_a_damaged_one_does_not() {
        let engine = super::super::engine::engine().expect("engine");
        let dir = std::env::temp_dir().join(format!("switchyard-compiled-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cache = CompiledCache::open(&dir, &engine).expect("opens");
        let bytes = super::super::builtin::component("byrequests").expect("a default plugin");
        let sha = sha256_hex(bytes);
        assert!(cache.load(&engine, &sha).is_none(), "nothing kept yet");
        let started = std::time::Instant::now();
        let compiled = Component::new(&engine, bytes).expect("compiles");
        let compile = started.elapsed();
        cache.store(&sha, &compiled);
        let started = std::time::Instant::now();
        assert!(cache.load(&engine, &sha).is_some(), "kept and loaded");
        eprintln!("byrequests: compiled in {compile:?}, loaded from the cache in {:?}", started.elapsed());

        let file = dir.join(cache.name(&sha));
        let mut damaged = std::fs::read(&file).expect("kept");
        let last = damaged.len() - 1;
        damaged[last] ^= 0xff;
        std::fs::write(&file, &damaged).expect("write");
        assert!(cache.load(&engine, &sha).is_none(), "a damaged file is passed over");
        std::fs::write(&file, b"SWYCOMP1short").expect("write");
        assert!(cache.load(&engine, &sha).is_none(), "a short file is passed over");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
