//! The Python example plugin (`examples/plugins/rendezvous-py`), built for the tests with its
//! own `build.sh` when `componentize-py` is installed.
//!
//! `cargo test --workspace` must pass on a machine without componentize-py, so a missing tool
//! skips the Python tests with a note — unless `SWITCHYARD_REQUIRE_PY_PLUGIN=1` (set by CI),
//! which makes it a failure. The component (~18 MB, ~15 s to build) is cached in the target
//! directory under a name derived from everything that goes into it (the plugin's sources,
//! the WIT files, the build script and the componentize-py version), so it is rebuilt exactly
//! when one of those changes. componentize-py bundles CPython and works offline.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Set to `1` to make a missing componentize-py a test failure instead of a skip.
pub const REQUIRE_VAR: &str = "SWITCHYARD_REQUIRE_PY_PLUGIN";

/// The example's pinned build tool, as pip reads it (`.ci/run` installs from the same file).
const REQUIREMENTS: &str = include_str!("../../examples/plugins/rendezvous-py/requirements.txt");

/// The longest a build may take before the test fails (it takes ~15 s on 2 busy cores).
const BUILD_DEADLINE: Duration = Duration::from_secs(300);

/// The Python rendezvous plugin's component, building it if needed; `None` (after printing
/// why) when componentize-py is not installed and not required.
///
/// # Panics
/// When the build fails, or the tool is missing and `SWITCHYARD_REQUIRE_PY_PLUGIN=1`.
pub fn rendezvous_py() -> Option<PathBuf> {
    // Tests run in parallel: the first caller builds, the others wait for its answer.
    static BUILT: OnceLock<Result<Option<PathBuf>, String>> = OnceLock::new();
    match BUILT.get_or_init(build_rendezvous_py) {
        Ok(path) => path.clone(),
        Err(message) => panic!("{message}"),
    }
}

/// Runs the plugin's native unit tests (`test_rendezvous.py`, plain CPython against bindings
/// componentize-py generates); `None` (after printing why) when componentize-py is missing and
/// not required.
///
/// # Panics
/// When a unit test fails, or the tool is missing and `SWITCHYARD_REQUIRE_PY_PLUGIN=1`.
pub fn run_rendezvous_py_unit_tests() -> Option<()> {
    let result = (|| {
        let Some(_) = tool_version()? else { return Ok(None) };
        let bindings = tempfile_path("py-bindings");
        let _ = std::fs::remove_dir_all(&bindings);
        let wit = workspace()?.join("wit");
        run_bounded(
            Command::new("componentize-py").arg("-d").arg(wit).args(["-w", "lbmethod-plugin", "bindings"]).arg(&bindings),
            BUILD_DEADLINE,
        )?;
        let tests = run_bounded(
            Command::new("python3")
                .args(["-m", "unittest", "-v", "test_rendezvous"])
                .current_dir(workspace()?.join("examples/plugins/rendezvous-py"))
                .env("PYTHONPATH", &bindings)
                .env("PYTHONDONTWRITEBYTECODE", "1"),
            BUILD_DEADLINE,
        );
        let _ = std::fs::remove_dir_all(&bindings);
        tests.map(Some)
    })();
    match result {
        Ok(Some(output)) => {
            eprintln!("{output}");
            Some(())
        }
        Ok(None) => None,
        Err(message) => panic!("{message}"),
    }
}

/// The installed componentize-py's version line; `Ok(None)` (after printing why) when it is
/// missing and not required, an error when it is missing and required.
fn tool_version() -> Result<Option<String>, String> {
    let required = std::env::var(REQUIRE_VAR).is_ok_and(|v| v == "1");
    match Command::new("componentize-py").arg("--version").stdin(Stdio::null()).output() {
        Ok(out) if out.status.success() => Ok(Some(String::from_utf8_lossy(&out.stdout).trim().to_string())),
        found => {
            let why = match found {
                Ok(out) => format!("`componentize-py --version` failed: {}", String::from_utf8_lossy(&out.stderr)),
                Err(e) => format!("componentize-py is not on PATH ({e})"),
            };
            let requirements = workspace()?.join("examples/plugins/rendezvous-py/requirements.txt");
            let install = format!("pip install -r {} (it pins {})", requirements.display(), pinned());
            if required {
                return Err(format!("{REQUIRE_VAR}=1 but {why}; {install}"));
            }
            crate::note(&format!(
                "skipping a Python example plugin test: {why}. To run it: {install}. ({REQUIRE_VAR}=1, as in CI, makes this a failure.)"
            ));
            Ok(None)
        }
    }
}

pub(crate) fn workspace() -> Result<&'static Path, String> {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().ok_or_else(|| "tests/ has no parent".to_string())
}

