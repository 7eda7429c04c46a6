//! What a local file's H.264 really is, read from its packets without decoding: whether
//! frames are reordered (B-frames), how far apart its keyframes are, and its bitrate. The
//! passthrough verdict rests on these, not on the profile's name: a Main or High stream
//! without B-frames passes, a Baseline one with a 10 s GOP does not.

use std::path::Path;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

/// How much of the video is read: enough to see its GOP and B-frames, quickly.
const SCAN: Duration = Duration::from_secs(20);

/// The video stream's measured figures.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VideoMeasures {
    /// Some frame is shown before one decoded earlier: the stream has B-frames.
    pub reordered: bool,
    /// The longest stretch between keyframes in what was read, in ms.
    pub max_keyframe_gap_ms: u64,
    /// Video bits per second over what was read, in kb/s.
    pub kbps: u64,
    /// How much was read, in ms of media.
    pub scanned_ms: u64,
}

/// Reads up to [`SCAN`] of `path`'s first H.264 stream, demuxed and parsed only.
pub(crate) fn measure_h264(path: &Path) -> Result<VideoMeasures, String> {
    super::init().map_err(|e| e.to_string())?;
    measure_from(super::file_source(path)?, None, None, false)
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
    guard: Option<super::policy::SourceGuard>,
) -> Result<VideoMeasures, String> {
    super::init().map_err(|e| e.to_string())?;
    let source =
        gst::Element::make_from_uri(gst::URIType::Src, uri, None).map_err(|e| e.to_string())?;
    measure_from(source, guard, Some(URL_SCAN), true)
}

