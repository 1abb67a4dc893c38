//! Compiles the test guests (`tests/guests/*`) to wasm32-wasip2 components for the tests.

use std::path::Path;

const GUESTS: [(&str, &str); 2] = [("MISBEHAVE", "guest-misbehave"), ("BADREWRITE", "guest-badrewrite")];

fn main() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let workspace = Path::new(&manifest_dir).parent().expect("tests/ is inside the workspace");
    switchyard_wasm_build::rerun_if_changed(workspace, &["tests/guests", "sdk", "wit", "Cargo.lock"]);
    let packages: Vec<&str> = GUESTS.iter().map(|(_, p)| *p).collect();
    let paths = switchyard_wasm_build::build_components(workspace, &packages);
    for ((name, _), path) in GUESTS.iter().zip(paths) {
        println!("cargo:rustc-env=GUEST_{name}={}", path.display());
    }
}
