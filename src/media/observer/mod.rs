//! The room observer: pulls a stream the way the TRTC ingest service would, decodes it, and
//! records what a callee in the room would have received.
//!
//! ```text
//! uridecodebin ─┬─ queue ! audioconvert ! audioresample ! F32 mono 48 kHz ! level ! spectrum ! appsink
//!               └─ queue ! appsink (raw video)
//! ```
//!
//! One observer is one attempt at one URL (or at one publisher's connection, for a room
//! monitor): it plays it `plays` times (or until stopped) and ends with an [`ObserverExit`].
//! Whoever runs it decides about retries; the figures are kept in a shared [`MediaTally`] so
//! they add up across attempts. The two branches are built in `branches`, the level, tone
//! and cue points read in `analysis`.

mod analysis;
mod branches;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use gstreamer as gst;
use gstreamer::prelude::*;
use tokio::sync::{mpsc, watch};

use super::{MediaInitError, init};

/// Audio is analysed at this rate; the spectrum's bands span 0..RATE/2.
const ANALYSIS_RATE: u32 = 48_000;
const SPECTRUM_BANDS: u32 = 2048;
const SPECTRUM_THRESHOLD_DB: i32 = -90;
/// A spectrum whose loudest band is quieter than this is silence, not a tone.
const TONE_FLOOR_DB: f32 = -70.0;
const ANALYSIS_INTERVAL: gst::ClockTime = gst::ClockTime::from_mseconds(100);
/// A pause in decoded media longer than this counts as a gap a callee would notice.
const GAP: Duration = Duration::from_millis(500);

/// How fast the observer consumes the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pace {
    /// As a player would: buffers are rendered on the clock.
    Realtime,
    /// As fast as the source delivers and decoding allows.
    Fast,
}

impl std::str::FromStr for Pace {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "realtime" => Ok(Pace::Realtime),
            "fast" => Ok(Pace::Fast),
            other => Err(format!("unknown pace `{other}`: use realtime or fast")),
        }
    }
}

/// What a callee would have received, as reported by the emulator.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ObservedMedia {
    pub video_frames: u64,
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    pub audio_ms: u64,
    pub audio_level_db: Option<f64>,
    pub dominant_hz: Option<f64>,
    /// The last tenth of a second's level and loudest tone (none under the floor): what the
    /// callee hears now, where the two above are the whole call's.
    pub level_now_db: Option<f64>,
    pub tone_now_hz: Option<f64>,
    pub first_media_ms: Option<u64>,
    /// When the latest media, sound and picture were decoded, on the same clock as
    /// `first_media_ms`.
    pub last_media_ms: Option<u64>,
    pub last_audio_ms: Option<u64>,
    pub last_video_ms: Option<u64>,
    pub gaps_over_500ms: u64,
    /// Times the decoded video size changed mid-task.
    pub size_changes: u64,
    pub plays_completed: u64,
    pub errors: Vec<String>,
    /// Cue points in the stream (a queued item's start), each when the sound after it was
    /// heard, in ms after the request.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cues_heard: Vec<CueHeard>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CueHeard {
    pub name: String,
    pub at_ms: u64,
}

#[derive(Debug, Default)]
struct Tally {
    media: ObservedMedia,
    /// When the request that started pulling was accepted; `first_media_ms` counts from here.
    requested_at: Option<Instant>,
    last_buffer_at: Option<Instant>,
    paused: bool,
    /// Video frames and PTS span of the current play, for fps.
    play_frames: u64,
    play_first_pts: Option<gst::ClockTime>,
    play_last_pts: Option<gst::ClockTime>,
    level_power_sum: f64,
    level_count: u64,
    /// Per FFT band that was loudest: how often, and the sum of the interpolated frequencies.
    dominant_votes: HashMap<u32, (u64, f64)>,
    /// Cue points read from the stream, not heard yet: (name, timestamp in ms).
    pending_cues: Vec<(String, u32)>,
}

/// Figures shared by every attempt at one task.
#[derive(Debug, Clone, Default)]
pub struct MediaTally(Arc<Mutex<Tally>>);

impl MediaTally {
    /// A tally whose `first_media_ms` counts from `requested_at`.
    pub fn new(requested_at: Instant) -> Self {
        Self(Arc::new(Mutex::new(Tally {
            requested_at: Some(requested_at),
            ..Tally::default()
        })))
    }

