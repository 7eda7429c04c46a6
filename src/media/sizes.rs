//! Every input's size is known and judged before anything decodes it. A picture (a still,
//! an animation, a slate, cover art) is measured by its headers (`header`); a video by its
//! parsers' caps, which carry the size from the container or the bitstream; and where a
//! GStreamer decoder meets a size nobody measured (a URL, a format read nowhere else, a
//! stream whose size changes midway), the decoder guard refuses its caps before the decoder
//! allocates a frame of that size.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use gstreamer as gst;
use gstreamer::prelude::*;

use super::bounds::{FRAMES_COUNTED, InputBounds, TooLarge};
use super::contract::Contract;
use super::header::{self, PictureHeader};
use super::inspect::report::Found;

/// The headers of the local picture at `path`, judged: `None` when it is not a picture
/// read by its headers, an error when it is too large or its animation cannot be read.
pub(crate) fn check_local(
    path: &Path,
    bounds: InputBounds,
) -> Result<Option<PictureHeader>, String> {
    match header::read(path, FRAMES_COUNTED) {
        None => Ok(None),
        Some(Ok(header)) => {
            header.check(bounds).map_err(|e| e.to_string())?;
            Ok(Some(header))
        }
        // A picture whose headers this reader cannot follow: GStreamer names the problem
        // (and its decoders are guarded).
        Some(Err(e)) if e.starts_with("frame ") => Err(e),
        Some(Err(_)) => Ok(None),
    }
}

/// What the probe found, judged: the video's size, and the cover art's when it will be
/// shown (a video profile, no video of its own).
pub(crate) fn check_found(
    found: &Found,
    contract: Contract,
    bounds: InputBounds,
) -> Result<(), String> {
    if let Some(v) = &found.video {
        let what = if v.still_image { "picture" } else { "video" };
        bounds
            .check(what, v.width, v.height)
            .map_err(|e| e.to_string())?;
    } else if let (Some(cover), Some(_)) = (&found.cover_art, contract.video) {
        check_cover(&cover.data, bounds)?;
    }
    Ok(())
}

/// A picture in memory (cover art, a slate picked from the tags), judged by its headers
/// when they can be read here (GStreamer's guarded decoders judge any other).
pub(crate) fn check_cover(data: &[u8], bounds: InputBounds) -> Result<(), String> {
    match header::read_bytes(data, 1) {
        Some(Ok(header)) => bounds
            .check("cover art", header.width, header.height)
            .map_err(|e| e.to_string()),
        _ => Ok(()),
    }
}

pub(crate) fn caps_size(caps: &gst::CapsRef) -> Option<(u32, u32)> {
    let s = caps.structure(0)?;
    if !(s.name().starts_with("video/") || s.name().starts_with("image/")) {
        return None;
    }
    let width = u32::try_from(s.get::<i32>("width").ok()?).ok()?;
    let height = u32::try_from(s.get::<i32>("height").ok()?).ok()?;
    Some((width, height))
}

/// The first size a decoder guard refused, if any.
#[derive(Debug, Clone, Default)]
pub(crate) struct Refusal(Arc<OnceLock<TooLarge>>);

impl Refusal {
    pub(crate) fn get(&self) -> Option<&TooLarge> {
        self.0.get()
    }
}

/// Guards every picture and video decoder `bin` gets (at any depth): the caps it is given
/// (a parser's, which carry the size) and the caps it asks for downstream (its own reading
/// of the header) are checked before it allocates a frame. Caps too large are dropped and
/// an error is posted from the decoder, so it stops with that reason instead of decoding.
pub(crate) fn guard_decoders(bin: &gst::Bin, bounds: InputBounds) -> Refusal {
    let refusal = Refusal::default();
    guard_decoders_into(bin, bounds, &refusal);
    refusal
}

/// [`guard_decoders`], recording a refusal in `refusal`.
pub(crate) fn guard_decoders_into(bin: &gst::Bin, bounds: InputBounds, refusal: &Refusal) {
    let kept = refusal.clone();
    bin.connect_deep_element_added(move |_, _, element| {
        let decodes_pictures = element.factory().is_some_and(|f| {
            let klass = f.metadata(gst::ELEMENT_METADATA_KLASS).unwrap_or_default();
            klass.contains("Decoder") && (klass.contains("Video") || klass.contains("Image"))
        });
        if decodes_pictures {
            for pad in element.pads() {
                refuse_large_caps(&pad, bounds, kept.clone());
            }
        }
    });
}

