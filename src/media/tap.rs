//! What a room observer hears and sees, handed on: the emulator's cloud publishes a room (a
//! user's stream or the room's mix) from its observers' decoded media, as TRTC's relay to CDN
//! publishes what its own users receive. A leaf the observer and the room publisher share.
//!
//! A tap costs nothing until someone takes from it: it fills only while a publisher has
//! taken within the last second, and keeps at most a second of sound and the latest picture.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstreamer as gst;

/// The rate of the sound a tap carries: the observer's analysis format, F32 mono.
pub const TAP_RATE: u32 = 48_000;
/// Sound kept at most, in samples.
const KEPT_SAMPLES: usize = TAP_RATE as usize;
/// A tap nobody took from this long stops filling.
const WANTED_FOR: Duration = Duration::from_secs(1);

#[derive(Default)]
struct TapState {
    wanted_until: Option<Instant>,
    audio: VecDeque<f32>,
    audio_at: Option<Instant>,
    video: Option<gst::Sample>,
    video_at: Option<Instant>,
}

/// One observer's decoded media for whoever publishes its room; clones share it.
#[derive(Clone, Default)]
pub struct RoomTap(Arc<Mutex<TapState>>);

impl std::fmt::Debug for RoomTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomTap").finish_non_exhaustive()
    }
}

impl RoomTap {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut TapState) -> R) -> R {
        f(&mut self.0.lock().expect("tap lock"))
    }

    /// Whether anyone takes from the tap now (else the observer skips copying).
    pub(crate) fn wanted(&self) -> bool {
        self.with(|t| t.wanted_until.is_some_and(|u| Instant::now() < u))
    }

    /// Decoded sound (F32 mono at [`TAP_RATE`]), oldest dropped past a second.
    pub(crate) fn put_audio(&self, samples: impl Iterator<Item = f32>) {
        self.with(|t| {
            t.audio.extend(samples);
            let over = t.audio.len().saturating_sub(KEPT_SAMPLES);
            t.audio.drain(..over);
            t.audio_at = Some(Instant::now());
        });
    }

    /// A decoded picture; only the latest is kept.
    pub(crate) fn put_video(&self, sample: gst::Sample) {
        self.with(|t| {
            t.video = Some(sample);
            t.video_at = Some(Instant::now());
        });
    }

    /// Adds up to `into.len()` samples of sound into `into`; how many there were. Whether
    /// the stream carried sound lately comes with it.
    pub(crate) fn take_audio(&self, into: &mut [f32], lately: Duration) -> (usize, bool) {
        self.with(|t| {
            t.wanted_until = Some(Instant::now() + WANTED_FOR);
            let n = into.len().min(t.audio.len());
            for (out, sample) in into.iter_mut().zip(t.audio.drain(..n)) {
                *out += sample;
            }
            let active = t.audio_at.is_some_and(|at| at.elapsed() < lately);
            (n, active)
        })
    }

    /// The latest picture, if it came within `lately`.
    pub(crate) fn latest_video(&self, lately: Duration) -> Option<gst::Sample> {
        self.with(|t| {
            t.wanted_until = Some(Instant::now() + WANTED_FOR);
            match t.video_at {
                Some(at) if at.elapsed() < lately => t.video.clone(),
                _ => None,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tap_fills_only_while_taken_from_and_keeps_a_second() {
        let tap = RoomTap::new();
        assert!(!tap.wanted());
        let mut out = [0.0f32; 4];
        assert_eq!(tap.take_audio(&mut out, Duration::from_secs(1)), (0, false));
        assert!(tap.wanted());
        tap.put_audio(std::iter::repeat_n(0.5, KEPT_SAMPLES + 10));
        let (n, active) = tap.take_audio(&mut out, Duration::from_secs(1));
        assert_eq!((n, active), (4, true));
        assert_eq!(out, [0.5; 4]);
    }
}
