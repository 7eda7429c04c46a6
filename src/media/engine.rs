//! The live engine: any input to one FLV stream with a fixed contract, kept alive.
//!
//! ```text
//! input pipeline (restartable)              pump thread (own clock)         encoder pipeline (once)
//! source ─ decode ─ normalize ─ appsink ──► latest frame / audio queue ──► appsrc ─ x264 ─┐
//!                                            slate when the input is gone   appsrc ─ aac ──┴ flvmux ─ appsink ─► StreamHub
//! ```
//!
//! The pump emits frames at the contract's rate and audio in 20 ms chunks on its own
//! clock, taking the newest input frame or, when the input is gone, the slate (a still image
//! or black, and silence). So timestamps stay continuous and the caps never change across
//! input restarts, loop points and fallbacks. The supervisor owns the input pipeline's bus,
//! restarts it with jittered backoff on retryable errors and stalls, and ends the stream when
//! the input is done.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tokio::sync::{broadcast, watch};

use super::contract::Contract;
use super::hub::StreamHub;
use super::input::{InputItem, InputSpec};
use super::topology::Topologies;

/// How long a (re)started input may take to deliver its first media.
const FIRST_MEDIA_TIMEOUT: Duration = Duration::from_secs(10);

/// How many times the input is played.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Loops {
    Times(u32),
    Forever,
}

impl std::str::FromStr for Loops {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "forever" | "-1" => Ok(Loops::Forever),
            n => n
                .parse::<u32>()
                .ok()
                .filter(|n| *n >= 1)
                .map(Loops::Times)
                .ok_or_else(|| format!("`{s}`: a loop count is 1 or more, or `forever`")),
        }
    }
}

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
    /// A still image for the slate (and for audio-only inputs); black when `None`.
    pub slate_image: Option<PathBuf>,
    /// The input is a still picture: it is shown as video, frozen, until stopped.
    pub still_image: bool,
}

impl LiveSettings {
    pub fn new(contract: Contract) -> Self {
        Self {
            contract,
            loops: Loops::Times(1),
            start: None,
            stall_timeout: Duration::from_secs(3),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(10),
            slate_image: None,
            still_image: false,
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
}

/// Where a stream stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamState {
    Starting,
    Live,
    OnSlate,
    Ended,
    Failed,
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
    /// Frames sent again because no new input frame had come: an input slower than the
    /// contract's rate, a late one, or a machine short of CPU. The timeline stays
    /// real-time; the picture stutters.
    pub repeated_frames: u64,
    pub restarts: u32,
    pub item: usize,
    pub iteration: u32,
    pub position_ms: u64,
    pub bytes_out: u64,
    pub readers: usize,
}

impl StreamStats {
    fn new(passthrough: bool) -> Self {
        Self {
            state: StreamState::Starting,
            passthrough,
            frames_in: 0,
            frames_out: 0,
            audio_ms_out: 0,
            slate_frames: 0,
            repeated_frames: 0,
            restarts: 0,
            item: 0,
            iteration: 0,
            position_ms: 0,
            bytes_out: 0,
            readers: 0,
        }
    }
}

/// What the input pipeline hands the pump.
#[derive(Default)]
struct Slot {
    /// The newest picture not yet sent; a newer one replaces it, so the pump never lags.
    video: Option<gst::Buffer>,
    video_at: Option<Instant>,
    audio: VecDeque<u8>,
    audio_at: Option<Instant>,
    /// Last time the input produced anything.
    progress_at: Option<Instant>,
    frames_in: u64,
    /// The input is gone: the pump shows the slate, and counts it.
    on_slate: bool,
}

type SharedSlot = Arc<Mutex<Slot>>;

/// How long the pump waits, at a tick with no new picture, for one that is only a little late.
/// The input and the pump run on their own clocks at the same rate; without the wait, a
/// picture arriving just after its tick was sent twice and the next one lost (5 % of the
/// pictures under load). Waiting instead of queueing keeps the video's latency, and so
/// lip sync, where it was.
const PICTURE_GRACE: Duration = Duration::from_millis(8);

/// Raised when the input delivers its first media, so the pump can start its clock on real
/// content (an announcement is heard from its first word, not after black).
type FirstMedia = Arc<(Mutex<bool>, std::sync::Condvar)>;

/// How long the pump waits for the input's first media before starting on the slate.
const PUMP_START_WAIT: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Counters {
    frames_out: u64,
    audio_ms_out: u64,
    slate_frames: u64,
    repeated_frames: u64,
}

/// A running live stream. Dropping it stops everything.
pub struct LiveStream {
    hub: Arc<StreamHub>,
    events: broadcast::Sender<MediaEvent>,
    stats: Arc<Mutex<StreamStats>>,
    slot: SharedSlot,
    counters: Arc<Mutex<Counters>>,
    stop: watch::Sender<bool>,
    supervisor: Option<tokio::task::JoinHandle<Result<String, EngineError>>>,
}

impl LiveStream {
    /// Builds the encoder and the pump and starts the first input. Must run on a tokio
    /// runtime. Files are checked (decodable, not truncated) before anything starts.
    pub fn start(
        spec: InputSpec,
        settings: LiveSettings,
        topologies: &Topologies,
    ) -> Result<Self, EngineError> {
        super::init().map_err(|e| EngineError::Build {
            stage: "engine",
            reason: e.to_string(),
        })?;
        let hub = Arc::new(StreamHub::new());
        let (events, _) = broadcast::channel(256);
        let slot: SharedSlot = Arc::new(Mutex::new(Slot::default()));
        let first_media: FirstMedia = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let counters = Arc::new(Mutex::new(Counters::default()));
        let stats = Arc::new(Mutex::new(StreamStats::new(false)));
        let (encoder, video_src, audio_src) = build_encoder(&settings.contract, topologies, &hub)?;
        let slate = slate_frame(&settings.contract, settings.slate_image.as_deref())?;
        encoder
            .set_state(gst::State::Playing)
            .map_err(|e| EngineError::Build {
                stage: "encoder",
                reason: e.to_string(),
            })?;
        let pump_stop = Arc::new(AtomicBool::new(false));
        let pump = {
            let slot = slot.clone();
            let counters = counters.clone();
            let contract = settings.contract;
            let stop = pump_stop.clone();
            let stall = settings.stall_timeout;
            let first = first_media.clone();
            std::thread::Builder::new()
                .name("callfeed-pump".into())
                .spawn(move || {
                    {
                        let (flag, ready) = &*first;
                        let guard = flag.lock().expect("first-media lock");
                        let _ = ready.wait_timeout_while(guard, PUMP_START_WAIT, |seen| {
                            !*seen && !stop.load(Ordering::Acquire)
                        });
                    }
                    pump(
                        slot, counters, video_src, audio_src, contract, slate, stall, stop,
                    )
                })
                .map_err(|e| EngineError::Build {
                    stage: "pump",
                    reason: e.to_string(),
                })?
        };
        let (stop, stop_rx) = watch::channel(false);
        let supervisor = tokio::spawn(supervise(Supervision {
            items: spec.items(),
            replayable: spec.is_replayable(),
            settings,
            topologies: topologies.clone(),
            slot: slot.clone(),
            first_media,
            counters: counters.clone(),
            encoder_watch: EncoderWatch::default(),
            events: events.clone(),
            stats: stats.clone(),
            hub: hub.clone(),
            encoder: super::NullOnDrop::new(encoder),
            pump: Some((pump, pump_stop)),
            stop: stop_rx,
        }));
        Ok(Self {
            hub,
            events,
            stats,
            slot,
            counters,
            stop,
            supervisor: Some(supervisor),
        })
    }

