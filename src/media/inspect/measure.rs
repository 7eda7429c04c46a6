//! What a file's or URL's H.264 really is, read from its packets without decoding: whether
//! frames are reordered (B-frames), how far apart its keyframes are, and its bitrate — what
//! the verdict rests on, not the profile's name.

use std::path::Path;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::report::VideoMeasures;
use super::verdict::MAX_KEYFRAME_GAP_MS;

/// How much of the video is read: enough to see its GOP and B-frames, quickly.
const SCAN: Duration = Duration::from_secs(20);

/// Reads up to [`SCAN`] of `path`'s first H.264 stream, demuxed and parsed only.
pub(crate) fn measure_h264(path: &Path) -> Result<VideoMeasures, String> {
    crate::media::init().map_err(|e| e.to_string())?;
    measure_from(crate::media::file_source(path)?, None, None, false)
}

/// How long a URL's packets are read for: enough to see B-frames (reordering shows within
/// a GOP's first frames), not a live stream's 20 s of real time.
const URL_SCAN: Duration = Duration::from_secs(3);
/// Media of a URL read at most: a little over the longest keyframe gap that passes, so a
/// stream with one keyframe every 10 s shows a gap too long.
const URL_SCAN_MEDIA: Duration = Duration::from_millis(MAX_KEYFRAME_GAP_MS + 200);

/// Reads a URL's first H.264 stream for at most [`URL_SCAN`], opening only what `guard`
/// allows.
pub(crate) fn measure_h264_uri(
    uri: &str,
    guard: Option<crate::media::policy::SourceGuard>,
) -> Result<VideoMeasures, String> {
    crate::media::init().map_err(|e| e.to_string())?;
    let source =
        gst::Element::make_from_uri(gst::URIType::Src, uri, None).map_err(|e| e.to_string())?;
    measure_from(source, guard, Some(URL_SCAN), true)
}

fn measure_from(
    source: gst::Element,
    guard: Option<crate::media::policy::SourceGuard>,
    wall: Option<Duration>,
    network: bool,
) -> Result<VideoMeasures, String> {
    let parse = gst::ElementFactory::make("parsebin")
        .build()
        .map_err(|e| e.to_string())?;
    if network {
        crate::media::pads::skip_gif_demuxer(&parse);
    }
    let pipeline = gst::Pipeline::new();
    pipeline
        .add_many([&source, &parse])
        .map_err(|e| e.to_string())?;
    source.link(&parse).map_err(|e| e.to_string())?;
    if let Some(guard) = guard {
        crate::media::policy::guard_sources(pipeline.upcast_ref(), guard);
    }
    let pipeline = crate::media::NullOnDrop::new(pipeline);
    let sink = gst_app::AppSink::builder()
        .sync(false)
        .max_buffers(64)
        .caps(&gst::Caps::builder("video/x-h264").build())
        .build();
    // In the pipeline from the start, so pulling waits for packets instead of finding a sink
    // that is not running yet; each H.264 pad is offered through a queue, the first linked.
    pipeline.add(&sink).map_err(|e| e.to_string())?;
    let weak_sink = sink.downgrade();
    let taken = std::sync::atomic::AtomicBool::new(false);
    crate::media::pads::attach_decoded_pads(&parse, &pipeline, move |kind| {
        if kind != "video/x-h264" || taken.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return Ok(None);
        }
        let sink = weak_sink.upgrade().ok_or("the sink is gone")?;
        let queue = gst::ElementFactory::make("queue")
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Some(crate::media::pads::Branch {
            element: queue,
            downstream: Some(sink.upcast()),
        }))
    });
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| e.to_string())?;
    read_h264(&sink, &pipeline, wall)
}

/// Reads up to [`SCAN`] of the H.264 packets arriving at `sink` in the playing `pipeline`,
/// for at most `wall` of real time when given.
pub(super) fn read_h264(
    sink: &gst_app::AppSink,
    pipeline: &gst::Pipeline,
    wall: Option<Duration>,
) -> Result<VideoMeasures, String> {
    let mut tally = Tally::default();
    let deadline = wall.map(|w| std::time::Instant::now() + w);
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(5)) {
        let Some(buffer) = sample.buffer() else {
            continue;
        };
        let read = tally.add(buffer);
        if read >= SCAN
            || deadline.is_some_and(|d| read >= URL_SCAN_MEDIA || std::time::Instant::now() >= d)
        {
            break;
        }
    }
    if let Some(error) = pipeline.bus().and_then(|b| {
        b.pop_filtered(&[gst::MessageType::Error])
            .map(|m| match m.view() {
                gst::MessageView::Error(e) => e.error().to_string(),
                _ => String::new(),
            })
    }) {
        return Err(error);
    }
    tally
        .measures()
        .ok_or_else(|| "no H.264 frames could be read".to_owned())
}

#[derive(Default)]
struct Tally {
    frames: u64,
    bytes: u64,
    first_pts: Option<gst::ClockTime>,
    /// The end of the latest-shown frame so far.
    end: Option<gst::ClockTime>,
    max_pts: Option<gst::ClockTime>,
    reordered: bool,
    last_keyframe: Option<gst::ClockTime>,
    max_gap: gst::ClockTime,
}

impl Tally {
    /// Counts one packet; returns how much media has been read.
    fn add(&mut self, buffer: &gst::BufferRef) -> Duration {
        let Some(pts) = buffer.pts() else {
            return self.read();
        };
        self.frames += 1;
        self.bytes += buffer.size() as u64;
        self.first_pts.get_or_insert(pts);
        if self.max_pts.is_some_and(|m| pts < m) {
            self.reordered = true;
        }
        self.max_pts = self.max_pts.max(Some(pts));
        let end = pts + buffer.duration().unwrap_or(gst::ClockTime::ZERO);
        self.end = self.end.max(Some(end));
        if !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT) {
            if let Some(last) = self.last_keyframe {
                self.max_gap = self.max_gap.max(pts.saturating_sub(last));
            }
            self.last_keyframe = Some(pts);
        }
        self.read()
    }

    fn read(&self) -> Duration {
        match (self.first_pts, self.end) {
            (Some(first), Some(end)) => Duration::from_nanos(end.saturating_sub(first).nseconds()),
            _ => Duration::ZERO,
        }
    }

    fn measures(&self) -> Option<VideoMeasures> {
        if self.frames == 0 {
            return None;
        }
        let read = self.read().max(Duration::from_millis(1));
        // What follows the last keyframe counts too: a file with one keyframe has a gap as
        // long as what was read.
        let tail = self
            .end
            .zip(self.last_keyframe)
            .map(|(end, key)| end.saturating_sub(key))
            .unwrap_or_default();
        let gap = if self.last_keyframe.is_some() {
            self.max_gap.max(tail)
        } else {
            gst::ClockTime::from_nseconds(read.as_nanos() as u64)
        };
        Some(VideoMeasures {
            reordered: self.reordered,
            max_keyframe_gap_ms: gap.mseconds(),
            kbps: (self.bytes as f64 * 8.0 / read.as_secs_f64() / 1000.0).round() as u64,
            scanned_ms: read.as_millis() as u64,
        })
    }
}
