//! Where a WHIP session's media goes, and the chains that bring it there from webrtcbin:
//! depayloaded and muxed as Matroska into the feed's inlet, for the feed to decode; or, for a
//! passed-through feed, as FLV tags of the contract — the publisher's H.264 as it comes, its
//! Opus decoded and encoded to AAC 48 kHz (FLV and the cloud take no Opus).

use std::sync::Arc;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

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

/// The carry, shared with the muxer's sink so the session's end ends it at once (not when
/// the pipeline is freed).
#[derive(Clone)]
pub(super) struct Carrier(Arc<parking_lot::Mutex<Option<Going>>>);

enum Going {
    Decode(InletWriter),
    /// The tag sink, and what of the muxer's output has not made a whole tag yet.
    Pass(TagSink, Vec<u8>),
}

impl Carrier {
    pub(super) fn new(carry: Carry) -> Self {
        let going = match carry {
            Carry::Decode(writer) => Going::Decode(writer),
            Carry::Pass(sink) => Going::Pass(sink, Vec::new()),
        };
        Self(Arc::new(parking_lot::Mutex::new(Some(going))))
    }

    pub(super) fn passes(&self) -> bool {
        matches!(self.0.lock().as_ref(), Some(Going::Pass(..)))
    }

    /// Ends the carry: the feed sees the publisher's connection end.
    pub(super) fn end(&self) {
        self.0.lock().take();
    }

    fn take(&self, bytes: &[u8]) -> Result<(), String> {
        let mut going = self.0.lock();
        match going.as_mut() {
            None => Err("the session has ended".into()),
            Some(Going::Decode(writer)) => writer
                .send_bytes(bytes::Bytes::copy_from_slice(bytes))
                .map_err(|e| e.to_string()),
            Some(Going::Pass(sink, pending)) => {
                pending.extend_from_slice(bytes);
                pass_tags(sink, pending)
            }
        }
    }
}

/// Hands every whole tag in `pending` to `sink`, keeping what is left of a partial one.
fn pass_tags(sink: &mut TagSink, pending: &mut Vec<u8>) -> Result<(), String> {
    let mut at = if pending.starts_with(b"FLV") { 13 } else { 0 };
    while at + 11 <= pending.len() {
        let tag = &pending[at..];
        let size = u32::from_be_bytes([0, tag[1], tag[2], tag[3]]) as usize;
        let whole = 11 + size + 4;
        if tag.len() < whole {
            break;
        }
        let timestamp = u32::from_be_bytes([tag[7], tag[4], tag[5], tag[6]]);
        let kind = tag[0] & 0x1f;
        if kind == super::super::flv::TAG_AUDIO || kind == super::super::flv::TAG_VIDEO {
            sink(kind, timestamp, &tag[11..11 + size])?;
        }
        at += whole;
    }
    pending.drain(..at);
    Ok(())
}

/// The muxer a carry needs, and its pads for what the offer carries, asked for before any
/// media: a muxer writes its header once every pad has media, and takes no pad after that.
pub(super) fn muxer(
    carrier: &Carrier,
    video: bool,
    audio: bool,
) -> Result<(gst::Element, gst_app::AppSink), String> {
    let (factory, video_pad, audio_pad) = if carrier.passes() {
        ("flvmux", "video", "audio")
    } else {
        ("matroskamux", "video_%u", "audio_%u")
    };
    let mux = gst::ElementFactory::make(factory)
        .property("streamable", true)
        .build()
        .map_err(|e| format!("{factory}: {e}"))?;
    for (wanted, pad) in [(video, video_pad), (audio, audio_pad)] {
        if wanted && mux.request_pad_simple(pad).is_none() {
            return Err(format!("{factory} has no {pad} pad"));
        }
    }
    let sink = gst_app::AppSink::builder().sync(false).build();
    let taking = carrier.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let Some(buffer) = sample.buffer() else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                match taking.take(map.as_slice()) {
                    Ok(()) => Ok(gst::FlowSuccess::Ok),
                    Err(e) => {
                        gst::element_error!(sink, gst::StreamError::Failed, ("{}", e));
                        Err(gst::FlowError::Error)
                    }
                }
            })
            .build(),
    );
    Ok((mux, sink))
}

