//! All GStreamer code lives here; nothing else in the crate imports `gstreamer`.
//!
//! - `input`: what a user names (files, URLs, test sources, devices), parsed; `policy`:
//!   which inputs an API client may use, and what a pipeline may open by itself
//! - `inspect/`: what an input is, its real length, and whether it can be taken as it is
//!   (the probe; its vocabulary in `inspect::report`, its rules in `inspect::verdict`);
//!   `bounds`: how large an input may be; `header`: a picture's size and frames from its
//!   headers; `sizes`: every input measured before it is decoded, and the guard on
//!   decoders; `flac`: a FLAC whose samples GStreamer cannot decode, named from its header;
//!   `contract`: the output every stream meets; `plan`: the one decision between
//!   announcement, passthrough and live
//! - `live/`: a live stream (input side, pump, encoder, supervisor); `passthrough`: a
//!   conforming file remuxed without decoding; `announce`: a file transcoded once, cached
//! - `downmix`: surround audio to stereo as ffmpeg mixes it, in front of every decoded
//!   audio branch; `encoder_delay`: the AAC encoder drained at the end of a transcode and
//!   its delay skipped by the MP4's edit list
//! - `hub`: one stream's FLV for all its readers; `flv`: tag knowledge; `rtmp`: the push
//!   to a relay; `topology`: launch fragments as data; `observer`: what a room receives
//!
//! This module itself owns GStreamer's initialisation and the pipelines' lifetimes.

use std::sync::OnceLock;

/// Why GStreamer could not be used.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "GStreamer could not be initialised: {0} (install it with `make setup`, or the Debian packages listed in the README)"
)]
pub struct MediaInitError(String);

static INIT: OnceLock<Result<(), MediaInitError>> = OnceLock::new();

/// Initialises GStreamer once per process.
pub fn init() -> Result<(), MediaInitError> {
    INIT.get_or_init(|| {
        gstreamer::init().map_err(|e| MediaInitError(e.to_string()))?;
        log_through_tracing();
        read_exif_orientation();
        Ok(())
    })
    .clone()
}

/// GStreamer's (and its plugins') own messages go to the log, under the `gstreamer` target,
/// not to stderr: a user sees them with `--log gstreamer=debug`, never as chatter between a
/// command's output lines. Their warnings are routine (a latency query unanswered, a
/// resampler's inexact taps), so they are logged at debug; what matters arrives as a bus
/// message and is reported by the engine in its own words.
fn log_through_tracing() {
    use gstreamer::DebugLevel;
    gstreamer::log::remove_default_log_function();
    if std::env::var_os("GST_DEBUG").is_none() {
        gstreamer::log::set_default_threshold(DebugLevel::Warning);
    }
    gstreamer::log::add_log_function(|category, level, file, function, line, _object, message| {
        let Some(text) = message.get() else {
            return;
        };
        // Elements quote the URLs they open, credentials and signed queries included.
        let text = crate::redact::redact_urls_in(text.as_str());
        let (category, text) = (category.name(), text.as_str());
        match level {
            DebugLevel::Error | DebugLevel::Warning | DebugLevel::Fixme | DebugLevel::Info => {
                tracing::debug!(target: "gstreamer", %category, gst_level = %level.name(), %file, %function, line, "{text}");
            }
            _ => {
                tracing::trace!(target: "gstreamer", %category, gst_level = %level.name(), %file, %function, line, "{text}");
            }
        }
    });
}

/// Lets decodebin (and the Discoverer) put `jpegparse` in front of the JPEG decoder: only
/// it reads a photo's EXIF orientation into the `image-orientation` tag that `videoflip`
/// follows. It ships with rank none, so without this a phone photo would stay on its side.
fn read_exif_orientation() {
    use gstreamer::prelude::*;
    if let Some(parser) = gstreamer::Registry::get().lookup_feature("jpegparse")
        && parser.rank() < gstreamer::Rank::MARGINAL
    {
        parser.set_rank(gstreamer::Rank::MARGINAL);
    }
}

/// The GStreamer runtime version, e.g. `GStreamer 1.22.0`.
pub fn runtime_version() -> Result<String, MediaInitError> {
    init()?;
    Ok(gstreamer::version_string().to_string())
}

/// Owns a pipeline and sets it to `Null` when dropped, on every exit path (an early return,
/// a panic, a task cancelled at runtime shutdown), as GStreamer requires.
#[derive(Debug)]
pub struct NullOnDrop(Option<gstreamer::Pipeline>);

/// Every pipeline the engine made, weakly: a leak check can count the ones still alive.
static PIPELINES: std::sync::Mutex<Vec<gstreamer::glib::WeakRef<gstreamer::Pipeline>>> =
    std::sync::Mutex::new(Vec::new());

impl NullOnDrop {
    pub fn new(pipeline: gstreamer::Pipeline) -> Self {
        use gstreamer::glib::prelude::ObjectExt;
        if let Ok(mut all) = PIPELINES.lock() {
            all.retain(|w| w.upgrade().is_some());
            all.push(pipeline.downgrade());
        }
        Self(Some(pipeline))
    }

