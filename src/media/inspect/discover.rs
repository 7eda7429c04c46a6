//! The thorough preflight: GStreamer's Discoverer, which loads the decoders to describe
//! anything GStreamer plays (network inputs, pictures, every container and codec), and the
//! diagnoses that name why an input could not be read.

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_pbutils as pbutils;
use gstreamer_pbutils::prelude::*;

use super::report::{
    AudioStream, Found, VideoStream, caps_name, codec_name, cover_art, orientation,
};
use crate::media::bounds::InputBounds;
use crate::media::policy::SourceGuard;

/// A file or URL as GStreamer's Discoverer describes it, decoders and all: every picture
/// and video decoder it loads is guarded by `bounds`.
pub(super) fn found(
    uri: &str,
    guard: Option<SourceGuard>,
    bounds: InputBounds,
) -> Result<Found, String> {
    let discoverer =
        pbutils::Discoverer::new(gst::ClockTime::from_seconds(10)).map_err(|e| e.to_string())?;
    let Watch { refusal, undecoded } = watch(&discoverer, uri, guard.clone(), bounds);
    let discovered = discoverer.discover_uri(uri);
    // Its pipeline is freed a moment after it stopped, not on one of its own threads.
    crate::media::release_later(discoverer);
    // A decoder stopped for the input's size: that is the reason, whatever else failed.
    if let Some(too_large) = refusal.get() {
        return Err(too_large.to_string());
    }
    let undecoded = undecoded.lock().expect("undecoded lock").clone();
    let info = discovered.map_err(|e| {
        if e.matches(gst::CoreError::MissingPlugin) {
            return super::diagnose::no_decoder(uri, &undecoded);
        }
        // GStreamer's own words ("Internal data stream error", "No data in file") name no
        // cause: look again.
        super::diagnose::camera(uri, &e)
            .or_else(|| super::diagnose::network(uri, guard.as_ref()))
            .or_else(|| super::diagnose::tags_only(uri))
            .unwrap_or_else(|| e.to_string())
    })?;
    match info.result() {
        pbutils::DiscovererResult::Ok => {}
        pbutils::DiscovererResult::Timeout => {
            return Err("no answer within 10 s (unreachable, or not media)".into());
        }
        pbutils::DiscovererResult::MissingPlugins => {
            return Err(super::diagnose::no_decoder(uri, &undecoded));
        }
        other => return Err(format!("{other:?}")),
    }
    Ok(described(&info))
}

/// What a discovery's hook on its pipeline saw.
struct Watch {
    /// Set when a decoder was stopped for the input's size.
    refusal: crate::media::sizes::Refusal,
    /// The media types no decoder here takes, as decodebin reports them.
    undecoded: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// Hooks the discoverer's pipeline: its sources kept to `guard`, its decoders to `bounds`,
/// and the media types nothing decodes noted.
fn watch(
    discoverer: &pbutils::Discoverer,
    uri: &str,
    guard: Option<SourceGuard>,
    bounds: InputBounds,
) -> Watch {
    // The discoverer's pipeline is reached through the first source it sets up, before any
    // decoder is added to it.
    let refusal = crate::media::sizes::Refusal::default();
    let guarded = std::sync::atomic::AtomicBool::new(false);
    let refused = refusal.clone();
    let network_uri = uri.to_owned();
    let undecoded = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let reported = undecoded.clone();
    discoverer.connect_source_setup(move |_, source| {
        crate::media::rtsp::tune(source);
        let mut top = source.clone();
        while let Some(parent) = top.parent().and_then(|p| p.downcast::<gst::Element>().ok()) {
            top = parent;
        }
        if let Some(bin) = top.downcast_ref::<gst::Bin>()
            && !guarded.swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            if let Some(guard) = &guard {
                crate::media::policy::guard_sources(bin, guard.clone());
            }
            let mut children = bin.iterate_recurse();
            while let Ok(Some(child)) = children.next() {
                if child.factory().is_some_and(|f| f.name() == "uridecodebin") {
                    if !network_uri.starts_with("file:") {
                        crate::media::pads::skip_gif_demuxer(&child);
                    }
                    crate::media::pads::decode_media_only(&child);
                    let reported = reported.clone();
                    // (element, pad, caps)
                    child.connect("unknown-type", false, move |values| {
                        if let Some(s) = values
                            .get(2)
                            .and_then(|v| v.get::<gst::Caps>().ok())
                            .and_then(|c| c.structure(0).map(|s| s.name().to_string()))
                        {
                            reported.lock().expect("undecoded lock").push(s);
                        }
                        None
                    });
                }
            }
            crate::media::sizes::guard_decoders_into(bin, bounds, &refused);
        }
    });
    Watch { refusal, undecoded }
}

/// What a discovery found: the container, the first video stream, every audio stream and
/// the cover art.
fn described(info: &pbutils::DiscovererInfo) -> Found {
    let (container, _) = caps_name(info.stream_info().and_then(|s| s.caps()));
    let video = info.video_streams().first().map(|v| {
        let (name, s) = caps_name(v.caps());
        let fr = v.framerate();
        VideoStream {
            codec: codec_name(&name, s.as_ref()),
            profile: s.as_ref().and_then(|s| s.get::<String>("profile").ok()),
            width: v.width(),
            height: v.height(),
            fps: if fr.denom() > 0 {
                f64::from(fr.numer()) / f64::from(fr.denom())
            } else {
                0.0
            },
            // A picture file here has one frame (animations were told apart above), even
            // where a demuxer calls its one frame a video (a GIF).
            still_image: v.is_image() || container.starts_with("image/"),
            orientation: orientation(v.tags().as_ref())
                .or_else(|| orientation(info.tags().as_ref())),
        }
    });
    let audio_streams = info
        .audio_streams()
        .iter()
        .map(|a| {
            let (name, s) = caps_name(a.caps());
            AudioStream {
                codec: codec_name(&name, s.as_ref()),
                rate: a.sample_rate(),
                channels: a.channels(),
            }
        })
        .collect();
    let cover_art = cover_art(info.tags().as_ref()).or_else(|| {
        info.audio_streams()
            .iter()
            .find_map(|a| cover_art(a.tags().as_ref()))
    });
    Found {
        container,
        video,
        tracks: super::tracks::list(info),
        audio_streams,
        cover_art,
        duration_ms: info.duration().map(|d| d.mseconds()),
        seekable: info.is_seekable(),
        measures: None,
    }
}
