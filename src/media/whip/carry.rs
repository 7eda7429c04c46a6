//! Where a WHIP session's media goes, and the chains that bring it there from webrtcbin:
//! depayloaded and muxed as Matroska into the feed's inlet, for the feed to decode; or, for a
//! passed-through feed, as FLV tag bodies of the contract — the publisher's H.264 as it
//! comes, its Opus decoded and encoded to AAC 48 kHz (FLV and the cloud take no Opus).
//!
//! A passed-through stream's tags are written here, each stream on its own, not by
//! `flvmux`: an aggregator waits on both streams, and one start in four or so held the
//! picture for good after its first keyframe while the sound went on (a 720p publisher on 2
//! cores). The bodies are plain: the H.264 access unit behind its five-byte header, the AAC
//! frame behind its two, and each stream's sequence header from its caps.

use std::sync::Arc;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::super::element;
use super::super::flv::{TAG_AUDIO, TAG_VIDEO};
use super::super::inlet::InletWriter;

/// Takes one FLV tag body (`kind`, timestamp in ms, body); why not, which ends the session.
pub type TagSink = Box<dyn FnMut(u8, u32, &[u8]) -> Result<(), String> + Send>;

/// Where a session's media goes.
pub enum Carry {
    /// To the feed's inlet, as a Matroska stream its input side decodes.
    Decode(InletWriter),
    /// To a passed-through feed's calls, as FLV tags.
    Pass(TagSink),
}

/// The carry, shared with the sinks so the session's end ends it at once (not when the
/// pipeline is freed).
#[derive(Clone)]
pub(super) struct Carrier(Arc<parking_lot::Mutex<Option<Carry>>>);

impl Carrier {
    pub(super) fn new(carry: Carry) -> Self {
        Self(Arc::new(parking_lot::Mutex::new(Some(carry))))
    }

    pub(super) fn passes(&self) -> bool {
        matches!(self.0.lock().as_ref(), Some(Carry::Pass(..)))
    }

    /// Ends the carry: the feed sees the publisher's connection end.
    pub(super) fn end(&self) {
        self.0.lock().take();
    }

    /// Bytes of the Matroska stream.
    fn take_bytes(&self, bytes: &[u8]) -> Result<(), String> {
        match self.0.lock().as_mut() {
            None => Err("the session has ended".into()),
            Some(Carry::Decode(writer)) => writer
                .send_bytes(bytes::Bytes::copy_from_slice(bytes))
                .map_err(|e| e.to_string()),
            Some(Carry::Pass(_)) => Err("a passed-through session takes tags".into()),
        }
    }

    /// One FLV tag body.
    fn take_tag(&self, kind: u8, timestamp_ms: u32, body: &[u8]) -> Result<(), String> {
        match self.0.lock().as_mut() {
            None => Err("the session has ended".into()),
            Some(Carry::Pass(sink)) => sink(kind, timestamp_ms, body),
            Some(Carry::Decode(_)) => Err("a decoded session takes a Matroska stream".into()),
        }
    }
}

/// Where each of webrtcbin's streams ends: a pad of the one muxer, or a tag writer of its
/// own.
pub(super) enum Outlet {
    /// Weak: webrtcbin's pad-added handler holds the outlet, and the pipeline the muxer.
    Mux(gst::glib::WeakRef<gst::Element>),
    Tags(Carrier),
}

/// The outlet a carry needs. A decoded session's muxer, with its pads for what the offer
/// carries asked for before any media (a muxer writes its header once every pad has media,
/// and takes no pad after that), and its sink, both in `pipeline`.
pub(super) fn outlet(
    pipeline: &gst::Pipeline,
    carrier: &Carrier,
    video: bool,
    audio: bool,
) -> Result<Outlet, String> {
    if carrier.passes() {
        return Ok(Outlet::Tags(carrier.clone()));
    }
    let mux = gst::ElementFactory::make("matroskamux")
        .property("streamable", true)
        .build()
        .map_err(|e| format!("matroskamux: {e}"))?;
    for (wanted, pad) in [(video, "video_%u"), (audio, "audio_%u")] {
        if wanted && mux.request_pad_simple(pad).is_none() {
            return Err(format!("matroskamux has no {pad} pad"));
        }
    }
    let taking = carrier.clone();
    let sink = sample_sink(move |sample| {
        let buffer = sample.buffer().ok_or("a sample without a buffer")?;
        let map = buffer.map_readable().map_err(|e| e.to_string())?;
        taking.take_bytes(map.as_slice())
    });
    pipeline
        .add_many([&mux, sink.upcast_ref()])
        .map_err(|e| e.to_string())?;
    mux.link(&sink).map_err(|e| e.to_string())?;
    Ok(Outlet::Mux(mux.downgrade()))
}

