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
mod flac_32_bit;
mod import_circles;
mod keyframes;
mod lost_answers;
mod lying_files;
mod media;
mod media_cli;
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
mod store;
