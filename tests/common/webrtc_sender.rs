//! A sending webrtcbin's half of a WHIP exchange, independent of callfeed's own WebRTC
//! code: the offer (every candidate in it, gathered on 127.0.0.1 only: WebRTC stays on
//! loopback) and the answer applied. Shared by the tests' publisher (whip.rs) and the
//! latency benchmark's.

use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_sdp as gst_sdp;
use gstreamer_webrtc as gst_webrtc;
use gstreamer_webrtc::prelude::WebRTCICEExt;

/// How long the offer's gathering and the answer's application may take.
const NEGOTIATION_WITHIN: Duration = Duration::from_secs(10);

/// Starts `pipeline` (with a webrtcbin named `wb`, every transceiver sending only) and makes
/// its offer. No UPnP (its 200 ms timeout on each gathering) or TCP candidates.
pub async fn offer(pipeline: &gst::Pipeline) -> String {
    let wb = pipeline.by_name("wb").expect("a webrtcbin named wb");
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

/// Applies the endpoint's `answer` to `pipeline`'s webrtcbin; media flows once ICE and
/// DTLS finish on their own.
pub async fn apply_answer(pipeline: &gst::Pipeline, answer: &str) {
    let sdp = gst_sdp::SDPMessage::parse_buffer(answer.as_bytes()).expect("an SDP answer");
    let answer = gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Answer, sdp);
    let wb = pipeline.by_name("wb").expect("a webrtcbin named wb");
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
}