fn measure_from(
    source: gst::Element,
    guard: Option<super::policy::SourceGuard>,
    wall: Option<Duration>,
    network: bool,
) -> Result<VideoMeasures, String> {
    let parse = gst::ElementFactory::make("parsebin")
        .build()
        .map_err(|e| e.to_string())?;
    if network {
        super::pads::skip_gif_demuxer(&parse);
    }
    let pipeline = gst::Pipeline::new();
    pipeline
        .add_many([&source, &parse])
        .map_err(|e| e.to_string())?;
    source.link(&parse).map_err(|e| e.to_string())?;
    if let Some(guard) = guard {
        super::policy::guard_sources(pipeline.upcast_ref(), guard);
    }
    let pipeline = super::NullOnDrop::new(pipeline);
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
    super::pads::attach_decoded_pads(&parse, &pipeline, move |kind| {
        if kind != "video/x-h264" || taken.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return Ok(None);
        }
        let sink = weak_sink.upgrade().ok_or("the sink is gone")?;
        let queue = gst::ElementFactory::make("queue")
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Some(super::pads::Branch {
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

/// One passthrough criterion and what the file has.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Check {
    pub criterion: String,
    pub measured: String,
    pub ok: bool,
}

/// What the passthrough verdict looks at.
pub(crate) struct Candidate<'a> {
    pub(crate) container: &'a str,
    pub(crate) video: Option<&'a super::probe::VideoStream>,
    pub(crate) audio: Option<&'a super::probe::AudioStream>,
    pub(crate) audio_tracks: usize,
    pub(crate) measures: Option<&'a Result<VideoMeasures, String>>,
    /// Where its first sample is, when later than its start.
    pub(crate) start_ms: Option<u64>,
}

/// A keyframe at least this often: a late reader (the cloud's pull) starts within it.
pub const MAX_KEYFRAME_GAP_MS: u64 = 2000;
/// How far over the profile's bitrate cap a passed-through stream may be.
pub const BITRATE_SLACK: f64 = 1.5;

/// Who would take the input as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Taker {
    /// This node, remuxing a local file without decoding it (passthrough, or an
    /// announcement served as it is).
    Remux,
    /// The cloud, pulling a URL itself (`direct`): any container it pulls, and a bitrate
    /// that a few seconds of packets cannot tell.
    Cloud,
}

/// Whether the input can be taken as it is, why, and every criterion checked (up to the
/// first that fails). One place decides it, for a local passthrough and for a URL the
/// cloud pulls alike: any H.264 without B-frames, upright, no larger than the profile's
/// picture, at most its frame rate, a keyframe at least every 2 s, starting at 0, with one
/// AAC track at the contract's rate; for a remux also in MP4/MOV or FLV and within 1.5 ×
/// the profile's bitrate cap.
pub(crate) fn verdict(
    c: &Candidate<'_>,
    contract: &super::contract::Contract,
    taker: Taker,
) -> (bool, String, Vec<Check>) {
    let mut checks = Vec::new();
    let mut check = |criterion: &str, measured: String, ok: bool| {
        checks.push(Check {
            criterion: criterion.to_owned(),
            measured,
            ok,
        });
        ok
    };
    let passes = (taker == Taker::Cloud
        || check(
            "container MP4/MOV or FLV",
            super::probe::container_label(c.container).to_owned(),
            matches!(c.container, "video/quicktime" | "video/x-flv"),
        ))
        && check(
            "its first sample at 0 s",
            c.start_ms.map_or("its first sample at 0 s".into(), |ms| {
                format!("its first sample at {:.2} s", ms as f64 / 1000.0)
            }),
            c.start_ms.is_none(),
        )
        && check(
            "one audio track",
            match c.audio_tracks {
                1 => "1 audio track".to_owned(),
                n => format!("{n} audio tracks"),
            },
            c.audio_tracks == 1,
        )
        && check(
            &format!("AAC at {} Hz, mono or stereo", contract.audio_rate),
            c.audio.map_or("no audio".into(), |a| {
                format!("{} at {} Hz, {} ch", a.codec, a.rate, a.channels)
            }),
            c.audio.is_some_and(|a| {
                a.codec == "aac" && a.rate == contract.audio_rate && (1..=2).contains(&a.channels)
            }),
        )
        && video_checks(c, contract, taker, &mut check);
    let reason = match (checks.iter().find(|k| !k.ok), taker) {
        (Some(k), _) => format!("re-encoded: needs {}, it has {}", k.criterion, k.measured),
        (None, Taker::Remux) => {
            "H.264 without B-frames and AAC within the contract: remuxed without decoding"
                .to_owned()
        }
        (None, Taker::Cloud) => "H.264 without B-frames and AAC within the contract".to_owned(),
    };
    (passes, reason, checks)
}

fn video_checks(
    c: &Candidate<'_>,
    contract: &super::contract::Contract,
    taker: Taker,
    check: &mut impl FnMut(&str, String, bool) -> bool,
) -> bool {
    let Some(limit) = contract.video else {
        // The cloud takes an audio-only URL as it is; a local file in the audio profile is
        // made into the profile's own announcement.
        if taker == Taker::Cloud {
            return check(
                "no video in the audio profile",
                if c.video.is_some() {
                    "video"
                } else {
                    "no video"
                }
                .into(),
                c.video.is_none(),
            );
        }
        return check(
            "a video profile (the audio profile drops the video by encoding)",
            "the audio profile".into(),
            false,
        );
    };
    let Some(v) = c.video else {
        return check(
            "a video stream (a slate is added by encoding)",
            "no video".into(),
            false,
        );
    };
    if !check(
        "an upright picture (no rotation to apply)",
        v.orientation.clone().unwrap_or_else(|| "upright".into()),
        v.orientation.is_none(),
    ) || !check("H.264", v.codec.clone(), v.codec == "h264")
    {
        return false;
    }
    let m = match c.measures {
        Some(Ok(m)) => m,
        Some(Err(e)) => return check("readable H.264 packets", e.clone(), false),
        None => return check("H.264 packets read", "none read".into(), false),
    };
    check(
        "no B-frames (frames shown in decode order)",
        if m.reordered { "B-frames" } else { "none" }.into(),
        !m.reordered,
    ) && check(
        &format!("at most {}x{}", limit.width, limit.height),
        format!("{}x{}", v.width, v.height),
        v.width <= limit.width && v.height <= limit.height,
    ) && check(
        &format!("at most {} fps", limit.fps),
        format!("{:.2} fps", v.fps),
        v.fps > 0.0 && v.fps <= f64::from(limit.fps) + 0.01,
    ) && check(
        &format!("a keyframe at least every {} s", MAX_KEYFRAME_GAP_MS / 1000),
        format!(
            "keyframes up to {:.1} s apart",
            m.max_keyframe_gap_ms as f64 / 1000.0
        ),
        m.max_keyframe_gap_ms <= MAX_KEYFRAME_GAP_MS,
    ) && (taker == Taker::Cloud
        || check(
            &format!(
                "at most {:.0} kb/s ({BITRATE_SLACK} × the profile's cap)",
                f64::from(limit.kbps) * BITRATE_SLACK
            ),
            format!("{} kb/s", m.kbps),
            m.kbps as f64 <= f64::from(limit.kbps) * BITRATE_SLACK,
        ))
}
