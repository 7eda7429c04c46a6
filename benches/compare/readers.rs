//! The players the figures read streams with, the same for both tools: an HTTP-FLV reader
//! and an RTMP player of nginx. FLV tags are cut out of the byte stream here and read with
//! `callfeed::media::flv`.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use callfeed::media::flv::{TagKind, tag_kind, tag_timestamp};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

/// Cuts a byte stream into what flvmux emits and `callfeed::media::flv` reads: the 13-byte
/// file header, then one tag at a time with its trailing PreviousTagSize.
#[derive(Default)]
pub(crate) struct FlvTags {
    /// Bytes not yet cut into whole tags.
    pending: Vec<u8>,
    header_skipped: bool,
}

impl FlvTags {
    /// Adds `data`; hands every tag it completes to `each`.
    pub(crate) fn feed(&mut self, data: &[u8], mut each: impl FnMut(&[u8])) {
        self.pending.extend_from_slice(data);
        if !self.header_skipped {
            // FLV header (9 bytes) and the first PreviousTagSize (4 bytes).
            if self.pending.len() < 13 {
                return;
            }
            if tag_kind(&self.pending[..13]) == TagKind::FileHeader {
                self.pending.drain(..13);
            }
            self.header_skipped = true;
        }
        let mut at = 0;
        while at + 11 <= self.pending.len() {
            let p = &self.pending[at..];
            let size = u32::from_be_bytes([0, p[1], p[2], p[3]]) as usize;
            let end = at + 11 + size + 4;
            if end > self.pending.len() {
                break;
            }
            each(&self.pending[at..end]);
            at = end;
        }
        self.pending.drain(..at);
    }
}

fn is_video(tag: &[u8]) -> bool {
    matches!(
        tag_kind(tag),
        TagKind::VideoConfig | TagKind::VideoKeyframe | TagKind::VideoDelta
    )
}

/// A video tag that carries a picture, not the sequence header.
fn is_picture(tag: &[u8]) -> bool {
    matches!(tag_kind(tag), TagKind::VideoKeyframe | TagKind::VideoDelta)
}

/// Connects to an HTTP-FLV `url` as soon as anything listens there, like an impatient player,
/// and reads until the first picture; how long after `started` it arrived.
pub(crate) fn http_first_picture(url: &str, started: Instant) -> Duration {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let mut response = loop {
            match client.get(url).send().await {
                Ok(r) => break r,
                Err(_) if started.elapsed() < Duration::from_secs(10) => {
                    tokio::time::sleep(Duration::from_millis(2)).await
                }
                Err(e) => panic!("{url}: {e}"),
            }
        };
        let mut tags = FlvTags::default();
        loop {
            let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
                .await
                .expect("media within 10 s")
                .unwrap()
                .expect("the stream goes on");
            let mut picture = false;
            tags.feed(&chunk, |tag| picture |= is_picture(tag));
            if picture {
                return started.elapsed();
            }
        }
    })
}

#[derive(Default)]
struct Progress {
    /// nginx has taken the play request (it sends the FLV header before anyone publishes).
    connected: bool,
    tags: FlvTags,
    first_picture: Option<Instant>,
    /// The newest video tag's timestamp (ms) and when it arrived. Video, because a live
    /// muxer lets audio run ahead when the video encoder falls behind.
    latest_video: Option<(Instant, u32)>,
}

impl Progress {
    fn feed(&mut self, data: &[u8]) {
        let now = Instant::now();
        self.connected = true;
        self.tags.feed(data, |tag| {
            if is_video(tag) {
                self.latest_video = tag_timestamp(tag).map(|ts| (now, ts));
            }
            if is_picture(tag) && self.first_picture.is_none() {
                self.first_picture = Some(now);
            }
        });
    }
}

type Shared = Arc<(Mutex<Progress>, Condvar)>;

/// An RTMP player of nginx: it plays one stream with GStreamer's `rtmp2src` (no decoding, so a
/// dozen of them cost little) and records when the first picture arrived and how far the
/// stream's media time has got.
pub(crate) struct RtmpReader {
    pipeline: gst::Pipeline,
    progress: Shared,
}

impl RtmpReader {
    /// Starts playing `url` now; nginx-rtmp holds the player until someone publishes there.
    pub(crate) fn start(url: &str) -> Self {
        gst::init().expect("GStreamer");
        let pipeline = gst::parse::launch(&format!(
            "rtmp2src location={url} ! appsink name=flv sync=false"
        ))
        .expect("rtmp2src (gst-plugins-bad)")
        .downcast::<gst::Pipeline>()
        .unwrap();
        let progress: Shared = Arc::new((Mutex::new(Progress::default()), Condvar::new()));
        let sink = pipeline
            .by_name("flv")
            .unwrap()
            .downcast::<gst_app::AppSink>()
            .unwrap();
        let weak = Arc::downgrade(&progress);
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let progress = weak.upgrade().ok_or(gst::FlowError::Flushing)?;
                    if let Some(map) = sample.buffer().and_then(|b| b.map_readable().ok()) {
                        progress.0.lock().unwrap().feed(&map);
                        progress.1.notify_all();
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        pipeline.set_state(gst::State::Playing).unwrap();
        Self { pipeline, progress }
    }

    /// Waits until nginx has taken the play request; false if it did not within `limit`.
    pub(crate) fn wait_connected(&self, limit: Duration) -> bool {
        self.wait(limit, |p| p.connected)
    }

    /// Waits for the first picture; when it arrived, or None if not within `limit`.
    pub(crate) fn wait_first_picture(&self, limit: Duration) -> Option<Instant> {
        self.wait(limit, |p| p.first_picture.is_some());
        self.progress.0.lock().unwrap().first_picture
    }

    /// The newest video timestamp (ms) and when it arrived.
    pub(crate) fn latest_video(&self) -> Option<(Instant, u32)> {
        self.progress.0.lock().unwrap().latest_video
    }

    fn wait(&self, limit: Duration, done: impl Fn(&Progress) -> bool) -> bool {
        let (lock, changed) = &*self.progress;
        let guard = lock.lock().unwrap();
        let (guard, _) = changed
            .wait_timeout_while(guard, limit, |p| !done(p))
            .unwrap();
        done(&guard)
    }
}

impl Drop for RtmpReader {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
