//! Holds the crate to the `# Layout` in `lib.rs`: a module may use only modules listed above
//! it (and itself), and every module is listed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The modules in the order the crate docs list them (`- [`name`]` or `- `name``).
fn layout(lib: &str) -> Vec<String> {
    let mut order = Vec::new();
    for line in lib.lines().take_while(|l| l.starts_with("//!")) {
        let Some(item) = line.strip_prefix("//! - ") else { continue };
        let name: String = item.trim_start_matches(['[', '`']).chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if !name.is_empty() {
            order.push(name);
        }
    }
    order
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("source directory").flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module names a line of code reaches through `crate::` (comments skipped).
fn crate_paths(line: &str) -> impl Iterator<Item = &str> {
    let code = line.split("//").next().unwrap_or_default();
    code.match_indices("crate::").map(move |(at, _)| {
        let rest = &code[at + "crate::".len()..];
        let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
        &rest[..end]
    })
}

#[test]
fn no_module_uses_one_listed_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    let order = layout(&lib);
    let rank: HashMap<&str, usize> = order.iter().enumerate().map(|(i, m)| (m.as_str(), i)).collect();
    let declared: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod ").or_else(|| l.trim().strip_prefix("mod ")))
        .map(|l| l.trim_end_matches(';'))
        .filter(|m| *m != "layout")
        .collect();
    let unlisted: Vec<&&str> = declared.iter().filter(|m| !rank.contains_key(**m)).collect();
    assert!(unlisted.is_empty(), "modules missing from lib.rs's # Layout: {unlisted:?}");

    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut wrong = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&src).expect("under src");
        let top = relative.components().next().and_then(|c| c.as_os_str().to_str()).unwrap_or_default().trim_end_matches(".rs");
        let Some(&own) = rank.get(top) else { continue };
        let text = std::fs::read_to_string(&file).expect("source file");
        for (n, line) in text.lines().enumerate() {
            for used in crate_paths(line) {
                if rank.get(used).is_some_and(|&r| r > own) {
                    wrong.push(format!("{}:{}: `{top}` uses `{used}`, listed below it", relative.display(), n + 1));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the layout:\n{}", wrong.join("\n"));
}

#[test]
fn the_check_reads_what_it_should() {
    assert_eq!(layout("//! # Layout\n//! - [`a`]: x\n//! - `b`: y\n//!   - not\nfn x() {}\n//! - [`c`]"), ["a", "b"]);
    let used: Vec<&str> = crate_paths("use crate::proxy::X; // crate::admin").collect();
    assert_eq!(used, ["proxy"]);
}
