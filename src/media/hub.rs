//! The FLV stream of one live output, shared by every reader: the stream header, the codec
//! headers, the current GOP, and the live tags after it.
//!
//! A reader that joins late gets the header, the codec headers and the GOP from its last
//! keyframe first, so it can decode at once. Readers are fed through a bounded broadcast: a
//! reader that falls behind by more than the buffer is dropped, never waited for.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::sync::broadcast;

use super::flv::{TagKind, tag_kind};

/// Tags a reader may fall behind before it is dropped (about 10 s of 30 fps video + audio).
const READER_BUFFER: usize = 1024;

#[derive(Default)]
struct Preamble {
    file_header: Option<Bytes>,
    script: Option<Bytes>,
    video_config: Option<Bytes>,
    audio_config: Option<Bytes>,
    /// Tags from the last keyframe on (or every tag, for audio-only streams, since the last
    /// second).
    gop: Vec<Bytes>,
    has_video: bool,
    ended: bool,
    /// The last media tag's timestamp: where a cue point goes.
    last_ms: u32,
}

/// One live FLV stream and its readers.
pub struct StreamHub {
    state: Mutex<Preamble>,
    live: broadcast::Sender<Bytes>,
    bytes_in: AtomicU64,
    tags_in: AtomicU64,
    /// Raised by the first reader: a held input starts then (see `LiveSettings`).
    pulled: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for StreamHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamHub")
            .field("tags_in", &self.tags_in.load(Ordering::Relaxed))
            .field("readers", &self.live.receiver_count())
            .finish()
    }
}

impl Default for StreamHub {
    fn default() -> Self {
        Self::new()
    }
}

/// What a new reader gets: what to send first, then the live tags.
pub struct Subscription {
    pub preamble: Vec<Bytes>,
    pub live: broadcast::Receiver<Bytes>,
}

impl StreamHub {
    pub fn new() -> Self {
        Self {
            state: Mutex::new(Preamble::default()),
            live: broadcast::channel(READER_BUFFER).0,
            bytes_in: AtomicU64::new(0),
            tags_in: AtomicU64::new(0),
            pulled: tokio::sync::watch::Sender::new(false),
        }
    }

    /// Returns once a reader has subscribed (at once if one already has).
    pub async fn first_reader(&self) {
        let mut pulled = self.pulled.subscribe();
        let _ = pulled.wait_for(|p| *p).await;
    }

    /// Takes one buffer from the muxer. Headers are kept for late readers (the first of
    /// each kind wins, so a restarted muxer does not change what readers were told).
    pub fn push(&self, tag: Bytes) {
        self.bytes_in.fetch_add(tag.len() as u64, Ordering::Relaxed);
        self.tags_in.fetch_add(1, Ordering::Relaxed);
        let kind = tag_kind(&tag);
        let mut s = self.state.lock().expect("hub lock");
        if matches!(
            kind,
            TagKind::VideoKeyframe | TagKind::VideoDelta | TagKind::Audio
        ) && let Some(ms) = super::flv::tag_timestamp(&tag)
        {
            s.last_ms = ms;
        }
        match kind {
            // Every first header also goes live, for readers that joined before it existed.
            TagKind::FileHeader => {
                s.has_video = tag.get(4).is_some_and(|flags| flags & 1 != 0);
                if s.file_header.is_none() {
                    s.file_header = Some(tag.clone());
                    let _ = self.live.send(tag);
                }
                return;
            }
            TagKind::Script => {
                if s.script.is_none() {
                    s.script = Some(tag.clone());
                    let _ = self.live.send(tag);
                }
                return;
            }
            TagKind::VideoConfig => {
                if s.video_config.is_none() {
                    s.video_config = Some(tag.clone());
                    let _ = self.live.send(tag);
                }
                return;
            }
            TagKind::AudioConfig => {
                if s.audio_config.is_none() {
                    s.audio_config = Some(tag.clone());
                    let _ = self.live.send(tag);
                }
                return;
            }
            TagKind::VideoKeyframe => s.gop = vec![tag.clone()],
            TagKind::Audio if !s.has_video => {
                // Audio-only: any tag is a starting point; keep about one second.
                if s.gop.len() >= 50 {
                    s.gop.remove(0);
                }
                s.gop.push(tag.clone());
            }
            _ if !s.gop.is_empty() => s.gop.push(tag.clone()),
            _ => {}
        }
        // Sent under the lock, so a reader subscribing now sees each tag exactly once.
        let _ = self.live.send(tag);
    }

