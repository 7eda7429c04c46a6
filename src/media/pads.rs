//! One way to attach what a decoder's new pads feed, for the live input, the room observer
//! and the announcement transcoder: the branch is built for the pad's media type, added,
//! started and linked, and a failure is posted on the bus as an error, never dropped.
//! Also the one choice of what decodes a URI.

use gstreamer as gst;
use gstreamer::prelude::*;

/// What a new pad feeds.
pub(crate) struct Branch {
    /// An element (usually a bin) with a `sink` pad.
    pub(crate) element: gst::Element,
    /// Linked to once the branch is added (a transcode's muxer).
    pub(crate) downstream: Option<gst::Element>,
}

impl Branch {
    pub(crate) fn new(element: impl IsA<gst::Element>) -> Self {
        Self {
            element: element.upcast(),
            downstream: None,
        }
    }

    /// A pad nobody needs (subtitles, a second video) is drained, so it never blocks the
    /// others.
    pub(crate) fn discard() -> Result<Self, String> {
        gst::ElementFactory::make("fakesink")
            .property("sync", false)
            .build()
            .map(Self::new)
            .map_err(|e| e.to_string())
    }
}

/// Links `pad` to a sink of its own in `pipeline` that drains it without prerolling
/// (`async=false`: a sink prerolling would hold a demuxer's one thread before its other
/// streams had their turn). `None` when it could not be added or linked.
pub(crate) fn drain(pipeline: &gst::Pipeline, pad: &gst::Pad) -> Option<()> {
    let sink = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .property("async", false)
        .build()
        .ok()?;
    pipeline.add(&sink).ok()?;
    sink.sync_state_with_parent().ok()?;
    pad.link(&sink.static_pad("sink")?).ok()?;
    Some(())
}

/// Plays what enters `branch` from `first_sample` on, as ffmpeg does with a file whose first
/// sample is late (an edited export starting at 10 s): every branch is moved by the same
/// amount, so audio and video keep their offset to each other.
pub(crate) fn play_from(branch: &gst::Bin, first_sample: Option<std::time::Duration>) {
    let Some(first) = first_sample.filter(|d| !d.is_zero()) else {
        return;
    };
    if let Some(pad) = branch.static_pad("sink") {
        pad.set_offset(-i64::try_from(first.as_nanos()).unwrap_or(i64::MAX));
    }
}

/// Which of a decoder's audio pads is attached: only the chosen track's (the Nth, in the
/// order the decoder offers them, which is the order the probe lists them in).
pub(crate) struct AudioPick {
    wanted: usize,
    seen: std::sync::atomic::AtomicUsize,
}

impl AudioPick {
    pub(crate) fn new(wanted: usize) -> Self {
        Self {
            wanted,
            seen: Default::default(),
        }
    }

    /// Whether the audio pad now being added is the chosen one.
    pub(crate) fn next_is_chosen(&self) -> bool {
        self.seen.fetch_add(1, std::sync::atomic::Ordering::AcqRel) == self.wanted
    }
}

/// How many threads a video decoder uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DecoderThreads {
    /// libav's choice: a thread per core, each holding frames of its own.
    #[default]
    Auto,
    /// One thread: for a live stream of an input one thread decodes in real time with room
    /// to spare. Frame threading there only added frames in memory (20 MB for 1080p) and a
    /// hand-off per frame, for 10 % more CPU (measured on a 1080p30 High clip: 0.19 of a
    /// core on one thread).
    One,
}

impl DecoderThreads {
    /// Up to this many pixels a second, one thread decodes a live input (4K at 30 fps is
    /// about three-quarters of a core on this kind of machine).
    const ONE_THREAD_PIXEL_RATE: f64 = 3840.0 * 2160.0 * 30.0;

    /// The choice for a live stream of an input with this video.
    pub fn live(video: Option<&super::inspect::report::VideoStream>) -> Self {
        match video {
            Some(v)
                if v.fps > 0.0
                    && f64::from(v.width) * f64::from(v.height) * v.fps
                        <= Self::ONE_THREAD_PIXEL_RATE =>
            {
                Self::One
            }
            _ => Self::Auto,
        }
    }

