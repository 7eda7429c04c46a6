//! What a local file really holds, read from its packets (demuxed and parsed, never
//! decoded): where each audio and video track starts and ends, and whether it holds
//! anything at all. A container's header can promise more than the file holds (an
//! interrupted copy: a FLAC whose STREAMINFO says 271.8 s over 1.95 s of audio), less, or
//! an absurd length; its first timestamp can be late (an edited export starting at 10 s).
//! Everything that plans, loops, counts plays or judges an early end uses what is measured
//! here, never the header's claim.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;

/// How long reading a file to its end may take. Parsing alone reads a 90 MB 1080p MP4 in
/// tens of milliseconds and an hour of FLAC in well under a second; this bounds a file on a
/// stalled network mount.
const READ_LIMIT: gst::ClockTime = gst::ClockTime::from_seconds(30);

/// One audio or video track, as its packets show it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TrackExtent {
    /// `audio` or `video`.
    pub(crate) kind: &'static str,
    /// Its number among the tracks of its kind, in the order a decoder offers them.
    pub(crate) index: usize,
    /// Its codec, as the probe names it.
    pub(crate) codec: String,
    pub(crate) packets: u64,
    /// When its earliest sample is shown, in running time (an empty edit or a late first
    /// timestamp shows here).
    pub(crate) start: Option<Duration>,
    /// When its last sample ends, in running time.
    pub(crate) end: Option<Duration>,
    /// Its longest packet: a FLAC block can be 93 ms, and a last block's end is counted whole.
    pub(crate) longest: Duration,
}

/// The span of the tracks that are played.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: Duration,
    pub(crate) end: Duration,
    /// The longest packet of the tracks spanned.
    pub(crate) longest: Duration,
}

impl Span {
    pub(crate) fn length(&self) -> Duration {
        self.end.saturating_sub(self.start)
    }
}

/// A file read to its end.
#[derive(Debug, Clone, Default)]
pub(crate) struct Measurement {
    /// Every audio and video track.
    pub(crate) tracks: Vec<TrackExtent>,
    /// The length the container declares.
    pub(crate) declared: Option<Duration>,
}

/// Every audio and video track of `path`, read to the end of the file.
pub(crate) fn measure(path: &Path) -> Result<Measurement, String> {
    crate::media::init().map_err(|e| e.to_string())?;
    let pipeline = gst::Pipeline::new();
    let source = crate::media::file_source(path)?;
    let parse = gst::ElementFactory::make("parsebin")
        .build()
        .map_err(|e| e.to_string())?;
    pipeline
        .add_many([&source, &parse])
        .map_err(|e| e.to_string())?;
    source.link(&parse).map_err(|e| e.to_string())?;
    let pipeline = crate::media::NullOnDrop::new(pipeline);
    let tracks = Arc::new(Mutex::new(Vec::<TrackExtent>::new()));
    attach(&parse, &pipeline, &tracks);
    let bus = pipeline.bus().ok_or("no bus")?;
    // Every sink drains without prerolling (`async=false`): one prerolling would hold the
    // demuxer's one thread before the other tracks had their turn.
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| "the file cannot be opened".to_owned())?;
    let ended = bus.timed_pop_filtered(
        READ_LIMIT,
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    match ended.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => {}
        Some(gst::MessageView::Error(e)) => return Err(e.error().to_string()),
        _ => {
            return Err(format!(
                "it could not be read to its end within {READ_LIMIT}"
            ));
        }
    }
    let declared = pipeline
        .query_duration::<gst::ClockTime>()
        .map(|d| Duration::from_nanos(d.nseconds()));
    let tracks = tracks.lock().expect("extent lock").clone();
    Ok(Measurement { tracks, declared })
}