/// Links a new stream of webrtcbin's to the muxer; the video depayloader, to ask the
/// publisher for keyframes through.
pub(super) fn depayload(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    mux: &gst::Element,
    passing: bool,
) -> Result<Option<gst::Element>, String> {
    let caps = pad.current_caps().ok_or("a stream without caps")?;
    let s = caps.structure(0).ok_or("a stream without caps")?;
    let encoding = s
        .get::<&str>("encoding-name")
        .unwrap_or_default()
        .to_ascii_uppercase();
    // The pads were asked for by template when the muxer was made; found by it.
    let video_pad = if passing { "video" } else { "video_%u" };
    let audio_pad = if passing { "audio" } else { "audio_%u" };
    let (chain, target): (Vec<gst::Element>, &str) = match (encoding.as_str(), passing) {
        ("H264", false) => (
            vec![keyframe_depayloader("rtph264depay")?, make("h264parse")?],
            video_pad,
        ),
        ("H264", true) => (
            vec![
                keyframe_depayloader("rtph264depay")?,
                make("h264parse")?,
                caps_filter("video/x-h264,stream-format=avc,alignment=au")?,
            ],
            video_pad,
        ),
        ("VP8", false) => (vec![keyframe_depayloader("rtpvp8depay")?], video_pad),
        ("OPUS", false) => (vec![make("rtpopusdepay")?, make("opusparse")?], audio_pad),
        ("OPUS", true) => (
            vec![
                make("rtpopusdepay")?,
                make("opusdec")?,
                make("audioconvert")?,
                make("audioresample")?,
                caps_filter("audio/x-raw,rate=48000,channels=2")?,
                gst::ElementFactory::make("voaacenc")
                    .property("bitrate", 128_000i32)
                    .build()
                    .map_err(|e| format!("voaacenc: {e}"))?,
                make("aacparse")?,
            ],
            audio_pad,
        ),
        (other, _) => return Err(format!("{other} is not taken here")),
    };
    let into = mux
        .sink_pads()
        .into_iter()
        .find(|p| {
            p.pad_template()
                .is_some_and(|t| t.name_template() == target)
                && !p.is_linked()
        })
        .ok_or_else(|| format!("{encoding} was not offered"))?;
    pipeline.add_many(&chain).map_err(|e| e.to_string())?;
    gst::Element::link_many(&chain).map_err(|e| e.to_string())?;
    for element in &chain {
        element
            .sync_state_with_parent()
            .map_err(|e| e.to_string())?;
    }
    let first = chain[0]
        .static_pad("sink")
        .ok_or("a depayloader without input")?;
    pad.link(&first).map_err(|e| e.to_string())?;
    let last = chain[chain.len() - 1]
        .static_pad("src")
        .ok_or("a parser without output")?;
    if passing && target == video_pad {
        decode_in_order(&last);
    }
    last.link(&into).map_err(|e| e.to_string())?;
    Ok((target == video_pad).then(|| chain[0].clone()))
}

/// Gives each picture a decode time: its presentation time, never before the last one's.
/// What WebRTC depayloads carries presentation times only, and flvmux, which orders by
/// decode time, otherwise saw them go backwards at the start and dropped the picture for
/// good while the sound went on. Constrained baseline has no reordering: in order is right.
fn decode_in_order(pad: &gst::Pad) {
    let last = parking_lot::Mutex::new(None::<gst::ClockTime>);
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(gst::PadProbeData::Buffer(buffer)) = info.data.as_mut()
            && let Some(pts) = buffer.pts()
        {
            let mut last = last.lock();
            let dts = last.map_or(pts, |l| pts.max(l));
            *last = Some(dts);
            buffer.make_mut().set_dts(dts);
        }
        gst::PadProbeReturn::Ok
    });
}

fn make(factory: &str) -> Result<gst::Element, String> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|e| format!("{factory}: {e}"))
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
    fn whole_media_tags_are_passed_and_a_partial_one_waits() {
        let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let into = seen.clone();
        let mut sink: TagSink = Box::new(move |kind, ts, body| {
            into.lock().push((kind, ts, body.to_vec()));
            Ok(())
        });
        let mut stream = super::super::super::flv::FILE_HEADER.to_vec();
        stream.extend_from_slice(&super::super::super::flv::tag(18, 0, b"meta"));
        stream.extend_from_slice(&super::super::super::flv::tag(
            9,
            40,
            &[0x17, 1, 0, 0, 0, 9],
        ));
        let audio = super::super::super::flv::tag(8, 0x0100_0021, &[0xaf, 1, 7]);
        stream.extend_from_slice(&audio[..5]);
        let mut pending = stream;
        pass_tags(&mut sink, &mut pending).unwrap();
        assert_eq!(*seen.lock(), [(9, 40, vec![0x17, 1, 0, 0, 0, 9])]);
        pending.extend_from_slice(&audio[5..]);
        pass_tags(&mut sink, &mut pending).unwrap();
        assert_eq!(seen.lock()[1], (8, 0x0100_0021, vec![0xaf, 1, 7]));
        assert!(pending.is_empty());
    }
}
