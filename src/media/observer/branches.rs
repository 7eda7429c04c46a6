//! The observer's two branches: decoded sound (converted, at the task's gain, measured by
//! `level` and `spectrum`) and decoded pictures, each ending in an appsink whose callback
//! counts what arrived into the tally (and hands it to a tap, when the room is published).

use std::sync::Arc;
use std::time::Instant;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tokio::sync::mpsc;

use super::{
    ANALYSIS_INTERVAL, ANALYSIS_RATE, CueHeard, MediaTally, ObserverEvent, SPECTRUM_BANDS,
    SPECTRUM_THRESHOLD_DB,
};

/// A bin from a launch description ending in `appsink name=sink`, and that appsink.
fn appsink_bin(description: &str, sync: bool) -> Result<(gst::Bin, gst_app::AppSink), String> {
    let bin = gst::parse::bin_from_description(description, true).map_err(|e| e.to_string())?;
    let sink = bin
        .by_name("sink")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or("branch without an appsink named sink")?;
    sink.set_sync(sync);
    Ok((bin, sink))
}

/// Keeps the branch's `volume` element at `gain` percent, looked at with each buffer.
fn follow_gain(bin: &gst::Bin, gain: Arc<std::sync::atomic::AtomicU32>) -> Result<(), String> {
    let volume = bin
        .by_name("gain")
        .ok_or("audio branch without its volume")?;
    let pad = volume.static_pad("sink").ok_or("volume without input")?;
    let element = volume.downgrade();
    let applied = std::sync::atomic::AtomicU32::new(100);
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        let wanted = gain.load(std::sync::atomic::Ordering::Relaxed);
        if applied.swap(wanted, std::sync::atomic::Ordering::Relaxed) != wanted
            && let Some(volume) = element.upgrade()
        {
            volume.set_property("volume", f64::from(wanted) / 100.0);
        }
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

impl MediaTally {
    pub(super) fn audio_branch(
        &self,
        sync: bool,
        events: &mpsc::UnboundedSender<ObserverEvent>,
        gain: &Arc<std::sync::atomic::AtomicU32>,
        tap: Option<crate::media::tap::RoomTap>,
    ) -> Result<gst::Bin, String> {
        let description = format!(
            "queue ! audioconvert ! volume name=gain ! audioresample ! audio/x-raw,format=F32LE,channels=1,rate={ANALYSIS_RATE} \
         ! level interval={interval} ! spectrum bands={SPECTRUM_BANDS} threshold={SPECTRUM_THRESHOLD_DB} interval={interval} \
         ! appsink name=sink",
            interval = ANALYSIS_INTERVAL.nseconds()
        );
        let (bin, sink) = appsink_bin(&description, sync)?;
        follow_gain(&bin, gain.clone())?;
        let tally = self.clone();
        let events = events.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let bytes = sample.buffer().map_or(0, |b| b.size()) as u64;
                    if let Some(tap) = tap.as_ref().filter(|t| t.wanted())
                        && let Some(map) = sample.buffer().and_then(|b| b.map_readable().ok())
                    {
                        tap.put_audio(
                            map.chunks_exact(4)
                                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                        );
                    }
                    let now = Instant::now();
                    if tally.media_arrived(now, true) {
                        let _ = events.send(ObserverEvent::FirstMedia);
                    }
                    let pts_ms = sample.buffer().and_then(|b| b.pts()).map(|p| p.mseconds());
                    tally.with(|t| {
                        // F32 mono: four bytes a sample.
                        t.media.audio_ms += bytes / 4 * 1000 / u64::from(ANALYSIS_RATE);
                        // The sound at or after a cue point is heard now.
                        if let Some(pts) = pts_ms
                            && !t.pending_cues.is_empty()
                        {
                            let at_ms = t
                                .requested_at
                                .map_or(0, |r| now.duration_since(r).as_millis() as u64);
                            let (heard, waiting): (Vec<_>, Vec<_>) =
                                std::mem::take(&mut t.pending_cues)
                                    .into_iter()
                                    .partition(|(_, ts)| u64::from(*ts) <= pts);
                            t.pending_cues = waiting;
                            t.media.cues_heard.extend(
                                heard.into_iter().map(|(name, _)| CueHeard { name, at_ms }),
                            );
                        }
                    });
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        Ok(bin)
    }

    pub(super) fn video_branch(
        &self,
        sync: bool,
        events: &mpsc::UnboundedSender<ObserverEvent>,
        tap: Option<crate::media::tap::RoomTap>,
    ) -> Result<gst::Bin, String> {
        let (bin, sink) = appsink_bin("queue ! appsink name=sink", sync)?;
        let tally = self.clone();
        let events = events.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let size = sample.caps().and_then(|c| {
                        let s = c.structure(0)?;
                        Some((s.get::<i32>("width").ok()?, s.get::<i32>("height").ok()?))
                    });
                    let pts = sample.buffer().and_then(|b| b.pts());
                    if let Some(tap) = tap.as_ref().filter(|t| t.wanted())
                        && let (Some(buffer), Some(caps)) = (sample.buffer(), sample.caps())
                    {
                        // A copy of its own: holding the decoder's buffer could starve its pool.
                        let copy = buffer.copy_deep().unwrap_or_else(|_| buffer.copy());
                        tap.put_video(
                            gst::Sample::builder()
                                .buffer(&copy)
                                .caps(&caps.to_owned())
                                .build(),
                        );
                    }
                    let now = Instant::now();
                    if tally.media_arrived(now, false) {
                        let _ = events.send(ObserverEvent::FirstMedia);
                    }
                    tally.with(|t| {
                        t.media.video_frames += 1;
                        if let Some((w, h)) = size {
                            let (w, h) = (w.max(0) as u32, h.max(0) as u32);
                            if t.media.width != 0 && (t.media.width, t.media.height) != (w, h) {
                                t.media.size_changes += 1;
                            }
                            t.media.width = w;
                            t.media.height = h;
                        }
                        t.play_frames += 1;
                        if let Some(pts) = pts {
                            t.play_first_pts.get_or_insert(pts);
                            t.play_last_pts = Some(pts);
                        }
                        if let (Some(first), Some(last)) = (t.play_first_pts, t.play_last_pts)
                            && last > first
                            && t.play_frames > 1
                        {
                            let span = (last - first).nseconds() as f64 / 1e9;
                            t.media.fps =
                                ((t.play_frames - 1) as f64 / span * 100.0).round() / 100.0;
                        }
                    });
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        Ok(bin)
    }
}
