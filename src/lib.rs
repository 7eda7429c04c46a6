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
//! - [`session`]: one call, room and stream as one lifecycle: the state machine, the
//!   driver task, the journal, teardown and recovery.
//! - [`serve`]: the HTTP service: sessions API, webhooks, metrics, session streams.
//! - [`load`]: many sessions at a given rate, with per-stage latency percentiles.
//! - [`redact`]: what may be shown of a URL in errors and logs.
//! - [`cli`]: the command line, one file per command; it wires the library together and
//!   maps outcomes to output and exit codes. `main.rs` only parses and calls [`cli::run`].
//!
//! Dependency direction: `main → cli`; `cli → app, serve, session, load, emulator, media,
//! cloud, config`; `emulator → cloud, media`; `cloud` and `media` never import each other;
//! nothing imports `cli`.

pub mod app;
pub mod cli;
pub mod clock;
pub mod cloud;
pub mod config;
pub mod emulator;
pub mod load;
pub mod media;
pub mod publish;
pub mod redact;
pub mod serve;
pub mod server;
pub mod session;