/// An appsink that hands each sample to `take`; what `take` says went wrong ends the
/// session. Not asynchronous: one added to the playing pipeline must not hold its state.
fn sample_sink(
    mut take: impl FnMut(&gst::Sample) -> Result<(), String> + Send + 'static,
) -> gst_app::AppSink {
    let sink = gst_app::AppSink::builder()
        .sync(false)
        .property("async", false)
        .build();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                match take(&sample) {
                    Ok(()) => Ok(gst::FlowSuccess::Ok),
                    Err(e) => {
                        gst::element_error!(sink, gst::StreamError::Failed, ("{}", e));
                        Err(gst::FlowError::Error)
                    }
                }
            })
            .build(),
    );
    sink
}

/// A tag writer for one stream of `kind`: its sequence header whenever its caps bring a new
/// one, then each frame at its running time, never before the last one's. WebRTC's
/// jitter buffer times the first packets by when they came, then by the sender's clock:
/// a 720p publisher's first pictures came late, and the ones after them were timed up to
/// half a second earlier.
fn tag_sink(carrier: Carrier, kind: u8) -> gst_app::AppSink {
    let mut header_sent: Option<gst::Buffer> = None;
    let mut last_at = 0;
    sample_sink(move |sample| {
        let buffer = sample.buffer().ok_or("a sample without a buffer")?;
        let at = running_ms(sample, buffer).max(last_at);
        last_at = at;
        let config = sample
            .caps()
            .and_then(|c| c.structure(0))
            .and_then(|s| s.get::<gst::Buffer>("codec_data").ok());
        if let Some(config) = config
            && header_sent.as_ref() != Some(&config)
        {
            let map = config.map_readable().map_err(|e| e.to_string())?;
            carrier.take_tag(kind, at, &tag_body(kind, true, true, map.as_slice()))?;
            drop(map);
            header_sent = Some(config);
        }
        if header_sent.is_none() {
            return Err("a stream without its codec's configuration".into());
        }
        let map = buffer.map_readable().map_err(|e| e.to_string())?;
        let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        carrier.take_tag(kind, at, &tag_body(kind, false, keyframe, map.as_slice()))
    })
}

/// A buffer's running time in ms (its stream's clock is the session's), truncated to FLV's
/// 32 bits.
fn running_ms(sample: &gst::Sample, buffer: &gst::BufferRef) -> u32 {
    let running = buffer.pts().and_then(|pts| {
        sample
            .segment()
            .and_then(|s| s.downcast_ref::<gst::ClockTime>())
            .and_then(|s| s.to_running_time(pts))
    });
    running.map_or(0, |t| t.mseconds() as u32)
}

/// An FLV tag body: H.264 (keyframe or not, its composition time 0: constrained baseline has
/// no reordering) or AAC 48 kHz stereo; `config` for the sequence header.
fn tag_body(kind: u8, config: bool, keyframe: bool, data: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(data.len() + 5);
    if kind == TAG_VIDEO {
        body.push(if keyframe { 0x17 } else { 0x27 });
        body.extend_from_slice(&[u8::from(!config), 0, 0, 0]);
    } else {
        // AAC (10), "44 kHz" (FLV's highest: the real rate is in the header), 16 bit, stereo.
        body.extend_from_slice(&[0xaf, u8::from(!config)]);
    }
    body.extend_from_slice(data);
    body
}