/// Each audio and video pad is tallied and drained; any other (subtitles, data, pictures)
/// is drained only.
fn attach(parse: &gst::Element, pipeline: &gst::Pipeline, tracks: &Arc<Mutex<Vec<TrackExtent>>>) {
    let weak_pipeline = pipeline.downgrade();
    let tracks = tracks.clone();
    parse.connect_pad_added(move |_, pad| {
        let Some(pipeline) = weak_pipeline.upgrade() else {
            return;
        };
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let (name, structure) = super::report::caps_name(Some(caps));
        let kind = if name.starts_with("audio/") {
            Some("audio")
        } else if name.starts_with("video/") {
            Some("video")
        } else {
            None
        };
        if let Some(kind) = kind {
            let slot = {
                let mut tracks = tracks.lock().expect("extent lock");
                let index = tracks.iter().filter(|t| t.kind == kind).count();
                tracks.push(TrackExtent {
                    kind,
                    index,
                    codec: super::report::codec_name(&name, structure.as_ref()),
                    ..TrackExtent::default()
                });
                tracks.len() - 1
            };
            tally(pad, &tracks, slot);
        }
        if crate::media::pads::drain(&pipeline, pad).is_none() {
            let _ = pipeline.post_message(
                gst::message::Error::builder(gst::CoreError::Negotiation, "cannot drain a track")
                    .src(&pipeline)
                    .build(),
            );
        }
    });
}

/// Records each packet's span on `pad` in running time, so an edit list's empty edit or a
/// late first timestamp counts as the file asks.
fn tally(pad: &gst::Pad, tracks: &Arc<Mutex<Vec<TrackExtent>>>, slot: usize) {
    let tracks = tracks.clone();
    let segment = Mutex::new(gst::FormattedSegment::<gst::ClockTime>::new());
    pad.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |_, info| {
            match &info.data {
                Some(gst::PadProbeData::Event(event)) => {
                    if let gst::EventView::Segment(s) = event.view()
                        && let Ok(time) = s.segment().clone().downcast::<gst::ClockTime>()
                    {
                        *segment.lock().expect("segment lock") = time;
                    }
                }
                Some(gst::PadProbeData::Buffer(buffer)) => {
                    let Some(at) = buffer.pts().or(buffer.dts()) else {
                        return gst::PadProbeReturn::Ok;
                    };
                    let until = at + buffer.duration().unwrap_or(gst::ClockTime::ZERO);
                    let (start, end) = {
                        let segment = segment.lock().expect("segment lock");
                        let start = segment.to_running_time(at);
                        (start, segment.to_running_time(until).or(start))
                    };
                    let mut tracks = tracks.lock().expect("extent lock");
                    let track = &mut tracks[slot];
                    track.packets += 1;
                    let lasts = until.saturating_sub(at);
                    track.longest = track.longest.max(Duration::from_nanos(lasts.nseconds()));
                    let as_duration = |t: gst::ClockTime| Duration::from_nanos(t.nseconds());
                    if let Some(start) = start.map(as_duration) {
                        track.start = Some(track.start.map_or(start, |s| s.min(start)));
                    }
                    if let Some(end) = end.map(as_duration) {
                        track.end = Some(track.end.map_or(end, |e| e.max(end)));
                    }
                }
                _ => {}
            }
            gst::PadProbeReturn::Ok
        },
    );
}

/// The span of the played tracks (the first video track and audio track `audio`), or the
/// first of them that holds nothing, by kind.
pub(crate) fn played_span(
    tracks: &[TrackExtent],
    video: bool,
    audio: Option<usize>,
) -> Result<Option<Span>, &'static str> {
    let played = tracks.iter().filter(|t| {
        (video && t.kind == "video" && t.index == 0)
            || (t.kind == "audio" && Some(t.index) == audio)
    });
    let mut span: Option<Span> = None;
    for track in played {
        let (Some(start), Some(end)) = (track.start, track.end) else {
            return Err(track.kind);
        };
        span = Some(match span {
            Some(s) => Span {
                start: s.start.min(start),
                end: s.end.max(end),
                longest: s.longest.max(track.longest),
            },
            None => Span {
                start,
                end,
                longest: track.longest,
            },
        });
    }
    Ok(span)
}

