//! Recording what a room monitor receives: the cloud's push remuxed as it comes (H.264 and
//! AAC, nothing decoded or encoded) into MP4 (or, sound only, M4A) segments by
//! `splitmuxsink`.
//!
//! ```text
//! FLV tags ─ appsrc ! flvdemux ─┬─ aacparse ! queue ─┐
//!                               └─ h264parse ! queue ─┴─ splitmuxsink (mp4mux)
//! ```
//!
//! A segment is written as `NAME.part` and takes its name only once closed: whatever ends the
//! recording (the session's end, the cloud's push ending, an error) a named file is a whole
//! one, and a `.part` left by a crash is removed by [`sweep`]. A recording that cannot be
//! written (a full disk) stops with its reason; the monitor and the call go on.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::StreamExt;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tokio::sync::mpsc;

use super::{NullOnDrop, element};

/// What a segment is written as until it is closed.
const UNFINISHED: &str = ".part";
/// Tags queued for the recorder at most; a recorder that falls this far behind stops.
const QUEUED_TAGS: usize = 1000;
/// How long a segment's finishing may take.
const FINISH_WITHIN: Duration = Duration::from_secs(10);

/// What a recording keeps, and where.
#[derive(Debug, Clone)]
pub struct RecordSpec {
    /// The session's own folder for it (made when the first segment opens).
    pub dir: PathBuf,
    pub audio_only: bool,
    /// A new file after this long.
    pub segment: Duration,
}

impl RecordSpec {
    fn extension(&self) -> &'static str {
        if self.audio_only { "m4a" } else { "mp4" }
    }
}

/// How a recording stands, shared by its connections' recorders.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RecordingView {
    /// The finished files, in order, their names within the recording's folder.
    pub files: Vec<String>,
    pub bytes: u64,
    /// Why it stopped early, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

/// A recording over a session's connections; clones share it.
#[derive(Clone)]
pub struct Recording {
    spec: Arc<RecordSpec>,
    state: Arc<Mutex<RecordingView>>,
}

impl std::fmt::Debug for Recording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recording")
            .field("dir", &self.spec.dir)
            .finish_non_exhaustive()
    }
}

impl Recording {
    pub fn new(spec: RecordSpec) -> Self {
        Self {
            spec: Arc::new(spec),
            state: Arc::default(),
        }
    }

    pub fn view(&self) -> RecordingView {
        self.state.lock().expect("recording lock").clone()
    }

    pub fn dir(&self) -> &Path {
        &self.spec.dir
    }

    fn stop_with(&self, why: String) {
        let mut state = self.state.lock().expect("recording lock");
        if state.stopped.is_none() {
            tracing::warn!(dir = %self.spec.dir.display(), reason = %why, "recording stopped");
            state.stopped = Some(why);
        }
    }

    fn stopped(&self) -> bool {
        self.state.lock().expect("recording lock").stopped.is_some()
    }

    /// Records connection number `n`: the tags it is fed, until the sender is dropped.
    pub(crate) fn connection(&self, n: u32) -> Option<ConnectionRecorder> {
        if self.stopped() {
            return None;
        }
        // Calls are private: the session's folder is the service user's alone.
        let made = std::os::unix::fs::DirBuilderExt::mode(
            std::fs::DirBuilder::new().recursive(true),
            0o700,
        )
        .create(&self.spec.dir);
        if let Err(e) = made {
            self.stop_with(format!("cannot make {}: {e}", self.spec.dir.display()));
            return None;
        }
        let (tags, queued) = mpsc::channel(QUEUED_TAGS);
        let task = tokio::spawn(record(self.clone(), n, queued));
        Some(ConnectionRecorder {
            tags: Some(tags),
            task: Some(task),
            recording: self.clone(),
        })
    }

    fn closed(&self, location: &str) {
        let Some(done) = location.strip_suffix(UNFINISHED) else {
            return;
        };
        match std::fs::rename(location, done) {
            Ok(()) => {
                let bytes = std::fs::metadata(done).map_or(0, |m| m.len());
                let name = Path::new(done)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let mut state = self.state.lock().expect("recording lock");
                state.files.push(name);
                state.bytes += bytes;
            }
            Err(e) => self.stop_with(format!("cannot finish {done}: {e}")),
        }
    }
}

