//! A live stream's vocabulary, shared by its producers (the live encoder's parts and the
//! passthrough remuxer) and its users: the handle, its settings, stats, events and errors.
//! A leaf: it starts nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use crate::media::contract::Contract;
use crate::media::hub::StreamHub;

pub use super::loops::Loops;

/// How a live stream is produced.
#[derive(Debug, Clone)]
pub struct LiveSettings {
    pub contract: Contract,
    pub loops: Loops,
    /// Start this far into the first item.
    pub start: Option<Duration>,
    /// No input progress for this long switches to the slate and restarts the input.
    pub stall_timeout: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// The slate, shown when the input is gone and for an input without video (the user's
    /// slate image, or the input's cover art); black when `None`.
    pub picture: Option<crate::media::picture::Picture>,
    /// Which of the input's audio tracks plays (its number among the audio tracks).
    pub audio_track: usize,
    /// The input is a still picture: it is shown as video, frozen, until stopped.
    pub still_image: bool,
    /// The probe found the input's picture rotated (a phone's clip, a photo's EXIF): it is
    /// turned upright before it is scaled. Unknown (no probe) is upright: only files and
    /// URLs carry the rotation tag.
    pub rotated: bool,
    /// How many threads decode the input's video.
    pub decoder_threads: crate::media::pads::DecoderThreads,
    /// The input starts only when the stream is first pulled (the slate runs until then),
    /// so a file is heard from its start by whoever pulls it: the cloud pulls at the
    /// callee's answer, not when the phone starts ringing.
    pub hold_until_pulled: bool,
    /// What sources the input's pipelines may open by themselves; a network input's own
    /// default ([`SourceGuard::for_uri`](crate::media::policy::SourceGuard::for_uri)) when `None`.
    pub source_guard: Option<crate::media::policy::SourceGuard>,
    /// How large a picture the input (and the slate) may decode to.
    pub input_bounds: crate::media::bounds::InputBounds,
    /// Where a file's first sample is, when later than its start: played from there.
    pub first_sample: Option<Duration>,
}

impl LiveSettings {
    /// Follows what the probe found: a still picture, the chosen audio track, and the
    /// picture for an input without video (`slate` first, else its cover art).
    pub fn follow(
        &mut self,
        report: Option<&crate::media::inspect::ProbeReport>,
        slate: Option<&std::path::Path>,
    ) {
        self.still_image = report
            .and_then(|r| r.video.as_ref())
            .is_some_and(|v| v.still_image);
        self.rotated = report
            .and_then(|r| r.video.as_ref())
            .is_some_and(|v| v.orientation.is_some());
        self.audio_track = report.and_then(|r| r.audio_track).unwrap_or(0);
        self.decoder_threads =
            crate::media::pads::DecoderThreads::live(report.and_then(|r| r.video.as_ref()));
        self.picture = crate::media::picture::Picture::for_input(slate, report);
        if let Some(report) = report {
            self.input_bounds = report.bounds;
            self.first_sample = report
                .start_ms
                .filter(|_| report.kind == "file")
                .map(Duration::from_millis);
        }
    }

    pub fn new(contract: Contract) -> Self {
        Self {
            contract,
            loops: Loops::Times(1),
            start: None,
            stall_timeout: Duration::from_secs(3),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(10),
            picture: None,
            audio_track: 0,
            still_image: false,
            rotated: false,
            decoder_threads: crate::media::pads::DecoderThreads::Auto,
            hold_until_pulled: false,
            source_guard: None,
            input_bounds: Default::default(),
            first_sample: None,
        }
    }
}

/// Why an input failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InputFailure {
    pub fatal: bool,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("input {input}: {reason}")]
    Input { input: String, reason: String },
    #[error("cannot build the {stage} pipeline: {reason}")]
    Build { stage: &'static str, reason: String },
    #[error("the encoder failed: {0}")]
    Encoder(String),
}