    /// Applies the choice to every video decoder `pipeline` gets.
    fn apply(self, pipeline: &gst::Pipeline) {
        if self == Self::Auto {
            return;
        }
        pipeline.connect_deep_element_added(|_, _, element| {
            let is_video_decoder = element.factory().is_some_and(|f| {
                let klass = f.metadata(gst::ELEMENT_METADATA_KLASS).unwrap_or_default();
                klass.contains("Decoder") && klass.contains("Video")
            });
            if is_video_decoder && element.find_property("max-threads").is_some() {
                element.set_property("max-threads", 1i32);
            }
        });
    }
}

/// What decodes `uri`: an animated picture's own frame source (GStreamer plays only its
/// first frame, or every frame at once), else `uridecodebin`. Either is added to `pipeline`,
/// and decodes nothing larger than `bounds` (the probe judged the input's first size; the
/// guard holds a stream that changes size midway to the same).
pub(crate) fn decoder_for(
    uri: &str,
    pipeline: &gst::Pipeline,
    threads: DecoderThreads,
    bounds: super::bounds::InputBounds,
) -> Result<gst::Element, String> {
    threads.apply(pipeline);
    super::sizes::guard_decoders(pipeline.upcast_ref(), bounds);
    let animated = url::Url::parse(uri)
        .ok()
        .filter(|u| u.scheme() == "file")
        .and_then(|u| u.to_file_path().ok())
        .filter(|path| super::animation::is_animated(path));
    let decoder = match animated {
        Some(path) => super::animation::source(&path, bounds)?,
        None => {
            let decode = gst::ElementFactory::make("uridecodebin")
                .property("uri", uri)
                .build()
                .map_err(|e| e.to_string())?;
            if !uri.starts_with("file:") {
                skip_gif_demuxer(&decode);
            }
            decode.connect("source-setup", false, |values| {
                if let Some(source) = values.get(1).and_then(|v| v.get::<gst::Element>().ok()) {
                    super::rtsp::tune(&source);
                }
                None
            });
            decode_media_only(&decode);
            decode
        }
    };
    pipeline.add(&decoder).map_err(|e| e.to_string())?;
    Ok(decoder)
}

/// Keeps `decodebin` (a uridecodebin, decodebin or parsebin) from plugging libav's GIF demuxer: on
/// some GIFs read from a network source (a 66-byte one does it) it spins in
/// `avformat_find_stream_info` without end, a core burnt and the probe never answering. A
/// GIF file is played by `animation` (the `image` crate, under limits); from a URL, none is.
pub(crate) fn skip_gif_demuxer(decodebin: &gst::Element) {
    let Some(result_type) = gst::glib::Type::from_name("GstAutoplugSelectResult") else {
        return;
    };
    decodebin.connect("autoplug-select", false, move |values| {
        // The signal needs an answer every time: "try" (what decodebin does by itself) for
        // anything else.
        // (element, pad, caps, factory)
        let gif = values
            .get(3)
            .and_then(|v| v.get::<gst::ElementFactory>().ok())
            .is_some_and(|f| f.name() == "avdemux_gif");
        gst::glib::EnumClass::with_type(result_type)?.to_value_by_nick(if gif {
            "skip"
        } else {
            "try"
        })
    });
}

/// Keeps `decodebin` (a uridecodebin or decodebin) from decoding what is never played:
/// subtitles, closed captions, timed metadata and data tracks are exposed as they are and
/// drained, so a track nobody decodes (a WebVTT subtitle, an iPhone's `mebx`) is ignored
/// instead of failing the whole input, and none costs a decoder.
pub(crate) fn decode_media_only(decodebin: &gst::Element) {
    // (element, pad, caps) -> whether to go on plugging elements after this pad.
    decodebin.connect("autoplug-continue", false, |values| {
        let caps = values.get(2).and_then(|v| v.get::<gst::Caps>().ok());
        let stop = caps
            .as_ref()
            .and_then(|c| c.structure(0))
            .is_some_and(|s| never_played(s.name().as_str()));
        Some((!stop).to_value())
    });
}

