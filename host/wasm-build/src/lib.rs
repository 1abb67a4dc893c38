//! Used from `build.rs`: compiles plugin crates of this workspace for `wasm32-wasip2` so the
//! resulting components can be embedded with `include_bytes!` (default plugins) or used by
//! tests (test guests).
//!
//! The nested `cargo build` uses its own target directory (`target/wasm-plugins`), because the
//! outer cargo holds the lock on the main one, and the `wasm-plugin` profile from the workspace
//! manifest. Environment variables cargo sets for build scripts that would leak into the
//! nested build (target, rustflags, profile settings) are removed.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The target every plugin is built for.
pub const TARGET: &str = "wasm32-wasip2";

/// Builds `packages` (cargo package names) of the workspace at `workspace` and returns the
/// path of each component, in order. Panics with cargo's output on failure: this runs in a
/// build script, where a panic is how an error is reported.
pub fn build_components(workspace: &Path, packages: &[&str]) -> Vec<PathBuf> {
    ensure_target();
    let target_dir = target_dir(workspace).join("wasm-plugins");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args(["build", "--target", TARGET, "--profile", "wasm-plugin"])
        .arg("--target-dir")
        .arg(&target_dir);
    for p in packages {
        cmd.args(["-p", p]);
    }
    for (key, _) in std::env::vars_os() {
        if leaks_into_nested_build(&key.to_string_lossy()) {
            cmd.env_remove(&key);
        }
    }
    let output = cmd.output().unwrap_or_else(|e| panic!("cannot run cargo for the wasm plugins: {e}"));
    if !output.status.success() {
        panic!(
            "building the wasm plugins {packages:?} failed (is the target installed? `rustup target add {TARGET}`):\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let out = target_dir.join(TARGET).join("wasm-plugin");
    packages.iter().map(|p| out.join(format!("{}.wasm", p.replace('-', "_")))).collect()
}

/// Installs the wasm target with rustup when the toolchain lacks it, so a fresh machine needs
/// no extra set-up step (rust-toolchain.toml names the target, but rustup installs it only
/// when auto-install is on, and these machines turn it off).
fn ensure_target() {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc).args(["--print", "sysroot"]).output().ok().filter(|o| o.status.success());
    let installed = sysroot.is_some_and(|o| {
        let root = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
        root.join("lib").join("rustlib").join(TARGET).is_dir()
    });
    if installed {
        return;
    }
    println!("cargo:warning=installing the {TARGET} target with rustup (needed to build the plugins)");
    match Command::new("rustup").args(["target", "add", TARGET]).status() {
        Ok(status) if status.success() => {}
        Ok(status) => panic!("`rustup target add {TARGET}` failed ({status}); install the target and build again"),
        Err(e) => panic!("the {TARGET} target is missing and rustup cannot be run ({e}); install the target and build again"),
    }
}

/// Whether a variable cargo set for this build script would change the nested build (its
/// target, flags or profile). Registry, network and jobserver settings are kept.
fn leaks_into_nested_build(key: &str) -> bool {
    const KEEP: [&str; 6] = ["CARGO", "CARGO_HOME", "CARGO_MAKEFLAGS", "CARGO_NET_", "CARGO_REGISTRIES_", "CARGO_HTTP_"];
    const BUILD_SCRIPT_VARS: [&str; 9] =
        ["RUSTFLAGS", "RUSTC_WRAPPER", "RUSTC_WORKSPACE_WRAPPER", "TARGET", "HOST", "PROFILE", "OPT_LEVEL", "DEBUG", "OUT_DIR"];
    let kept = KEEP.iter().any(|k| if k.ends_with('_') { key.starts_with(k) } else { key == *k });
    (key.starts_with("CARGO_") && !kept) || BUILD_SCRIPT_VARS.contains(&key)
}

/// Tells cargo to rerun the build script when anything under these paths changes.
pub fn rerun_if_changed(workspace: &Path, paths: &[&str]) {
    for p in paths {
        println!("cargo:rerun-if-changed={}", workspace.join(p).display());
    }
}

/// The workspace's target directory: `CARGO_TARGET_DIR` if set, else the ancestor of
/// `OUT_DIR` that holds `CACHEDIR.TAG`, else `<workspace>/target`.
fn target_dir(workspace: &Path) -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        return if dir.is_absolute() { dir } else { workspace.join(dir) };
    }
    if let Some(out) = std::env::var_os("OUT_DIR")
        && let Some(dir) = Path::new(&out).ancestors().find(|a| a.join("CACHEDIR.TAG").is_file()) {
            return dir.to_path_buf();
        }
    workspace.join("target")
}
