//! The encoder side of a live stream: the pipeline that turns the pump's raw timeline into
//! FLV tags for the hub, the slate picture, and the watchdog that notices an encoder that
//! takes frames and gives nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::media::contract::Contract;
use crate::media::hub::StreamHub;
use crate::media::stream::handle::EngineError;
use crate::media::topology::Topologies;

/// Where the pump pushes raw video (when the contract has video) and audio.
pub(super) struct EncoderSources {
    pub(super) video_src: Option<gst_app::AppSrc>,
    pub(super) audio_src: gst_app::AppSrc,
}

pub(super) fn build_encoder(
    contract: &Contract,
    topologies: &Topologies,
    hub: &Arc<StreamHub>,
) -> Result<(gst::Pipeline, EncoderSources), EngineError> {
    let err = |reason: String| EngineError::Build {
        stage: "encoder",
        reason,
    };
    let audio_encode = topologies
        .render(
            "encode.audio",
            &[("audio_bps", &contract.audio_bps.to_string())],
        )
        .map_err(|e| err(e.to_string()))?;
    // No queues: each appsrc's own thread encodes its stream and the muxer (an aggregator)
    // has its own, so a queue would only add a thread hop per buffer. A live muxer waits for
    // late streams only this long.
    let mux = "flvmux name=mux streamable=true latency=200000000 ! appsink name=flv sync=false";
    let description = match contract.video {
        Some(v) => {
            let video_encode = topologies
                .render_video_encoder(contract, &v, crate::media::contract::EncoderThreads::Live)
                .map_err(|e| err(e.to_string()))?;
            format!(
                "appsrc name=vsrc ! {video_encode} ! {mux} appsrc name=asrc ! {audio_encode} ! mux."
            )
        }
        None => format!("appsrc name=asrc ! {audio_encode} ! {mux}"),
    };
    let pipeline = gst::parse::launch(&description)
        .map_err(|e| err(e.to_string()))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| err("not a pipeline".into()))?;
    let appsrc = |name: &str, caps: &str| -> Result<gst_app::AppSrc, EngineError> {
        let src = pipeline
            .by_name(name)
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            .ok_or_else(|| err(format!("no appsrc {name}")))?;
        src.set_caps(Some(
            &caps.parse::<gst::Caps>().map_err(|e| err(e.to_string()))?,
        ));
        src.set_format(gst::Format::Time);
        src.set_is_live(true);
        src.set_property("block", false);
        // The pump never pushes past what the encoder holds queued (see `pump::Backlog`);
        // this is only the element's own idea of full.
        src.set_max_bytes(0);
        Ok(src)
    };
    let video_src = match contract.raw_video_caps() {
        Some(caps) => Some(appsrc("vsrc", &caps)?),
        None => None,
    };
    let audio_src = appsrc("asrc", &contract.raw_audio_caps())?;
    let sink = pipeline
        .by_name("flv")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or_else(|| err("no flv appsink".into()))?;
    let hub = Arc::downgrade(hub);
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let Some(hub) = hub.upgrade() else {
                    return Err(gst::FlowError::Flushing);
                };
                let buffer = sample.buffer_owned();
                drop(sample);
                if let Some(tag) = buffer.and_then(crate::media::tag_buffer::tag_bytes) {
                    hub.push(tag);
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    Ok((
        pipeline,
        EncoderSources {
            video_src,
            audio_src,
        },
    ))
}

/// The slate frame: the picture scaled to the contract, or black.
pub(super) fn slate_frame(
    contract: &Contract,
    picture: Option<&crate::media::picture::Picture>,
    bounds: crate::media::bounds::InputBounds,
) -> Result<Option<gst::Buffer>, EngineError> {
    let Some(v) = contract.video else {
        return Ok(None);
    };
    if let Some(picture) = picture {
        return picture
            .frame(contract, bounds)
            .map(Some)
            .map_err(|reason| EngineError::Input {
                input: picture.describe(),
                reason: format!("cannot be used as the slate image: {reason}"),
            });
    }
    let (w, h) = (v.width as usize, v.height as usize);
    let mut data = vec![16u8; w * h];
    data.resize(w * h * 3 / 2, 128);
    Ok(Some(gst::Buffer::from_mut_slice(data)))
}

/// The encoder stage's watchdog: frames go in (pump), bytes must come out (muxer).
#[derive(Default)]
pub(super) struct EncoderWatch {
    frames_in: u64,
    bytes_out: u64,
    /// Since when frames have gone in with no bytes coming out.
    stuck_since: Option<Instant>,
}

impl EncoderWatch {
    /// True when the encoder has taken frames for `limit` without producing anything.
    pub(super) fn stalled(&mut self, frames_in: u64, bytes_out: u64, limit: Duration) -> bool {
        let fed = frames_in > self.frames_in;
        let produced = bytes_out > self.bytes_out;
        self.frames_in = frames_in;
        self.bytes_out = bytes_out;
        match (fed, produced) {
            (true, false) => self.stuck_since.get_or_insert_with(Instant::now).elapsed() > limit,
            (_, true) => {
                self.stuck_since = None;
                false
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_encoder_watchdog_fires_only_when_fed_and_silent() {
        let mut w = EncoderWatch::default();
        let limit = Duration::ZERO;
        assert!(!w.stalled(0, 0, limit), "nothing fed yet");
        assert!(!w.stalled(10, 100, limit), "fed and producing");
        assert!(!w.stalled(10, 100, limit), "idle is not a stall");
        assert!(w.stalled(20, 100, limit), "fed, nothing out");
        assert!(!w.stalled(30, 200, limit), "output again resets it");
    }
}