fn refuse_large_caps(pad: &gst::Pad, bounds: InputBounds, refusal: Refusal) {
    let output = pad.direction() == gst::PadDirection::Src;
    pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |pad, info| {
        let Some(gst::PadProbeData::Event(event)) = &info.data else {
            return gst::PadProbeReturn::Ok;
        };
        let gst::EventView::Caps(caps) = event.view() else {
            return gst::PadProbeReturn::Ok;
        };
        let caps = caps.caps();
        let Some((width, height)) = caps_size(caps) else {
            return gst::PadProbeReturn::Ok;
        };
        let what = if caps
            .structure(0)
            .is_some_and(|s| s.name().starts_with("image/"))
        {
            "picture"
        } else {
            "video"
        };
        let Err(too_large) = bounds.check(what, width, height) else {
            return gst::PadProbeReturn::Ok;
        };
        tracing::warn!(%too_large, "a decoder was stopped before it decoded");
        let reason = too_large.to_string();
        let _ = refusal.0.set(too_large);
        if let Some(decoder) = pad.parent_element() {
            // A format error: fatal, never retried.
            decoder.post_error_message(gst::error_msg!(gst::StreamError::Format, ("{}", reason)));
        }
        if output {
            // A GIF's or WebP's size shows only in the caps its decoder sets on its output,
            // after which it allocates the canvas: the decoder is held right here, before
            // allocating, until the pipeline is stopped. A blocking probe added now is run
            // on this same event (GStreamer restarts the probes when their list changes).
            // It is added only to a refused decoder: a blocking probe on every decoder's
            // output stalled decodebin's preroll of a WebM with VP8 and Vorbis.
            pad.add_probe(
                gst::PadProbeType::BLOCK | gst::PadProbeType::DATA_DOWNSTREAM,
                |_, _| gst::PadProbeReturn::Ok,
            );
            gst::PadProbeReturn::Ok
        } else {
            // On its input the size comes from a parser, and the caps are taken out of the
            // stream (and freed here): `Drop` would have a sticky event sent by decodebin
            // freed twice.
            gst::PadProbeReturn::Handled
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 64x64 JPEG whose frame header says 8192x8192: a few hundred bytes that would have a
    /// decoder allocate 100 MB for each frame.
    fn jpeg_claiming_8192(path: &Path) {
        let pipeline = gst::parse::launch(&format!(
            "videotestsrc num-buffers=1 ! video/x-raw,width=64,height=64 ! jpegenc ! filesink location={}",
            path.display()
        ))
        .unwrap();
        let pipeline = super::super::NullOnDrop::new(pipeline.downcast::<gst::Pipeline>().unwrap());
        pipeline.set_state(gst::State::Playing).unwrap();
        let bus = pipeline.bus().unwrap();
        bus.timed_pop_filtered(gst::ClockTime::from_seconds(10), &[gst::MessageType::Eos])
            .expect("the JPEG is written");
        drop(pipeline);
        let mut jpeg = std::fs::read(path).unwrap();
        let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        jpeg[sof + 5..sof + 9].copy_from_slice(&[0x20, 0, 0x20, 0]);
        std::fs::write(path, jpeg).unwrap();
    }

    #[test]
    fn a_decoder_never_sees_caps_larger_than_the_bounds() {
        super::super::init().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("claims-8192.jpg");
        jpeg_claiming_8192(&path);
        let header = header::read(&path, 1).unwrap().unwrap();
        assert_eq!((header.width, header.height), (8192, 8192));
        // As a URL would be decoded: nothing measured it first.
        let pipeline = gst::Pipeline::new();
        let refusal = guard_decoders(pipeline.upcast_ref(), InputBounds::default());
        let source = super::super::file_source(&path).unwrap();
        let decode = gst::ElementFactory::make("decodebin").build().unwrap();
        pipeline.add_many([&source, &decode]).unwrap();
        source.link(&decode).unwrap();
        let weak = pipeline.downgrade();
        decode.connect_pad_added(move |_, pad| {
            let Some(pipeline) = weak.upgrade() else {
                return;
            };
            let sink = gst::ElementFactory::make("fakesink").build().unwrap();
            pipeline.add(&sink).unwrap();
            sink.sync_state_with_parent().unwrap();
            pad.link(&sink.static_pad("sink").unwrap()).unwrap();
        });
        let pipeline = super::super::NullOnDrop::new(pipeline);
        pipeline.set_state(gst::State::Playing).unwrap();
        let message = pipeline
            .bus()
            .unwrap()
            .timed_pop_filtered(
                gst::ClockTime::from_seconds(10),
                &[gst::MessageType::Error, gst::MessageType::Eos],
            )
            .expect("the pipeline ends");
        let gst::MessageView::Error(error) = message.view() else {
            panic!("decoded anyway: {message:?}");
        };
        let reason = error.error().to_string();
        assert!(reason.contains(" is 8192x8192; "), "{reason}");
        assert!(refusal.get().is_some());
    }
}
