//! RTMP push of a live stream to any RTMP server (nginx-rtmp, SRS, Tencent CSS), fed from
//! the stream's [`StreamHub`]: one encode, any number of outputs. When the server goes away
//! the output reconnects with jittered backoff and restarts on a keyframe.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tokio::sync::{broadcast, watch};

use super::hub::StreamHub;

/// What an RTMP output reports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RtmpEvent {
    Connecting {
        attempt: u32,
    },
    /// The server accepted the push (its answer to `publish` came back).
    Publishing,
    /// The push failed; `unreachable` when nothing answers at the server's address at all
    /// (wrong host or port, or the server is down), `refused` when the server answered but
    /// did not take the push (a wrong key or application), as opposed to a push that was lost.
    Lost {
        reason: String,
        attempt: u32,
        unreachable: bool,
        refused: bool,
        retry_in_ms: u64,
    },
    Finished,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("RTMP output {url}: {reason}")]
pub struct RtmpError {
    pub url: String,
    pub reason: String,
}

/// Why a test push did not go through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishCheckError {
    #[error("nothing answers at {0}")]
    Unreachable(String),
    #[error("the server answered but refused the push: {0}")]
    Refused(String),
    #[error("the server did not accept the push within {0} s")]
    NoAnswer(u64),
}

/// A running RTMP push.
pub struct RtmpOutput {
    events: broadcast::Sender<RtmpEvent>,
    /// Bytes the server has taken, over every connection.
    bytes_out: Arc<AtomicU64>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// The URL as logs and errors show it: no credentials, no txSecret.
fn shown(url: &str) -> String {
    crate::redact::redact_url(url)
}

impl RtmpOutput {
    pub fn start(hub: Arc<StreamHub>, url: String) -> Result<Self, RtmpError> {
        super::init().map_err(|e| RtmpError {
            url: shown(&url),
            reason: e.to_string(),
        })?;
        if !(url.starts_with("rtmp://") || url.starts_with("rtmps://")) {
            return Err(RtmpError {
                url: shown(&url),
                reason: "not an rtmp:// or rtmps:// URL".into(),
            });
        }
        let (events, _) = broadcast::channel(64);
        let (stop, stop_rx) = watch::channel(false);
        let bytes_out = Arc::new(AtomicU64::new(0));
        let out = Output {
            url,
            events: events.clone(),
            bytes_out: bytes_out.clone(),
        };
        let task = tokio::spawn(run(hub, out, stop_rx));
        Ok(Self {
            events,
            bytes_out,
            stop,
            task: Some(task),
        })
    }

    pub fn events(&self) -> broadcast::Receiver<RtmpEvent> {
        self.events.subscribe()
    }

    /// Bytes the server has taken so far, over every connection.
    pub fn bytes_out(&self) -> u64 {
        self.bytes_out.load(Ordering::Relaxed)
    }