fn build_rendezvous_py() -> Result<Option<PathBuf>, String> {
    let Some(version) = tool_version()? else { return Ok(None) };
    if !pinned().ends_with(version.rsplit(' ').next().unwrap_or_default()) {
        crate::note(&format!("{version} is installed; the example is pinned to {}", pinned()));
    }
    let workspace = workspace()?;
    let source = workspace.join("examples/plugins/rendezvous-py");
    let inputs = [source.join("rendezvous.py"), source.join("build.sh")];
    build_cached("py-plugins", "rendezvous", &source, &inputs, &version, &format!("the Python example plugin with {version}")).map(Some)
}

/// The component `source/build.sh` makes, cached in `target/<cache>/<prefix>-<key>.wasm`, the
/// key derived from `inputs`, the WIT files and `salt` (the tool's version), so it is rebuilt
/// exactly when one of them changes. Older builds are deleted.
pub(crate) fn build_cached(cache: &str, prefix: &str, source: &Path, inputs: &[PathBuf], salt: &str, what: &str) -> Result<PathBuf, String> {
    let workspace = workspace()?;
    let mut inputs = inputs.to_vec();
    inputs.extend(wit_files(&workspace.join("wit"))?);
    let mut key = Fnv::default();
    key.write(salt.as_bytes());
    for input in &inputs {
        let bytes = std::fs::read(input).map_err(|e| format!("cannot read {}: {e}", input.display()))?;
        key.write(input.strip_prefix(workspace).unwrap_or(input).to_string_lossy().as_bytes());
        key.write(&bytes);
    }
    let cache = Path::new(env!("SWITCHYARD_TARGET_DIR")).join(cache);
    let component = cache.join(format!("{prefix}-{:016x}.wasm", key.0));
    if component.is_file() {
        return Ok(component);
    }
    std::fs::create_dir_all(&cache).map_err(|e| format!("cannot create {}: {e}", cache.display()))?;
    // Built under a temporary name and renamed, so an interrupted build never leaves a
    // truncated component under the final name.
    let partial = cache.join(format!("{prefix}-{:016x}.{}.partial", key.0, std::process::id()));
    let started = Instant::now();
    eprintln!("note: building {what} (cached in {})", cache.display());
    if let Err(e) = run_bounded(Command::new("bash").arg(source.join("build.sh")).arg(&partial), BUILD_DEADLINE) {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    std::fs::rename(&partial, &component).map_err(|e| format!("cannot move the built component into place: {e}"))?;
    eprintln!("note: built {} in {:.1?}", component.display(), started.elapsed());
    remove_stale(&cache, &component, &format!("{prefix}-"));
    Ok(component)
}

/// The pinned requirement, e.g. `componentize-py==0.25.1`.
fn pinned() -> &'static str {
    REQUIREMENTS.lines().map(str::trim).find(|l| l.starts_with("componentize-py")).unwrap_or("componentize-py")
}

/// The `.wit` files of the contract, in name order.
fn wit_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> =
        entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "wit")).collect();
    files.sort();
    Ok(files)
}

/// Runs `cmd` to completion within `deadline` and returns its output (stdout and stderr
/// together); fails with that output when the command does.
/// Runs `cmd` to its end, for at most `deadline`; its output (stdout and stderr) or why it failed.
pub fn run_bounded(cmd: &mut Command, deadline: Duration) -> Result<String, String> {
    let output_file = tempfile_path("command-log");
    let log = std::fs::File::create(&output_file).map_err(|e| format!("cannot create a build log: {e}"))?;
    let log_err = log.try_clone().map_err(|e| format!("cannot create a build log: {e}"))?;
    let mut child =
        cmd.stdin(Stdio::null()).stdout(log).stderr(log_err).spawn().map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{cmd:?} took over {deadline:?}"));
            }
            Err(e) => return Err(format!("waiting for the build failed: {e}")),
        }
    };
    let output = std::fs::read_to_string(&output_file).unwrap_or_default();
    let _ = std::fs::remove_file(&output_file);
    if status.success() { Ok(output) } else { Err(format!("{cmd:?} failed ({status}):\n{output}")) }
}

/// A fresh temporary path: tests run in parallel in one process, so the pid is not enough.
fn tempfile_path(what: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("switchyard-tests-{what}-{}-{n}", std::process::id()))
}

/// Deletes the components in `cache` named `prefix…wasm` but `keep` (built from older sources).
fn remove_stale(cache: &Path, keep: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(cache) else { return };
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if path != keep && name.starts_with(prefix) && name.ends_with(".wasm") {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// FNV-1a, 64 bits: a cache key that stays the same across Rust versions (std's hasher may not).
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        // Length first, so (a, bc) and (ab, c) differ.
        for &b in (bytes.len() as u64).to_le_bytes().iter().chain(bytes) {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}