    /// Streams a file that already meets the contract (see `probe::passthrough`) by
    /// remuxing it to FLV, without decoding. Loops are seamless: each play's timestamps
    /// continue the last.
    pub fn start_passthrough(
        path: PathBuf,
        container: &str,
        settings: LiveSettings,
    ) -> Result<Self, EngineError> {
        super::init().map_err(|e| EngineError::Build {
            stage: "passthrough",
            reason: e.to_string(),
        })?;
        let (demux, video_pad, audio_pad) = match container {
            "video/quicktime" => ("qtdemux", "video_0", "audio_0"),
            "video/x-flv" => ("flvdemux", "video", "audio"),
            other => {
                return Err(EngineError::Input {
                    input: path.display().to_string(),
                    reason: format!("container {other} cannot be passed through"),
                });
            }
        };
        let description = format!(
            "{demux} name=d \
             d.{video_pad} ! queue ! h264parse ! mux. d.{audio_pad} ! queue ! aacparse ! mux. \
             flvmux name=mux streamable=true ! appsink name=flv sync=true"
        );
        let build = |reason: String| EngineError::Build {
            stage: "passthrough",
            reason,
        };
        let source = super::file_source(&path).map_err(build)?;
        let pipeline = super::launch_after(source, &description, "d").map_err(build)?;
        let hub = Arc::new(StreamHub::new());
        let counters = Arc::new(Mutex::new(Counters::default()));
        let rebase = Arc::new(Mutex::new(Rebase::default()));
        let sink = pipeline
            .by_name("flv")
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .ok_or_else(|| build("no flv appsink".into()))?;
        // The pipeline reads ahead, bounded; the pacer releases tags on the media clock.
        sink.set_sync(false);
        sink.set_max_buffers(PASSTHROUGH_READ_AHEAD);
        let pacer = {
            let stop = Arc::new(AtomicBool::new(false));
            let at_end = Arc::new(tokio::sync::Notify::new());
            let sink = sink.downgrade();
            let hub = Arc::downgrade(&hub);
            let counters = counters.clone();
            let rebase = rebase.clone();
            let (thread_stop, thread_at_end) = (stop.clone(), at_end.clone());
            let thread = std::thread::Builder::new()
                .name("callfeed-pacer".into())
                .spawn(move || pace(sink, hub, counters, rebase, thread_stop, thread_at_end))
                .map_err(|e| build(e.to_string()))?;
            Pacer {
                stop,
                at_end,
                thread: Some(thread),
            }
        };
        let (events, _) = broadcast::channel(256);
        let stats = Arc::new(Mutex::new(StreamStats::new(true)));
        let (stop, stop_rx) = watch::channel(false);
        let supervisor = tokio::spawn(remux(
            super::NullOnDrop::new(pipeline),
            pacer,
            settings.loops,
            hub.clone(),
            events.clone(),
            stats.clone(),
            stop_rx,
        ));
        Ok(Self {
            hub,
            events,
            stats,
            slot: Arc::new(Mutex::new(Slot::default())),
            counters,
            stop,
            supervisor: Some(supervisor),
        })
    }

    pub fn hub(&self) -> Arc<StreamHub> {
        self.hub.clone()
    }

    pub fn events(&self) -> broadcast::Receiver<MediaEvent> {
        self.events.subscribe()
    }

    pub fn stats(&self) -> StreamStats {
        let mut s = self.stats.lock().expect("stats lock").clone();
        let c = self.counters.lock().expect("counters lock");
        s.frames_out = c.frames_out;
        s.audio_ms_out = c.audio_ms_out;
        s.slate_frames = c.slate_frames;
        s.repeated_frames = c.repeated_frames;
        s.frames_in = self.slot.lock().expect("slot lock").frames_in;
        s.bytes_out = self.hub.bytes_in();
        s.readers = self.hub.readers();
        s
    }

    /// Waits until the stream ends by itself (input done) or fails.
    pub async fn wait(&mut self) -> Result<String, EngineError> {
        match self.supervisor.as_mut() {
            Some(task) => {
                let result = task.await.unwrap_or_else(|e| {
                    Err(EngineError::Encoder(format!("supervisor task failed: {e}")))
                });
                self.supervisor = None;
                result
            }
            None => Ok("already ended".into()),
        }
    }