    /// Waits until the stream has ended and its end was sent.
    pub async fn finished(mut self) {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RtmpOutput {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

enum Session {
    Ended,
    Stopped,
    /// Why, and whether the server had accepted the push before.
    Lost(String, bool),
}

/// What one push reports to, and where.
struct Output {
    url: String,
    events: broadcast::Sender<RtmpEvent>,
    bytes_out: Arc<AtomicU64>,
}

async fn run(hub: Arc<StreamHub>, out: Output, mut stop: watch::Receiver<bool>) {
    let Output { url, events, .. } = &out;
    let backoff = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times();
    let mut delays = backon::BackoffBuilder::build(backoff);
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let _ = events.send(RtmpEvent::Connecting { attempt });
        match session(&hub, &out, &mut stop).await {
            Session::Ended => {
                let _ = events.send(RtmpEvent::Finished);
                return;
            }
            Session::Stopped => return,
            Session::Lost(reason, accepted) => {
                let delay = delays.next().unwrap_or(Duration::from_secs(5));
                let retry_in_ms = delay.as_millis() as u64;
                let unreachable = match unreachable(url).await {
                    Some(cause) => {
                        tracing::warn!(url = %shown(url), %cause, attempt, retry_in_ms,
                            "RTMP server unreachable, retrying");
                        true
                    }
                    None => {
                        tracing::warn!(url = %shown(url), %reason, attempt, retry_in_ms,
                            "RTMP output lost, reconnecting");
                        false
                    }
                };
                let _ = events.send(RtmpEvent::Lost {
                    reason,
                    attempt,
                    unreachable,
                    refused: !accepted && !unreachable,
                    retry_in_ms,
                });
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.changed() => return,
                }
                if hub.is_ended() {
                    return;
                }
            }
        }
    }
}

/// Why nothing answers at the RTMP server's address (`host:port: cause`), or `None` when
/// something does.
async fn unreachable(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let host = parsed.host_str()?.to_owned();
    let port = parsed.port().unwrap_or(if parsed.scheme() == "rtmps" {
        443
    } else {
        1935
    });
    let connect = tokio::net::TcpStream::connect((host.as_str(), port));
    match tokio::time::timeout(Duration::from_secs(3), connect).await {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(format!("{host}:{port}: {e}")),
        Err(_) => Some(format!("{host}:{port}: no answer within 3 s")),
    }
}

/// The tags that arrived together with `first` (so they go down as one buffer list), and
/// whether the stream ended (`Ok(true)`) or this reader fell behind (`Err(n)`).
fn gather(
    first: Result<bytes::Bytes, broadcast::error::RecvError>,
    live: &mut broadcast::Receiver<bytes::Bytes>,
) -> (Vec<bytes::Bytes>, Result<bool, u64>) {
    use broadcast::error::{RecvError, TryRecvError};
    let mut tags = Vec::new();
    let mut next = first;
    // The stream's end is an empty tag.
    let ended = loop {
        match next {
            Ok(tag) if tag.is_empty() => break Ok(true),
            Ok(tag) => tags.push(tag),
            Err(RecvError::Lagged(n)) => break Err(n),
            Err(RecvError::Closed) => break Ok(true),
        }
        next = match live.try_recv() {
            Ok(tag) => Ok(tag),
            Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
            Err(TryRecvError::Closed) => Err(RecvError::Closed),
            Err(TryRecvError::Empty) => break Ok(false),
        };
    };
    (tags, ended)
}

/// The stream a push may hold queued for a relay that does not take it: about 20 s of a
/// 1080p contract stream.
const RELAY_BACKLOG_BYTES: u64 = 8 * 1024 * 1024;

/// An `appsrc ! rtmp2sink` pipeline pushing to `url`, with its two ends.
fn push_pipeline(url: &str) -> Result<(super::NullOnDrop, gst_app::AppSrc, gst::Element), String> {
    let src = gst_app::AppSrc::builder()
        .is_live(true)
        .format(gst::Format::Time)
        .caps(&gst::Caps::builder("video/x-flv").build())
        .block(false)
        .build();
    let sink = gst::ElementFactory::make("rtmp2sink")
        .property("sync", false)
        .property("chunk-size", 4096u32)
        .property("location", url)
        .build()
        .map_err(|e| format!("cannot build the RTMP pipeline: {e}"))?;
    let pipeline = gst::Pipeline::new();
    pipeline
        .add_many([src.upcast_ref(), &sink])
        .and_then(|()| src.link(&sink))
        .map_err(|e| format!("cannot build the RTMP pipeline: {e}"))?;
    Ok((super::NullOnDrop::new(pipeline), src, sink))
}

/// The bytes the server has taken on this connection; non-zero only once it accepted the
/// push (rtmp2sink keeps a connection's figures only after `publish` succeeded).
fn accepted_bytes(sink: &gst::Element) -> u64 {
    sink.property::<Option<gst::Structure>>("stats")
        .and_then(|s| s.get::<u64>("out-bytes-total").ok())
        .unwrap_or(0)
}

/// A test push: connects, publishes and leaves again, without media. Tells a refused key
/// or application (the server answers but drops the push) from a server that is not there,
/// before anything depends on the push.
pub async fn check_publish(url: &str, within: Duration) -> Result<(), PublishCheckError> {
    super::init().map_err(|e| PublishCheckError::Refused(e.to_string()))?;
    let (pipeline, _src, sink) = push_pipeline(url).map_err(PublishCheckError::Refused)?;
    let Some(bus) = pipeline.bus() else {
        return Err(PublishCheckError::Refused("pipeline without a bus".into()));
    };
    let mut messages = bus.stream();
    let failed = |reason: String| async move {
        match unreachable(url).await {
            Some(cause) => PublishCheckError::Unreachable(cause),
            None => PublishCheckError::Refused(reason),
        }
    };
    if pipeline.set_state(gst::State::Playing).is_err() {
        return Err(failed(format!("cannot connect to {}", shown(url))).await);
    }
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let deadline = tokio::time::sleep(within);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => return Err(PublishCheckError::NoAnswer(within.as_secs())),
            _ = tick.tick() => {
                if accepted_bytes(&sink) > 0 {
                    return Ok(());
                }
            }
            msg = messages.next() => {
                if let Some(msg) = msg
                    && let gst::MessageView::Error(e) = msg.view()
                {
                    return Err(failed(e.error().to_string()).await);
                }
            }
        }
    }
}

