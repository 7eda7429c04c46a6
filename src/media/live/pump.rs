//! The pump: the thread that emits the contract's timeline on its own clock, whatever the
//! input does.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gstreamer as gst;

use super::encoder::EncoderSources;
use super::input::{FirstMedia, SharedSlot};
use crate::media::contract::Contract;
use crate::media::stream::handle::{Counters, bump};

/// How long the pump waits, at a tick with no new picture, for one that is only a little late.
/// The input and the pump run on their own clocks at the same rate; without the wait, a
/// picture arriving just after its tick was sent twice and the next one lost (5 % of the
/// pictures under load). Waiting instead of queueing keeps the video's latency, and so
/// lip sync, where it was.
pub(super) const PICTURE_GRACE: Duration = Duration::from_millis(8);

/// How long the pump waits for the input's first media before starting on the slate.
const PUMP_START_WAIT: Duration = Duration::from_secs(2);

/// Waits (at most [`PUMP_START_WAIT`]) for the input's first media, so the timeline starts on
/// real content, then pumps until stopped.
pub(super) fn start_when_ready(first: FirstMedia, stop: &AtomicBool) {
    let (flag, ready) = &*first;
    let guard = flag.lock().expect("first-media lock");
    let _ = ready.wait_timeout_while(guard, PUMP_START_WAIT, |seen| {
        !*seen && !stop.load(Ordering::Acquire)
    });
}

/// How much audio the pump sends at a time. Beside video, 20 ms, finer than a frame, so the
/// two interleave closely. Alone, 100 ms: every chunk wakes the pump, the encoder and the
/// muxer once, and five times fewer wake-ups made most of the difference to ffmpeg's CPU
/// for an audio stream, while a tenth of a second is nothing to a cloud that buffers more.
fn audio_chunk(contract: &Contract) -> Duration {
    if contract.video.is_some() {
        Duration::from_millis(20)
    } else {
        Duration::from_millis(100)
    }
}

/// Pictures queued before the encoder at most: a machine short of CPU drops the next one
/// (counted) instead of queueing raw pictures without end — 3 MB each at 1080p, 90 MB a
/// second behind at 30 fps — and the latency that grows with them.
const VIDEO_BACKLOG: u64 = 3;
/// Audio queued before the encoder at most.
const AUDIO_BACKLOG: Duration = Duration::from_millis(500);

/// Whether an appsrc already holds `limit` bytes the encoder has not taken.
fn backlogged(src: &gstreamer_app::AppSrc, limit: u64) -> bool {
    src.current_level_bytes() >= limit
}

/// The pump's timeline and limits, from the contract.
struct Pacing {
    /// One picture's time.
    frame: Duration,
    /// One audio chunk's time, and its length in milliseconds and bytes.
    chunk: Duration,
    chunk_ms: usize,
    chunk_bytes: usize,
    /// The audio queue is kept between 0 and this much, so latency stays bounded.
    max_queue: usize,
    /// Bytes queued before the encoder at most (see [`VIDEO_BACKLOG`], [`AUDIO_BACKLOG`]).
    video_limit: u64,
    audio_limit: u64,
}

impl Pacing {
    fn new(contract: &Contract) -> Self {
        let fps = contract.video.map_or(30, |v| v.fps);
        let frame = Duration::from_nanos(1_000_000_000 / u64::from(fps));
        let chunk = audio_chunk(contract);
        let chunk_ms = chunk.as_millis() as usize;
        let bytes_per_ms = (contract.audio_rate * contract.audio_channels * 2 / 1000) as usize;
        let chunk_bytes = bytes_per_ms * chunk_ms;
        let max_queue = bytes_per_ms * 500;
        let video_limit = contract
            .video
            .map_or(0, |v| VIDEO_BACKLOG * u64::from(v.width * v.height * 3 / 2));
        let audio_limit = (bytes_per_ms * AUDIO_BACKLOG.as_millis() as usize) as u64;
        Self {
            frame,
            chunk,
            chunk_ms,
            chunk_bytes,
            max_queue,
            video_limit,
            audio_limit,
        }
    }
}

/// The picture for this tick, as [`next_picture`] chose it.
struct NextPicture {
    /// `None`: the slate is shown.
    latest: Option<gst::Buffer>,
    /// The last picture, sent again: the input had no new one in time.
    repeated: bool,
    /// The input is gone (see `Slot::on_slate`).
    on_slate: bool,
}

/// Takes the input's newest picture for this tick (waiting [`PICTURE_GRACE`] for one only a
/// little late), or the last one again; none once the input stalled or is gone.
/// `last_picture` is what was last taken, and is kept up to date.
fn next_picture(
    slot: &SharedSlot,
    stall: Duration,
    last_picture: &mut Option<gst::Buffer>,
) -> NextPicture {
    let (mut next, fresh, on_slate, paused) = {
        let mut s = slot.lock().expect("slot lock");
        let fresh = s.video_at.is_some_and(|t| t.elapsed() < stall) && !s.on_slate;
        (s.video.take(), fresh, s.on_slate, s.paused)
    };
    if paused {
        // Held: a live input's new pictures go unseen, and a paused file sends none.
        return NextPicture {
            latest: last_picture.clone(),
            repeated: last_picture.is_some(),
            on_slate,
        };
    }
    if next.is_none() && fresh && last_picture.is_some() {
        let deadline = Instant::now() + PICTURE_GRACE;
        while next.is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
            next = slot.lock().expect("slot lock").video.take();
        }
    }
    let (latest, repeated) = match (next, fresh) {
        (Some(picture), true) => {
            *last_picture = Some(picture.clone());
            (Some(picture), false)
        }
        (None, true) => (last_picture.clone(), last_picture.is_some()),
        (_, false) => {
            *last_picture = None;
            (None, false)
        }
    };
    NextPicture {
        latest,
        repeated,
        on_slate,
    }
}

