//! The latency figure's WHIP publisher: the same marked 720p30 picture as its RTMP
//! publisher, sent as a browser sends it — H.264 constrained baseline without B-frames and
//! Opus over WebRTC (webrtcbin), its offer POSTed to a whip feed's endpoint. Made as the
//! tests' publisher is (tests/common/whip.rs), independent of callfeed's own WebRTC code.

use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_sdp as gst_sdp;
use gstreamer_webrtc as gst_webrtc;
use gstreamer_webrtc::prelude::WebRTCICEExt;

use crate::latency::Publisher;

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

/// How long the offer's gathering and the answer's application may take.
const NEGOTIATION_WITHIN: Duration = Duration::from_secs(10);

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
    let offer = offer(&publisher.pipeline).await;
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
    let sdp = gst_sdp::SDPMessage::parse_buffer(body.as_bytes()).expect("an SDP answer");
    let answer = gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Answer, sdp);
    let wb = publisher.pipeline.by_name("wb").unwrap();
    let (promise, applied) = gst::Promise::new_future();
    wb.emit_by_name::<()>("set-remote-description", &[&answer, &promise]);
    let applied = tokio::time::timeout(NEGOTIATION_WITHIN, applied)
        .await
        .expect("the answer applied in time");
    if let Ok(Some(reply)) = applied
        && let Ok(error) = reply.get::<gst::glib::Error>("error")
    {
        panic!("the publisher refused the answer: {error}");
    }
    publisher
}

/// Starts the pipeline and makes its offer, with every candidate in it. Only 127.0.0.1 is
/// gathered (WebRTC stays on loopback), and no UPnP (its 200 ms timeout on each gathering)
/// or TCP candidates.
async fn offer(pipeline: &gst::Pipeline) -> String {
    let wb = pipeline.by_name("wb").unwrap();
    let ice = wb.property::<gst_webrtc::WebRTCICE>("ice-agent");
    assert!(ice.emit_add_local_ip_address("127.0.0.1"));
    ice.set_property("ice-tcp", false);
    ice.property::<gst::glib::Object>("agent")
        .set_property("upnp", false);
    let (tx, rx) = tokio::sync::oneshot::channel::<String>();
    let tx = std::sync::Mutex::new(Some(tx));
    wb.connect_notify(Some("ice-gathering-state"), move |wb, _| {
        let state = wb.property::<gst_webrtc::WebRTCICEGatheringState>("ice-gathering-state");
        if state == gst_webrtc::WebRTCICEGatheringState::Complete {
            let local = wb.property::<gst_webrtc::WebRTCSessionDescription>("local-description");
            if let Some(tx) = tx.lock().unwrap().take() {
                let _ = tx.send(local.sdp().as_text().unwrap_or_default());
            }
        }
    });
    wb.connect("on-negotiation-needed", false, |values| {
        let wb = values[0].get::<gst::Element>().unwrap();
        // A publisher receives nothing: the endpoint's answer then sends nothing either.
        for i in 0i32.. {
            let Some(t) = wb
                .emit_by_name::<Option<gst_webrtc::WebRTCRTPTransceiver>>("get-transceiver", &[&i])
            else {
                break;
            };
            t.set_direction(gst_webrtc::WebRTCRTPTransceiverDirection::Sendonly);
        }
        let bin = wb.clone();
        let promise = gst::Promise::with_change_func(move |reply| {
            let offer = reply
                .ok()
                .flatten()
                .and_then(|r| r.get::<gst_webrtc::WebRTCSessionDescription>("offer").ok());
            if let Some(offer) = offer {
                bin.emit_by_name::<()>("set-local-description", &[&offer, &None::<gst::Promise>]);
            }
        });
        wb.emit_by_name::<()>("create-offer", &[&None::<gst::Structure>, &promise]);
        None
    });
    pipeline.set_state(gst::State::Playing).unwrap();
    tokio::time::timeout(NEGOTIATION_WITHIN, rx)
        .await
        .expect("the publisher's offer made in time")
        .expect("the publisher's offer")
}
