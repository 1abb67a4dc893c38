//! The JavaScript example plugin (`examples/plugins/peak-ewma-js`), built for the tests with
//! its own `build.sh` when its pinned componentize-js is installed (`npm ci` there).
//!
//! As with the Python example (`python`): a missing tool skips the JavaScript tests with a
//! note, unless `SWITCHYARD_REQUIRE_JS_PLUGIN=1` (set by CI) makes it a failure; the component
//! (~12 MB, ~20 s to build) is cached in the target directory under a name derived from
//! everything that goes into it, so it is rebuilt exactly when one of those changes.

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::python::{build_cached, workspace};

/// Set to `1` to make a missing componentize-js a test failure instead of a skip.
pub const REQUIRE_VAR: &str = "SWITCHYARD_REQUIRE_JS_PLUGIN";

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
        crate::note(&format!(
            "skipping a JavaScript example plugin test: {why}. To run it: {install}. ({REQUIRE_VAR}=1, as in CI, makes this a failure.)"
        ));
        return Ok(None);
    }
    let inputs = [source.join("peak_ewma.js"), source.join("build.sh"), source.join("package-lock.json")];
    build_cached("js-plugins", "peak-ewma", &source, &inputs, "", "the JavaScript example plugin").map(Some)
}