    /// Stops the input, flushes the encoder and ends the stream.
    pub async fn stop(mut self) -> Result<String, EngineError> {
        let _ = self.stop.send(true);
        self.wait().await
    }
}

impl Drop for LiveStream {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

fn build_encoder(
    contract: &Contract,
    topologies: &Topologies,
    hub: &Arc<StreamHub>,
) -> Result<(gst::Pipeline, Option<gst_app::AppSrc>, gst_app::AppSrc), EngineError> {
    let err = |reason: String| EngineError::Build {
        stage: "encoder",
        reason,
    };
    let audio_encode = topologies
        .render(
            "encode.audio",
            &[("audio_bps", &contract.audio_bps.to_string())],
        )
        .map_err(|e| err(e.to_string()))?;
    // A live muxer waits for late streams only this long.
    let mux = "flvmux name=mux streamable=true latency=200000000 ! appsink name=flv sync=false";
    let description = match contract.video {
        Some(v) => {
            let video_encode = topologies
                .render_video_encoder(contract, &v, super::contract::EncoderThreads::Live)
                .map_err(|e| err(e.to_string()))?;
            format!(
                "appsrc name=vsrc ! queue ! {video_encode} ! queue ! {mux} \
                 appsrc name=asrc ! queue ! {audio_encode} ! queue ! mux."
            )
        }
        None => format!("appsrc name=asrc ! queue ! {audio_encode} ! queue ! {mux}"),
    };
    let pipeline = gst::parse::launch(&description)
        .map_err(|e| err(e.to_string()))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| err("not a pipeline".into()))?;
    let appsrc = |name: &str, caps: &str| -> Result<gst_app::AppSrc, EngineError> {
        let src = pipeline
            .by_name(name)
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            .ok_or_else(|| err(format!("no appsrc {name}")))?;
        src.set_caps(Some(
            &caps.parse::<gst::Caps>().map_err(|e| err(e.to_string()))?,
        ));
        src.set_format(gst::Format::Time);
        src.set_is_live(true);
        src.set_property("block", false);
        // Unbounded here: the pump pushes in real time, so the queue stays short.
        src.set_max_bytes(0);
        Ok(src)
    };
    let video_src = match contract.raw_video_caps() {
        Some(caps) => Some(appsrc("vsrc", &caps)?),
        None => None,
    };
    let audio_src = appsrc("asrc", &contract.raw_audio_caps())?;
    let sink = pipeline
        .by_name("flv")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or_else(|| err("no flv appsink".into()))?;
    let hub = Arc::downgrade(hub);
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let Some(hub) = hub.upgrade() else {
                    return Err(gst::FlowError::Flushing);
                };
                if let Some(buffer) = sample.buffer()
                    && let Ok(map) = buffer.map_readable()
                {
                    hub.push(Bytes::copy_from_slice(&map));
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    Ok((pipeline, video_src, audio_src))
}

/// The slate frame: a still image scaled to the contract, or black.
fn slate_frame(
    contract: &Contract,
    image: Option<&std::path::Path>,
) -> Result<Option<gst::Buffer>, EngineError> {
    let Some(v) = contract.video else {
        return Ok(None);
    };
    if let Some(image) = image {
        let description = format!(
            "decodebin name=decode ! imagefreeze num-buffers=1 ! videoconvert ! videoscale add-borders=true ! {} ! appsink name=sink",
            contract.raw_video_caps().expect("video contract")
        );
        let err = |reason: String| EngineError::Input {
            input: image.display().to_string(),
            reason: format!("cannot be used as the slate image: {reason}"),
        };
        let source = super::file_source(image).map_err(err)?;
        let pipeline = super::launch_after(source, &description, "decode").map_err(err)?;
        let sink = pipeline
            .by_name("sink")
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .ok_or_else(|| err("no sink".into()))?;
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| err(e.to_string()))?;
        let sample = sink.try_pull_sample(gst::ClockTime::from_seconds(10));
        let _ = pipeline.set_state(gst::State::Null);
        let buffer = sample
            .and_then(|s| s.buffer_owned())
            .ok_or_else(|| err("it did not decode to a picture".into()))?;
        return Ok(Some(buffer));
    }
    let (w, h) = (v.width as usize, v.height as usize);
    let mut data = vec![16u8; w * h];
    data.resize(w * h * 3 / 2, 128);
    Ok(Some(gst::Buffer::from_mut_slice(data)))
}

/// Keeps remuxed timestamps continuous across loop points.
#[derive(Default)]
struct Rebase {
    /// Set at a loop point: the next media tag starts a new play.
    pending: bool,
    offset: i64,
    last_out: u32,
}

impl Rebase {
    fn shift(&mut self, ts: u32) -> u32 {
        if self.pending {
            self.pending = false;
            // One frame time after the last tag of the previous play.
            self.offset = i64::from(self.last_out) + 33 - i64::from(ts);
        }
        let out = (i64::from(ts) + self.offset).max(i64::from(self.last_out)) as u32;
        self.last_out = out;
        out
    }
}

/// Tags the passthrough pipeline may read ahead of the pacer (about a second of media).
const PASSTHROUGH_READ_AHEAD: u32 = 96;

/// How early the pacer may release a tag. Waking at every tag (77 a second for 30 fps video
/// and AAC) through the appsink, the hub, the RTMP task and rtmp2sink's thread was most of
/// passthrough's CPU; waking once per burst costs a tenth, and readers buffer far more.
const PACER_BURST: Duration = Duration::from_millis(100);

/// The pacer's thread, its stop flag, and its word that it has sent a play's last tag.
struct Pacer {
    stop: Arc<AtomicBool>,
    /// Raised once per play, when the appsink is at EOS and every tag has been pulled: only
    /// then may the supervisor seek back for the next play.
    at_end: Arc<tokio::sync::Notify>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Pacer {
    /// Stops the pacer once it has handed the hub every tag it pulled.
    async fn finish(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

impl Drop for Pacer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// Releases the passthrough's tags to the hub on the media clock, one burst per wake-up.
/// Timestamps are rebased so loops continue one timeline; the loop point is marked here, in
/// order with the tags, after the play's last one.
fn pace(
    sink: gst::glib::WeakRef<gst_app::AppSink>,
    hub: std::sync::Weak<StreamHub>,
    counters: Arc<Mutex<Counters>>,
    rebase: Arc<Mutex<Rebase>>,
    stop: Arc<AtomicBool>,
    at_end: Arc<tokio::sync::Notify>,
) {
    use super::hub::{TagKind, set_tag_timestamp, tag_kind, tag_timestamp};
    let send = |burst: &mut Vec<Bytes>| -> bool {
        let Some(hub) = hub.upgrade() else {
            return false;
        };
        for tag in burst.drain(..) {
            hub.push(tag);
        }
        true
    };
    // When the first media tag was released, and its timestamp.
    let mut origin: Option<(Instant, u32)> = None;
    // The burst being gathered: handed to the hub together, so its readers wake once.
    let mut burst: Vec<Bytes> = Vec::new();
    // When the oldest media tag gathered was due.
    let mut oldest_due: Option<Instant> = None;
    let mut play_ended = false;
    while !stop.load(Ordering::Acquire) {
        let Some(appsink) = sink.upgrade() else {
            break;
        };
        let Some(sample) = appsink.try_pull_sample(gst::ClockTime::from_mseconds(100)) else {
            if appsink.is_eos() && !play_ended {
                play_ended = true;
                rebase.lock().expect("rebase lock").pending = true;
                at_end.notify_one();
            }
            // At EOS, flushing or not started, the pull returns at once: no spinning.
            std::thread::sleep(Duration::from_millis(5));
            continue;
        };
        drop(appsink);
        play_ended = false;
        let Some(mut tag) = sample
            .buffer()
            .and_then(|b| b.map_readable().ok())
            .map(|m| m.to_vec())
        else {
            continue;
        };
        let kind = tag_kind(&tag);
        let media = matches!(
            kind,
            TagKind::VideoKeyframe | TagKind::VideoDelta | TagKind::Audio
        );
        if media && let Some(ts) = tag_timestamp(&tag) {
            let out = rebase.lock().expect("rebase lock").shift(ts);
            set_tag_timestamp(&mut tag, out);
            let (start, first) = *origin.get_or_insert((Instant::now(), out));
            let due = start + Duration::from_millis(u64::from(out.saturating_sub(first)));
            // Past the burst: send what was gathered, sleep until this tag is due, and
            // gather every tag due within the next burst.
            if due > Instant::now() + PACER_BURST {
                if !send(&mut burst) {
                    break;
                }
                oldest_due = None;
                while let Some(left) = due.checked_duration_since(Instant::now())
                    && !left.is_zero()
                    && !stop.load(Ordering::Acquire)
                {
                    std::thread::sleep(left.min(PACER_BURST));
                }
            }
            oldest_due.get_or_insert(due);
            let mut c = counters.lock().expect("counters lock");
            if kind == TagKind::Audio {
                c.audio_ms_out += 21;
            } else {
                c.frames_out += 1;
            }
        }
        burst.push(Bytes::from(tag));
        // An input slower than real time never gets ahead: its tags go as they come.
        if oldest_due.is_some_and(|due| due + PACER_BURST <= Instant::now()) {
            if !send(&mut burst) {
                break;
            }
            oldest_due = None;
        }
    }
    send(&mut burst);
}

/// The passthrough supervisor: owns the remux pipeline's bus, loops by seeking back.
async fn remux(
    pipeline: super::NullOnDrop,
    pacer: Pacer,
    loops: Loops,
    hub: Arc<StreamHub>,
    events: broadcast::Sender<MediaEvent>,
    stats: Arc<Mutex<StreamStats>>,
    mut stop: watch::Receiver<bool>,
) -> Result<String, EngineError> {
    let emit = |e: MediaEvent| {
        tracing::info!(event = ?e, "media");
        let _ = events.send(e);
    };
    let Some(bus) = pipeline.bus() else {
        return Err(EngineError::Build {
            stage: "passthrough",
            reason: "no bus".into(),
        });
    };
    let mut messages = bus.stream();
    let _ = pipeline.set_state(gst::State::Playing);
    emit(MediaEvent::InputStarted {
        item: 0,
        iteration: 0,
    });
    stats.lock().expect("stats lock").state = StreamState::Live;
    let mut iteration = 0u32;
    let result = loop {
        tokio::select! {
            _ = stop.changed() => break Ok("stopped".to_owned()),
            msg = messages.next() => {
                let Some(msg) = msg else { break Err(EngineError::Encoder("bus closed".into())) };
                match msg.view() {
                    gst::MessageView::Eos(_) => {
                        emit(MediaEvent::ItemFinished { item: 0, iteration });
                        iteration += 1;
                        let more = match loops {
                            Loops::Times(n) => iteration < n,
                            Loops::Forever => true,
                        };
                        if !more {
                            break Ok("input finished".to_owned());
                        }
                        // The pacer marks the loop point once it has the play's last tag.
                        tokio::select! {
                            _ = pacer.at_end.notified() => {}
                            _ = stop.changed() => break Ok("stopped".to_owned()),
                        }
                        stats.lock().expect("stats lock").iteration = iteration;
                        if pipeline.seek_simple(gst::SeekFlags::FLUSH, gst::ClockTime::ZERO).is_err() {
                            break Err(EngineError::Input {
                                input: "passthrough".into(),
                                reason: "cannot seek back to the start to loop".into(),
                            });
                        }
                    }
                    gst::MessageView::Error(e) => {
                        break Err(EngineError::Input {
                            input: e.src().map(|s| s.name().to_string()).unwrap_or_default(),
                            reason: e.error().to_string(),
                        });
                    }
                    _ => {}
                }
            }
        }
    };
    // What the pacer still holds goes out before the end.
    pacer.finish().await;
    let _ = pipeline.set_state(gst::State::Null);
    hub.end();
    match &result {
        Ok(reason) => {
            stats.lock().expect("stats lock").state = StreamState::Ended;
            emit(MediaEvent::Ended {
                reason: reason.clone(),
            });
        }
        Err(e) => {
            stats.lock().expect("stats lock").state = StreamState::Failed;
            emit(MediaEvent::Failed {
                reason: e.to_string(),
            });
        }
    }
    result
}

/// Emits video at the contract's rate and audio in 20 ms chunks, on its own clock.
#[allow(clippy::too_many_arguments)]
fn pump(
    slot: SharedSlot,
    counters: Arc<Mutex<Counters>>,
    video_src: Option<gst_app::AppSrc>,
    audio_src: gst_app::AppSrc,
    contract: Contract,
    slate: Option<gst::Buffer>,
    stall: Duration,
    stop: Arc<AtomicBool>,
) {
    let fps = contract.video.map_or(30, |v| v.fps);
    let frame = Duration::from_nanos(1_000_000_000 / u64::from(fps));
    const CHUNK: Duration = Duration::from_millis(20);
    let bytes_per_ms = (contract.audio_rate * contract.audio_channels * 2 / 1000) as usize;
    let chunk_bytes = bytes_per_ms * 20;
    // The audio queue is kept between 0 and this much, so latency stays bounded.
    let max_queue = bytes_per_ms * 500;
    let started = Instant::now();
    let (mut frames, mut chunks) = (0u64, 0u64);
    // Sent again when the input has no new picture in time.
    let mut last_picture: Option<gst::Buffer> = None;
    while !stop.load(Ordering::Acquire) {
        let next_video = video_src.as_ref().map(|_| frame * frames as u32);
        let next_audio = CHUNK * chunks as u32;
        let due = next_video.map_or(next_audio, |v| v.min(next_audio));
        let elapsed = started.elapsed();
        if due > elapsed {
            std::thread::sleep(due - elapsed);
        }
        if let (Some(src), Some(at)) = (&video_src, next_video)
            && at <= next_audio
        {
            let (mut next, fresh, on_slate) = {
                let mut s = slot.lock().expect("slot lock");
                let fresh = s.video_at.is_some_and(|t| t.elapsed() < stall) && !s.on_slate;
                (s.video.take(), fresh, s.on_slate)
            };
            if next.is_none() && fresh && last_picture.is_some() {
                let deadline = Instant::now() + PICTURE_GRACE;
                while next.is_none() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(2));
                    next = slot.lock().expect("slot lock").video.take();
                }
            }
            let (latest, repeated) = match (next, fresh) {
                (Some(picture), true) => {
                    last_picture = Some(picture.clone());
                    (Some(picture), false)
                }
                (None, true) => (last_picture.clone(), last_picture.is_some()),
                (_, false) => {
                    last_picture = None;
                    (None, false)
                }
            };
            let showing_slate = latest.is_none();
            let Some(mut buffer) = latest.or_else(|| slate.clone()) else {
                break;
            };
            {
                let b = buffer.make_mut();
                b.set_pts(gst::ClockTime::from_nseconds(at.as_nanos() as u64));
                b.set_dts(gst::ClockTime::NONE);
                b.set_duration(gst::ClockTime::from_nseconds(frame.as_nanos() as u64));
                b.unset_flags(gst::BufferFlags::DISCONT);
            }
            if src.push_buffer(buffer).is_err() {
                break;
            }
            frames += 1;
            let mut c = counters.lock().expect("counters lock");
            c.frames_out += 1;
            if showing_slate && on_slate {
                c.slate_frames += 1;
            }
            if repeated {
                c.repeated_frames += 1;
            }
            continue;
        }
        let mut data = {
            let mut s = slot.lock().expect("slot lock");
            if s.audio.len() > max_queue {
                let excess = s.audio.len() - chunk_bytes * 5;
                s.audio.drain(..excess);
            }
            let fresh = s.audio_at.is_some_and(|t| t.elapsed() < stall);
            let take = if fresh {
                s.audio.len().min(chunk_bytes)
            } else {
                0
            };
            s.audio.drain(..take).collect::<Vec<u8>>()
        };
        // An underrun is filled with silence; the clock never waits for the input.
        data.resize(chunk_bytes, 0);
        let mut buffer = gst::Buffer::from_mut_slice(data);
        {
            let b = buffer.get_mut().expect("new buffer is writable");
            b.set_pts(gst::ClockTime::from_nseconds(next_audio.as_nanos() as u64));
            b.set_duration(gst::ClockTime::from_nseconds(CHUNK.as_nanos() as u64));
        }
        if audio_src.push_buffer(buffer).is_err() {
            break;
        }
        chunks += 1;
        counters.lock().expect("counters lock").audio_ms_out += 20;
    }
    if let Some(src) = &video_src {
        let _ = src.end_of_stream();
    }
    let _ = audio_src.end_of_stream();
}

/// Builds one input attempt: the item decoded and normalised into two appsinks that feed
/// the slot. Callbacks hold the slot and weak element references only.
fn build_input(
    item: &InputItem,
    settings: &LiveSettings,
    topologies: &Topologies,
    slot: &SharedSlot,
    first_media: &FirstMedia,
) -> Result<gst::Pipeline, String> {
    let contract = &settings.contract;
    let normalize_video = contract
        .video
        .map(|v| {
            topologies.render(
                "normalize.video",
                &[
                    ("fps", &v.fps.to_string()),
                    ("width", &v.width.to_string()),
                    ("height", &v.height.to_string()),
                ],
            )
        })
        .transpose()
        .map_err(|e| e.to_string())?;
    let normalize_audio = topologies
        .render(
            "normalize.audio",
            &[
                ("rate", &contract.audio_rate.to_string()),
                ("channels", &contract.audio_channels.to_string()),
            ],
        )
        .map_err(|e| e.to_string())?;
    // A picture decodes to one frame: frozen, it becomes a live video.
    let freeze = if settings.still_image {
        "imagefreeze is-live=true ! "
    } else {
        ""
    };
    let video_branch = normalize_video.map(|n| format!("{freeze}queue ! {n} ! appsink name=video"));
    let audio_branch = format!("queue ! {normalize_audio} ! appsink name=audio");
    let pipeline = match item {
        InputItem::Sources(spec) => {
            let (v, a) = spec
                .source_fragments(topologies, contract.video.map(|v| (v.width, v.height)))
                .map_err(|e| e.to_string())?;
            let mut description = String::new();
            if let (Some(v), Some(branch)) = (&v, &video_branch) {
                description.push_str(&format!("{} ! {branch} ", v.launch()));
            } else if let Some(v) = &v {
                description.push_str(&format!("{} ! fakesink ", v.launch()));
            }
            if let Some(a) = &a {
                description.push_str(&format!("{} ! {audio_branch}", a.launch()));
            }
            let pipeline = gst::parse::launch(&description)
                .map_err(|e| e.to_string())?
                .downcast::<gst::Pipeline>()
                .map_err(|_| "not a pipeline".to_string())?;
            // Device names and custom arguments are set as properties, never parsed.
            for fragment in v.iter().chain(a.iter()) {
                fragment
                    .bind(pipeline.upcast_ref())
                    .map_err(|e| e.to_string())?;
            }
            for name in ["video", "audio"] {
                if let Some(sink) = pipeline
                    .by_name(name)
                    .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
                {
                    attach_sink(
                        &sink,
                        name == "video",
                        !spec.paces_itself(),
                        slot,
                        first_media,
                    );
                }
            }
            pipeline
        }
        InputItem::Uri(uri) => {
            let pipeline = gst::Pipeline::new();
            let decode = gst::ElementFactory::make("uridecodebin")
                .property("uri", uri)
                .build()
                .map_err(|e| e.to_string())?;
            pipeline.add(&decode).map_err(|e| e.to_string())?;
            if let Some(allowed) = super::policy::network_protocols(uri) {
                super::policy::guard_sources(pipeline.upcast_ref(), allowed);
            }
            let weak = pipeline.downgrade();
            let slot = slot.clone();
            let first_media = first_media.clone();
            decode.connect_pad_added(move |_, pad| {
                let Some(pipeline) = weak.upgrade() else {
                    return;
                };
                let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
                let kind = caps
                    .structure(0)
                    .map(|s| s.name().to_string())
                    .unwrap_or_default();
                let branch = if kind.starts_with("video/") {
                    video_branch.as_deref()
                } else if kind.starts_with("audio/") {
                    Some(audio_branch.as_str())
                } else {
                    None
                };
                let description = branch.unwrap_or("fakesink sync=false");
                let Ok(bin) = gst::parse::bin_from_description(description, true) else {
                    return;
                };
                if pipeline.add(&bin).is_err() {
                    return;
                }
                for name in ["video", "audio"] {
                    if let Some(sink) = bin
                        .by_name(name)
                        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
                    {
                        attach_sink(&sink, name == "video", true, &slot, &first_media);
                    }
                }
                let _ = bin.sync_state_with_parent();
                if let Some(sink_pad) = bin.static_pad("sink") {
                    let _ = pad.link(&sink_pad);
                }
            });
            pipeline
        }
    };
    Ok(pipeline)
}

fn attach_sink(
    sink: &gst_app::AppSink,
    video: bool,
    paced: bool,
    slot: &SharedSlot,
    first_media: &FirstMedia,
) {
    // Paced on the clock, a file is read in real time, as a live source would arrive.
    sink.set_sync(paced);
    sink.set_max_buffers(2);
    let slot = slot.clone();
    let first_media = first_media.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let Some(buffer) = sample.buffer_owned() else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                let now = Instant::now();
                {
                    let (flag, ready) = &*first_media;
                    let mut seen = flag.lock().expect("first-media lock");
                    if !*seen {
                        *seen = true;
                        ready.notify_all();
                    }
                }
                let mut s = slot.lock().expect("slot lock");
                s.progress_at = Some(now);
                if video {
                    s.video = Some(buffer);
                    s.video_at = Some(now);
                    s.frames_in += 1;
                } else if let Ok(map) = buffer.map_readable() {
                    s.audio.extend(map.iter());
                    s.audio_at = Some(now);
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
}

/// Classifies an input error: fatal (the input itself is wrong) or retryable.
fn classify(err: &gst::glib::Error, from_storage: bool) -> bool {
    use gst::{CoreError, ResourceError, StreamError};
    if let Some(e) = err.kind::<ResourceError>() {
        return match e {
            ResourceError::NotFound | ResourceError::NotAuthorized => true,
            ResourceError::OpenRead | ResourceError::OpenReadWrite | ResourceError::Read => {
                from_storage
            }
            _ => false,
        };
    }
    if let Some(e) = err.kind::<StreamError>() {
        return match e {
            StreamError::TypeNotFound
            | StreamError::WrongType
            | StreamError::CodecNotFound
            | StreamError::Format => true,
            StreamError::Decode | StreamError::Demux => from_storage,
            _ => false,
        };
    }
    err.kind::<CoreError>() == Some(CoreError::MissingPlugin)
}

impl Drop for Supervision {
    fn drop(&mut self) {
        // Cancelled without `finish` (runtime shutdown): stop the pump thread too.
        if let Some((_, stop)) = &self.pump {
            stop.store(true, Ordering::Release);
        }
    }
}

struct Supervision {
    items: Vec<InputItem>,
    replayable: bool,
    settings: LiveSettings,
    topologies: Topologies,
    slot: SharedSlot,
    first_media: FirstMedia,
    counters: Arc<Mutex<Counters>>,
    encoder_watch: EncoderWatch,
    events: broadcast::Sender<MediaEvent>,
    stats: Arc<Mutex<StreamStats>>,
    hub: Arc<StreamHub>,
    encoder: super::NullOnDrop,
    pump: Option<(std::thread::JoinHandle<()>, Arc<AtomicBool>)>,
    stop: watch::Receiver<bool>,
}

/// The encoder stage's watchdog: frames go in (pump), bytes must come out (muxer).
#[derive(Default)]
struct EncoderWatch {
    frames_in: u64,
    bytes_out: u64,
    /// Since when frames have gone in with no bytes coming out.
    stuck_since: Option<Instant>,
}

impl EncoderWatch {
    /// True when the encoder has taken frames for `limit` without producing anything.
    fn stalled(&mut self, frames_in: u64, bytes_out: u64, limit: Duration) -> bool {
        let fed = frames_in > self.frames_in;
        let produced = bytes_out > self.bytes_out;
        self.frames_in = frames_in;
        self.bytes_out = bytes_out;
        match (fed, produced) {
            (true, false) => self.stuck_since.get_or_insert_with(Instant::now).elapsed() > limit,
            (_, true) => {
                self.stuck_since = None;
                false
            }
            _ => false,
        }
    }
}

enum Attempt {
    /// The item played to its end.
    Finished,
    Failed(InputFailure),
    Stopped,
    EncoderFailed(String),
}

impl Supervision {
    fn emit(&self, event: MediaEvent) {
        tracing::info!(event = ?event, "media");
        let _ = self.events.send(event);
    }

    fn set_state(&self, state: StreamState) {
        self.stats.lock().expect("stats lock").state = state;
    }

    fn set_slate(&self, on: bool) {
        self.slot.lock().expect("slot lock").on_slate = on;
        self.set_state(if on {
            StreamState::OnSlate
        } else {
            StreamState::Live
        });
    }

    /// Plays one attempt of one item; owns its pipeline and bus until it ends.
    fn more_plays_after(&self, iteration: u32) -> bool {
        self.replayable
            && match self.settings.loops {
                Loops::Times(n) => iteration + 1 < n,
                Loops::Forever => true,
            }
    }

    /// Plays one attempt of one item; owns its pipeline and bus until it ends. A single item
    /// that loops is replayed in the same pipeline by seeking back, so loop points cost no
    /// pipeline rebuild.
    async fn play(&mut self, item: usize, iteration: &mut u32, seek: Option<Duration>) -> Attempt {
        let from_storage = matches!(&self.items[item], InputItem::Uri(u) if u.starts_with("file:"));
        let pipeline = match build_input(
            &self.items[item],
            &self.settings,
            &self.topologies,
            &self.slot,
            &self.first_media,
        ) {
            Ok(p) => super::NullOnDrop::new(p),
            Err(reason) => {
                return Attempt::Failed(InputFailure {
                    fatal: true,
                    reason,
                });
            }
        };
        let Some(bus) = pipeline.bus() else {
            return Attempt::Failed(InputFailure {
                fatal: true,
                reason: "pipeline without a bus".into(),
            });
        };
        let mut messages = bus.stream();
        let mut encoder_messages = self.encoder.bus().map(|b| b.stream());
        let started = Instant::now();
        let target = if seek.is_some() {
            gst::State::Paused
        } else {
            gst::State::Playing
        };
        let _ = pipeline.set_state(target);
        self.emit(MediaEvent::InputStarted {
            item,
            iteration: *iteration,
        });
        let mut seek = seek;
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let mut saw_media = false;
        let outcome = loop {
            tokio::select! {
                _ = self.stop.changed() => break Attempt::Stopped,
                msg = messages.next() => {
                    let Some(msg) = msg else { break Attempt::Failed(InputFailure { fatal: false, reason: "bus closed".into() }) };
                    match msg.view() {
                        gst::MessageView::Eos(_) if self.items.len() == 1 && self.more_plays_after(*iteration) => {
                            self.emit(MediaEvent::ItemFinished { item, iteration: *iteration });
                            *iteration += 1;
                            let _ = pipeline.seek_simple(gst::SeekFlags::FLUSH, gst::ClockTime::ZERO);
                        }
                        gst::MessageView::Eos(_) => break Attempt::Finished,
                        gst::MessageView::Error(e) => {
                            let fatal = classify(&e.error(), from_storage);
                            let source = e.src().map(|s| s.name().to_string()).unwrap_or_default();
                            break Attempt::Failed(InputFailure { fatal, reason: format!("{source}: {}", e.error()) });
                        }
                        gst::MessageView::AsyncDone(_) if seek.is_some() && msg.src().is_some_and(|s| s == &*pipeline) => {
                            let at = seek.take().unwrap_or_default();
                            let _ = pipeline.seek_simple(
                                gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT,
                                gst::ClockTime::from_nseconds(at.as_nanos() as u64),
                            );
                            let _ = pipeline.set_state(gst::State::Playing);
                        }
                        _ => {}
                    }
                }
                msg = async {
                    match encoder_messages.as_mut() {
                        Some(m) => m.next().await,
                        None => std::future::pending().await,
                    }
                } => {
                    if let Some(msg) = msg
                        && let gst::MessageView::Error(e) = msg.view()
                    {
                        break Attempt::EncoderFailed(e.error().to_string());
                    }
                }
                _ = tick.tick() => {
                    let frames_out = {
                        let c = self.counters.lock().expect("counters lock");
                        c.frames_out + c.audio_ms_out
                    };
                    if self.encoder_watch.stalled(frames_out, self.hub.bytes_in(), self.settings.stall_timeout) {
                        break Attempt::EncoderFailed(format!(
                            "the encoder produced nothing for {:?}", self.settings.stall_timeout
                        ));
                    }
                    let progress = self.slot.lock().expect("slot lock").progress_at;
                    let fresh = progress.is_some_and(|t| t.elapsed() < self.settings.stall_timeout && t >= started);
                    if fresh && !saw_media {
                        saw_media = true;
                        if self.slot.lock().expect("slot lock").on_slate {
                            self.set_slate(false);
                            self.emit(MediaEvent::BackOnInput);
                        } else {
                            self.set_state(StreamState::Live);
                        }
                        if *iteration == 0 && item == 0 {
                            self.emit(MediaEvent::FirstMedia);
                        }
                    }
                    // A source gets longer to deliver its first media than to keep delivering.
                    let (last, limit) = if saw_media {
                        (progress, self.settings.stall_timeout)
                    } else {
                        (Some(started), self.settings.stall_timeout.max(FIRST_MEDIA_TIMEOUT))
                    };
                    if last.is_some_and(|t| t.elapsed() > limit) {
                        break Attempt::Failed(InputFailure {
                            fatal: false,
                            reason: format!("no media for {limit:?}"),
                        });
                    }
                    if let Some(p) = pipeline.query_position::<gst::ClockTime>() {
                        let mut s = self.stats.lock().expect("stats lock");
                        s.position_ms = p.mseconds();
                        s.item = item;
                        s.iteration = *iteration;
                    }
                }
            }
        };
        // Null on every exit path; the slot keeps the last frame for the pump.
        let _ = pipeline.set_state(gst::State::Null);
        outcome
    }

    async fn finish(mut self, result: Result<String, EngineError>) -> Result<String, EngineError> {
        if let Some((pump, stop)) = self.pump.take() {
            stop.store(true, Ordering::Release);
            self.first_media.1.notify_all();
            let _ = tokio::task::spawn_blocking(move || pump.join()).await;
        }
        // The pump sent EOS; let the muxer flush its last tags before tearing down.
        if let Some(bus) = self.encoder.bus() {
            let mut messages = bus.stream();
            let _ = tokio::time::timeout(Duration::from_secs(3), async {
                while let Some(msg) = messages.next().await {
                    if matches!(
                        msg.view(),
                        gst::MessageView::Eos(_) | gst::MessageView::Error(_)
                    ) {
                        break;
                    }
                }
            })
            .await;
        }
        let _ = self.encoder.set_state(gst::State::Null);
        self.hub.end();
        match &result {
            Ok(reason) => {
                self.set_state(StreamState::Ended);
                self.emit(MediaEvent::Ended {
                    reason: reason.clone(),
                });
            }
            Err(e) => {
                self.set_state(StreamState::Failed);
                self.emit(MediaEvent::Failed {
                    reason: e.to_string(),
                });
            }
        }
        result
    }
}

async fn supervise(mut s: Supervision) -> Result<String, EngineError> {
    let mut item = 0usize;
    let mut iteration = 0u32;
    let mut failures = 0u32;
    let mut seek = s.settings.start;
    let backoff = backon::ExponentialBuilder::default()
        .with_min_delay(s.settings.backoff_min)
        .with_max_delay(s.settings.backoff_max)
        .with_jitter()
        .without_max_times();
    let mut delays = backon::BackoffBuilder::build(backoff);
    loop {
        let attempt = s.play(item, &mut iteration, seek.take()).await;
        match attempt {
            Attempt::Stopped => return s.finish(Ok("stopped".into())).await,
            Attempt::EncoderFailed(reason) => {
                return s.finish(Err(EngineError::Encoder(reason))).await;
            }
            Attempt::Finished => {
                failures = 0;
                delays = backon::BackoffBuilder::build(backoff);
                s.emit(MediaEvent::ItemFinished { item, iteration });
                item += 1;
                if item == s.items.len() {
                    item = 0;
                    iteration += 1;
                    let done = match s.settings.loops {
                        Loops::Times(n) => iteration >= n,
                        Loops::Forever => false,
                    };
                    if done || !s.replayable {
                        return s.finish(Ok("input finished".into())).await;
                    }
                }
            }
            Attempt::Failed(failure) if failure.fatal => {
                let input = match &s.items[item] {
                    InputItem::Uri(u) => crate::redact::redact_url(u),
                    InputItem::Sources(spec) => spec.describe(),
                };
                return s
                    .finish(Err(EngineError::Input {
                        input,
                        reason: failure.reason,
                    }))
                    .await;
            }
            Attempt::Failed(failure) => {
                // A live input can come back: keep the output on the slate and try again.
                failures += 1;
                if !s.slot.lock().expect("slot lock").on_slate {
                    s.set_slate(true);
                    s.emit(MediaEvent::OnSlate {
                        reason: failure.reason.clone(),
                    });
                }
                s.stats.lock().expect("stats lock").restarts += 1;
                // Jitter spreads restarts out; the cap stays a cap.
                let delay = delays
                    .next()
                    .unwrap_or(s.settings.backoff_max)
                    .min(s.settings.backoff_max);
                s.emit(MediaEvent::InputRestart {
                    attempt: failures,
                    delay_ms: delay.as_millis() as u64,
                    reason: failure.reason,
                });
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = s.stop.changed() => return s.finish(Ok("stopped".into())).await,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_encoder_watchdog_fires_only_when_fed_and_silent() {
        let mut w = EncoderWatch::default();
        let limit = Duration::ZERO;
        assert!(!w.stalled(0, 0, limit), "nothing fed yet");
        assert!(!w.stalled(10, 100, limit), "fed and producing");
        assert!(!w.stalled(10, 100, limit), "idle is not a stall");
        assert!(w.stalled(20, 100, limit), "fed, nothing out");
        assert!(!w.stalled(30, 200, limit), "output again resets it");
    }
}
