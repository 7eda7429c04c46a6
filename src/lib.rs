//! callfeed puts media into real-time calls from the server side.
//!
//! It places a call from a robot account through Tencent Cloud's call engine, turns a file,
//! a device, a test source or a URL into a stream with GStreamer, and binds that stream into
//! the call's TRTC room with `StartStreamIngest`.
//!
//! # Layout
//!
//! - [`app`]: wiring shared by the commands and the tests: cloud clients from the config,
//!   the embedded emulator, the journal's place, the shutdown signal.
//! - [`config`]: the TOML file and environment overrides; secrets redacted.
//! - [`cloud`]: Tencent's wire protocols — UserSig, TC3 signing, rooms, the call engine,
//!   StreamIngest, CSS URLs, webhooks and the shared HTTP transport. No GStreamer here.
//! - [`media`]: every line of GStreamer code. It never calls the cloud.
//! - [`emulator`]: a local Tencent cloud (both APIs, webhooks, callee scripts, fault
//!   injection) whose room observer really pulls and decodes each ingest stream.
//! - `main.rs`: the command line; parses, wires, and maps results to exit codes.
//!
//! Dependency direction: `main → emulator, cloud, media, config`; `emulator → cloud, media`;
//! `cloud` and `media` never import each other.

pub mod app;
pub mod cloud;
pub mod config;
pub mod emulator;
pub mod load;
pub mod media;
pub mod redact;
pub mod serve;
pub mod session;
