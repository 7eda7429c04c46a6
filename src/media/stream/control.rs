//! What a running live stream can be told to change without ending: its volume, a pause
//! (the picture held, silence), another input in place of the current one, a seek within a
//! file. A leaf: the handle sends these, the live supervisor carries them out on the
//! stream's one timeline, so its readers (and the cloud's ingest task) see no break.

use std::time::Duration;

use crate::media::input::InputSpec;
use crate::media::inspect::ProbeReport;

use super::loops::Loops;

/// The loudest a stream can be made: twice its own level.
pub const MAX_VOLUME_PERCENT: u32 = 200;

/// One change to a running live stream.
#[derive(Debug)]
pub enum LiveControl {
    /// The sound's level in percent of the input's own (0 ..= [`MAX_VOLUME_PERCENT`]).
    Volume(u32),
    /// Paused: the last picture held and silence, a file's place kept; or going on.
    Pause(bool),
    /// Another input from now on, from its start; the probe of it, when it was probed, says
    /// how to play it (its track, its picture's shape).
    Switch(Box<Switch>),
    /// Moves within the current file (from its start).
    Seek(Duration),
    /// Inputs to play one after another; `replace` drops what waits and cuts what plays.
    Queue { items: Vec<Queued>, replace: bool },
    /// Drops what waits in the queue and cuts the queued item that plays (barge-in).
    ClearQueue,
}

/// An input in a play queue, with the id and mark its start and end are told by.
#[derive(Debug)]
pub struct Queued {
    pub id: u64,
    pub mark: Option<String>,
    pub switch: Switch,
}

#[derive(Debug)]
pub struct Switch {
    pub spec: InputSpec,
    pub report: Option<ProbeReport>,
    pub loops: Loops,
    /// What sources the new input's pipelines may open by themselves.
    pub guard: Option<crate::media::policy::SourceGuard>,
}

/// Why a stream did not take a change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error(
        "this stream is a file passed through as it is (no encoder runs to change it in place)"
    )]
    PassedThrough,
    #[error("the stream has ended")]
    Ended,
}

/// The gain of `percent`, for 16-bit samples.
pub fn gain(percent: u32) -> f32 {
    percent.min(MAX_VOLUME_PERCENT) as f32 / 100.0
}
