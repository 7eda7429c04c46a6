//! A WHIP publisher for the tests, independent of callfeed's own WebRTC code: webrtcbin
//! sending H.264 (constrained baseline, no B-frames) and Opus, or VP8, from test sources
//! (a 320x240 or 1280x720 picture at 30 fps and a 440 Hz tone), gathering on 127.0.0.1
//! only; its offer POSTed to a WHIP endpoint and the answer applied.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use gstreamer as gst;
use gstreamer::prelude::*;

use super::webrtc_sender::{apply_answer, offer};

/// Which video codec the publisher sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Video {
    H264,
    /// 1280x720 as OBS sends it for streaming (x264 veryfast, a 2 s GOP, 2 Mb/s), its sound
    /// 300 ms behind: how a passed-through start once lost its picture.
    H264Hd,
    /// As a browser sends it: a keyframe at the start and then only when asked.
    H264OnRequest,
    Vp8,
}

/// A publishing WebRTC peer; dropping it stops it, as a closed tab does (no DELETE).
pub struct WhipPublisher {
    pipeline: gst::Pipeline,
    /// The session resource's URL.
    pub resource: String,
    /// How many keyframes its encoder made.
    pub keyframes: Arc<AtomicU32>,
}

impl WhipPublisher {
    /// Ends the publish as a client should: DELETE on its session resource; the status.
    pub async fn delete(&self, bearer: &str) -> u16 {
        reqwest::Client::new()
            .delete(&self.resource)
            .bearer_auth(bearer)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

impl Drop for WhipPublisher {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// What the endpoint answered a POST of the offer with.
pub struct Answered {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

fn launch(video: Video) -> gst::Pipeline {
    const H264_RTP: &str = "video/x-h264,profile=constrained-baseline ! rtph264pay \
        config-interval=-1 aggregate-mode=zero-latency \
        ! application/x-rtp,media=video,encoding-name=H264,payload=96";
    let encode = match video {
        Video::H264 => format!(
            "x264enc name=enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bframes=0 \
             ! {H264_RTP}"
        ),
        Video::H264OnRequest => format!(
            "x264enc name=enc tune=zerolatency speed-preset=ultrafast key-int-max=100000 \
             bframes=0 ! {H264_RTP}"
        ),
        Video::H264Hd => format!(
            "x264enc name=enc tune=zerolatency speed-preset=veryfast key-int-max=60 bframes=0 bitrate=2000 \
             ! {H264_RTP}"
        ),
        Video::Vp8 => "vp8enc name=enc deadline=1 keyframe-max-dist=30 ! rtpvp8pay \
             ! application/x-rtp,media=video,encoding-name=VP8,payload=96"
            .to_owned(),
    };
    // The HD publisher's sound leaves 300 ms after its picture, as a browser's capture can:
    // the first pictures then come late beside the sound and the receiver's clock settles.
    let (size, audio_delay) = match video {
        Video::H264Hd => (
            "width=1280,height=720",
            "queue min-threshold-time=300000000 max-size-time=0 max-size-buffers=0 \
             max-size-bytes=0 ! ",
        ),
        _ => ("width=320,height=240", ""),
    };
    let description = format!(
        "webrtcbin name=wb bundle-policy=max-bundle \
         videotestsrc is-live=true pattern=ball ! video/x-raw,{size},framerate=30/1 \
         ! {encode} ! wb. \
         audiotestsrc is-live=true freq=440 volume=0.5 ! {audio_delay}audioconvert ! audioresample ! opusenc \
         ! rtpopuspay ! application/x-rtp,media=audio,encoding-name=OPUS,payload=111 ! wb."
    );
    gst::parse::launch(&description)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap()
}

/// POSTs `offer` to `endpoint` with `bearer`.
pub async fn post_offer(endpoint: &str, bearer: &str, offer: &str) -> Answered {
    let answer = reqwest::Client::new()
        .post(endpoint)
        .bearer_auth(bearer)
        .header("content-type", "application/sdp")
        .body(offer.to_owned())
        .send()
        .await
        .unwrap();
    Answered {
        status: answer.status().as_u16(),
        headers: answer.headers().clone(),
        body: answer.text().await.unwrap(),
    }
}

/// A publisher's offer, made and not sent (for what the endpoint refuses).
pub async fn an_offer(video: Video) -> String {
    callfeed::media::init().unwrap();
    let pipeline = launch(video);
    let offer = offer(&pipeline).await;
    let _ = pipeline.set_state(gst::State::Null);
    offer
}

/// Publishes to `endpoint` with `bearer`: the running publisher, or what the endpoint
/// answered instead of 201.
pub async fn publish(
    endpoint: &str,
    bearer: &str,
    video: Video,
) -> Result<WhipPublisher, Answered> {
    callfeed::media::init().unwrap();
    let pipeline = launch(video);
    let keyframes = Arc::new(AtomicU32::new(0));
    let counted = keyframes.clone();
    let encoder = pipeline.by_name("enc").unwrap().static_pad("src").unwrap();
    encoder.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(gst::PadProbeData::Buffer(b)) = &info.data
            && !b.flags().contains(gst::BufferFlags::DELTA_UNIT)
        {
            counted.fetch_add(1, Ordering::Relaxed);
        }
        gst::PadProbeReturn::Ok
    });
    let offer = offer(&pipeline).await;
    let answered = post_offer(endpoint, bearer, &offer).await;
    if answered.status != 201 {
        let _ = pipeline.set_state(gst::State::Null);
        return Err(answered);
    }
    let location = answered.headers["location"].to_str().unwrap();
    let resource = url::Url::parse(endpoint)
        .unwrap()
        .join(location)
        .unwrap()
        .to_string();
    apply_answer(&pipeline, &answered.body).await;
    Ok(WhipPublisher {
        pipeline,
        resource,
        keyframes,
    })
}
