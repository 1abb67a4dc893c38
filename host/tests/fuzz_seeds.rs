//! The fuzz targets' entry points over their kept corpus (`host/fuzz/corpus/`), as a plain test:
//! every input the fuzzers ever kept must still pass, even where cargo-fuzz cannot run.

use std::path::Path;

fn run_corpus(target: &str, entry: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut count = 0;
    for file in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = file.expect("corpus entry").path();
        let data = std::fs::read(&path).expect("corpus file");
        entry(&data);
        count += 1;
    }
    assert!(count > 0, "no corpus in {}", dir.display());
}

#[test]
fn request_head_corpus() {
    run_corpus("request_head", switchyard::fuzzing::request_head);
}

#[test]
fn config_corpus() {
    run_corpus("config", switchyard::fuzzing::config);
}

#[test]
fn member_response_corpus() {
    run_corpus("member_response", switchyard::fuzzing::member_response);
}