    pub fn snapshot(&self) -> ObservedMedia {
        self.0.lock().expect("tally lock").media.clone()
    }

    pub fn record_error(&self, message: impl Into<String>) {
        self.0
            .lock()
            .expect("tally lock")
            .media
            .errors
            .push(message.into());
    }

    fn with<R>(&self, f: impl FnOnce(&mut Tally) -> R) -> R {
        f(&mut self.0.lock().expect("tally lock"))
    }

    fn media_arrived(&self, now: Instant, audio: bool) -> bool {
        self.with(|t| {
            let first = t.media.first_media_ms.is_none();
            let since = t.requested_at.map_or(Duration::ZERO, |r| now - r);
            if first {
                t.media.first_media_ms = Some(since.as_millis() as u64);
            }
            t.media.last_media_ms = Some(since.as_millis() as u64);
            if audio {
                t.media.last_audio_ms = t.media.last_media_ms;
            } else {
                t.media.last_video_ms = t.media.last_media_ms;
            }
            if let Some(last) = t.last_buffer_at
                && !t.paused
                && now.duration_since(last) > GAP
            {
                t.media.gaps_over_500ms += 1;
            }
            t.last_buffer_at = Some(now);
            first
        })
    }
}

/// Why an observer stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObserverExit {
    /// Every play reached the end of the stream.
    Completed,
    /// `stop` was called.
    Stopped,
    /// The source failed; `after_media` tells a drop from a source that never played.
    Failed { message: String, after_media: bool },
}

/// Progress reported while observing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObserverEvent {
    FirstMedia,
    PlayCompleted { plays: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Control {
    Run,
    Pause,
    Stop,
}

/// What to observe and how.
#[derive(Debug, Clone)]
pub struct ObserveSpec {
    pub url: String,
    pub pace: Pace,
    /// `None` plays until stopped.
    pub plays: Option<u64>,
    /// Fail when nothing has been decoded this long after starting (a source that accepts
    /// the connection and sends nothing would otherwise hang forever).
    pub first_media_timeout: Duration,
    /// Fail when decoded media stops for this long while playing.
    pub stall_timeout: Duration,
    /// The level the sound is heard at, in percent of the source's own (a cloud task's
    /// `Volume`); may change while observing.
    pub gain: Arc<std::sync::atomic::AtomicU32>,
    /// Where what is decoded goes on to (the emulator's room publisher), if anywhere.
    pub tap: Option<super::tap::RoomTap>,
    /// A publisher's connection to observe instead of `url` (a room monitor's push).
    pub pushed: Option<PushedConnection>,
}

/// A publisher's connection, taken by the observer's first play.
#[derive(Clone)]
pub struct PushedConnection(Arc<Mutex<Option<crate::media::inlet::Connection>>>);

impl PushedConnection {
    pub(crate) fn new(connection: crate::media::inlet::Connection) -> Self {
        Self(Arc::new(Mutex::new(Some(connection))))
    }
}

impl std::fmt::Debug for PushedConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PushedConnection")
    }
}

impl ObserveSpec {
    pub fn new(url: impl Into<String>, pace: Pace, plays: Option<u64>) -> Self {
        Self {
            url: url.into(),
            pace,
            plays,
            first_media_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(5),
            gain: Arc::new(std::sync::atomic::AtomicU32::new(100)),
            tap: None,
            pushed: None,
        }
    }
}

/// Pauses, resumes or stops an observer from elsewhere (a clone per holder).
#[derive(Debug, Clone)]
pub struct ObserverControl(Arc<watch::Sender<Control>>);

impl ObserverControl {
    pub fn pause(&self) {
        let _ = self.0.send(Control::Pause);
    }

    pub fn resume(&self) {
        let _ = self.0.send(Control::Run);
    }

    pub fn stop(&self) {
        let _ = self.0.send(Control::Stop);
    }
}

/// A running observer. Dropping it stops the pipeline.
pub struct Observer {
    control: ObserverControl,
    task: Option<tokio::task::JoinHandle<ObserverExit>>,
}

impl Observer {
    /// Starts observing on the current tokio runtime.
    pub fn start(
        spec: ObserveSpec,
        tally: MediaTally,
        events: mpsc::UnboundedSender<ObserverEvent>,
    ) -> Result<Self, MediaInitError> {
        init()?;
        let (control, control_rx) = watch::channel(Control::Run);
        let task = tokio::spawn(run(spec, tally, events, control_rx));
        Ok(Self {
            control: ObserverControl(Arc::new(control)),
            task: Some(task),
        })
    }

