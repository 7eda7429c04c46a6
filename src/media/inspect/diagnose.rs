//! Why an input could not be read or decoded, in words that name the cause and the fix:
//! the host that does not resolve or answered an error, the file that holds only tags, the
//! codec no plugin here decodes and the package that would.

use gstreamer as gst;
use gstreamer::prelude::*;

use super::report::codec_name;
use crate::media::policy::SourceGuard;

/// Why nothing decodes `uri`, whose streams of `undecoded` media types found no decoder. A
/// GIF is played from a file only (see `animation`): libav's GIF demuxer, the one
/// GStreamer element for it, spins on some GIFs and is never used. The package to install
/// is named only when it would really decode the stream.
pub(super) fn no_decoder(uri: &str, undecoded: &[String]) -> String {
    let gif = url::Url::parse(uri)
        .map(|u| u.path().to_ascii_lowercase().ends_with(".gif"))
        .unwrap_or(false);
    if gif && !uri.starts_with("file:") {
        return "an animated picture (GIF) plays from a file only: put it under a media root, or give it as a video".into();
    }
    let convert = "convert it first, e.g. `ffmpeg -i <file> -c:v libx264 -c:a aac <new>.mp4`";
    let Some(media_type) = undecoded.first() else {
        return format!("no GStreamer plugin here decodes it: {convert}");
    };
    let codec = codec_name(media_type, None);
    match decoder_package(media_type) {
        Some((package, element)) if gst::ElementFactory::find(element).is_none() => format!(
            "no GStreamer plugin here decodes its {codec}: install {package} (`make setup` does)"
        ),
        _ => format!("no GStreamer plugin decodes its {codec} ({media_type}): {convert}"),
    }
}

/// The Debian package whose element decodes a media type, for the ones users bring.
fn decoder_package(media_type: &str) -> Option<(&'static str, &'static str)> {
    Some(match media_type {
        "video/x-h264" => ("gstreamer1.0-libav", "avdec_h264"),
        "video/x-h265" => ("gstreamer1.0-libav", "avdec_h265"),
        "video/mpeg" => ("gstreamer1.0-libav", "avdec_mpeg4"),
        "video/x-vp8" => ("gstreamer1.0-plugins-good", "vp8dec"),
        "video/x-vp9" => ("gstreamer1.0-plugins-good", "vp9dec"),
        "video/x-av1" => ("gstreamer1.0-plugins-bad", "dav1ddec"),
        "video/x-wmv" => ("gstreamer1.0-libav", "avdec_wmv3"),
        "audio/mpeg" => ("gstreamer1.0-libav", "avdec_aac"),
        "audio/x-ac3" | "audio/x-eac3" => ("gstreamer1.0-libav", "avdec_ac3"),
        "audio/x-opus" => ("gstreamer1.0-plugins-base", "opusdec"),
        "audio/x-vorbis" => ("gstreamer1.0-plugins-base", "vorbisdec"),
        "audio/x-flac" => ("gstreamer1.0-plugins-good", "flacdec"),
        "audio/x-alac" => ("gstreamer1.0-libav", "avdec_alac"),
        "audio/x-wma" => ("gstreamer1.0-libav", "avdec_wmav2"),
        _ => return None,
    })
}

