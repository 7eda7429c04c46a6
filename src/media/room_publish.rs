//! The emulator's relay to CDN: what a room carries (one user's stream, or the mix of every
//! user with a callee who speaks) encoded again and pushed over RTMP, as TRTC's
//! StartPublishCdnStream does.
//!
//! ```text
//! taps ─ 20 ms ticks ─ appsrc (F32 mono) ! audioconvert ! audioresample ! voaacenc ─┐
//!                      appsrc (raw)  ! videoconvertscale ! x264enc ! h264parse ─┴ flvmux ! rtmp2sink
//! ```
//!
//! A single user's relay sends only what that user sends (nothing while the user sends
//! nothing); a mix runs on without gaps, as a mixer's output does. A push that fails is made
//! again a second later, until stopped.

use std::f64::consts::TAU;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tokio::sync::watch;

use super::tap::{RoomTap, TAP_RATE};
use super::{MediaInitError, NullOnDrop, element, init};

/// How often sound is handed to the encoder.
const TICK: Duration = Duration::from_millis(20);
/// A stream that sent nothing this long is not in the room (for a relay, nothing is sent).
const LATELY: Duration = Duration::from_millis(500);
/// A simulated voice's level: clearly heard, never clipping with the robot's sound.
const VOICE_AMPLITUDE: f64 = 0.25;
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The picture a publish carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishPicture {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_kbps: u32,
    pub gop_secs: u32,
}

/// What to publish where.
#[derive(Debug, Clone)]
pub struct RoomPublishSpec {
    /// The rtmp:// URL (a stream key in it: never logged whole).
    pub url: String,
    pub sample_rate: u32,
    pub channels: u32,
    pub audio_kbps: u32,
    pub picture: Option<PublishPicture>,
    /// A mix: continuous, the room's callees' voices in it.
    pub mix: bool,
    /// The publish ends by itself once nobody has been in the room this long.
    pub max_idle: Duration,
}

/// The streams a publish takes from, and the tones the room's callees speak, asked again at
/// each tick (users come and go).
pub trait RoomSources: Send + Sync + 'static {
    fn taps(&self) -> Vec<RoomTap>;
    fn voices(&self) -> Vec<f64>;
    /// Whether anyone (a stream or a callee) is in the room.
    fn occupied(&self) -> bool;
}

/// How a publish stands, for the emulator's view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PublishState {
    Connecting,
    Publishing,
    Retrying,
    Stopped,
    /// Ended by itself: nobody was in the room for its idle time.
    Idle,
}

impl PublishState {
    pub fn ended(self) -> bool {
        matches!(self, Self::Stopped | Self::Idle)
    }
}

/// How one push ended.
enum PushEnd {
    Stopped,
    Idle,
    Failed(String),
}

