//! A publisher's connection carried into an input attempt: its FLV tags pushed into the
//! appsrc uridecodebin opens for `appsrc://`, the end of the connection an end of stream.

use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::media::inlet::{Connection, Container};

/// Bytes the appsrc holds before the carrier waits for the demuxer to take them: the tag
/// queue behind it is bounded, so a publisher faster than the decoder fills that and is
/// dropped, instead of this growing.
const APPSRC_LIMIT: u64 = 4 * 1024 * 1024;
/// How often a carrier with nothing to carry looks whether its attempt is over.
const IDLE_LOOK: Duration = Duration::from_millis(500);

/// Has the pipeline's uridecodebin (or uridecodebin3), once it makes its appsrc for
/// `appsrc://`, take `connection`'s tags. Must run on a tokio runtime.
pub(crate) fn carry_into(pipeline: &gst::Pipeline, connection: Connection) -> Result<(), String> {
    let decoder = pipeline
        .iterate_elements()
        .into_iter()
        .flatten()
        .find(|e| {
            e.factory()
                .is_some_and(|f| f.name().starts_with("uridecodebin"))
        })
        .ok_or("the pushed input has no decoder")?;
    let runtime = tokio::runtime::Handle::current();
    let connection = parking_lot::Mutex::new(Some(connection));
    decoder.connect("source-setup", false, move |values| {
        let src = values
            .get(1)
            .and_then(|v| v.get::<gst::Element>().ok())
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok());
        if let (Some(src), Some(connection)) = (src, connection.lock().take()) {
            src.set_caps(Some(&caps_of(connection.container)));
            src.set_is_live(true);
            src.set_format(gst::Format::Bytes);
            src.set_max_bytes(APPSRC_LIMIT);
            runtime.spawn(carry(src.downgrade(), connection));
        }
        None
    });
    Ok(())
}

/// What the demuxer is offered for a connection.
fn caps_of(container: Container) -> gst::Caps {
    match container {
        Container::Flv => gst::Caps::builder("video/x-flv").build(),
        Container::MpegTs => gst::Caps::builder("video/mpegts")
            .field("systemstream", true)
            .build(),
        Container::Matroska => gst::Caps::builder("video/x-matroska").build(),
    }
}

/// Pushes the connection's tags until it ends (then an end of stream) or the attempt's
/// pipeline stops taking them; dropping the connection tells the publisher's side.
async fn carry(src: gst::glib::WeakRef<gst_app::AppSrc>, mut connection: Connection) {
    loop {
        let tag = match tokio::time::timeout(IDLE_LOOK, connection.tags.recv()).await {
            Ok(Some(tag)) => tag,
            Ok(None) => {
                if let Some(src) = src.upgrade() {
                    let _ = src.end_of_stream();
                }
                return;
            }
            Err(_) => {
                if gone(&src) {
                    return;
                }
                continue;
            }
        };
        while src
            .upgrade()
            .is_some_and(|s| s.current_level_bytes() >= APPSRC_LIMIT)
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let Some(appsrc) = src.upgrade() else { return };
        if appsrc.push_buffer(gst::Buffer::from_slice(tag)).is_err() {
            return;
        }
    }
}

/// Whether the attempt this appsrc belonged to is over.
fn gone(src: &gst::glib::WeakRef<gst_app::AppSrc>) -> bool {
    src.upgrade().is_none_or(|s| {
        s.current_state() == gst::State::Null && s.pending_state() == gst::State::VoidPending
    })
}