    /// Marks the stream's current point with a cue named `name` (an `onCuePoint` tag after
    /// the last media tag), for the readers reading now; not kept for later ones.
    pub fn cue(&self, name: &str) {
        let s = self.state.lock().expect("hub lock");
        let _ = self.live.send(super::flv::cue_point(name, s.last_ms));
    }

    /// Marks the end of the stream: readers finish after what they have. The end travels as
    /// an empty buffer, after every tag.
    pub fn end(&self) {
        let mut s = self.state.lock().expect("hub lock");
        if !s.ended {
            s.ended = true;
            let _ = self.live.send(Bytes::new());
        }
    }

    pub fn is_ended(&self) -> bool {
        self.state.lock().expect("hub lock").ended
    }

    /// A new reader: the preamble to send first, then live tags.
    pub fn subscribe(&self) -> Subscription {
        let s = self.state.lock().expect("hub lock");
        let preamble = s
            .file_header
            .iter()
            .chain(s.script.iter())
            .chain(s.video_config.iter())
            .chain(s.audio_config.iter())
            .chain(s.gop.iter())
            .cloned()
            .collect();
        let live = self.live.subscribe();
        self.pulled
            .send_if_modified(|p| !std::mem::replace(p, true));
        Subscription { preamble, live }
    }

    /// Whether any reader ever subscribed (the cloud pulled the stream).
    pub fn was_pulled(&self) -> bool {
        *self.pulled.borrow()
    }

    pub fn readers(&self) -> usize {
        self.live.receiver_count()
    }

    pub fn bytes_in(&self) -> u64 {
        self.bytes_in.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::flv::{TAG_VIDEO, set_tag_timestamp, tag_timestamp};

    fn video(key: bool, ts: u32) -> Bytes {
        let mut t = vec![
            TAG_VIDEO,
            0,
            0,
            5,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            if key { 0x17 } else { 0x27 },
            1,
            0,
            0,
            0,
        ];
        set_tag_timestamp(&mut t, ts);
        Bytes::from(t)
    }

    #[test]
    fn late_readers_start_on_the_last_keyframe() {
        let hub = StreamHub::new();
        hub.push(Bytes::from_static(
            b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00",
        ));
        hub.push(Bytes::from(vec![
            TAG_VIDEO, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0x17, 0, 0, 0,
        ]));
        for (i, key) in [true, false, false, true, false].into_iter().enumerate() {
            hub.push(video(key, i as u32 * 33));
        }
        let sub = hub.subscribe();
        let kinds: Vec<TagKind> = sub.preamble.iter().map(|t| tag_kind(t)).collect();
        assert_eq!(
            kinds,
            [
                TagKind::FileHeader,
                TagKind::VideoConfig,
                TagKind::VideoKeyframe,
                TagKind::VideoDelta
            ]
        );
        assert_eq!(tag_timestamp(&sub.preamble[2]), Some(99));
    }

    #[test]
    fn a_slow_reader_is_dropped_without_holding_anyone_up() {
        let hub = StreamHub::new();
        let mut slow = hub.subscribe().live;
        let mut fast = hub.subscribe().live;
        for i in 0..(READER_BUFFER as u32 + 10) {
            hub.push(video(i % 30 == 0, i * 33));
            // The fast reader keeps up; pushing never waits for the slow one.
            assert!(fast.try_recv().is_ok());
        }
        assert!(matches!(
            slow.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(_))
        ));
    }

    #[test]
    fn timestamps_round_trip_past_24_bits() {
        let mut t = video(false, 0).to_vec();
        set_tag_timestamp(&mut t, 0x1234_5678);
        assert_eq!(tag_timestamp(&t), Some(0x1234_5678));
    }
}