/// Links a new stream of webrtcbin's to its outlet; the video depayloader, to ask the
/// publisher for keyframes through.
pub(super) fn depayload(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    outlet: &Outlet,
) -> Result<Option<gst::Element>, String> {
    let caps = pad.current_caps().ok_or("a stream without caps")?;
    let s = caps.structure(0).ok_or("a stream without caps")?;
    let encoding = s
        .get::<&str>("encoding-name")
        .unwrap_or_default()
        .to_ascii_uppercase();
    let passing = matches!(outlet, Outlet::Tags(_));
    let (mut chain, kind) = match (encoding.as_str(), passing) {
        ("H264", false) => (
            vec![keyframe_depayloader("rtph264depay")?, element("h264parse")?],
            TAG_VIDEO,
        ),
        ("H264", true) => (
            vec![
                keyframe_depayloader("rtph264depay")?,
                element("h264parse")?,
                caps_filter("video/x-h264,stream-format=avc,alignment=au")?,
            ],
            TAG_VIDEO,
        ),
        ("VP8", false) => (vec![keyframe_depayloader("rtpvp8depay")?], TAG_VIDEO),
        ("OPUS", false) => (
            vec![element("rtpopusdepay")?, element("opusparse")?],
            TAG_AUDIO,
        ),
        ("OPUS", true) => (
            vec![
                element("rtpopusdepay")?,
                element("opusdec")?,
                element("audioconvert")?,
                element("audioresample")?,
                caps_filter("audio/x-raw,rate=48000,channels=2")?,
                gst::ElementFactory::make("voaacenc")
                    .property("bitrate", 128_000i32)
                    .build()
                    .map_err(|e| format!("voaacenc: {e}"))?,
                element("aacparse")?,
                caps_filter("audio/mpeg,mpegversion=4,stream-format=raw")?,
            ],
            TAG_AUDIO,
        ),
        (other, _) => return Err(format!("{other} is not taken here")),
    };
    let into = match outlet {
        Outlet::Mux(mux) => {
            let mux = mux.upgrade().ok_or("the session is ending")?;
            // The pads were asked for by template when the muxer was made; found by it.
            let template = if kind == TAG_VIDEO {
                "video_%u"
            } else {
                "audio_%u"
            };
            mux.sink_pads()
                .into_iter()
                .find(|p| {
                    p.pad_template()
                        .is_some_and(|t| t.name_template() == template)
                        && !p.is_linked()
                })
                .ok_or_else(|| format!("{encoding} was not offered"))?
        }
        Outlet::Tags(carrier) => {
            let sink = tag_sink(carrier.clone(), kind);
            chain.push(sink.clone().upcast());
            sink.static_pad("sink").ok_or("a sink without input")?
        }
    };
    pipeline.add_many(&chain).map_err(|e| e.to_string())?;
    gst::Element::link_many(&chain).map_err(|e| e.to_string())?;
    for element in chain.iter().rev() {
        element
            .sync_state_with_parent()
            .map_err(|e| e.to_string())?;
    }
    let first = chain[0]
        .static_pad("sink")
        .ok_or("a depayloader without input")?;
    pad.link(&first).map_err(|e| e.to_string())?;
    if let Outlet::Mux(_) = outlet {
        let last = chain[chain.len() - 1]
            .static_pad("src")
            .ok_or("a parser without output")?;
        last.link(&into).map_err(|e| e.to_string())?;
    }
    Ok((kind == TAG_VIDEO).then(|| chain[0].clone()))
}

fn caps_filter(caps: &str) -> Result<gst::Element, String> {
    let caps: gst::Caps = caps.parse().map_err(|_| format!("caps {caps}"))?;
    gst::ElementFactory::make("capsfilter")
        .property("caps", caps)
        .build()
        .map_err(|e| format!("capsfilter: {e}"))
}

/// A video depayloader that starts on a keyframe and asks the publisher for one (PLI or
/// FIR) when packets were lost.
fn keyframe_depayloader(factory: &str) -> Result<gst::Element, String> {
    gst::ElementFactory::make(factory)
        .property("request-keyframe", true)
        .property("wait-for-keyframe", true)
        .build()
        .map_err(|e| format!("{factory}: {e}"))
}

/// Asks the publisher for a keyframe (webrtcbin's RTP session turns it into FIR or PLI).
pub(super) fn ask_keyframe(depayloader: &gst::Element) {
    let event = gst::event::CustomUpstream::new(
        gst::Structure::builder("GstForceKeyUnit")
            .field("all-headers", true)
            .build(),
    );
    if let Some(pad) = depayloader.static_pad("sink") {
        let _ = pad.push_event(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_bodies_carry_the_frame_behind_flv_headers() {
        assert_eq!(
            tag_body(TAG_VIDEO, true, true, &[1, 2]),
            [0x17, 0, 0, 0, 0, 1, 2]
        );
        assert_eq!(
            tag_body(TAG_VIDEO, false, true, &[9]),
            [0x17, 1, 0, 0, 0, 9]
        );
        assert_eq!(
            tag_body(TAG_VIDEO, false, false, &[9]),
            [0x27, 1, 0, 0, 0, 9]
        );
        assert_eq!(
            tag_body(TAG_AUDIO, true, true, &[0x11, 0x90]),
            [0xaf, 0, 0x11, 0x90]
        );
        assert_eq!(tag_body(TAG_AUDIO, false, true, &[7]), [0xaf, 1, 7]);
    }
}
