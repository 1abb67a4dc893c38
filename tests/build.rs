//! Compiles the test guests (`tests/guests/*`) and the Rust example plugins
//! (`examples/plugins/*-rs`) to wasm32-wasip2 components for the tests, and tells the tests
//! where the target directory is (the Python example's component is cached there).

use std::path::{Path, PathBuf};

/// (env var suffix, cargo package): `GUEST_<suffix>` holds the component's path.
const GUESTS: [(&str, &str); 5] = [
    ("MISBEHAVE", "guest-misbehave"),
    ("BADREWRITE", "guest-badrewrite"),
    ("BADCHECK", "guest-badcheck"),
    ("RENDEZVOUS_RS", "lbmethod-rendezvous"),
    ("PEAK_EWMA", "lbmethod-peak-ewma"),
];

fn main() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let workspace = Path::new(&manifest_dir).parent().expect("tests/ is inside the workspace");
    switchyard_wasm_build::rerun_if_changed(workspace, &["tests/guests", "examples/plugins/rendezvous-rs", "examples/plugins/peak-ewma-rs", "sdk", "wit", "Cargo.lock"]);
    let packages: Vec<&str> = GUESTS.iter().map(|(_, p)| *p).collect();
    let paths = switchyard_wasm_build::build_components(workspace, &packages);
    for ((name, _), path) in GUESTS.iter().zip(paths) {
        println!("cargo:rustc-env=GUEST_{name}={}", path.display());
    }
    println!("cargo:rustc-env=SWITCHYARD_TARGET_DIR={}", target_dir(workspace).display());
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");
}

/// The workspace's target directory: `CARGO_TARGET_DIR` if set, else the ancestor of
/// `OUT_DIR` that holds `CACHEDIR.TAG`, else `<workspace>/target`.
fn target_dir(workspace: &Path) -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        return if dir.is_absolute() { dir } else { workspace.join(dir) };
    }
    std::env::var_os("OUT_DIR")
        .and_then(|out| Path::new(&out).ancestors().find(|a| a.join("CACHEDIR.TAG").is_file()).map(Path::to_path_buf))
        .unwrap_or_else(|| workspace.join("target"))
}
