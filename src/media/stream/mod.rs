//! A stream: what both producers return — the live encoder (`live`, any input decoded and
//! encoded to the contract) and the passthrough remuxer (`passthrough`, a conforming file
//! copied) — and the one place that picks between them, as a plan's mode says.
//!
//! - `handle`: the handle, its settings, stats, events and errors: a leaf both producers
//!   import
//! - `control`: what a running live stream can be told to change (a leaf)
//! - `loops`: how many times the input plays (a leaf)

pub mod control;
pub(crate) mod handle;
mod loops;

pub use handle::{
    EngineError, InputFailure, LiveSettings, LiveStream, Loops, MediaEvent, StreamState,
    StreamStats,
};

use super::input::InputSpec;
use super::plan::Mode;
use super::topology::Topologies;

/// Starts the producer `mode` calls for: a conforming file is remuxed, anything else is
/// decoded and encoded to the contract (a URL the cloud could pull, when a stream of it is
/// asked for all the same, included). Must run on a tokio runtime.
pub fn start(
    mode: &Mode,
    input: &InputSpec,
    settings: LiveSettings,
    topologies: &Topologies,
) -> Result<LiveStream, EngineError> {
    match mode {
        Mode::Passthrough { path, container } => {
            LiveStream::start_passthrough(path.clone(), container, settings)
        }
        Mode::Live | Mode::Direct { .. } | Mode::Announcement { .. } => {
            LiveStream::start(input.clone(), settings, topologies)
        }
    }
}
