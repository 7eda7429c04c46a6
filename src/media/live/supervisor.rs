//! The supervisor of a live stream: owns each input attempt's pipeline and bus, restarts a
//! failed or stalled input with jittered backoff while the pump shows the slate, loops,
//! watches the encoder, and ends the stream.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use gstreamer as gst;
use gstreamer::prelude::*;
use tokio::sync::{broadcast, watch};

mod changes;

use super::encoder::{EncoderWatch, build_encoder, slate_frame};
use super::input::{Feed, Slot, build_input, classify};
use super::pump;
use super::queue::PlayQueue;
use crate::media::NullOnDrop;
use crate::media::hub::StreamHub;
use crate::media::input::{InputItem, InputSpec};
use crate::media::stream::control::LiveControl;
use crate::media::stream::handle::Halt;
use crate::media::stream::handle::{
    Counters, EngineError, InputFailure, LiveSettings, LiveStream, MediaEvent, StreamState, emit,
};
use crate::media::topology::Topologies;

/// Which attempt a periodic check looks at, and since when it runs.
struct AttemptWatch {
    item: usize,
    iteration: u32,
    started: Instant,
    /// A publisher's connection: going quiet puts the slate on, and only its end ends it.
    pushed: bool,
}

/// What a running attempt has shown so far.
#[derive(Default)]
struct AttemptProgress {
    saw_media: bool,
    /// A publisher that went quiet: the slate is on until it sends again or leaves.
    quiet: bool,
}

/// Why a pushed input's attempt ended when its publisher went away.
pub const PUBLISHER_LEFT: &str = "the publisher disconnected";

/// How long a publisher may send nothing before its calls see the slate: a real-time
/// encoder sends a frame every few tens of milliseconds.
const PUBLISHER_QUIET: Duration = Duration::from_secs(1);