/// One connection: the hub's preamble (headers + current GOP), then live tags.
async fn session(hub: &StreamHub, out: &Output, stop: &mut watch::Receiver<bool>) -> Session {
    let url = out.url.as_str();
    let (pipeline, src, sink) = match push_pipeline(url) {
        Ok(parts) => parts,
        Err(reason) => return Session::Lost(reason, false),
    };
    let Some(bus) = pipeline.bus() else {
        return Session::Lost("pipeline without a bus".into(), false);
    };
    let mut messages = bus.stream();
    let sub = hub.subscribe();
    let mut live = sub.live;
    // Tags that arrived together go down as one buffer list: the appsrc thread and
    // rtmp2sink wake once for them, not once per tag. A relay that stops taking the stream
    // (its socket full) loses the connection rather than have it queue here without end;
    // the push reconnects.
    let push = |tags: Vec<bytes::Bytes>| -> bool {
        if src.current_level_bytes() >= RELAY_BACKLOG_BYTES {
            return false;
        }
        let mut list = gst::BufferList::new_sized(tags.len());
        {
            let list = list.get_mut().expect("new list");
            for tag in tags {
                let ts = super::flv::tag_timestamp(&tag);
                let mut buffer = gst::Buffer::from_slice(tag);
                if let Some(ms) = ts {
                    buffer
                        .get_mut()
                        .expect("new buffer")
                        .set_pts(gst::ClockTime::from_mseconds(u64::from(ms)));
                }
                list.add(buffer);
            }
        }
        src.push_buffer_list(list).is_ok()
    };
    if pipeline.set_state(gst::State::Playing).is_err() {
        return Session::Lost(format!("cannot connect to {}", shown(url)), false);
    }
    if !sub.preamble.is_empty() {
        push(sub.preamble);
    }
    // What earlier connections delivered; this one's figures are added on top.
    let before = out.bytes_out.load(Ordering::Relaxed);
    let mut accepted = false;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let count = |accepted: &mut bool| {
        let bytes = accepted_bytes(&sink);
        if bytes > 0 {
            out.bytes_out.store(before + bytes, Ordering::Relaxed);
            if !*accepted {
                *accepted = true;
                let _ = out.events.send(RtmpEvent::Publishing);
            }
        }
    };
    let outcome = loop {
        tokio::select! {
            _ = stop.changed() => break Session::Stopped,
            _ = tick.tick() => count(&mut accepted),
            tag = live.recv() => {
                let (tags, ended) = gather(tag, &mut live);
                if !tags.is_empty() && !push(tags) {
                    break Session::Lost("the relay does not take the stream as fast as it comes".into(), accepted);
                }
                match ended {
                    Ok(false) => {}
                    Ok(true) => {
                        let _ = src.end_of_stream();
                        // Let rtmp2sink send what it has and close cleanly.
                        let _ = tokio::time::timeout(Duration::from_secs(3), async {
                            while let Some(m) = messages.next().await {
                                if matches!(m.view(), gst::MessageView::Eos(_) | gst::MessageView::Error(_)) {
                                    break;
                                }
                            }
                        }).await;
                        count(&mut accepted);
                        break Session::Ended;
                    }
                    Err(n) => break Session::Lost(format!("fell {n} tags behind the encoder"), accepted),
                }
            }
            msg = messages.next() => {
                if let Some(msg) = msg
                    && let gst::MessageView::Error(e) = msg.view()
                {
                    break Session::Lost(e.error().to_string(), accepted);
                }
            }
        }
    };
    let _ = pipeline.set_state(gst::State::Null);
    outcome
}
