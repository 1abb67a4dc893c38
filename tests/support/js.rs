//! The JavaScript example plugin (`examples/plugins/peak-ewma-js`), built for the tests with
//! its own `build.sh` when its pinned componentize-js is installed (`npm ci` there).
//!
//! As with the Python example (`python`): a missing tool skips the JavaScript tests with a
//! note, unless `SWITCHYARD_REQUIRE_JS_PLUGIN=1` (set by CI) makes it a failure; the component
//! (~12 MB, ~20 s to build) is cached in the target directory under a name derived from
//! everything that goes into it, so it is rebuilt exactly when one of those changes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::python::{Fnv, remove_stale_named, run_bounded, wit_files, workspace};

/// Set to `1` to make a missing componentize-js a test failure instead of a skip.
pub const REQUIRE_VAR: &str = "SWITCHYARD_REQUIRE_JS_PLUGIN";

/// The longest a build may take before the test fails (it takes ~20 s on 2 busy cores).
const BUILD_DEADLINE: Duration = Duration::from_secs(300);

/// The JavaScript peak-EWMA plugin's component, building it if needed; `None` (after
/// printing why) when componentize-js is not installed and not required.
///
/// # Panics
/// When the build fails, or the tool is missing and `SWITCHYARD_REQUIRE_JS_PLUGIN=1`.
pub fn peak_ewma_js() -> Option<PathBuf> {
    static BUILT: OnceLock<Result<Option<PathBuf>, String>> = OnceLock::new();
    match BUILT.get_or_init(build) {
        Ok(path) => path.clone(),
        Err(message) => panic!("{message}"),
    }
}

fn build() -> Result<Option<PathBuf>, String> {
    let workspace = workspace()?;
    let source = workspace.join("examples/plugins/peak-ewma-js");
    let tool = source.join("node_modules/.bin/componentize-js");
    if !tool.exists() {
        let why = format!("{} is not installed", tool.display());
        let install = format!("cd {} && npm ci", source.display());
        if std::env::var(REQUIRE_VAR).is_ok_and(|v| v == "1") {
            return Err(format!("{REQUIRE_VAR}=1 but {why}; {install}"));
        }
        eprintln!("note: skipping a JavaScript example plugin test: {why}. To run it: {install}");
        return Ok(None);
    }
    let mut inputs = vec![source.join("peak_ewma.js"), source.join("build.sh"), source.join("package-lock.json")];
    inputs.extend(wit_files(&workspace.join("wit"))?);
    let mut key = Fnv::default();
    for input in &inputs {
        let bytes = std::fs::read(input).map_err(|e| format!("cannot read {}: {e}", input.display()))?;
        key.write(input.strip_prefix(workspace).unwrap_or(input).to_string_lossy().as_bytes());
        key.write(&bytes);
    }
    let cache = Path::new(env!("SWITCHYARD_TARGET_DIR")).join("js-plugins");
    let component = cache.join(format!("peak-ewma-{:016x}.wasm", key.0));
    if component.is_file() {
        return Ok(Some(component));
    }
    std::fs::create_dir_all(&cache).map_err(|e| format!("cannot create {}: {e}", cache.display()))?;
    let partial = cache.join(format!("peak-ewma-{:016x}.{}.partial", key.0, std::process::id()));
    let started = Instant::now();
    eprintln!("note: building the JavaScript example plugin (cached in {})", cache.display());
    if let Err(e) = run_bounded(Command::new("bash").arg(source.join("build.sh")).arg(&partial), BUILD_DEADLINE) {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    std::fs::rename(&partial, &component).map_err(|e| format!("cannot move the built component into place: {e}"))?;
    eprintln!("note: built {} in {:.1?}", component.display(), started.elapsed());
    remove_stale_named(&cache, &component, "peak-ewma-");
    Ok(Some(component))
}
