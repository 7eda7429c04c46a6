//! What an inspected input is, in words every part of the inspection shares: the report,
//! its streams, what a file was found to hold, and the names of codecs and containers. A
//! leaf: it calls nothing of the inspection.

use gstreamer as gst;

use crate::media::bounds::InputBounds;
use crate::media::contract::Contract;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("input `{input}` cannot be used: {reason}")]
pub struct ProbeError {
    pub input: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VideoStream {
    pub codec: String,
    pub profile: Option<String>,
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    pub still_image: bool,
    /// The rotation or flip the container or EXIF asks for (the `image-orientation` tag,
    /// e.g. `rotate-90`: turned 90° clockwise to be upright); `None` when upright as stored.
    pub orientation: Option<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AudioStream {
    pub codec: String,
    pub rate: u32,
    pub channels: u32,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProbeReport {
    pub input: String,
    pub kind: &'static str,
    pub live: bool,
    pub container: Option<String>,
    /// How long the played media really lasts: measured from a local file's packets, the
    /// header's claim otherwise.
    pub duration_ms: Option<u64>,
    /// The length the file's header declares, when it disagrees with the measured one by
    /// more than a frame (an interrupted copy declares more than it holds).
    pub declared_duration_ms: Option<u64>,
    /// Where a local file's first sample is, when it is later than its start (an edited
    /// export): what is played starts there, as ffmpeg does.
    pub start_ms: Option<u64>,
    pub seekable: bool,
    pub video: Option<VideoStream>,
    pub audio: Option<AudioStream>,
    /// Every stream of a file, with its language; the chosen ones are marked.
    pub tracks: Vec<Track>,
    /// Which audio track (by its number among the audio tracks) goes into the contract.
    pub audio_track: Option<usize>,
    /// A picture the file carries (cover art): never a stream, but the picture of a video
    /// profile when the file has no video of its own.
    pub cover_art: Option<CoverArt>,
    /// Whether the input is remuxed as it is instead of decoded and encoded.
    pub passthrough: bool,
    /// Why passthrough does or does not apply.
    pub reason: String,
    /// Each passthrough criterion with what was measured, in the order they are checked.
    pub checks: Vec<Check>,
    /// For a URL: whether the cloud can pull it as it is, and why.
    pub direct: Option<(bool, String)>,
    pub contract: Contract,
    /// How large the input could be to pass; whatever decodes it later keeps to the same.
    #[serde(skip)]
    pub bounds: InputBounds,
}

/// A picture embedded in a file's tags.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CoverArt {
    /// Its media type, e.g. `image/png`.
    pub format: String,
    pub bytes: usize,
    #[serde(skip)]
    pub data: bytes::Bytes,
}

/// The first picture in `tags` (the cover, or any attached image), if any.
pub(crate) fn cover_art(tags: Option<&gst::TagList>) -> Option<CoverArt> {
    let tags = tags?;
    let sample = tags
        .get::<gst::tags::Image>()
        .or_else(|| tags.get::<gst::tags::PreviewImage>())?
        .get();
    let format = caps_name(sample.caps().map(|c| c.to_owned())).0;
    let map = sample.buffer()?.map_readable().ok()?;
    Some(CoverArt {
        format,
        bytes: map.len(),
        data: bytes::Bytes::copy_from_slice(&map),
    })
}

pub(crate) fn caps_name(caps: Option<gst::Caps>) -> (String, Option<gst::Structure>) {
    match caps.and_then(|c| c.structure(0).map(|s| s.to_owned())) {
        Some(s) => (s.name().to_string(), Some(s)),
        None => ("unknown".into(), None),
    }
}

pub(crate) fn codec_name(name: &str, s: Option<&gst::Structure>) -> String {
    match name {
        "video/x-h264" => "h264".into(),
        "video/x-h265" => "h265".into(),
        "video/x-vp8" => "vp8".into(),
        "video/x-vp9" => "vp9".into(),
        "audio/x-opus" => "opus".into(),
        "audio/x-vorbis" => "vorbis".into(),
        "audio/x-flac" => "flac".into(),
        // Samples as they are (a WAV's, as its parser shows them).
        "audio/x-raw" => "pcm".into(),
        "audio/mpeg" => match s.and_then(|s| s.get::<i32>("mpegversion").ok()) {
            Some(1) => "mp3".into(),
            Some(2 | 4) => "aac".into(),
            _ => "mpeg-audio".into(),
        },
        other => other
            .rsplit('/')
            .next()
            .unwrap_or(other)
            .trim_start_matches("x-")
            // libav's decoders' own caps (`video/x-gst-libav-gif`): the codec is the rest.
            .trim_start_matches("gst-libav-")
            .trim_start_matches("gst-av-")
            .to_owned(),
    }
}

/// A container's name as people know it, for text output (the JSON keeps the caps name).
pub fn container_label(caps: &str) -> &str {
    match caps {
        "video/quicktime" => "MP4/MOV",
        "video/x-matroska" => "Matroska (MKV)",
        "video/webm" => "WebM",
        "video/x-flv" => "FLV",
        "video/mpegts" => "MPEG-TS",
        "video/x-msvideo" => "AVI",
        "application/x-id3" => "ID3-tagged audio (MP3)",
        "application/x-apetag" => "APE-tagged audio",
        "audio/x-flac" => "FLAC",
        "audio/x-wav" => "WAV",
        "audio/ogg" | "application/ogg" | "video/ogg" => "Ogg",
        "audio/mpeg" => "MPEG audio",
        "audio/x-m4a" => "M4A",
        "image/gif" => "GIF",
        "image/png" => "PNG",
        "image/jpeg" => "JPEG",
        "image/webp" => "WebP",
        other => other,
    }
}

/// The `image-orientation` tag, unless it says the picture is upright as stored.
pub(crate) fn orientation(tags: Option<&gst::TagList>) -> Option<String> {
    let value = tags?.get::<gst::tags::ImageOrientation>()?.get().to_owned();
    (value != "rotate-0").then_some(value)
}

/// What a file holds, however it was found out.
#[derive(Debug, PartialEq)]
pub(crate) struct Found {
    pub(crate) container: String,
    pub(crate) video: Option<VideoStream>,
    /// Every track, none chosen yet.
    pub(crate) tracks: Vec<Track>,
    /// The audio tracks' details, in track order.
    pub(crate) audio_streams: Vec<AudioStream>,
    pub(crate) cover_art: Option<CoverArt>,
    pub(crate) duration_ms: Option<u64>,
    pub(crate) seekable: bool,
    /// The H.264 packets' figures, when they were read on the way.
    pub(crate) measures: Option<Result<VideoMeasures, String>>,
}

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

/// One passthrough criterion and what the file has.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Check {
    pub criterion: String,
    pub measured: String,
    pub ok: bool,
}

/// One stream of a file, as `probe` lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Track {
    /// `audio`, `video`, `subtitle`, `data` (timed metadata, captions: never played) or
    /// `picture` (cover art: never carried).
    pub kind: &'static str,
    /// Its number among the tracks of its kind, from 0 (what `--audio-track` takes).
    pub index: usize,
    pub codec: String,
    pub language: Option<String>,
    /// It goes into the contract.
    pub chosen: bool,
}
