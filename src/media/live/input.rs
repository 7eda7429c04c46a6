//! The input side of a live stream: one attempt's pipeline (the item decoded and brought to
//! the contract's raw caps) and the slot it hands the pump.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::media::inlet::Connection;
use crate::media::input::{InputItem, InputSpec};
use crate::media::stream::handle::{Counters, LiveSettings, bump};
use crate::media::topology::Topologies;

/// What an input attempt writes to: the slot, the first-media flag and the counters.
#[derive(Clone)]
pub(super) struct Feed {
    pub(super) slot: SharedSlot,
    pub(super) first_media: FirstMedia,
    pub(super) counters: Arc<Counters>,
}

/// What the input pipeline hands the pump.
#[derive(Default)]
pub(super) struct Slot {
    /// The newest picture not yet sent; a newer one replaces it, so the pump never lags.
    pub(super) video: Option<gst::Buffer>,
    pub(super) video_at: Option<Instant>,
    pub(super) audio: VecDeque<u8>,
    pub(super) audio_at: Option<Instant>,
    /// Last time the input produced anything.
    pub(super) progress_at: Option<Instant>,
    /// The input is gone: the pump shows the slate, and counts it.
    pub(super) on_slate: bool,
    /// The sound's gain when changed from the input's own level.
    pub(super) gain: Option<f32>,
    /// Paused: the pump holds the last picture and sends silence.
    pub(super) paused: bool,
}

pub(super) type SharedSlot = Arc<Mutex<Slot>>;

/// Raised when the input delivers its first media, so the pump can start its clock on real
/// content (an announcement is heard from its first word, not after black).
pub(super) type FirstMedia = Arc<(Mutex<bool>, std::sync::Condvar)>;

/// Builds one input attempt: the item decoded and normalised into two appsinks that feed
/// the slot. Callbacks hold the slot and weak element references only.
/// A pushed item plays the publisher's `connection`.
pub(super) fn build_input(
    item: &InputItem,
    connection: Option<Connection>,
    settings: &LiveSettings,
    topologies: &Topologies,
    feed: &Feed,
) -> Result<gst::Pipeline, String> {
    let branches = Branches::new(settings, topologies)?;
    match item {
        InputItem::Sources(spec) => sources_pipeline(spec, &branches, settings, topologies, feed),
        InputItem::Uri(uri) => decoded_pipeline(uri, branches, settings, feed, true),
        InputItem::Pushed(_) => {
            let connection = connection.ok_or("no publisher is connected")?;
            let pipeline = decoded_pipeline(PUSHED_URI, branches, settings, feed, false)?;
            super::pushed::carry_into(&pipeline, connection)?;
            Ok(pipeline)
        }
    }
}

/// What uridecodebin opens for a pushed connection: an appsrc it hands over to be fed.
const PUSHED_URI: &str = "appsrc://";

/// The launch descriptions of the two branches that bring decoded media to the contract's
/// raw caps and into the appsinks.
struct Branches {
    /// `None` when the contract has no video.
    video: Option<String>,
    audio: String,
}

impl Branches {
    fn new(settings: &LiveSettings, topologies: &Topologies) -> Result<Self, String> {
        let contract = &settings.contract;
        let normalize_video = contract
            .video
            .map(|v| {
                topologies.render(
                    crate::media::topology::normalize_video_slot(settings.rotated),
                    &[
                        ("fps", &v.fps.to_string()),
                        ("width", &v.width.to_string()),
                        ("height", &v.height.to_string()),
                    ],
                )
            })
            .transpose()
            .map_err(|e| e.to_string())?;
        let normalize_audio = topologies
            .render(
                "normalize.audio",
                &[
                    ("rate", &contract.audio_rate.to_string()),
                    ("channels", &contract.audio_channels.to_string()),
                ],
            )
            .map_err(|e| e.to_string())?;
        // A picture decodes to one frame: frozen, it becomes a video the appsink paces. Not a
        // live imagefreeze: added while the pipeline prerolls, a live branch never prerolls
        // and the picture never arrived (the stream stayed black).
        let freeze = if settings.still_image {
            "imagefreeze ! "
        } else {
            ""
        };
        // The queue parts the decoder's thread from the paced appsink's; two pictures are
        // all it needs to hold (its default, 10 MB, kept three 1080p pictures per session),
        // and after the scaler they are the contract's size, not the input's.
        let video = normalize_video.map(|n| {
            format!(
                "{freeze}{n} ! queue max-size-buffers=2 max-size-bytes=0 max-size-time=0 ! appsink name=video"
            )
        });
        let audio = format!("queue ! {normalize_audio} ! appsink name=audio");
        Ok(Self { video, audio })
    }
}

/// The pipeline of devices or custom sources, launched with the branches behind them.
fn sources_pipeline(
    spec: &InputSpec,
    branches: &Branches,
    settings: &LiveSettings,
    topologies: &Topologies,
    feed: &Feed,
) -> Result<gst::Pipeline, String> {
    let contract = &settings.contract;
    let (v, a) = spec
        .source_fragments(topologies, contract.video.map(|v| (v.width, v.height)))
        .map_err(|e| e.to_string())?;
    let mut description = String::new();
    if let (Some(v), Some(branch)) = (&v, &branches.video) {
        description.push_str(&format!("{} ! {branch} ", v.launch()));
    } else if let Some(v) = &v {
        description.push_str(&format!("{} ! fakesink ", v.launch()));
    }
    if let Some(a) = &a {
        description.push_str(&format!("{} ! {}", a.launch(), branches.audio));
    }
    let pipeline = gst::parse::launch(&description)
        .map_err(|e| e.to_string())?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline".to_string())?;
    // Device names and custom arguments are set as properties, never parsed.
    for fragment in v.iter().chain(a.iter()) {
        fragment
            .bind(pipeline.upcast_ref())
            .map_err(|e| e.to_string())?;
    }
    attach_sinks(pipeline.upcast_ref(), !spec.paces_itself(), feed);
    Ok(pipeline)
}

