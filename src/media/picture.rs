//! The picture a stream shows when its input has no video: the slate the user gave, else
//! the cover art an audio file carries, else black. Decoded once to one raw frame at the
//! contract's size, turned upright first (EXIF orientation), as any input picture is.

use std::path::{Path, PathBuf};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::contract::Contract;
use super::probe::ProbeReport;

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

    /// The picture as one raw frame in the contract's video caps.
    pub(crate) fn frame(&self, contract: &Contract) -> Result<gst::Buffer, String> {
        let caps = contract
            .raw_video_caps()
            .ok_or("the contract has no video")?;
        let description = format!(
            "decodebin name=decode ! imagefreeze num-buffers=1 ! videoconvert ! videoflip video-direction=auto ! videoscale add-borders=true ! {caps} ! appsink name=sink"
        );
        let pipeline = super::launch_after(self.source()?, &description, "decode")?;
        let pipeline = super::NullOnDrop::new(pipeline);
        let sink = pipeline
            .by_name("sink")
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .ok_or("no sink")?;
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| e.to_string())?;
        sink.try_pull_sample(gst::ClockTime::from_seconds(10))
            .and_then(|s| s.buffer_owned())
            .ok_or_else(|| "it did not decode to a picture".to_owned())
    }
}
