//! callfeed puts media into real-time calls from the server side.
//!
//! It places a call from a robot account through Tencent Cloud's call engine, turns a file,
//! a device, a test source or a URL into a stream with GStreamer, and binds that stream into
//! the call's TRTC room with `StartStreamIngest`.
//!
//! # Layout
//!
//! - [`cli`]: the command line, one file per command; it wires the library together and
//!   maps outcomes to output and exit codes. `main.rs` only parses and calls [`cli::run`].
//! - [`app`]: wiring shared by the commands and the tests: cloud clients from the config,
//!   the embedded emulator, the journal's place, the shutdown signal.
//! - [`config`]: the TOML file and environment overrides; secrets redacted.
//! - [`cloud`]: Tencent's wire protocols — UserSig, TC3 signing, rooms, the call engine,
//!   StreamIngest, the relay to CDN (StartPublishCdnStream), CSS URLs, webhooks and the
//!   shared HTTP transport. No GStreamer here.
//! - [`media`]: every line of GStreamer code — inputs (`media::input`: one file per kind
//!   behind one trait) and the input policy, the inspection (`media::inspect`: the probe,
//!   real lengths, the one verdict), the media plan, streams (`media::stream`: the handle
//!   and the one start that picks live encoding or passthrough), announcements, FLV, the
//!   room observer, a session's room monitor and its recordings, and the emulator's relay
//!   to CDN. It never calls the cloud.
//! - [`publish`]: where streams are published for the cloud to pull (the node's own HTTP
//!   server, behind the `Publisher` trait sessions are handed; an RTMP relay in one room:
//!   its fields, URLs, test push and push).
//! - [`feed`]: feeds, live inputs with a life of their own (an encoder pushing RTMP with a
//!   stream key, or an input pulled), each encoded once for any number of calls: the
//!   registry, one feed's state and publisher, the RTMP server publishers push to (and the
//!   doors sessions' room monitors take the cloud's push through).
//! - [`session`]: one call, room and stream as one lifecycle: the request and its one
//!   validation, the pure state machine, the driver task, the journal, the room monitor and
//!   its verdict, teardown and recovery.
//! - [`store`]: where sessions are recorded (room lock, CallId/TaskId, results), by role:
//!   the journal and the event log, which embedded SQLite (one node) and PostgreSQL have, and
//!   the cluster (nodes, leases, placement), which only PostgreSQL has.
//! - [`serve`]: `callfeed serve`'s HTTP service: sessions API, every session's event
//!   stream, webhooks, metrics, the operator console's embedded files, what a web page may
//!   make the node do (Host, Origin, JSON bodies), and a node's part in a cluster (lease,
//!   placement, passing requests to other nodes).
//! - [`server`]: the bounded HTTP server every listener runs on (connection caps in all and
//!   per peer, a budget for connections yet to send a head, header and body timeouts,
//!   stalled readers dropped).
//! - [`load`]: many sessions at a given rate, with per-stage latency percentiles, run in
//!   this process or through the API of deployed nodes.
//! - [`emulator`]: a local Tencent cloud (both APIs, webhooks, callee scripts, fault
//!   injection) whose room observer really pulls and decodes each ingest stream.
//! - [`redact`]: what may be shown of a URL in errors, logs and `Debug`.
//! - [`memory`]: how the process gives memory back between sessions (glibc's allocator).
//! - [`clock`]: Unix time, read one way everywhere.
//!
//! Dependency direction: `main → cli`; `cli → app, serve, session, feed, load, emulator, publish,
//! media, cloud, config`; `serve → session, feed, publish, server, store`; `session → cloud, media,
//! publish, store, feed` (sessions are handed a publisher, a store and the feeds); `feed → media`; `publish → media, server, cloud` (CSS
//! signing); `emulator → cloud, media`; `config → cloud, publish` (the `[relay]` table's loading). `cloud` and `media` never import each other; `session` never
//! imports `serve` or `emulator`; nothing imports `cli`. `redact`, `clock` and `memory` are
//! leaves anyone may use. Inside a module, a `mod.rs` is the door: what its children share
//! lives in a leaf file they all import, never in the file that calls them
//! (`tests/import_circles.rs` holds every file to it).

pub mod app;
pub mod cli;
pub mod clock;
pub mod cloud;
pub mod config;
pub mod emulator;
pub mod feed;
pub mod load;
pub mod media;
pub mod memory;
pub mod publish;
pub mod redact;
pub mod serve;
pub mod server;
pub mod session;
pub mod store;
