//! The latency figure's WHIP publisher: the same marked 720p30 picture as its RTMP
//! publisher, sent as a browser sends it — H.264 constrained baseline without B-frames and
//! Opus over WebRTC (webrtcbin), its offer POSTed to a whip feed's endpoint. Made as the
//! tests' publisher is (tests/common/whip.rs), independent of callfeed's own WebRTC code.

use gstreamer as gst;
use gstreamer::prelude::*;

use crate::latency::Publisher;
use crate::webrtc_sender;

/// The RTMP publisher's picture, bitrate and GOP, in what a browser sends: constrained
/// baseline (no B-frames), one NAL unit per packet as it leaves the encoder, parameter sets
/// before each keyframe (a passed-through feed's reader joins at one).
const PUBLISHER: &str = "webrtcbin name=wb bundle-policy=max-bundle \
    videotestsrc is-live=true pattern=ball \
    ! video/x-raw,format=I420,width=1280,height=720,framerate=30/1 \
    ! x264enc name=enc tune=zerolatency speed-preset=veryfast key-int-max=60 bframes=0 bitrate=2000 \
    ! video/x-h264,profile=constrained-baseline \
    ! rtph264pay config-interval=-1 aggregate-mode=zero-latency \
    ! application/x-rtp,media=video,encoding-name=H264,payload=96 ! wb. \
    audiotestsrc is-live=true ! audioconvert ! audioresample ! opusenc ! rtpopuspay \
    ! application/x-rtp,media=audio,encoding-name=OPUS,payload=111 ! wb.";

/// Publishes the marked picture to a whip feed's `endpoint`: the publisher, sending once
/// this returns (ICE and DTLS then finish on their own). Stopped when dropped, also if
/// the endpoint refuses it.
pub(crate) async fn publish(endpoint: &str, bearer: &str) -> Publisher {
    gst::init().expect("GStreamer");
    let pipeline = gst::parse::launch(PUBLISHER)
        .expect("webrtcbin, x264enc, opusenc and their payloaders")
        .downcast::<gst::Pipeline>()
        .unwrap();
    let publisher = Publisher::marking(pipeline);
    let offer = webrtc_sender::offer(&publisher.pipeline).await;
    let answer = reqwest::Client::new()
        .post(endpoint)
        .bearer_auth(bearer)
        .header("content-type", "application/sdp")
        .body(offer)
        .send()
        .await
        .expect("the WHIP endpoint answers");
    let status = answer.status();
    let body = answer.text().await.unwrap_or_default();
    assert_eq!(status.as_u16(), 201, "the WHIP offer refused: {body}");
    webrtc_sender::apply_answer(&publisher.pipeline, &body).await;
    publisher
}