/// Whether a stream of this media type is one callfeed never plays.
pub(crate) fn never_played(media_type: &str) -> bool {
    const NEVER: [&str; 11] = [
        "text/",
        "subpicture/",
        "closedcaption/",
        "meta/",
        "timecode/",
        "application/x-subtitle",
        "application/x-ssa",
        "application/x-ass",
        "application/x-usf",
        "application/x-teletext",
        "application/x-onvif-metadata",
    ];
    NEVER.iter().any(|prefix| media_type.starts_with(prefix))
}

/// For each pad `decoder` has or adds to `pipeline`, `branch(media_type)` says what it
/// feeds (`None`: nothing, the pad is drained).
pub(crate) fn attach_decoded_pads(
    decoder: &gst::Element,
    pipeline: &gst::Pipeline,
    branch: impl Fn(&str) -> Result<Option<Branch>, String> + Send + Sync + 'static,
) {
    for pad in decoder.src_pads() {
        attach_pad(pipeline, &pad, &branch);
    }
    let weak = pipeline.downgrade();
    decoder.connect_pad_added(move |_, pad| {
        if let Some(pipeline) = weak.upgrade() {
            attach_pad(&pipeline, pad, &branch);
        }
    });
}

fn attach_pad(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    branch: &dyn Fn(&str) -> Result<Option<Branch>, String>,
) {
    drop_picture_tags(pad);
    let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
    let kind = caps
        .structure(0)
        .map(|s| s.name().to_string())
        .unwrap_or_default();
    let attached = branch(&kind).and_then(|b| match b {
        Some(b) => attach(pipeline, pad, Some(&caps), b),
        None => attach(pipeline, pad, None, Branch::discard()?),
    });
    if let Err(reason) = attached {
        let _ = pipeline.post_message(
            gst::message::Error::builder(
                gst::CoreError::Negotiation,
                &format!("cannot attach a {kind} branch: {reason}"),
            )
            .src(pipeline)
            .build(),
        );
    }
}

/// Cover art travels as an image tag, which mp4mux would write as a picture track beside
/// the contract's one audio and one video stream: pictures are taken out of the tags.
fn drop_picture_tags(pad: &gst::Pad) {
    pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, |_, info| {
        if let Some(gst::PadProbeData::Event(event)) = &mut info.data
            && let gst::EventView::Tag(tag) = event.view()
        {
            let tags = tag.tag();
            if tags.get::<gst::tags::Image>().is_some()
                || tags.get::<gst::tags::PreviewImage>().is_some()
            {
                let mut kept = tag.tag_owned();
                {
                    let kept = kept.make_mut();
                    kept.remove::<gst::tags::Image>();
                    kept.remove::<gst::tags::PreviewImage>();
                }
                *event = gst::event::Tag::new(kept);
            }
        }
        gst::PadProbeReturn::Ok
    });
}

/// Adds `branch` and links `pad` to it; surround audio played (of these `caps`) goes
/// through the stereo downmix first, every branch being stereo at most.
fn attach(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    caps: Option<&gst::Caps>,
    branch: Branch,
) -> Result<(), String> {
    pipeline.add(&branch.element).map_err(|e| e.to_string())?;
    if let Some(downstream) = &branch.downstream {
        branch.element.link(downstream).map_err(|e| e.to_string())?;
    }
    branch
        .element
        .sync_state_with_parent()
        .map_err(|e| e.to_string())?;
    let mut sink = branch
        .element
        .static_pad("sink")
        .ok_or("the branch has no sink pad")?;
    let downmix = caps.map(|c| super::downmix::in_front_of_branch(c));
    if let Some(mix) = downmix.transpose()?.flatten() {
        pipeline.add(&mix).map_err(|e| e.to_string())?;
        mix.link(&branch.element).map_err(|e| e.to_string())?;
        mix.sync_state_with_parent().map_err(|e| e.to_string())?;
        sink = mix
            .static_pad("sink")
            .ok_or("the downmix has no sink pad")?;
    }
    pad.link(&sink).map(|_| ()).map_err(|e| e.to_string())
}
