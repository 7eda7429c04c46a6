//! The picture a stream shows when its input has no video: the slate the user gave, else
//! the cover art an audio file carries, else black. Decoded once to one raw frame at the
//! contract's size, turned upright first (EXIF orientation), as any input picture is.

use std::path::{Path, PathBuf};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::bounds::InputBounds;
use super::contract::Contract;
use super::inspect::ProbeReport;

/// A still picture: a file the user names, or one embedded in the input.
#[derive(Debug, Clone, PartialEq)]
pub enum Picture {
    File(PathBuf),
    Embedded(bytes::Bytes),
}

impl Picture {
    /// The picture for an input without video: `slate` if the user gave one, else the
    /// input's cover art (only when it has no video of its own).
    pub fn for_input(slate: Option<&Path>, report: Option<&ProbeReport>) -> Option<Self> {
        if let Some(slate) = slate {
            return Some(Self::File(slate.to_path_buf()));
        }
        report
            .filter(|r| r.video.is_none())
            .and_then(|r| r.cover_art.as_ref())
            .map(|c| Self::Embedded(c.data.clone()))
    }

    /// How it is named in an error.
    pub fn describe(&self) -> String {
        match self {
            Self::File(path) => path.display().to_string(),
            Self::Embedded(_) => "the input's cover art".into(),
        }
    }

    fn source(&self) -> Result<gst::Element, String> {
        match self {
            Self::File(path) => super::file_source(path),
            Self::Embedded(data) => {
                let src = gst_app::AppSrc::builder().build();
                src.push_buffer(gst::Buffer::from_slice(data.clone()))
                    .map_err(|e| e.to_string())?;
                src.end_of_stream().map_err(|e| e.to_string())?;
                Ok(src.upcast())
            }
        }
    }

    /// The picture as one raw frame in the contract's video caps. Its size is judged by its
    /// headers before it is decoded (and by its decoder's caps, for a format whose headers
    /// are not read here): a slate or cover art larger than `bounds` is refused.
    pub(crate) fn frame(
        &self,
        contract: &Contract,
        bounds: InputBounds,
    ) -> Result<gst::Buffer, String> {
        let caps = contract
            .raw_video_caps()
            .ok_or("the contract has no video")?;
        match self {
            Self::File(path) => {
                if let Some(Ok(header)) = super::header::read(path, 1) {
                    bounds
                        .check("picture", header.width, header.height)
                        .map_err(|e| e.to_string())?;
                }
            }
            Self::Embedded(data) => super::sizes::check_cover(data, bounds)?,
        }
        let description = format!(
            "decodebin name=decode ! imagefreeze num-buffers=1 ! videoconvert ! videoflip video-direction=auto ! videoscale add-borders=true ! {caps} ! appsink name=sink"
        );
        let pipeline = super::launch_after(self.source()?, &description, "decode")?;
        let refusal = super::sizes::guard_decoders(pipeline.upcast_ref(), bounds);
        let pipeline = super::NullOnDrop::new(pipeline);
        let sink = pipeline
            .by_name("sink")
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .ok_or("no sink")?;
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| e.to_string())?;
        // A decoder stopped for the picture's size ends the wait at once, with the reason.
        let bus = pipeline.bus().ok_or("no bus")?;
        let deadline = std::time::Instant::now() + DECODE_TIME;
        loop {
            if let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(100)) {
                return sample
                    .buffer_owned()
                    .ok_or_else(|| "it did not decode to a picture".to_owned());
            }
            if let Some(too_large) = refusal.get() {
                return Err(too_large.to_string());
            }
            if let Some(message) = bus.pop_filtered(&[gst::MessageType::Error])
                && let gst::MessageView::Error(e) = message.view()
            {
                return Err(e.error().to_string());
            }
            if sink.is_eos() || std::time::Instant::now() >= deadline {
                return Err("it did not decode to a picture".to_owned());
            }
        }
    }
}

/// How long a picture may take to decode.
const DECODE_TIME: std::time::Duration = std::time::Duration::from_secs(10);