/// One connection's recorder: feed it the connection's FLV bytes, then finish it.
pub(crate) struct ConnectionRecorder {
    tags: Option<mpsc::Sender<Bytes>>,
    task: Option<tokio::task::JoinHandle<()>>,
    recording: Recording,
}

impl ConnectionRecorder {
    /// Hands it what the connection carried; a recorder that falls behind stops.
    pub(crate) fn feed(&mut self, bytes: &Bytes) {
        let Some(tags) = &self.tags else { return };
        if let Err(e) = tags.try_send(bytes.clone()) {
            if matches!(e, mpsc::error::TrySendError::Full(_)) {
                self.recording
                    .stop_with("the recording fell behind the stream (a slow disk?)".into());
            }
            self.tags = None;
        }
    }

    /// Ends the connection's file cleanly and waits for it.
    pub(crate) async fn finish(mut self) {
        self.tags = None;
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(FINISH_WITHIN + Duration::from_secs(1), task).await;
        }
    }
}

async fn record(recording: Recording, n: u32, mut tags: mpsc::Receiver<Bytes>) {
    let (pipeline, src) = match build(&recording, n) {
        Ok(built) => built,
        Err(e) => {
            recording.stop_with(format!("the recorder could not be built: {e}"));
            return;
        }
    };
    let Some(bus) = pipeline.bus() else { return };
    let mut messages = bus.stream();
    if let Err(e) = pipeline.set_state(gst::State::Playing) {
        recording.stop_with(format!("the recorder could not start: {e}"));
        pipeline.shut_down(FINISH_WITHIN).await;
        return;
    }
    let mut ended = false;
    loop {
        tokio::select! {
            tag = tags.recv(), if !ended => match tag {
                Some(bytes) => {
                    if src.push_buffer(gst::Buffer::from_slice(bytes)).is_err() {
                        ended = true;
                        let _ = src.end_of_stream();
                    }
                }
                None => {
                    ended = true;
                    let _ = src.end_of_stream();
                }
            },
            msg = messages.next() => match msg {
                None => break,
                Some(msg) => if !on_message(&recording, &msg) { break },
            },
            _ = tokio::time::sleep(FINISH_WITHIN), if ended => {
                recording.stop_with("the last segment did not finish in time".into());
                break;
            }
        }
    }
    pipeline.shut_down(FINISH_WITHIN).await;
    remove_unfinished(recording.dir(), &format!("part-{n:03}-"));
}

/// Follows the recorder's bus; false once it is over.
fn on_message(recording: &Recording, msg: &gst::Message) -> bool {
    match msg.view() {
        gst::MessageView::Eos(_) => false,
        gst::MessageView::Error(e) => {
            recording.stop_with(format!("the recording could not be written: {}", e.error()));
            false
        }
        gst::MessageView::Element(e) => {
            if let Some(s) = e.structure()
                && s.name() == "splitmuxsink-fragment-closed"
                && let Ok(location) = s.get::<String>("location")
            {
                recording.closed(&location);
            }
            true
        }
        _ => true,
    }
}

fn build(recording: &Recording, n: u32) -> Result<(NullOnDrop, gst_app::AppSrc), String> {
    let spec = &recording.spec;
    let pipeline = gst::Pipeline::new();
    let src = gst_app::AppSrc::builder()
        .caps(&gst::Caps::builder("video/x-flv").build())
        .format(gst::Format::Bytes)
        .max_bytes(8 * 1024 * 1024)
        .block(false)
        .build();
    let demux = element("flvdemux")?;
    let location = spec
        .dir
        .join(format!("part-{n:03}-%03d.{}{UNFINISHED}", spec.extension()));
    let sink = gst::ElementFactory::make("splitmuxsink")
        .property("location", location.to_string_lossy().as_ref())
        .property("max-size-time", spec.segment.as_nanos() as u64)
        .build()
        .map_err(|e| format!("splitmuxsink: {e}"))?;
    pipeline
        .add_many([src.upcast_ref(), &demux, &sink])
        .map_err(|e| e.to_string())?;
    src.link(&demux).map_err(|e| e.to_string())?;
    let pipeline_weak = pipeline.downgrade();
    let sink_weak = sink.downgrade();
    let audio_only = spec.audio_only;
    demux.connect_pad_added(move |_, pad| {
        let (Some(pipeline), Some(sink)) = (pipeline_weak.upgrade(), sink_weak.upgrade()) else {
            return;
        };
        if let Err(e) = link_stream(&pipeline, &sink, pad, audio_only) {
            tracing::warn!(error = %e, "recording: a stream could not be linked");
        }
    });
    Ok((NullOnDrop::new(pipeline), src))
}

