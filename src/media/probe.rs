//! Preflight: what an input is, whether it can be passed through without decoding, and the
//! contract it will be given, or why it cannot be used — before any call rings.

use gstreamer as gst;

use super::bounds::InputBounds;
use super::contract::Contract;
use super::input::{InputItem, InputSpec};
use super::policy::SourceGuard;
use super::tracks::{AudioTrack, Track};

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
    pub checks: Vec<super::conformance::Check>,
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
pub(super) fn cover_art(tags: Option<&gst::TagList>) -> Option<CoverArt> {
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

pub(super) fn caps_name(caps: Option<gst::Caps>) -> (String, Option<gst::Structure>) {
    match caps.and_then(|c| c.structure(0).map(|s| s.to_owned())) {
        Some(s) => (s.name().to_string(), Some(s)),
        None => ("unknown".into(), None),
    }
}

pub(super) fn codec_name(name: &str, s: Option<&gst::Structure>) -> String {
    match name {
        "video/x-h264" => "h264".into(),
        "video/x-h265" => "h265".into(),
        "video/x-vp8" => "vp8".into(),
        "video/x-vp9" => "vp9".into(),
        "audio/x-opus" => "opus".into(),
        "audio/x-vorbis" => "vorbis".into(),
        "audio/x-flac" => "flac".into(),
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
pub(super) fn orientation(tags: Option<&gst::TagList>) -> Option<String> {
    let value = tags?.get::<gst::tags::ImageOrientation>()?.get().to_owned();
    (value != "rotate-0").then_some(value)
}

/// Probes a file or URL with GStreamer's Discoverer (blocking; run off the async threads).
pub fn probe(spec: &InputSpec, contract: Contract) -> Result<ProbeReport, ProbeError> {
    probe_with(spec, contract, &ProbeOptions::default())
}

/// What a probe may open, and what it chooses.
#[derive(Debug, Clone, Default)]
pub struct ProbeOptions {
    /// The sources the probe may open; a network input's own default when `None`.
    pub guard: Option<SourceGuard>,
    pub audio_track: AudioTrack,
    /// Judge a URL for the cloud to pull as it is (`ProbeReport::direct`): its packets are
    /// read for up to 3 s, so only a caller that may hand the URL over asks.
    pub judge_direct: bool,
    /// How large an input may be; a larger one is refused before it is decoded.
    pub bounds: InputBounds,
}

/// [`probe`], with the sources the probe may open limited and the audio track chosen.
pub fn probe_with(
    spec: &InputSpec,
    contract: Contract,
    options: &ProbeOptions,
) -> Result<ProbeReport, ProbeError> {
    super::init().map_err(|e| ProbeError {
        input: spec.describe(),
        reason: e.to_string(),
    })?;
    let items = spec.items();
    let kind = match spec {
        InputSpec::File(_) => "file",
        InputSpec::Playlist(_) => "playlist",
        InputSpec::Url(_) => "url",
        InputSpec::Test { .. } => "test",
        InputSpec::Devices { .. } => "device",
        InputSpec::Custom { .. } => "custom",
    };
    let mut reports = Vec::new();
    for item in &items {
        let InputItem::Uri(uri) = item else {
            return Ok(ProbeReport {
                input: spec.describe(),
                kind,
                live: true,
                container: None,
                duration_ms: None,
                declared_duration_ms: None,
                start_ms: None,
                seekable: false,
                video: None,
                audio: None,
                tracks: Vec::new(),
                audio_track: None,
                cover_art: None,
                passthrough: false,
                reason: "a live source is encoded to the contract".into(),
                checks: Vec::new(),
                direct: None,
                contract,
                bounds: options.bounds,
            });
        };
        let guard = options.guard.clone().or_else(|| SourceGuard::for_uri(uri));
        reports.push(probe_uri(
            uri,
            spec.is_live(),
            kind,
            contract,
            guard,
            options,
        )?);
    }
    let mut first = reports.remove(0);
    if !reports.is_empty() {
        first.passthrough = false;
        first.reason = "a playlist is encoded to the contract".into();
        first.duration_ms = first
            .duration_ms
            .zip(reports.iter().map(|r| r.duration_ms).sum::<Option<u64>>())
            .map(|(a, b)| a + b);
    }
    Ok(first)
}

fn probe_uri(
    uri: &str,
    live: bool,
    kind: &'static str,
    contract: Contract,
    guard: Option<SourceGuard>,
    options: &ProbeOptions,
) -> Result<ProbeReport, ProbeError> {
    let shown = if uri.starts_with("file://") {
        uri.trim_start_matches("file://").to_owned()
    } else {
        crate::redact::redact_url(uri)
    };
    let fail = |reason: String| ProbeError {
        input: shown.clone(),
        reason,
    };
    let local = url::Url::parse(uri)
        .ok()
        .filter(|u| u.scheme() == "file")
        .and_then(|u| u.to_file_path().ok());
    local
        .as_deref()
        .map_or(Ok(()), super::flac::refuse_undecodable)
        .map_err(fail)?;
    // A picture is measured by its headers before anything decodes it; an animated one is
    // described by them entirely (the Discoverer sees one frame, or none).
    if let Some(path) = &local
        && let Some(picture) = super::sizes::check_local(path, options.bounds).map_err(fail)?
        && picture.is_animated()
    {
        return Ok(animated_report(
            shown,
            kind,
            live,
            &picture,
            contract,
            options.bounds,
        ));
    }
    let url_guard = guard.clone();
    let found = described(uri, local.as_deref(), &shown, guard, options.bounds)
        .and_then(|found| {
            super::sizes::check_found(&found, contract, options.bounds)?;
            Ok(found)
        })
        .map_err(fail)?;
    let Found {
        container,
        video,
        mut tracks,
        audio_streams,
        cover_art,
        duration_ms,
        seekable,
        mut measures,
    } = found;
    let audio_track = super::tracks::choose(&mut tracks, &options.audio_track).map_err(fail)?;
    let audio = audio_track.and_then(|n| audio_streams.get(n).cloned());
    if video.is_none() && audio.is_none() {
        return Err(fail(if cover_art.is_some() {
            "its only picture is cover art, with no audio or video to play".into()
        } else {
            "it has neither audio nor video".into()
        }));
    }
    let still = video.as_ref().is_some_and(|v| v.still_image);
    let measured = match &local {
        Some(path) if !live && !still => real_length(
            path,
            video.as_ref(),
            audio_track.zip(audio.as_ref()),
            duration_ms,
        )
        .map_err(fail)?,
        _ => None,
    };
    let duration_ms = measured.map_or(duration_ms, |m| Some(m.length_ms));
    // A file with streams but nothing in them would make an MP4 no player opens, or a call
    // that hears nothing: refused now, with the reason.
    if !live && !still && duration_ms == Some(0) {
        return Err(fail(
            "it holds no samples or frames (its length is 0): there is nothing to play".into(),
        ));
    }
    // Measured from the packets, for a local file whose container and codec could pass.
    if measures.is_none()
        && matches!(container.as_str(), "video/quicktime" | "video/x-flv")
        && video.as_ref().is_some_and(|v| v.codec == "h264")
        && let Some(path) = &local
    {
        measures = Some(super::conformance::measure_h264(path));
    }
    let candidate = super::conformance::Candidate {
        container: &container,
        video: video.as_ref(),
        audio: audio.as_ref(),
        audio_tracks: tracks.iter().filter(|t| t.kind == "audio").count(),
        measures: measures.as_ref(),
        start_ms: measured.and_then(|m| m.start_ms),
    };
    let taker = match (&local, options.judge_direct) {
        (Some(_), _) => Taker::ThisNode,
        (None, true) => Taker::Cloud(uri, url_guard),
        (None, false) => Taker::Nobody,
    };
    let Verdict {
        passthrough,
        reason,
        checks,
        direct,
    } = verdict(candidate, &contract, taker);
    Ok(ProbeReport {
        direct,
        input: shown,
        kind,
        live,
        container: Some(container),
        duration_ms,
        declared_duration_ms: measured.and_then(|m| m.declared_ms),
        start_ms: measured.and_then(|m| m.start_ms),
        seekable,
        video,
        audio,
        tracks,
        audio_track,
        cover_art,
        passthrough,
        reason,
        checks,
        contract,
        bounds: options.bounds,
    })
}

/// A local file's real length, read from its packets (see `extent`): one with nothing on
/// a played track, or cut short, is refused here, before anything rings.
fn real_length(
    path: &std::path::Path,
    video: Option<&VideoStream>,
    audio: Option<(usize, &AudioStream)>,
    declared_ms: Option<u64>,
) -> Result<Option<super::extent::Measured>, String> {
    super::extent::judge(
        path,
        &super::extent::Played {
            video_codec: video.map(|v| v.codec.as_str()),
            video_fps: video.map_or(0.0, |v| v.fps),
            audio: audio.map(|(n, a)| (n, a.codec.as_str())),
            audio_rate: audio.map_or(0, |(_, a)| a.rate),
            declared_ms,
        },
    )
}

/// Whether an input is taken as it is, and by whom.
struct Verdict {
    /// This node remuxes the local file without decoding it.
    passthrough: bool,
    reason: String,
    checks: Vec<super::conformance::Check>,
    /// For a URL: whether the cloud pulls it as it is, and why.
    direct: Option<(bool, String)>,
}

/// Who would take an input as it is.
enum Taker<'a> {
    /// This node, remuxing a local file.
    ThisNode,
    /// The cloud, pulling this URL itself (read here with what its source may open).
    Cloud(&'a str, Option<SourceGuard>),
    /// Nobody: a URL restreamed through this node.
    Nobody,
}

/// One verdict for "taken as it is", by this node remuxing a local file or by the cloud
/// pulling a URL itself (its packets read briefly, for B-frames and the keyframe gap).
fn verdict(
    candidate: super::conformance::Candidate<'_>,
    contract: &Contract,
    taker: Taker<'_>,
) -> Verdict {
    use super::conformance::Taker as By;
    match taker {
        Taker::ThisNode => {
            let (passthrough, reason, checks) =
                super::conformance::verdict(&candidate, contract, By::Remux);
            Verdict {
                passthrough,
                reason,
                checks,
                direct: None,
            }
        }
        Taker::Cloud(uri, guard) => {
            let url_measures = candidate
                .video
                .filter(|v| v.codec == "h264")
                .map(|_| super::conformance::measure_h264_uri(uri, guard));
            let candidate = super::conformance::Candidate {
                measures: url_measures.as_ref(),
                ..candidate
            };
            let (pullable, why, checks) =
                super::conformance::verdict(&candidate, contract, By::Cloud);
            Verdict {
                passthrough: false,
                reason: why.clone(),
                checks,
                direct: Some((pullable, why)),
            }
        }
        Taker::Nobody => Verdict {
            passthrough: false,
            reason: "a URL is restreamed through this node".to_owned(),
            checks: Vec::new(),
            direct: None,
        },
    }
}

/// What `uri` holds: by its parsers alone when they can tell (a local MP4/FLV of H.264
/// and AAC), else by the Discoverer, whose decoders keep to `bounds`.
fn described(
    uri: &str,
    local: Option<&std::path::Path>,
    shown: &str,
    guard: Option<SourceGuard>,
    bounds: InputBounds,
) -> Result<Found, String> {
    match local.ok_or("not a local file").and_then(super::scan::scan) {
        Ok(scanned) => {
            tracing::debug!(input = %shown, by = "parsers", "probed");
            Ok(super::scan::found(scanned))
        }
        Err(why_not) => {
            tracing::debug!(input = %shown, by = "discoverer", why_not, "probing");
            super::discover::found(uri, guard, bounds)
        }
    }
}

/// What a file holds, however it was found out.
#[derive(Debug, PartialEq)]
pub(super) struct Found {
    pub(super) container: String,
    pub(super) video: Option<VideoStream>,
    /// Every track, none chosen yet.
    pub(super) tracks: Vec<Track>,
    /// The audio tracks' details, in track order.
    pub(super) audio_streams: Vec<AudioStream>,
    pub(super) cover_art: Option<CoverArt>,
    pub(super) duration_ms: Option<u64>,
    pub(super) seekable: bool,
    /// The H.264 packets' figures, when they were read on the way.
    pub(super) measures: Option<Result<super::conformance::VideoMeasures, String>>,
}

/// An animated picture, which the Discoverer sees as one still frame (GIF, APNG) or cannot
/// read at all (WebP): it plays as a video of its own length.
fn animated_report(
    input: String,
    kind: &'static str,
    live: bool,
    animation: &super::header::PictureHeader,
    contract: Contract,
    bounds: InputBounds,
) -> ProbeReport {
    let seconds = animation.duration.as_secs_f64();
    ProbeReport {
        input,
        kind,
        live,
        container: Some(animation.container.into()),
        duration_ms: Some(animation.duration.as_millis() as u64),
        declared_duration_ms: None,
        start_ms: None,
        seekable: true,
        video: Some(VideoStream {
            codec: animation.codec.into(),
            profile: None,
            width: animation.width,
            height: animation.height,
            fps: if seconds > 0.0 {
                animation.frames as f64 / seconds
            } else {
                0.0
            },
            still_image: false,
            orientation: None,
        }),
        audio: None,
        tracks: vec![Track {
            kind: "video",
            index: 0,
            codec: animation.codec.into(),
            language: None,
            chosen: true,
        }],
        audio_track: None,
        cover_art: None,
        passthrough: false,
        reason: format!(
            "an animated {} ({} frames) is encoded to the contract",
            animation.codec, animation.frames
        ),
        checks: Vec::new(),
        direct: None,
        contract,
        bounds,
    }
}