/// The pipeline that decodes a file or URL (its sources guarded), a branch added for each
/// stream it plays as the decoder finds it.
/// `paced`: played on the clock (a file); a live source's media is taken as it comes.
fn decoded_pipeline(
    uri: &str,
    branches: Branches,
    settings: &LiveSettings,
    feed: &Feed,
    paced: bool,
) -> Result<gst::Pipeline, String> {
    let pipeline = gst::Pipeline::new();
    let decode = crate::media::pads::decoder_for(
        uri,
        &pipeline,
        settings.decoder_threads,
        settings.input_bounds,
    )?;
    let guard = settings
        .source_guard
        .clone()
        .or_else(|| crate::media::policy::SourceGuard::for_uri(uri));
    if let Some(guard) = guard {
        crate::media::policy::guard_sources(pipeline.upcast_ref(), guard);
    }
    let feed = feed.clone();
    let audio_pick = crate::media::pads::AudioPick::new(settings.audio_track);
    let first_sample = settings.first_sample;
    crate::media::pads::attach_decoded_pads(&decode, &pipeline, move |kind| {
        let description = if kind.starts_with("video/") {
            branches.video.as_deref()
        } else if kind.starts_with("audio/") && audio_pick.next_is_chosen() {
            Some(branches.audio.as_str())
        } else {
            None
        };
        let Some(description) = description else {
            return Ok(None);
        };
        let bin = gst::parse::bin_from_description(description, true).map_err(|e| e.to_string())?;
        crate::media::pads::play_from(&bin, first_sample);
        attach_sinks(&bin, paced, &feed);
        Ok(Some(crate::media::pads::Branch::new(bin)))
    });
    Ok(pipeline)
}

/// Feeds the slot from the `video` and `audio` appsinks in `bin`, those it has.
fn attach_sinks(bin: &gst::Bin, paced: bool, feed: &Feed) {
    for name in ["video", "audio"] {
        if let Some(sink) = bin
            .by_name(name)
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        {
            attach_sink(&sink, name == "video", paced, feed);
        }
    }
}

fn attach_sink(sink: &gst_app::AppSink, video: bool, paced: bool, feed: &Feed) {
    // Paced on the clock, a file is read in real time, as a live source would arrive.
    sink.set_sync(paced);
    sink.set_max_buffers(2);
    let Feed {
        slot,
        first_media,
        counters,
    } = feed.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let Some(buffer) = sample.buffer_owned() else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                let now = Instant::now();
                {
                    let (flag, ready) = &*first_media;
                    let mut seen = flag.lock().expect("first-media lock");
                    if !*seen {
                        *seen = true;
                        ready.notify_all();
                    }
                }
                let mut s = slot.lock().expect("slot lock");
                s.progress_at = Some(now);
                if video {
                    s.video = Some(buffer);
                    s.video_at = Some(now);
                    bump(&counters.frames_in, 1);
                } else if let Ok(map) = buffer.map_readable() {
                    s.audio.extend(map.iter());
                    s.audio_at = Some(now);
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
}

/// Classifies an input error: fatal (the input itself is wrong) or retryable.
pub(super) fn classify(err: &gst::glib::Error, from_storage: bool) -> bool {
    use gst::{CoreError, ResourceError, StreamError};
    if let Some(e) = err.kind::<ResourceError>() {
        return match e {
            ResourceError::NotFound | ResourceError::NotAuthorized => true,
            ResourceError::OpenRead | ResourceError::OpenReadWrite | ResourceError::Read => {
                from_storage
            }
            _ => false,
        };
    }
    if let Some(e) = err.kind::<StreamError>() {
        return match e {
            StreamError::TypeNotFound
            | StreamError::WrongType
            | StreamError::CodecNotFound
            | StreamError::Format => true,
            StreamError::Decode | StreamError::Demux => from_storage,
            _ => false,
        };
    }
    err.kind::<CoreError>() == Some(CoreError::MissingPlugin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::contract::{Contract, Profile};

    /// The elements of a branch's launch description, in order.
    fn elements(description: &str) -> Vec<&str> {
        description
            .split(" ! ")
            .filter_map(|e| e.split_whitespace().next())
            .collect()
    }

    #[test]
    fn an_upright_input_is_converted_and_scaled_in_one_pass_and_only_a_rotated_one_is_flipped() {
        let topologies = Topologies::builtin().unwrap();
        let mut settings = LiveSettings::new(Contract::new(Profile::P720));
        let upright = Branches::new(&settings, &topologies)
            .unwrap()
            .video
            .unwrap();
        let upright = elements(&upright);
        assert!(!upright.contains(&"videoflip"), "{upright:?}");
        assert!(!upright.contains(&"videoscale"), "{upright:?}");
        // The small queue holds pictures of the contract's size: it comes after the scaler.
        let scaler = upright
            .iter()
            .position(|e| *e == "videoconvertscale")
            .unwrap();
        let queue = upright.iter().position(|e| *e == "queue").unwrap();
        assert!(scaler < queue, "{upright:?}");
        settings.rotated = true;
        let rotated = Branches::new(&settings, &topologies)
            .unwrap()
            .video
            .unwrap();
        let rotated = elements(&rotated);
        let flip = rotated.iter().position(|e| *e == "videoflip").unwrap();
        let scaler = rotated
            .iter()
            .position(|e| *e == "videoconvertscale")
            .unwrap();
        assert!(
            flip < scaler,
            "turned upright before it is scaled: {rotated:?}"
        );
    }
}