    /// Sets the pipeline to `Null` on a blocking thread and frees it, giving up after
    /// `limit`. GStreamer 1.22's uridecodebin3 can deadlock when it is stopped while its
    /// source is still being set up; a teardown stuck that way keeps only its own thread
    /// (and the pipeline), not an async worker and whatever awaits it. False if it gave up.
    pub async fn shut_down(mut self, limit: std::time::Duration) -> bool {
        use gstreamer::prelude::ElementExt;
        let Some(pipeline) = self.0.take() else {
            return true;
        };
        // A thread of its own, not the blocking pool: a runtime waits for its blocking
        // tasks when it shuts down, and this one may never end.
        let (done, stopped) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("callfeed-teardown".into())
            .spawn(move || {
                let _ = pipeline.set_state(gstreamer::State::Null);
                release_later(pipeline);
                let _ = done.send(());
            });
        if spawned.is_err() {
            return false;
        }
        match tokio::time::timeout(limit, stopped).await {
            Ok(_) => true,
            Err(_) => {
                tracing::error!(
                    limit_ms = limit.as_millis() as u64,
                    "a pipeline did not stop in time; it is left behind"
                );
                false
            }
        }
    }
}

/// How many of the pipelines callfeed made are still alive (not yet freed). Zero once
/// every stream, observer and output has been stopped: nothing leaked.
pub fn pipelines_alive() -> usize {
    PIPELINES
        .lock()
        .map(|all| all.iter().filter(|w| w.upgrade().is_some()).count())
        .unwrap_or(0)
}

impl std::ops::Deref for NullOnDrop {
    type Target = gstreamer::Pipeline;
    fn deref(&self) -> &gstreamer::Pipeline {
        self.0.as_ref().expect("present until shut down")
    }
}

impl Drop for NullOnDrop {
    fn drop(&mut self) {
        use gstreamer::prelude::ElementExt;
        if let Some(pipeline) = self.0.take() {
            let _ = pipeline.set_state(gstreamer::State::Null);
            release_later(pipeline);
        }
    }
}

/// How long a stopped pipeline is kept before its last reference is dropped.
const RELEASE_AFTER: std::time::Duration = std::time::Duration::from_millis(250);

/// Drops a stopped pipeline's (or a discoverer's) last reference a moment later, on a
/// thread of its own. GStreamer 1.22 lets a streaming thread run its leave callback, which
/// holds a reference to its element, just after `set_state(Null)` joined it: an element
/// freed then is freed on its own streaming thread, which joins itself ("Trying to join
/// task from its thread would deadlock") and can crash the process. Seen with 200 sessions
/// starting at once. What was freed goes back to the system once nothing else waits.
pub(crate) fn release_later(held: impl Send + 'static) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc::{Sender, channel};
    static RELEASER: std::sync::OnceLock<Option<std::sync::Mutex<Sender<Held>>>> =
        std::sync::OnceLock::new();
    static WAITING: AtomicUsize = AtomicUsize::new(0);
    struct Held(Box<dyn Send>, std::time::Instant);
    let releaser = RELEASER.get_or_init(|| {
        let (send, receive) = channel::<Held>();
        std::thread::Builder::new()
            .name("callfeed-release".into())
            .spawn(move || {
                for Held(held, stopped) in receive {
                    std::thread::sleep(RELEASE_AFTER.saturating_sub(stopped.elapsed()));
                    drop(held);
                    if WAITING.fetch_sub(1, Ordering::AcqRel) == 1 {
                        crate::memory::release();
                    }
                }
            })
            .ok()
            .map(|_| std::sync::Mutex::new(send))
    });
    let held = Held(Box::new(held), std::time::Instant::now());
    // Without the thread (it could not be started), the reference is dropped here.
    if let Some(send) = releaser
        && let Ok(send) = send.lock()
    {
        WAITING.fetch_add(1, Ordering::AcqRel);
        if send.send(held).is_err() {
            WAITING.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// An element of `factory` with its defaults; an error names the factory (a plugin missing).
pub(crate) fn element(factory: &str) -> Result<gstreamer::Element, String> {
    gstreamer::ElementFactory::make(factory)
        .build()
        .map_err(|e| format!("{factory}: {e}"))
}

/// A `filesrc` reading `path`, set through the property API: a path is data whatever it
/// contains (quotes, `!`, spaces, newlines), never launch syntax.
pub(crate) fn file_source(path: &std::path::Path) -> Result<gstreamer::Element, String> {
    let location = path
        .to_str()
        .ok_or_else(|| format!("`{}` is not a UTF-8 path", path.display()))?;
    gstreamer::ElementFactory::make("filesrc")
        .property("location", location)
        .build()
        .map_err(|e| e.to_string())
}

/// Parses a launch description that holds no user data and puts `source` in front of its
/// element named `head`.
pub(crate) fn launch_after(
    source: gstreamer::Element,
    description: &str,
    head: &str,
) -> Result<gstreamer::Pipeline, String> {
    use gstreamer::prelude::*;
    let pipeline = gstreamer::parse::launch(description)
        .map_err(|e| e.to_string())?
        .downcast::<gstreamer::Pipeline>()
        .map_err(|_| "not a pipeline".to_owned())?;
    let head = pipeline
        .by_name(head)
        .ok_or_else(|| format!("no element named {head}"))?;
    pipeline.add(&source).map_err(|e| e.to_string())?;
    source.link(&head).map_err(|e| e.to_string())?;
    Ok(pipeline)
}

mod animation;
pub mod announce;
pub mod bounds;
pub mod contract;
pub mod cues;
mod downmix;
mod encoder_delay;
mod flac;
pub mod flv;
mod header;
pub mod hub;
pub mod inlet;
pub mod input;
pub mod inspect;
pub mod live;
pub mod monitor;
pub mod observer;
mod pads;
pub use pads::DecoderThreads;
pub mod passthrough;
pub mod picture;
pub mod plan;
pub mod policy;
pub mod pushed_passthrough;
pub mod recording;
pub mod room_publish;
pub mod rtmp;
mod rtsp;
pub mod sizes;
pub mod speech;
pub mod srt;
pub mod stream;
mod tag_buffer;
pub mod tap;
pub mod topology;
pub mod whip;
