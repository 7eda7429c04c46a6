//! Preflight: what an input is, whether it can be taken as it is, and the contract it will
//! be given, or why it cannot be used — before any call rings. This file is the door and
//! the orchestrator; what the parts share is the leaf `report`.
//!
//! - `admit`: what a session request is checked for before it is admitted
//! - `report`: the vocabulary (the report, streams, what a file holds, codec names)
//! - `scan`: a local MP4/M4A/FLV of H.264 and AAC by its parsers alone; `discover`: anything
//!   else, with GStreamer's Discoverer (`diagnose`: why one could not be read); `tracks`:
//!   which streams play
//! - `extent`: a local file's real length, from its packets; `measure`: its H.264 packets
//! - `verdict`: the rules for taking an input as it is (no GStreamer)

pub mod admit;
mod diagnose;
mod discover;
pub(crate) mod extent;
pub(crate) mod measure;
pub mod report;
pub(crate) mod scan;
pub mod tracks;
pub(crate) mod verdict;

pub use report::{AudioStream, CoverArt, ProbeError, ProbeReport, VideoStream, container_label};
pub use verdict::{BITRATE_SLACK, MAX_KEYFRAME_GAP_MS};

use super::bounds::InputBounds;
use super::contract::Contract;
use super::input::{InputItem, InputSpec};
use super::policy::SourceGuard;
use report::Found;
use report::Track;
use tracks::AudioTrack;

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
        InputSpec::Feed(_) => "feed",
        InputSpec::Pushed(_) => "pushed",
        InputSpec::Speech(_) => "speech",
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
    let shown = shown_input(uri);
    let fail = |reason: String| ProbeError {
        input: shown.clone(),
        reason,
    };
    let local = local_file(uri);
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
    let audio_track = tracks::choose(&mut tracks, &options.audio_track).map_err(fail)?;
    let audio = audio_track.and_then(|n| audio_streams.get(n).cloned());
    if video.is_none() && audio.is_none() {
        return Err(fail(if cover_art.is_some() {
            "its only picture is cover art, with no audio or video to play".into()
        } else {
            "it has neither audio nor video".into()
        }));
    }
    let (duration_ms, measured) = played_length(
        local.as_deref(),
        live,
        video.as_ref(),
        audio_track.zip(audio.as_ref()),
        duration_ms,
    )
    .map_err(fail)?;
    if measures.is_none() {
        measures = packet_measures(&container, video.as_ref(), local.as_deref());
    }
    let candidate = verdict::Candidate {
        container: &container,
        video: video.as_ref(),
        audio: audio.as_ref(),
        audio_tracks: tracks.iter().filter(|t| t.kind == "audio").count(),
        measures: measures.as_ref(),
        start_ms: measured.and_then(|m| m.start_ms),
    };
    let taker = Taker::of(uri, local.is_some(), options.judge_direct, url_guard);
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

/// How `uri` is named in messages: a local file by its path, a URL without its secrets.
fn shown_input(uri: &str) -> String {
    if uri.starts_with("file://") {
        uri.trim_start_matches("file://").to_owned()
    } else {
        crate::redact::redact_url(uri)
    }
}

/// The file a `file://` URI names; `None` for anything else.
fn local_file(uri: &str) -> Option<std::path::PathBuf> {
    url::Url::parse(uri)
        .ok()
        .filter(|u| u.scheme() == "file")
        .and_then(|u| u.to_file_path().ok())
}

/// How long the input plays, and what a local file's packets told (see `real_length`); a
/// live input or a still picture is not measured.
fn played_length(
    local: Option<&std::path::Path>,
    live: bool,
    video: Option<&VideoStream>,
    audio: Option<(usize, &AudioStream)>,
    declared_ms: Option<u64>,
) -> Result<(Option<u64>, Option<extent::Measured>), String> {
    let still = video.is_some_and(|v| v.still_image);
    let measured = match local {
        Some(path) if !live && !still => real_length(path, video, audio, declared_ms)?,
        _ => None,
    };
    let duration_ms = measured.map_or(declared_ms, |m| Some(m.length_ms));
    // A file with streams but nothing in them would make an MP4 no player opens, or a call
    // that hears nothing: refused now, with the reason.
    if !live && !still && duration_ms == Some(0) {
        return Err(
            "it holds no samples or frames (its length is 0): there is nothing to play".into(),
        );
    }
    Ok((duration_ms, measured))
}

/// Measured from the packets, for a local file whose container and codec could pass.
fn packet_measures(
    container: &str,
    video: Option<&VideoStream>,
    local: Option<&std::path::Path>,
) -> Option<Result<report::VideoMeasures, String>> {
    if matches!(container, "video/quicktime" | "video/x-flv")
        && video.is_some_and(|v| v.codec == "h264")
        && let Some(path) = local
    {
        return Some(measure::measure_h264(path));
    }
    None
}

/// A local file's real length, read from its packets (see `extent`): one with nothing on
/// a played track, or cut short, is refused here, before anything rings.
fn real_length(
    path: &std::path::Path,
    video: Option<&VideoStream>,
    audio: Option<(usize, &AudioStream)>,
    declared_ms: Option<u64>,
) -> Result<Option<extent::Measured>, String> {
    extent::judge(
        path,
        &extent::Played {
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
    checks: Vec<report::Check>,
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

impl<'a> Taker<'a> {
    /// A local file is this node's to remux; a URL is judged for the cloud only when the
    /// caller may hand it over.
    fn of(uri: &'a str, local: bool, judge_direct: bool, guard: Option<SourceGuard>) -> Self {
        match (local, judge_direct) {
            (true, _) => Taker::ThisNode,
            (false, true) => Taker::Cloud(uri, guard),
            (false, false) => Taker::Nobody,
        }
    }
}

/// One verdict for "taken as it is", by this node remuxing a local file or by the cloud
/// pulling a URL itself (its packets read briefly, for B-frames and the keyframe gap).
fn verdict(candidate: verdict::Candidate<'_>, contract: &Contract, taker: Taker<'_>) -> Verdict {
    use verdict::Taker as By;
    match taker {
        Taker::ThisNode => {
            let (passthrough, reason, checks) = verdict::verdict(&candidate, contract, By::Remux);
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
                .map(|_| measure::measure_h264_uri(uri, guard));
            let candidate = verdict::Candidate {
                measures: url_measures.as_ref(),
                ..candidate
            };
            let (pullable, why, checks) = verdict::verdict(&candidate, contract, By::Cloud);
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
    match local.ok_or("not a local file").and_then(scan::scan) {
        Ok(scanned) => {
            tracing::debug!(input = %shown, by = "parsers", "probed");
            Ok(scan::found(scanned))
        }
        Err(why_not) => {
            tracing::debug!(input = %shown, by = "discoverer", why_not, "probing");
            discover::found(uri, guard, bounds)
        }
    }
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