/// Whether an MP4/MOV file is cut short: a top-level box that runs past the end of the
/// file (an `mdat` whose samples were never all written), with the box's name.
pub(crate) fn cut_short_box(path: &Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path).ok()?;
    let length = file.metadata().ok()?.len();
    let mut at = 0u64;
    while at + 8 <= length {
        file.seek(SeekFrom::Start(at)).ok()?;
        let mut header = [0u8; 16];
        let read = file.read(&mut header).ok()?;
        if read < 8 {
            return None;
        }
        let size32 = u64::from(u32::from_be_bytes(header[..4].try_into().ok()?));
        let name = String::from_utf8_lossy(&header[4..8]).into_owned();
        let size = match size32 {
            // To the end of the file, as the format allows for the last box.
            0 => return None,
            1 if read >= 16 => u64::from_be_bytes(header[8..16].try_into().ok()?),
            1 => return Some(name),
            n => n,
        };
        if size < 8 {
            return None;
        }
        if at.checked_add(size).is_none_or(|end| end > length) {
            return Some(name);
        }
        at += size;
    }
    None
}

/// What a local file was measured to hold, for the probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Measured {
    /// How long the played tracks really last, from their first sample to their last.
    pub(crate) length_ms: u64,
    /// Where their first sample is, when it is later than the start.
    pub(crate) start_ms: Option<u64>,
    /// The header's length, when it disagrees with the measured one by more than a frame.
    pub(crate) declared_ms: Option<u64>,
}

/// What the probe knows of the played tracks before they are measured.
pub(crate) struct Played<'a> {
    pub(crate) video_codec: Option<&'a str>,
    pub(crate) video_fps: f64,
    /// The chosen audio track's number and codec.
    pub(crate) audio: Option<(usize, &'a str)>,
    pub(crate) audio_rate: u32,
    /// The header's length.
    pub(crate) declared_ms: Option<u64>,
}

/// Measures `path`'s played tracks, or why it cannot be played: a played track with
/// nothing in it, or an MP4 whose samples run past the end of the file. `Ok(None)` when
/// the packets could not be read to the end (the header's length stands, as before).
pub(crate) fn judge(path: &Path, played: &Played<'_>) -> Result<Option<Measured>, String> {
    let measured = measure(path).map_err(|why| {
        tracing::warn!(input = %path.display(), why, "the packets could not be measured");
    });
    let span = match &measured {
        Ok(m) => played_span(
            &m.tracks,
            played.video_codec.is_some(),
            played.audio.map(|a| a.0),
        )
        .map_err(|kind| {
            let codec = match kind {
                "video" => played.video_codec.unwrap_or("video"),
                _ => played.audio.map_or("audio", |a| a.1),
            };
            nothing_present(played.declared_ms, codec)
        })?,
        Err(()) => None,
    };
    if is_mp4(path)
        && let Some(name) = cut_short_box(path)
    {
        return Err(cut_short(&name, span, played.declared_ms));
    }
    let Some(span) = span else {
        return Ok(None);
    };
    // A frame of the played tracks: a video frame, an audio codec's frame of 1024 samples,
    // or their longest packet (a FLAC block).
    let frame_ms = [
        (played.video_fps > 0.0).then(|| 1000.0 / played.video_fps),
        (played.audio_rate > 0).then(|| 1_024_000.0 / f64::from(played.audio_rate)),
        Some(span.longest.as_secs_f64() * 1000.0),
    ]
    .into_iter()
    .flatten()
    .fold(1.0_f64, f64::max)
    .ceil() as u64;
    let start_ms = span.start.as_millis() as u64;
    let end_ms = span.end.as_millis() as u64;
    // Compared with where the last sample ends: a header counts a late start too. Within a
    // frame the header is the finer figure (a last packet's end is counted whole).
    let declared_ms = played.declared_ms;
    let agrees = declared_ms.filter(|declared| declared.abs_diff(end_ms) <= frame_ms);
    let length_ms = agrees.unwrap_or(end_ms).saturating_sub(start_ms);
    Ok(Some(Measured {
        length_ms,
        start_ms: (start_ms > frame_ms).then_some(start_ms),
        declared_ms: declared_ms.filter(|_| agrees.is_none()),
    }))
}