    pub fn controller(&self) -> ObserverControl {
        self.control.clone()
    }

    /// Waits until the observer ends; later calls return `Stopped` at once.
    pub async fn wait(&mut self) -> ObserverExit {
        let Some(task) = self.task.as_mut() else {
            return ObserverExit::Stopped;
        };
        let exit = task.await.unwrap_or_else(|e| ObserverExit::Failed {
            message: format!("observer task failed: {e}"),
            after_media: false,
        });
        self.task = None;
        exit
    }

    /// Waits for the observer to end by itself.
    pub async fn finished(mut self) -> ObserverExit {
        self.wait().await
    }

    /// Stops the pipeline and waits until it is torn down.
    pub async fn stop(mut self) -> ObserverExit {
        self.control.stop();
        self.wait().await
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.control.stop();
    }
}

/// How long a play's teardown may take before the observer goes on without it.
const TEARDOWN_LIMIT: Duration = Duration::from_secs(5);

/// Builds one play's pipeline. Callbacks hold the tally and weak element references only.
fn build_pipeline(
    spec: &ObserveSpec,
    tally: &MediaTally,
    events: &mpsc::UnboundedSender<ObserverEvent>,
) -> Result<gst::Pipeline, String> {
    let pipeline = gst::Pipeline::new();
    // decodebin3: a late joiner on a low-bitrate live FLV stream decodes at once, where
    // decodebin2 waits seconds before its first output.
    let uri = match spec.pushed {
        Some(_) => "appsrc://",
        None => spec.url.as_str(),
    };
    let decode = gst::ElementFactory::make("uridecodebin3")
        .property("uri", uri)
        .build()
        .map_err(|e| format!("uridecodebin3: {e}"))?;
    pipeline
        .add(&decode)
        .map_err(|e| format!("cannot add uridecodebin: {e}"))?;
    if let Some(pushed) = &spec.pushed {
        let connection = pushed
            .0
            .lock()
            .expect("pushed connection lock")
            .take()
            .ok_or("the publisher's connection was played already")?;
        super::live::pushed::carry_into(&pipeline, connection)?;
    }
    tally.read_cues_of(&decode);
    let sync = spec.pace == Pace::Realtime;
    let tally = tally.clone();
    let events = events.clone();
    let gain = spec.gain.clone();
    let tap = spec.tap.clone();
    super::pads::attach_decoded_pads(&decode, &pipeline, move |kind| {
        let branch = if kind.starts_with("audio/") {
            tally.audio_branch(sync, &events, &gain, tap.clone())
        } else if kind.starts_with("video/") {
            tally.video_branch(sync, &events, tap.clone())
        } else {
            return Ok(None);
        };
        branch.map(|bin| Some(super::pads::Branch::new(bin)))
    });
    Ok(pipeline)
}

/// The bus owner: one task per observer, one pipeline per play.
async fn run(
    spec: ObserveSpec,
    tally: MediaTally,
    events: mpsc::UnboundedSender<ObserverEvent>,
    mut control: watch::Receiver<Control>,
) -> ObserverExit {
    let started = Instant::now();
    let mut plays_done = 0u64;
    let mut may_reconnect = true;
    loop {
        let pipeline = match build_pipeline(&spec, &tally, &events) {
            Ok(p) => p,
            Err(message) => {
                return ObserverExit::Failed {
                    message,
                    after_media: false,
                };
            }
        };
        tally.with(|t| {
            t.play_frames = 0;
            t.play_first_pts = None;
            t.play_last_pts = None;
        });
        // Null on every exit path (cancellation included), so sockets and decoders are freed.
        let pipeline = super::NullOnDrop::new(pipeline);
        let silent_after = may_reconnect.then(|| spec.first_media_timeout / 2);
        let exit = play_once(
            &spec,
            &tally,
            &pipeline,
            &mut control,
            started,
            silent_after,
        )
        .await;
        pipeline.shut_down(TEARDOWN_LIMIT).await;
        match exit {
            PlayEnd::Silent => {
                // GStreamer 1.22's HTTP source can wait forever on a request its session
                // thread lost (gstreamer#5238); a second connection is what a player would try.
                may_reconnect = false;
                tracing::warn!(
                    url = %crate::redact::redact_url(&spec.url),
                    "nothing decoded yet; connecting once more"
                );
            }
            PlayEnd::Eos => {
                plays_done += 1;
                tally.with(|t| t.media.plays_completed += 1);
                let _ = events.send(ObserverEvent::PlayCompleted { plays: plays_done });
                if spec.plays.is_some_and(|n| plays_done >= n) {
                    return ObserverExit::Completed;
                }
            }
            PlayEnd::Stopped => return ObserverExit::Stopped,
            PlayEnd::Failed(message) => {
                tally.record_error(message.clone());
                let after_media = tally.with(|t| t.media.first_media_ms.is_some());
                return ObserverExit::Failed {
                    message,
                    after_media,
                };
            }
        }
    }
}

