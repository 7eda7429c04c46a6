//! One way to attach what a decoder's new pads feed, for the live input, the room observer
//! and the announcement transcoder: the branch is built for the pad's media type, added,
//! started and linked, and a failure is posted on the bus as an error, never dropped.

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

/// For each pad `decoder` adds to `pipeline`, `branch(media_type)` says what it feeds
/// (`None`: nothing, the pad is drained).
pub(crate) fn attach_decoded_pads(
    decoder: &gst::Element,
    pipeline: &gst::Pipeline,
    branch: impl Fn(&str) -> Result<Option<Branch>, String> + Send + Sync + 'static,
) {
    let weak = pipeline.downgrade();
    decoder.connect_pad_added(move |_, pad| {
        let Some(pipeline) = weak.upgrade() else {
            return;
        };
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let kind = caps
            .structure(0)
            .map(|s| s.name().to_string())
            .unwrap_or_default();
        let attached = branch(&kind)
            .and_then(|b| b.map_or_else(Branch::discard, Ok))
            .and_then(|b| attach(&pipeline, pad, b));
        if let Err(reason) = attached {
            let _ = pipeline.post_message(
                gst::message::Error::builder(
                    gst::CoreError::Negotiation,
                    &format!("cannot attach a {kind} branch: {reason}"),
                )
                .src(&pipeline)
                .build(),
            );
        }
    });
}

fn attach(pipeline: &gst::Pipeline, pad: &gst::Pad, branch: Branch) -> Result<(), String> {
    pipeline.add(&branch.element).map_err(|e| e.to_string())?;
    if let Some(downstream) = &branch.downstream {
        branch.element.link(downstream).map_err(|e| e.to_string())?;
    }
    branch
        .element
        .sync_state_with_parent()
        .map_err(|e| e.to_string())?;
    let sink = branch
        .element
        .static_pad("sink")
        .ok_or("the branch has no sink pad")?;
    pad.link(&sink).map(|_| ()).map_err(|e| e.to_string())
}
