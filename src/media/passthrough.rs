//! Passthrough: a file that already meets the output contract, remuxed to FLV without
//! decoding, paced on the media clock, looped seamlessly. The physical-limit path: no
//! decoder, no encoder, no pump.

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

use super::NullOnDrop;
use super::hub::StreamHub;
use super::stream::handle::{
    Counters, EngineError, LiveSettings, LiveStream, Loops, MediaEvent, StreamState, bump, emit,
};

impl LiveStream {
    /// Streams a file that already meets the contract (see `inspect::verdict`) by remuxing
    /// it to FLV, without decoding. Loops are seamless: each play's timestamps continue the
    /// last.
    pub fn start_passthrough(
        path: PathBuf,
        container: &str,
        settings: LiveSettings,
    ) -> Result<Self, EngineError> {
        start(path, container, settings)
    }
}

fn start(
    path: PathBuf,
    container: &str,
    settings: LiveSettings,
) -> Result<LiveStream, EngineError> {
    crate::media::init().map_err(|e| EngineError::Build {
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
    let source = crate::media::file_source(&path).map_err(build)?;
    let pipeline = crate::media::launch_after(source, &description, "d").map_err(build)?;
    let hub = Arc::new(StreamHub::new());
    let counters = Arc::new(Counters::default());
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
    let (stop, stop_rx) = watch::channel(super::stream::handle::Halt::Running);
    let task = tokio::spawn(remux(Remux {
        pipeline: NullOnDrop::new(pipeline),
        pacer,
        loops: settings.loops,
        hub: hub.clone(),
        events: events.clone(),
        counters: counters.clone(),
        stop: stop_rx,
        hold_until_pulled: settings.hold_until_pulled,
    }));
    Ok(LiveStream::running(hub, events, counters, true, stop, task))
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
    counters: Arc<Counters>,
    rebase: Arc<Mutex<Rebase>>,
    stop: Arc<AtomicBool>,
    at_end: Arc<tokio::sync::Notify>,
) {
    use super::flv::{TagKind, set_tag_timestamp, tag_kind, tag_timestamp};
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
    // True until a play's first tag is pulled: an appsink that has not reached PAUSED yet
    // also says it is at EOS, and taking that for the end of a play let the supervisor
    // seek back before the play was sent (a loop's timeline then froze).
    let mut play_ended = true;
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
        // The sample's buffer is a whole tag: its timestamp is moved onto the stream's
        // timeline in place, and the hub shares the buffer's own memory.
        let buffer = sample.buffer_owned();
        drop(sample);
        let moved = buffer.and_then(|b| {
            super::tag_buffer::edited_tag_bytes(b, |tag| {
                let kind = tag_kind(tag);
                let media = matches!(
                    kind,
                    TagKind::VideoKeyframe | TagKind::VideoDelta | TagKind::Audio
                );
                let out = tag_timestamp(tag).filter(|_| media).map(|ts| {
                    let out = rebase.lock().expect("rebase lock").shift(ts);
                    set_tag_timestamp(tag, out);
                    out
                });
                (kind, out)
            })
        });
        let Some((tag, (kind, moved_to))) = moved else {
            continue;
        };
        if let Some(out) = moved_to {
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
            if kind == TagKind::Audio {
                bump(&counters.audio_ms_out, 21);
            } else {
                bump(&counters.frames_out, 1);
            }
        }
        burst.push(tag);
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

/// What the passthrough's task owns.
struct Remux {
    pipeline: NullOnDrop,
    pacer: Pacer,
    loops: Loops,
    hub: Arc<StreamHub>,
    events: broadcast::Sender<MediaEvent>,
    counters: Arc<Counters>,
    stop: watch::Receiver<super::stream::handle::Halt>,
    hold_until_pulled: bool,
}

/// The passthrough supervisor: owns the remux pipeline's bus, loops by seeking back.
async fn remux(r: Remux) -> Result<String, EngineError> {
    let Remux {
        pipeline,
        pacer,
        loops,
        hub,
        events,
        counters,
        mut stop,
        hold_until_pulled,
    } = r;
    let Some(bus) = pipeline.bus() else {
        return Err(EngineError::Build {
            stage: "passthrough",
            reason: "no bus".into(),
        });
    };
    let mut messages = bus.stream();
    if hold_until_pulled {
        tokio::select! {
            _ = hub.first_reader() => {}
            _ = stop.changed() => {
                pacer.finish().await;
                hub.end();
                counters.set_state(StreamState::Ended);
                return Ok("stopped".to_owned());
            }
        }
    }
    let _ = pipeline.set_state(gst::State::Playing);
    emit(
        &events,
        MediaEvent::InputStarted {
            item: 0,
            iteration: 0,
        },
    );
    counters.set_state(StreamState::Live);
    let mut iteration = 0u32;
    let result = loop {
        tokio::select! {
            _ = stop.changed() => break Ok("stopped".to_owned()),
            msg = messages.next() => {
                let Some(msg) = msg else { break Err(EngineError::Encoder("bus closed".into())) };
                match msg.view() {
                    gst::MessageView::Eos(_) => {
                        emit(&events, MediaEvent::ItemFinished { item: 0, iteration });
                        iteration += 1;
                        if !loops.plays_again_after(iteration) {
                            break Ok("input finished".to_owned());
                        }
                        // The pacer marks the loop point once it has the play's last tag.
                        tokio::select! {
                            _ = pacer.at_end.notified() => {}
                            _ = stop.changed() => break Ok("stopped".to_owned()),
                        }
                        counters.iteration.store(iteration, Ordering::Relaxed);
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
            counters.set_state(StreamState::Ended);
            emit(
                &events,
                MediaEvent::Ended {
                    reason: reason.clone(),
                },
            );
        }
        Err(e) => {
            counters.set_state(StreamState::Failed);
            emit(
                &events,
                MediaEvent::Failed {
                    reason: e.to_string(),
                },
            );
        }
    }
    result
}
