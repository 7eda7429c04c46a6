//! A live stream: any input to one FLV stream with a fixed contract, kept alive.
//!
//! ```text
//! input pipeline (restartable)              pump thread (own clock)         encoder pipeline (once)
//! source ─ decode ─ normalize ─ appsink ──► latest frame / audio queue ──► appsrc ─ x264 ─┐
//!                                            slate when the input is gone   appsrc ─ aac ──┴ flvmux ─ appsink ─► StreamHub
//! ```
//!
//! The pump emits frames at the contract's rate and audio in chunks on its own
//! clock, taking the newest input frame or, when the input is gone, the slate (a still image
//! or black, and silence). So timestamps stay continuous and the caps never change across
//! input restarts, loop points and fallbacks. The supervisor owns the input pipeline's bus,
//! restarts it with jittered backoff on retryable errors and stalls, and ends the stream when
//! the input is done. A file that already meets the contract skips all of this: see
//! [`passthrough`](super::passthrough).
//!
//! - `input`: the input side (one attempt's pipeline, what it hands the pump)
//! - `pump`: the thread that emits the contract's timeline
//! - `pushed`: a publisher's connection carried into an input attempt
//! - `queue`: the play queue: inputs one after another, each told when it starts and ends
//! - `encoder`: the encoder pipeline and the slate picture
//! - `supervisor`: restarts, loops, stalls, the end

mod encoder;
mod input;
mod pump;
pub(crate) mod pushed;
mod queue;
mod supervisor;

pub use super::stream::{
    EngineError, InputFailure, LiveSettings, LiveStream, Loops, MediaEvent, StreamState,
    StreamStats,
};

pub use supervisor::PUBLISHER_LEFT;

use super::input::InputSpec;
use super::topology::Topologies;

impl LiveStream {
    /// Builds the encoder and the pump and starts the first input. Must run on a tokio
    /// runtime. Files are checked (decodable, not truncated) before anything starts.
    pub fn start(
        spec: InputSpec,
        settings: LiveSettings,
        topologies: &Topologies,
    ) -> Result<Self, EngineError> {
        supervisor::start(spec, settings, topologies)
    }
}