/// How long a (re)started input may take to deliver its first media.
const FIRST_MEDIA_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds the encoder and the pump and starts the first input.
pub(super) fn start(
    spec: InputSpec,
    settings: LiveSettings,
    topologies: &Topologies,
) -> Result<LiveStream, EngineError> {
    crate::media::init().map_err(|e| EngineError::Build {
        stage: "engine",
        reason: e.to_string(),
    })?;
    let hub = Arc::new(StreamHub::new());
    let (events, _) = broadcast::channel(256);
    let counters = Arc::new(Counters::default());
    let feed = Feed {
        slot: Arc::new(Mutex::new(Slot::default())),
        first_media: Arc::new((Mutex::new(false), std::sync::Condvar::new())),
        counters: counters.clone(),
    };
    let (encoder, sources) = build_encoder(&settings.contract, topologies, &hub)?;
    let slate = slate_frame(
        &settings.contract,
        settings.picture.as_ref(),
        settings.input_bounds,
    )?;
    encoder
        .set_state(gst::State::Playing)
        .map_err(|e| EngineError::Build {
            stage: "encoder",
            reason: e.to_string(),
        })?;
    let pump_stop = Arc::new(AtomicBool::new(false));
    let pump = {
        let slot = feed.slot.clone();
        let counters = counters.clone();
        let contract = settings.contract;
        let stop = pump_stop.clone();
        let stall = settings.stall_timeout;
        let first = feed.first_media.clone();
        std::thread::Builder::new()
            .name("callfeed-pump".into())
            .spawn(move || {
                pump::start_when_ready(first, &stop);
                pump::pump(slot, counters, sources, contract, slate, stall, stop)
            })
            .map_err(|e| EngineError::Build {
                stage: "pump",
                reason: e.to_string(),
            })?
    };
    let (stop, stop_rx) = watch::channel(Halt::Running);
    let (controls, controls_rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(supervise(Supervision {
        items: spec.items(),
        replayable: spec.is_replayable(),
        settings,
        topologies: topologies.clone(),
        feed,
        encoder_watch: EncoderWatch::default(),
        events: events.clone(),
        hub: hub.clone(),
        encoder: NullOnDrop::new(encoder),
        pump: Some((pump, pump_stop)),
        stop: stop_rx,
        controls: Some(controls_rx),
        queue: PlayQueue::default(),
    }));
    Ok(LiveStream::running(hub, events, counters, false, stop, task).with_controls(controls))
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
    feed: Feed,
    encoder_watch: EncoderWatch,
    events: broadcast::Sender<MediaEvent>,
    hub: Arc<StreamHub>,
    encoder: NullOnDrop,
    pump: Option<(std::thread::JoinHandle<()>, Arc<AtomicBool>)>,
    stop: watch::Receiver<Halt>,
    /// Changes from the stream's owner; `None` once the owner let go of the sender.
    controls: Option<tokio::sync::mpsc::UnboundedReceiver<LiveControl>>,
    queue: PlayQueue,
}

enum Attempt {
    /// The item played to its end.
    Finished,
    /// The owner asked for another input (or the queue's next): it plays from its start.
    Switched,
    /// The queue ran out, or was cleared: the slate until a change comes.
    Idle,
    Failed(InputFailure),
    Stopped,
    EncoderFailed(String),
}

impl Supervision {
    fn emit(&self, event: MediaEvent) {
        emit(&self.events, event);
    }

    fn set_state(&self, state: StreamState) {
        self.feed.counters.set_state(state);
    }

    fn set_slate(&self, on: bool) {
        self.feed.slot.lock().expect("slot lock").on_slate = on;
        self.set_state(if on {
            StreamState::OnSlate
        } else {
            StreamState::Live
        });
    }

    /// Whether play number `iteration` (from 0) is followed by another.
    fn more_plays_after(&self, iteration: u32) -> bool {
        self.replayable && self.settings.loops.plays_again_after(iteration + 1)
    }

    /// Plays one attempt of one item; owns its pipeline and bus until it ends. A single item
    /// that loops is replayed in the same pipeline by seeking back, so loop points cost no
    /// pipeline rebuild.
    async fn play(&mut self, item: usize, iteration: &mut u32, seek: Option<Duration>) -> Attempt {
        let from_storage = matches!(&self.items[item], InputItem::Uri(u) if u.starts_with("file:"));
        let inlet = match &self.items[item] {
            InputItem::Pushed(inlet) => Some(inlet.clone()),
            _ => None,
        };
        // A pushed input's attempt is one publisher's connection: it starts when one comes.
        let connection = match inlet {
            Some(inlet) => tokio::select! {
                _ = self.stop.changed() => return Attempt::Stopped,
                connection = inlet.accept() => match connection {
                    Some(c) => Some(c),
                    None => return Attempt::Failed(InputFailure { fatal: true, reason: "the feed takes no publisher".into() }),
                },
            },
            None => None,
        };
        let pushed = connection.is_some();
        let pipeline = match build_input(
            &self.items[item],
            connection,
            &self.settings,
            &self.topologies,
            &self.feed,
        ) {
            Ok(p) => NullOnDrop::new(p),
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
        let mut progress = AttemptProgress::default();
        let outcome = loop {
            tokio::select! {
                _ = self.stop.changed() => break Attempt::Stopped,
                change = async {
                    match self.controls.as_mut() {
                        Some(controls) => controls.recv().await,
                        None => std::future::pending().await,
                    }
                } => match change {
                    Some(change) => if let Some(end) = self.apply(change, Some((&pipeline, item))) {
                        break end;
                    },
                    None => self.controls = None,
                },
                msg = messages.next() => {
                    let Some(msg) = msg else { break Attempt::Failed(InputFailure { fatal: false, reason: "bus closed".into() }) };
                    match msg.view() {
                        gst::MessageView::Eos(_) if self.items.len() == 1 && self.more_plays_after(*iteration) => {
                            self.emit(MediaEvent::ItemFinished { item, iteration: *iteration });
                            *iteration += 1;
                            let _ = pipeline.seek_simple(gst::SeekFlags::FLUSH, gst::ClockTime::ZERO);
                        }
                        gst::MessageView::Eos(_) if pushed => break Attempt::Failed(InputFailure { fatal: false, reason: PUBLISHER_LEFT.into() }),
                        gst::MessageView::Eos(_) => break Attempt::Finished,
                        gst::MessageView::Error(e) => {
                            // What one publisher sent says nothing of the next one's.
                            let fatal = classify(&e.error(), from_storage) && !pushed;
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
                    let watch = AttemptWatch { item, iteration: *iteration, started, pushed };
                    if let Some(end) = self.check(&pipeline, &watch, &mut progress) {
                        break end;
                    }
                }
            }
        };
        // Null on every exit path; the slot keeps the last frame for the pump.
        let _ = pipeline.set_state(gst::State::Null);
        outcome
    }

    /// The periodic look at a running attempt: the encoder's watchdog, the input's first
    /// media (back from the slate), a stalled input, and the position figures. `Some` ends
    /// the attempt.
    fn check(
        &mut self,
        pipeline: &gst::Pipeline,
        watch: &AttemptWatch,
        seen: &mut AttemptProgress,
    ) -> Option<Attempt> {
        let c = &self.feed.counters;
        let frames_out =
            c.frames_out.load(Ordering::Relaxed) + c.audio_ms_out.load(Ordering::Relaxed);
        let stall = self.settings.stall_timeout;
        if self
            .encoder_watch
            .stalled(frames_out, self.hub.bytes_in(), stall)
        {
            return Some(Attempt::EncoderFailed(format!(
                "the encoder produced nothing for {stall:?}"
            )));
        }
        let (progress, paused) = {
            let slot = self.feed.slot.lock().expect("slot lock");
            (slot.progress_at, slot.paused)
        };
        if paused {
            // Nothing is expected of a paused input.
            return None;
        }
        let fresh = progress.is_some_and(|t| t.elapsed() < stall && t >= watch.started);
        if fresh && (!seen.saw_media || seen.quiet) {
            let first = !seen.saw_media;
            seen.saw_media = true;
            seen.quiet = false;
            if self.feed.slot.lock().expect("slot lock").on_slate {
                self.set_slate(false);
                self.emit(MediaEvent::BackOnInput);
            } else {
                self.set_state(StreamState::Live);
            }
            if first && watch.iteration == 0 && watch.item == 0 {
                self.emit(MediaEvent::FirstMedia);
            }
            if let Some((id, mark)) = self.queue.starting() {
                // In the stream too, so a reader (the emulator's room) tells when it hears it.
                self.hub.cue(&crate::media::flv::item_cue(id));
                self.emit(MediaEvent::QueuedStarted { id, mark });
            }
        }
        // A source gets longer to deliver its first media than to keep delivering.
        let (last, limit) = if seen.saw_media && watch.pushed {
            (progress, PUBLISHER_QUIET)
        } else if seen.saw_media {
            (progress, stall)
        } else {
            (Some(watch.started), stall.max(FIRST_MEDIA_TIMEOUT))
        };
        if last.is_some_and(|t| t.elapsed() > limit) {
            if watch.pushed && seen.saw_media {
                // A publisher's network hiccup: its calls see the slate, and its connection
                // is kept, so it carries on the moment it sends again.
                if !seen.quiet {
                    seen.quiet = true;
                    self.set_slate(true);
                    self.emit(MediaEvent::OnSlate {
                        reason: format!("the publisher sent nothing for {limit:?}"),
                    });
                }
                return None;
            }
            return Some(Attempt::Failed(InputFailure {
                fatal: false,
                reason: format!("no media for {limit:?}"),
            }));
        }
        if let Some(p) = pipeline.query_position::<gst::ClockTime>() {
            c.position_ms.store(p.mseconds(), Ordering::Relaxed);
            c.item.store(watch.item as u64, Ordering::Relaxed);
            c.iteration.store(watch.iteration, Ordering::Relaxed);
        }
        None
    }

    /// The owner asked for a halt: the end, or first the slate alone until the end.
    async fn halted(mut self) -> Result<String, EngineError> {
        if *self.stop.borrow_and_update() == Halt::InputOnly {
            // The slate from now on, whether or not the input ever gave the pump its start.
            {
                let (flag, ready) = &*self.feed.first_media;
                *flag.lock().expect("first-media lock") = true;
                ready.notify_all();
            }
            if !self.feed.slot.lock().expect("slot lock").on_slate {
                self.set_slate(true);
                self.emit(MediaEvent::OnSlate {
                    reason: "the input was let go".into(),
                });
            }
            let _ = self.stop.wait_for(|h| *h == Halt::Everything).await;
        }
        self.finish(Ok("stopped".into())).await
    }

    async fn finish(mut self, result: Result<String, EngineError>) -> Result<String, EngineError> {
        if let Some((pump, stop)) = self.pump.take() {
            stop.store(true, Ordering::Release);
            self.feed.first_media.1.notify_all();
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
    if s.settings.hold_until_pulled {
        let hub = s.hub.clone();
        tokio::select! {
            _ = hub.first_reader() => {}
            _ = s.stop.changed() => return s.halted().await,
        }
    }
    let mut next = None;
    loop {
        let attempt = match next.take() {
            Some(attempt) => attempt,
            None => s.play(item, &mut iteration, seek.take()).await,
        };
        match attempt {
            Attempt::Stopped => return s.halted().await,
            Attempt::Switched => {
                (item, iteration, failures) = (0, 0, 0);
                delays = backon::BackoffBuilder::build(backoff);
            }
            Attempt::Idle => next = Some(s.idle().await),
            Attempt::Finished if s.queue.plays_queued() => {
                s.queued_played_out();
                next = Some(s.next_queued());
            }
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
                    if !s.settings.loops.plays_again_after(iteration) || !s.replayable {
                        return s.finish(Ok("input finished".into())).await;
                    }
                }
            }
            Attempt::Failed(failure) if failure.fatal => {
                let input = match &s.items[item] {
                    InputItem::Uri(u) => crate::redact::redact_url(u),
                    InputItem::Sources(spec) => spec.describe(),
                    InputItem::Pushed(_) => "a publisher's push".into(),
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
                if !s.feed.slot.lock().expect("slot lock").on_slate {
                    s.set_slate(true);
                    s.emit(MediaEvent::OnSlate {
                        reason: failure.reason.clone(),
                    });
                }
                s.feed.counters.restarts.fetch_add(1, Ordering::Relaxed);
                // Jitter spreads restarts out; the cap stays a cap. A pushed input waits for
                // its next publisher instead, who comes when it comes.
                let delay = if matches!(s.items[item], InputItem::Pushed(_)) {
                    Duration::ZERO
                } else {
                    delays
                        .next()
                        .unwrap_or(s.settings.backoff_max)
                        .min(s.settings.backoff_max)
                };
                s.emit(MediaEvent::InputRestart {
                    attempt: failures,
                    delay_ms: delay.as_millis() as u64,
                    reason: failure.reason,
                });
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = s.stop.changed() => return s.halted().await,
                }
            }
        }
    }
}