/// Why a network input could not be read, in words that name the host and the cause: the
/// name does not resolve, the connection is refused or times out, or the server answered an
/// HTTP error. `None` when none of these is the reason. It looks only where `guard` lets
/// the input itself look, and follows no redirect the input would not: what a host the
/// input may not reach would answer must not reach the requester either.
pub(super) fn network(uri: &str, guard: Option<&SourceGuard>) -> Option<String> {
    use std::net::{TcpStream, ToSocketAddrs};
    let url = url::Url::parse(uri).ok()?;
    // Not for an API client at all: a name can resolve to a public address when judged and
    // a private one when connected, and what that host answered would reach the client.
    if url.scheme() == "file" || guard.is_some_and(SourceGuard::is_restricted) {
        return None;
    }
    let host = url.host_str()?.to_owned();
    let port = url.port_or_known_default().unwrap_or(1935);
    let addrs: Vec<_> = match (host.as_str(), port).to_socket_addrs() {
        Ok(addrs) => addrs.collect(),
        Err(e) => return Some(format!("the host `{host}` does not resolve: {e}")),
    };
    let addr = addrs.first()?;
    if let Err(e) = TcpStream::connect_timeout(addr, std::time::Duration::from_secs(3)) {
        return Some(format!("cannot connect to {host}:{port}: {e}"));
    }
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    http_status(uri, guard)
        .filter(|status| *status >= 400)
        .map(|status| format!("{host} answered HTTP {status}"))
}

/// What rtspsrc's words mean for a camera: it read nothing, so it was not answered.
pub(super) fn camera(uri: &str, error: &gstreamer::glib::Error) -> Option<String> {
    let scheme = uri.split("://").next()?.to_ascii_lowercase();
    if !scheme.starts_with("rtsp") {
        return None;
    }
    error.matches(gstreamer::ResourceError::Read).then(|| {
        "the camera did not answer its RTSP requests in time: check that the port is its RTSP \
         port (554 by default) and that it is on"
            .to_owned()
    })
}

/// A file that is an ID3 tag and nothing else (an MP3 whose audio was lost, a cover art
/// download): named for what it is.
pub(super) fn tags_only(uri: &str) -> Option<String> {
    use std::io::Read;
    let path = url::Url::parse(uri).ok()?.to_file_path().ok()?;
    let mut file = std::fs::File::open(&path).ok()?;
    let mut header = [0u8; 10];
    file.read_exact(&mut header).ok()?;
    if &header[..3] != b"ID3" {
        return None;
    }
    // The tag's size is four 7-bit bytes, after the 10-byte header (and a 10-byte footer
    // when flag 0x10 is set).
    let size = header[6..10]
        .iter()
        .fold(0u64, |n, b| (n << 7) | u64::from(b & 0x7f));
    let footer = if header[5] & 0x10 != 0 { 10 } else { 0 };
    let length = file.metadata().ok()?.len();
    // What may follow: nothing, or a 128-byte ID3v1 tag.
    let rest = length.saturating_sub(10 + size + footer);
    (rest == 0 || rest == 128)
        .then(|| "it holds only tags (such as cover art), no audio or video to play".to_owned())
}

/// The HTTP status a GET of `uri` gets, as GStreamer's HTTP source reports it, under
/// `guard` (an API client's source answers with its redirect, not where it leads).
fn http_status(uri: &str, guard: Option<&SourceGuard>) -> Option<u32> {
    let pipeline = gst::Pipeline::new();
    let source = gst::ElementFactory::make("souphttpsrc")
        .property("location", uri)
        .build()
        .ok()?;
    let sink = gst::ElementFactory::make("fakesink").build().ok()?;
    pipeline.add_many([&source, &sink]).ok()?;
    source.link(&sink).ok()?;
    if let Some(guard) = guard {
        crate::media::policy::guard_sources(pipeline.upcast_ref(), guard.clone());
    }
    let pipeline = crate::media::NullOnDrop::new(pipeline);
    let bus = pipeline.bus()?;
    pipeline.set_state(gst::State::Playing).ok()?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        let msg = bus.timed_pop(gst::ClockTime::from_nseconds(left.as_nanos() as u64))?;
        match msg.view() {
            gst::MessageView::Element(e) => {
                if let Some(s) = e.structure()
                    && s.name() == "http-headers"
                    && let Ok(status) = s.get::<u32>("http-status-code")
                {
                    return Some(status);
                }
            }
            gst::MessageView::Error(_) | gst::MessageView::Eos(_) => return None,
            _ => {}
        }
    }
    None
}