/// A running publish; dropping it stops the push.
pub struct RoomPublisher {
    stop: watch::Sender<bool>,
    state: watch::Receiver<PublishState>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RoomPublisher {
    pub fn start(
        spec: RoomPublishSpec,
        sources: Arc<dyn RoomSources>,
    ) -> Result<Self, MediaInitError> {
        init()?;
        let (stop, stop_rx) = watch::channel(false);
        let (state_tx, state) = watch::channel(PublishState::Connecting);
        let task = tokio::spawn(run(spec, sources, stop_rx, state_tx));
        Ok(Self {
            stop,
            state,
            task: Some(task),
        })
    }

    pub fn state(&self) -> PublishState {
        *self.state.borrow()
    }

    /// Ends the push (the listener sees the publisher finish) and waits for it.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

impl Drop for RoomPublisher {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn run(
    spec: RoomPublishSpec,
    sources: Arc<dyn RoomSources>,
    mut stop: watch::Receiver<bool>,
    state: watch::Sender<PublishState>,
) {
    let shown = crate::redact::redact_url(&spec.url);
    let mut idle = Idle::default();
    loop {
        let end = match Push::build(&spec) {
            Ok(push) => {
                push.run(&spec, sources.as_ref(), &mut stop, &state, &mut idle)
                    .await
            }
            Err(e) => PushEnd::Failed(e),
        };
        let why = match end {
            PushEnd::Stopped => break,
            PushEnd::Idle => {
                tracing::info!(url = %shown, "emulated CDN publish ended: nobody in the room");
                let _ = state.send(PublishState::Idle);
                return;
            }
            PushEnd::Failed(why) => why,
        };
        tracing::info!(url = %shown, error = %why, "emulated CDN publish failed; pushing again");
        let _ = state.send(PublishState::Retrying);
        tokio::select! {
            _ = tokio::time::sleep(RETRY_AFTER) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    let _ = state.send(PublishState::Stopped);
}

/// One push's pipeline and its two doors.
struct Push {
    pipeline: NullOnDrop,
    audio: gst_app::AppSrc,
    video: Option<gst_app::AppSrc>,
}

fn live_appsrc(caps: Option<&gst::Caps>) -> gst_app::AppSrc {
    let src = gst_app::AppSrc::builder()
        .is_live(true)
        .format(gst::Format::Time)
        .do_timestamp(true)
        .build();
    if let Some(caps) = caps {
        src.set_caps(Some(caps));
    }
    src
}

impl Push {
    fn build(spec: &RoomPublishSpec) -> Result<Self, String> {
        let pipeline = gst::Pipeline::new();
        let mux = gst::ElementFactory::make("flvmux")
            .property("streamable", true)
            .property("latency", 100_000_000u64)
            .build()
            .map_err(|e| format!("flvmux: {e}"))?;
        let sink = gst::ElementFactory::make("rtmp2sink")
            .property("location", &spec.url)
            .build()
            .map_err(|e| format!("rtmp2sink: {e}"))?;
        let raw_audio = gst::Caps::builder("audio/x-raw")
            .field("format", "F32LE")
            .field("rate", TAP_RATE as i32)
            .field("channels", 1)
            .field("layout", "interleaved")
            .build();
        let audio = live_appsrc(Some(&raw_audio));
        let encoded = gst::Caps::builder("audio/x-raw")
            .field("rate", spec.sample_rate as i32)
            .field("channels", spec.channels as i32)
            .build();
        let audio_chain = [
            audio.clone().upcast(),
            element("audioconvert")?,
            element("audioresample")?,
            gst::ElementFactory::make("capsfilter")
                .property("caps", &encoded)
                .build()
                .map_err(|e| e.to_string())?,
            gst::ElementFactory::make("voaacenc")
                .property("bitrate", (spec.audio_kbps * 1000) as i32)
                .build()
                .map_err(|e| format!("voaacenc: {e}"))?,
        ];
        pipeline
            .add_many(audio_chain.iter().chain([&mux, &sink]))
            .map_err(|e| e.to_string())?;
        gst::Element::link_many(&audio_chain).map_err(|e| e.to_string())?;
        link_to_mux(audio_chain.last().expect("a chain"), &mux, "audio")?;
        mux.link(&sink).map_err(|e| e.to_string())?;
        let video = match &spec.picture {
            Some(picture) => Some(video_chain(&pipeline, &mux, picture)?),
            None => None,
        };
        Ok(Self {
            pipeline: NullOnDrop::new(pipeline),
            audio,
            video,
        })
    }

    /// Pushes until stopped, the room stays empty, or the push fails.
    async fn run(
        self,
        spec: &RoomPublishSpec,
        sources: &dyn RoomSources,
        stop: &mut watch::Receiver<bool>,
        state: &watch::Sender<PublishState>,
        idle: &mut Idle,
    ) -> PushEnd {
        let Some(bus) = self.pipeline.bus() else {
            return PushEnd::Failed("a pipeline without a bus".into());
        };
        let mut messages = bus.stream();
        if let Err(e) = self.pipeline.set_state(gst::State::Playing) {
            self.pipeline.shut_down(Duration::from_secs(5)).await;
            return PushEnd::Failed(format!("cannot connect: {e}"));
        }
        let _ = state.send(PublishState::Publishing);
        let mut sound = Sound::default();
        let frame_every = spec.picture.map(|p| Duration::from_secs(1) / p.fps.max(1));
        let mut tick = tokio::time::interval(TICK);
        let mut frames = tokio::time::interval(frame_every.unwrap_or(Duration::from_secs(3600)));
        let started = tokio::time::Instant::now();
        let mut looks = tokio::time::interval(Duration::from_secs(1));
        let ended = loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => break PushEnd::Stopped,
                _ = looks.tick() => {
                    if idle.too_long(sources.occupied(), spec.max_idle) {
                        break PushEnd::Idle;
                    }
                }
                _ = tick.tick() => {
                    if let Some(buffer) = sound.next(started.elapsed(), spec.mix, sources)
                        && self.audio.push_buffer(buffer).is_err()
                    {
                        break PushEnd::Failed("the push stopped taking sound".to_owned());
                    }
                }
                _ = frames.tick(), if self.video.is_some() => {
                    if let (Some(src), Some(sample)) = (&self.video, latest_picture(sources)) {
                        let _ = src.push_sample(&sample);
                    }
                }
                msg = messages.next() => match msg.as_ref().map(|m| m.view()) {
                    None => break PushEnd::Failed("the pipeline's bus closed".to_owned()),
                    Some(gst::MessageView::Error(e)) => break PushEnd::Failed(e.error().to_string()),
                    Some(gst::MessageView::Eos(_)) => break PushEnd::Failed("the push ended".to_owned()),
                    _ => {}
                },
            }
        };
        if !matches!(ended, PushEnd::Failed(_)) {
            // Ends the stream cleanly, so the listener hears the publisher finish.
            let _ = self.audio.end_of_stream();
            if let Some(v) = &self.video {
                let _ = v.end_of_stream();
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                while let Some(m) = messages.next().await {
                    if matches!(
                        m.view(),
                        gst::MessageView::Eos(_) | gst::MessageView::Error(_)
                    ) {
                        break;
                    }
                }
            })
            .await;
        }
        self.pipeline.shut_down(Duration::from_secs(5)).await;
        ended
    }
}

fn link_to_mux(from: &gst::Element, mux: &gst::Element, pad: &str) -> Result<(), String> {
    let sink = mux
        .request_pad_simple(pad)
        .ok_or_else(|| format!("flvmux has no {pad} pad"))?;
    from.static_pad("src")
        .ok_or("an element without output")?
        .link(&sink)
        .map(|_| ())
        .map_err(|e| format!("cannot link {pad} into flvmux: {e:?}"))
}

fn video_chain(
    pipeline: &gst::Pipeline,
    mux: &gst::Element,
    picture: &PublishPicture,
) -> Result<gst_app::AppSrc, String> {
    let src = live_appsrc(None);
    let scaled = gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", picture.width.max(16) as i32)
        .field("height", picture.height.max(16) as i32)
        .build();
    let chain = [
        src.clone().upcast(),
        element("videoconvertscale")?,
        gst::ElementFactory::make("capsfilter")
            .property("caps", &scaled)
            .build()
            .map_err(|e| e.to_string())?,
        gst::ElementFactory::make("x264enc")
            .property_from_str("tune", "zerolatency")
            .property_from_str("speed-preset", "ultrafast")
            .property("bitrate", picture.bitrate_kbps)
            .property("key-int-max", picture.fps * picture.gop_secs.max(1))
            .build()
            .map_err(|e| format!("x264enc: {e}"))?,
        element("h264parse")?,
    ];
    pipeline.add_many(&chain).map_err(|e| e.to_string())?;
    gst::Element::link_many(&chain).map_err(|e| e.to_string())?;
    link_to_mux(chain.last().expect("a chain"), mux, "video")?;
    Ok(src)
}

/// Since when the room has been empty, across pushes.
#[derive(Default)]
struct Idle(Option<tokio::time::Instant>);

impl Idle {
    /// Notes whether anyone is in the room; true once it has been empty for `limit`.
    fn too_long(&mut self, occupied: bool, limit: Duration) -> bool {
        if occupied {
            self.0 = None;
            return false;
        }
        self.0
            .get_or_insert_with(tokio::time::Instant::now)
            .elapsed()
            >= limit
    }
}

/// The latest picture of any stream in the room (a relay has one).
fn latest_picture(sources: &dyn RoomSources) -> Option<gst::Sample> {
    sources.taps().iter().find_map(|t| t.latest_video(LATELY))
}

/// The sound's clock: samples owed since the start.
#[derive(Default)]
struct Sound {
    produced: u64,
}

impl Sound {
    /// The next stretch of sound, or none when a relay's user sends nothing.
    fn next(
        &mut self,
        elapsed: Duration,
        mix: bool,
        sources: &dyn RoomSources,
    ) -> Option<gst::Buffer> {
        let due = (elapsed.as_secs_f64() * f64::from(TAP_RATE)) as u64;
        // A late tick catches up at most a second.
        let first = self.produced;
        let n = due.saturating_sub(first).min(u64::from(TAP_RATE)) as usize;
        self.produced = due;
        if n == 0 {
            return None;
        }
        let mut samples = vec![0.0f32; n];
        let mut anyone = false;
        for tap in sources.taps() {
            anyone |= tap.take_audio(&mut samples, LATELY).1;
        }
        if mix {
            for hz in sources.voices() {
                let step = TAU * hz / f64::from(TAP_RATE);
                for (i, s) in samples.iter_mut().enumerate() {
                    let at = (first + i as u64) as f64;
                    *s += (VOICE_AMPLITUDE * (step * at).sin()) as f32;
                }
            }
        } else if !anyone {
            return None;
        }
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut buffer = gst::Buffer::from_mut_slice(bytes);
        buffer
            .get_mut()
            .expect("a new buffer")
            .set_duration(gst::ClockTime::from_nseconds(
                n as u64 * 1_000_000_000 / u64::from(TAP_RATE),
            ));
        Some(buffer)
    }
}