/// A demuxed stream into the segments: parsed and queued, or dropped when not kept.
fn link_stream(
    pipeline: &gst::Pipeline,
    sink: &gst::Element,
    pad: &gst::Pad,
    audio_only: bool,
) -> Result<(), String> {
    let name = pad.name();
    let (parser, request) = match name.as_str() {
        "audio" => ("aacparse", "audio_%u"),
        "video" if !audio_only => ("h264parse", "video"),
        _ => {
            let drop = element("fakesink")?;
            pipeline.add(&drop).map_err(|e| e.to_string())?;
            drop.sync_state_with_parent().map_err(|e| e.to_string())?;
            let sink_pad = drop.static_pad("sink").ok_or("fakesink without input")?;
            return pad
                .link(&sink_pad)
                .map(drop_ok)
                .map_err(|e| format!("{e:?}"));
        }
    };
    let parse = element(parser)?;
    let queue = element("queue")?;
    pipeline
        .add_many([&parse, &queue])
        .map_err(|e| e.to_string())?;
    parse.link(&queue).map_err(|e| e.to_string())?;
    let target = sink
        .request_pad_simple(request)
        .ok_or_else(|| format!("splitmuxsink gives no {request} pad"))?;
    queue
        .static_pad("src")
        .ok_or("queue without output")?
        .link(&target)
        .map_err(|e| format!("{e:?}"))?;
    for e in [&parse, &queue] {
        e.sync_state_with_parent().map_err(|e| e.to_string())?;
    }
    let parse_in = parse.static_pad("sink").ok_or("parser without input")?;
    pad.link(&parse_in)
        .map(drop_ok)
        .map_err(|e| format!("{e:?}"))
}

fn drop_ok(_: gst::PadLinkSuccess) {}

/// Removes the segments named `prefix…` a recorder never finished (a failed write) in `dir`.
fn remove_unfinished(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(prefix) && name.ends_with(UNFINISHED) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// What the sweep of a recordings folder did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub unfinished: usize,
    pub expired: usize,
}

/// Cleans `root` (the recordings folder, one folder per session): segments left unfinished
/// by a crash, and recordings older than `keep`, go.
pub fn sweep(root: &Path, keep: Duration) -> Swept {
    let mut swept = Swept::default();
    let Ok(sessions) = std::fs::read_dir(root) else {
        return swept;
    };
    let now = SystemTime::now();
    for session in sessions.flatten() {
        let path = session.path();
        // Never follow a link out of the folder.
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.is_dir() {
            continue;
        }
        let Ok(files) = std::fs::read_dir(&path) else {
            continue;
        };
        let mut left = 0;
        for file in files.flatten() {
            let name = file.file_name().to_string_lossy().into_owned();
            let old = file
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).unwrap_or_default() > keep);
            if name.ends_with(UNFINISHED) {
                swept.unfinished += usize::from(std::fs::remove_file(file.path()).is_ok());
            } else if old {
                swept.expired += usize::from(std::fs::remove_file(file.path()).is_ok());
            } else {
                left += 1;
            }
        }
        if left == 0 {
            let _ = std::fs::remove_dir(&path);
        }
    }
    swept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_removes_what_a_crash_left_and_what_is_too_old_and_follows_no_link() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let kept = outside.path().join("kept.mp4");
        std::fs::write(&kept, b"x").unwrap();
        let session = root.path().join("s1");
        std::fs::create_dir(&session).unwrap();
        std::fs::write(session.join("part-001-000.mp4"), b"whole").unwrap();
        std::fs::write(session.join("part-002-000.mp4.part"), b"cut").unwrap();
        let old = session.join("part-000-000.mp4");
        std::fs::write(&old, b"old").unwrap();
        let week_ago = SystemTime::now() - Duration::from_secs(8 * 86_400);
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(week_ago)
            .unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("link")).unwrap();
        let swept = sweep(root.path(), Duration::from_secs(7 * 86_400));
        assert_eq!(
            swept,
            Swept {
                unfinished: 1,
                expired: 1
            }
        );
        assert!(session.join("part-001-000.mp4").exists());
        assert!(kept.exists(), "a link out of the folder is not followed");
    }
}