/// A transition, for logs, the API's event stream and tests.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum MediaEvent {
    InputStarted {
        item: usize,
        iteration: u32,
    },
    FirstMedia,
    ItemFinished {
        item: usize,
        iteration: u32,
    },
    OnSlate {
        reason: String,
    },
    BackOnInput,
    InputRestart {
        attempt: u32,
        delay_ms: u64,
        reason: String,
    },
    Ended {
        reason: String,
    },
    Failed {
        reason: String,
    },
    /// A queued item's first media reached the stream.
    QueuedStarted {
        id: u64,
        mark: Option<String>,
    },
    /// A queued item played out, or was `cut` (a replace, a clear).
    QueuedFinished {
        id: u64,
        mark: Option<String>,
        cut: bool,
    },
    /// The queue ran out: the slate until more comes.
    QueueEmpty,
}

/// Where a stream stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum StreamState {
    Starting,
    Live,
    OnSlate,
    Ended,
    Failed,
}

impl StreamState {
    /// Its name as the JSON reports spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Live => "live",
            Self::OnSlate => "on_slate",
            Self::Ended => "ended",
            Self::Failed => "failed",
        }
    }
}

/// Figures per stream.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StreamStats {
    pub state: StreamState,
    /// Remuxed without decoding (the input already meets the contract).
    pub passthrough: bool,
    pub frames_in: u64,
    pub frames_out: u64,
    pub audio_ms_out: u64,
    pub slate_frames: u64,
    /// The time on the slate, so no reader divides frames by a frame rate of its own.
    pub slate_ms: u64,
    /// Frames sent again because no new input frame had come: an input slower than the
    /// contract's rate, a late one, or a machine short of CPU. The timeline stays
    /// real-time; the picture stutters.
    pub repeated_frames: u64,
    /// Pictures the encoder could not take in time (a machine short of CPU): not queued,
    /// so memory and latency stay bounded; the room sees a lower frame rate.
    pub dropped_frames: u64,
    /// Audio the encoder could not take in time, in milliseconds.
    pub dropped_audio_ms: u64,
    pub restarts: u32,
    pub item: usize,
    pub iteration: u32,
    pub position_ms: u64,
    pub bytes_out: u64,
    pub readers: usize,
    /// Whether anyone (the cloud) ever pulled the stream.
    pub pulled: bool,
}

/// A stream's running figures, shared by its threads without a lock.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) frames_in: AtomicU64,
    pub(crate) frames_out: AtomicU64,
    pub(crate) audio_ms_out: AtomicU64,
    pub(crate) slate_frames: AtomicU64,
    pub(crate) repeated_frames: AtomicU64,
    pub(crate) dropped_frames: AtomicU64,
    pub(crate) dropped_audio_ms: AtomicU64,
    pub(crate) restarts: AtomicU32,
    pub(crate) item: AtomicU64,
    pub(crate) iteration: AtomicU32,
    pub(crate) position_ms: AtomicU64,
    state: AtomicU8,
}

/// Adds to a counter; the figures are read together only for reports.
pub(crate) fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn set_state(&self, state: StreamState) {
        self.state.store(state as u8, Ordering::Relaxed);
    }

    fn state(&self) -> StreamState {
        match self.state.load(Ordering::Relaxed) {
            s if s == StreamState::Live as u8 => StreamState::Live,
            s if s == StreamState::OnSlate as u8 => StreamState::OnSlate,
            s if s == StreamState::Ended as u8 => StreamState::Ended,
            s if s == StreamState::Failed as u8 => StreamState::Failed,
            _ => StreamState::Starting,
        }
    }

    fn snapshot(&self, passthrough: bool, hub: &StreamHub) -> StreamStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StreamStats {
            state: self.state(),
            passthrough,
            frames_in: get(&self.frames_in),
            frames_out: get(&self.frames_out),
            audio_ms_out: get(&self.audio_ms_out),
            slate_frames: get(&self.slate_frames),
            slate_ms: get(&self.slate_frames) * 1000
                / u64::from(crate::media::contract::OUTPUT_FPS),
            repeated_frames: get(&self.repeated_frames),
            dropped_frames: get(&self.dropped_frames),
            dropped_audio_ms: get(&self.dropped_audio_ms),
            restarts: self.restarts.load(Ordering::Relaxed),
            item: get(&self.item) as usize,
            iteration: self.iteration.load(Ordering::Relaxed),
            position_ms: get(&self.position_ms),
            bytes_out: hub.bytes_in(),
            readers: hub.readers(),
            pulled: hub.was_pulled(),
        }
    }
}