enum PlayEnd {
    Eos,
    Stopped,
    Failed(String),
    /// Nothing decoded within the time a retry is still worth it.
    Silent,
}

async fn play_once(
    spec: &ObserveSpec,
    tally: &MediaTally,
    pipeline: &gst::Pipeline,
    control: &mut watch::Receiver<Control>,
    started: Instant,
    silent_after: Option<Duration>,
) -> PlayEnd {
    let play_started = Instant::now();
    let Some(bus) = pipeline.bus() else {
        return PlayEnd::Failed("pipeline without a bus".into());
    };
    let mut messages = bus.stream();
    if *control.borrow() == Control::Stop {
        return PlayEnd::Stopped;
    }
    let target = if *control.borrow() == Control::Pause {
        gst::State::Paused
    } else {
        gst::State::Playing
    };
    if let Err(e) = pipeline.set_state(target) {
        // The bus usually carries the real reason; give it a moment to arrive.
        if let Ok(Some(msg)) =
            tokio::time::timeout(Duration::from_millis(500), messages.next()).await
            && let gst::MessageView::Error(err) = msg.view()
        {
            return PlayEnd::Failed(describe_error(err));
        }
        return PlayEnd::Failed(format!(
            "cannot start pulling {}: {e}",
            crate::redact::redact_url(&spec.url)
        ));
    }
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            changed = control.changed() => {
                let wanted = if changed.is_err() { Control::Stop } else { *control.borrow() };
                match wanted {
                    Control::Stop => return PlayEnd::Stopped,
                    Control::Pause => {
                        tally.with(|t| t.paused = true);
                        let _ = pipeline.set_state(gst::State::Paused);
                    }
                    Control::Run => {
                        tally.with(|t| { t.paused = false; t.last_buffer_at = Some(Instant::now()); });
                        let _ = pipeline.set_state(gst::State::Playing);
                    }
                }
            }
            msg = messages.next() => {
                let Some(msg) = msg else { return PlayEnd::Failed("bus closed".into()) };
                match msg.view() {
                    gst::MessageView::Eos(_) => return PlayEnd::Eos,
                    gst::MessageView::Error(err) => return PlayEnd::Failed(describe_error(err)),
                    gst::MessageView::Element(e) => {
                        if let Some(s) = e.structure() {
                            tally.analyse(s);
                        }
                    }
                    _ => {}
                }
            }
            _ = tick.tick() => {
                let (paused, first, last) =
                    tally.with(|t| (t.paused, t.media.first_media_ms, t.last_buffer_at));
                if paused {
                    continue;
                }
                if first.is_none()
                    && silent_after.is_some_and(|limit| play_started.elapsed() > limit)
                    && started.elapsed() < spec.first_media_timeout
                {
                    return PlayEnd::Silent;
                }
                if first.is_none() && started.elapsed() > spec.first_media_timeout {
                    return PlayEnd::Failed(format!(
                        "no media from {} within {:?}",
                        crate::redact::redact_url(&spec.url),
                        spec.first_media_timeout
                    ));
                }
                if let Some(last) = last
                    && last.elapsed() > spec.stall_timeout
                {
                    return PlayEnd::Failed(format!(
                        "media from {} stalled for {:?}",
                        crate::redact::redact_url(&spec.url),
                        spec.stall_timeout
                    ));
                }
            }
        }
    }
}

fn describe_error(err: &gst::message::Error) -> String {
    let source = err
        .src()
        .map(|s| s.name().to_string())
        .unwrap_or_else(|| "pipeline".into());
    format!("{source}: {}", err.error())
}
