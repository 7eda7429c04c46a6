//! The integration tests, in one binary (as ripgrep's `tests/tests.rs`): one module per area,
//! sharing the harness in `common/`. Every test binary links GStreamer, axum, the PostgreSQL
//! client and the harness; one binary links them once. Tests that need a process of their own
//! are in `leaks.rs`; the soak is in `soak/` (see `[[test]]` in Cargo.toml).

mod common;

mod bombs;
mod call_cli;
mod capacity;
mod cli;
mod cloud_vectors;
mod cluster;
mod console;
mod downmix;
mod emulator;
mod emulator_conformance;
mod exposure;
mod feeds;
mod flac_32_bit;
mod import_circles;
mod keyframes;
mod live_control;
mod lost_answers;
mod lying_files;
mod media;
mod media_cli;
mod monitor;
mod observer;
mod outputs;
mod python_interop;
mod real_files;
mod redirects;
mod relay;
mod request_shapes;
mod retries;
mod serve;
mod serve_http;
mod serve_security;
mod sessions;
mod short_clips;
mod speech;
mod store;

/// With `autotests = false` a file added to `tests/` is built only if it is declared: one that
/// is not would never run, silently. Every file and folder here is a module of this binary, a
/// `[[test]]` of its own, or the harness.
#[test]
fn every_test_file_is_built() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let declared = std::fs::read_to_string(dir.join("tests.rs")).unwrap();
    let manifest = std::fs::read_to_string(dir.join("../Cargo.toml")).unwrap();
    let own_binaries = ["tests.rs", "leaks.rs", "soak"];
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let module = match name.strip_suffix(".rs") {
            Some(stem) => stem.to_owned(),
            None if entry.path().join("mod.rs").exists() => name.clone(),
            // Not Rust: data for the tests (py/ holds the Python checks).
            None => continue,
        };
        if own_binaries.contains(&name.as_str()) {
            assert!(
                manifest.contains(&format!("\"tests/{name}")),
                "{name} is meant to be its own [[test]] in Cargo.toml"
            );
            continue;
        }
        if !declared.contains(&format!("mod {module};")) {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "not built (add `mod NAME;` to tests/tests.rs, or a [[test]] in Cargo.toml): {missing:?}"
    );
}