/// What a stream's task ends with: why it ended, or why it failed.
pub(crate) type StreamTask = tokio::task::JoinHandle<Result<String, EngineError>>;

/// What a stream's owner has asked of its task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Halt {
    Running,
    /// Let the input go for good and stay on the slate until stopped (a passed-through
    /// stream, which has no slate, ends).
    InputOnly,
    Everything,
}

/// A running stream (live-encoded or passed through), served from its hub. Dropping it
/// stops everything.
pub struct LiveStream {
    hub: Arc<StreamHub>,
    events: broadcast::Sender<MediaEvent>,
    counters: Arc<Counters>,
    passthrough: bool,
    stop: watch::Sender<Halt>,
    task: Option<StreamTask>,
    /// Where changes go; `None` for a stream that takes none (a passed-through file).
    controls: Option<tokio::sync::mpsc::UnboundedSender<super::control::LiveControl>>,
}

impl LiveStream {
    /// Wraps a started stream's parts.
    pub(crate) fn running(
        hub: Arc<StreamHub>,
        events: broadcast::Sender<MediaEvent>,
        counters: Arc<Counters>,
        passthrough: bool,
        stop: watch::Sender<Halt>,
        task: StreamTask,
    ) -> Self {
        Self {
            hub,
            events,
            counters,
            passthrough,
            stop,
            task: Some(task),
            controls: None,
        }
    }

    /// The stream takes changes through `controls`.
    pub(crate) fn with_controls(
        mut self,
        controls: tokio::sync::mpsc::UnboundedSender<super::control::LiveControl>,
    ) -> Self {
        self.controls = Some(controls);
        self
    }

    /// Whether the stream takes changes in place ([`control`](Self::control)).
    pub fn takes_changes(&self) -> bool {
        self.controls.is_some()
    }

    /// Changes the running stream (volume, pause, another input, a seek); carried out on its
    /// timeline within a few tens of milliseconds.
    pub fn control(
        &self,
        change: super::control::LiveControl,
    ) -> Result<(), super::control::ControlError> {
        use super::control::ControlError;
        let controls = self.controls.as_ref().ok_or(ControlError::PassedThrough)?;
        controls.send(change).map_err(|_| ControlError::Ended)
    }

    pub fn hub(&self) -> Arc<StreamHub> {
        self.hub.clone()
    }

    pub fn events(&self) -> broadcast::Receiver<MediaEvent> {
        self.events.subscribe()
    }

    pub fn stats(&self) -> StreamStats {
        self.counters.snapshot(self.passthrough, &self.hub)
    }

    /// Waits until the stream ends by itself (input done) or fails.
    pub async fn wait(&mut self) -> Result<String, EngineError> {
        match self.task.as_mut() {
            Some(task) => {
                let result = task.await.unwrap_or_else(|e| {
                    Err(EngineError::Encoder(format!("stream task failed: {e}")))
                });
                self.task = None;
                result
            }
            None => Ok("already ended".into()),
        }
    }

    /// Stops the input, flushes the encoder and ends the stream.
    pub async fn stop(mut self) -> Result<String, EngineError> {
        let _ = self.stop.send(Halt::Everything);
        self.wait().await
    }

    /// Lets the input go for good: the stream carries the slate from now on, until it is
    /// stopped. Its readers keep their timeline (a feed that ended under calls that stay).
    pub fn let_input_go(&self) {
        self.stop.send_if_modified(|halt| {
            let running = *halt == Halt::Running;
            if running {
                *halt = Halt::InputOnly;
            }
            running
        });
    }
}

impl Drop for LiveStream {
    fn drop(&mut self) {
        let _ = self.stop.send(Halt::Everything);
    }
}

/// Sends one event to the log and the stream's subscribers.
pub(crate) fn emit(events: &broadcast::Sender<MediaEvent>, event: MediaEvent) {
    tracing::info!(event = %crate::redact::redact_urls_in(&format!("{event:?}")), "media");
    let _ = events.send(event);
}