/// What a session request is checked for before it is admitted (with its sizes): a file
/// with audio or video tracks none of which holds a sample, or an MP4 cut short. The
/// probe that follows judges the played tracks one by one.
pub(crate) fn admit(path: &Path) -> Result<(), String> {
    let Ok(measured) = measure(path) else {
        // What cannot be read is named by the probe.
        return Ok(());
    };
    let declared_ms = measured.declared.map(|d| d.as_millis() as u64);
    if let Some(empty) = measured.tracks.first()
        && measured.tracks.iter().all(|t| t.packets == 0)
    {
        return Err(nothing_present(declared_ms, &empty.codec));
    }
    if is_mp4(path)
        && let Some(name) = cut_short_box(path)
    {
        let span = played_span(&measured.tracks, true, Some(0)).ok().flatten();
        return Err(cut_short(&name, span, declared_ms));
    }
    Ok(())
}

fn nothing_present(declared_ms: Option<u64>, codec: &str) -> String {
    match declared_ms.filter(|ms| *ms > 0) {
        Some(ms) => format!(
            "it declares {} of {}, none of it present: a truncated file",
            seconds(ms),
            codec.to_uppercase()
        ),
        None => "it holds no samples or frames (its length is 0): there is nothing to play".into(),
    }
}

fn cut_short(name: &str, present: Option<Span>, declared_ms: Option<u64>) -> String {
    let present = present.map_or_else(
        || "an unknown part".to_owned(),
        |s| seconds(s.length().as_millis() as u64),
    );
    format!(
        "a truncated file: its `{name}` box runs past the end of the file, and {present} of the {} it declares is there. Copy it again, or keep what is there with `ffmpeg -i <file> -c copy <new>.mp4`",
        declared_ms.map_or_else(|| "length".to_owned(), seconds)
    )
}

/// Whether `path` is an ISO/QuickTime file, by its first box.
fn is_mp4(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && matches!(&head[4..8], b"ftyp" | b"moov" | b"wide" | b"free" | b"mdat")
}

/// A length as people read it: `1.95 s`, `271.8 s`, `6,422 s`.
pub(crate) fn seconds(ms: u64) -> String {
    match ms {
        0..10_000 => format!("{:.2} s", ms as f64 / 1000.0),
        10_000..1_000_000 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => {
            let whole = (ms / 1000).to_string();
            let mut grouped = String::new();
            for (i, digit) in whole.chars().enumerate() {
                if i > 0 && (whole.len() - i).is_multiple_of(3) {
                    grouped.push(',');
                }
                grouped.push(digit);
            }
            format!("{grouped} s")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_read_as_people_write_them() {
        assert_eq!(seconds(1_950), "1.95 s");
        assert_eq!(seconds(271_800), "271.8 s");
        assert_eq!(seconds(6_422_000), "6,422 s");
        assert_eq!(seconds(1_558_264_778), "1,558,264 s");
    }

    #[test]
    fn a_box_running_past_the_end_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let boxed = |name: &[u8; 4], declared: u32, body: usize| {
            let mut b = declared.to_be_bytes().to_vec();
            b.extend_from_slice(name);
            b.extend(std::iter::repeat_n(0u8, body));
            b
        };
        let mut whole = boxed(b"ftyp", 16, 8);
        whole.extend(boxed(b"mdat", 108, 100));
        let mut cut = boxed(b"ftyp", 16, 8);
        cut.extend(boxed(b"mdat", 1_000_000, 100));
        // A 64-bit size (1) that runs past the end too.
        let mut large = boxed(b"ftyp", 16, 8);
        large.extend(1u32.to_be_bytes());
        large.extend(b"mdat");
        large.extend(u64::MAX.to_be_bytes());
        for (name, bytes, expected) in [
            ("whole.mp4", whole, None),
            ("cut.mp4", cut, Some("mdat".to_owned())),
            ("large.mp4", large, Some("mdat".to_owned())),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            assert!(is_mp4(&path), "{name}");
            assert_eq!(cut_short_box(&path), expected, "{name}");
        }
    }
}
