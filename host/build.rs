//! Compiles the default plugins (`plugins/*`) to wasm32-wasip2 components and tells the crate
//! where they are, so `cargo build` embeds them with no extra step.

use std::path::Path;

const DEFAULT_PLUGINS: [(&str, &str); 5] = [
    ("byrequests", "lbmethod-byrequests"),
    ("bytraffic", "lbmethod-bytraffic"),
    ("bybusyness", "lbmethod-bybusyness"),
    ("hcheck", "healthcheck-hcheck"),
    ("proxypassreverse", "rewrite-proxypassreverse"),
];

fn main() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let workspace = Path::new(&manifest_dir).parent().expect("host/ is inside the workspace");
    switchyard_wasm_build::rerun_if_changed(workspace, &["plugins", "sdk", "wit", "Cargo.toml", "Cargo.lock"]);
    let packages: Vec<&str> = DEFAULT_PLUGINS.iter().map(|(_, p)| *p).collect();
    let paths = switchyard_wasm_build::build_components(workspace, &packages);
    for ((name, _), path) in DEFAULT_PLUGINS.iter().zip(paths) {
        println!("cargo:rustc-env=SWITCHYARD_PLUGIN_{}={}", name.to_uppercase(), path.display());
    }
}