/// Takes up to one chunk of the input's audio at the stream's volume, none once it stalled
/// or while paused (a live input's sound then goes unheard); a queue grown past
/// `max_queue` is cut back first.
fn take_audio(slot: &SharedSlot, stall: Duration, max_queue: usize, chunk_bytes: usize) -> Vec<u8> {
    let mut s = slot.lock().expect("slot lock");
    if s.audio.len() > max_queue {
        let excess = s.audio.len() - (max_queue / 5).max(chunk_bytes);
        s.audio.drain(..excess);
    }
    let fresh = s.audio_at.is_some_and(|t| t.elapsed() < stall);
    let take = if fresh {
        s.audio.len().min(chunk_bytes)
    } else {
        0
    };
    let (gain, paused) = (s.gain, s.paused);
    let mut data = s.audio.drain(..take).collect::<Vec<u8>>();
    drop(s);
    if paused {
        data.clear();
    } else if let Some(gain) = gain {
        scale(&mut data, gain);
    }
    data
}

/// Scales interleaved 16-bit little-endian samples by `gain`, clipping at full scale.
fn scale(samples: &mut [u8], gain: f32) {
    for pair in samples.chunks_exact_mut(2) {
        let sample = f32::from(i16::from_le_bytes([pair[0], pair[1]])) * gain;
        let clipped = sample.clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16;
        pair.copy_from_slice(&clipped.to_le_bytes());
    }
}

/// Emits video at the contract's rate and audio in chunks, on its own clock.
pub(super) fn pump(
    slot: SharedSlot,
    counters: Arc<Counters>,
    sources: EncoderSources,
    contract: Contract,
    slate: Option<gst::Buffer>,
    stall: Duration,
    stop: Arc<AtomicBool>,
) {
    let EncoderSources {
        video_src,
        audio_src,
    } = sources;
    let Pacing {
        frame,
        chunk,
        chunk_ms,
        chunk_bytes,
        max_queue,
        video_limit,
        audio_limit,
    } = Pacing::new(&contract);
    let started = Instant::now();
    let (mut frames, mut chunks) = (0u64, 0u64);
    // Sent again when the input has no new picture in time.
    let mut last_picture: Option<gst::Buffer> = None;
    while !stop.load(Ordering::Acquire) {
        let next_video = video_src.as_ref().map(|_| frame * frames as u32);
        let next_audio = chunk * chunks as u32;
        let due = next_video.map_or(next_audio, |v| v.min(next_audio));
        let elapsed = started.elapsed();
        if due > elapsed {
            std::thread::sleep(due - elapsed);
        }
        if let (Some(src), Some(at)) = (&video_src, next_video)
            && at <= next_audio
        {
            let NextPicture {
                latest,
                repeated,
                on_slate,
            } = next_picture(&slot, stall, &mut last_picture);
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
            frames += 1;
            if backlogged(src, video_limit) {
                bump(&counters.dropped_frames, 1);
                continue;
            }
            if src.push_buffer(buffer).is_err() {
                break;
            }
            bump(&counters.frames_out, 1);
            if showing_slate && on_slate {
                bump(&counters.slate_frames, 1);
            }
            if repeated {
                bump(&counters.repeated_frames, 1);
            }
            continue;
        }
        let mut data = take_audio(&slot, stall, max_queue, chunk_bytes);
        // An underrun is filled with silence; the clock never waits for the input.
        data.resize(chunk_bytes, 0);
        let mut buffer = gst::Buffer::from_mut_slice(data);
        {
            let b = buffer.get_mut().expect("new buffer is writable");
            b.set_pts(gst::ClockTime::from_nseconds(next_audio.as_nanos() as u64));
            b.set_duration(gst::ClockTime::from_nseconds(chunk.as_nanos() as u64));
        }
        chunks += 1;
        if backlogged(&audio_src, audio_limit) {
            bump(&counters.dropped_audio_ms, chunk_ms as u64);
            continue;
        }
        if audio_src.push_buffer(buffer).is_err() {
            break;
        }
        bump(&counters.audio_ms_out, chunk_ms as u64);
    }
    if let Some(src) = &video_src {
        let _ = src.end_of_stream();
    }
    let _ = audio_src.end_of_stream();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_volume_scales_samples_and_clips_at_full_scale() {
        let mut samples: Vec<u8> = [1000i16, -1000, 30000, i16::MIN]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        scale(&mut samples, 0.5);
        let halved: Vec<i16> = samples
            .chunks_exact(2)
            .map(|p| i16::from_le_bytes([p[0], p[1]]))
            .collect();
        assert_eq!(halved, [500, -500, 15000, -16384]);
        scale(&mut samples, 4.0);
        let loud: Vec<i16> = samples
            .chunks_exact(2)
            .map(|p| i16::from_le_bytes([p[0], p[1]]))
            .collect();
        assert_eq!(loud, [2000, -2000, i16::MAX, i16::MIN]);
    }
}
