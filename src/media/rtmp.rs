//! RTMP push of a live stream to any RTMP server (nginx-rtmp, SRS, Tencent CSS), fed from
//! the stream's [`StreamHub`]: one encode, any number of outputs. When the server goes away
//! the output reconnects with jittered backoff and restarts on a keyframe.

use std::sync::Arc;
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
    Publishing,
    /// The push failed; `unreachable` when nothing answers at the server's address at all
    /// (wrong host or port, or the server is down), as opposed to a push that was lost.
    Lost {
        reason: String,
        attempt: u32,
        unreachable: bool,
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

/// A running RTMP push.
pub struct RtmpOutput {
    events: broadcast::Sender<RtmpEvent>,
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
        let task = tokio::spawn(run(hub, url, events.clone(), stop_rx));
        Ok(Self {
            events,
            stop,
            task: Some(task),
        })
    }

    pub fn events(&self) -> broadcast::Receiver<RtmpEvent> {
        self.events.subscribe()
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
    Lost(String),
}

async fn run(
    hub: Arc<StreamHub>,
    url: String,
    events: broadcast::Sender<RtmpEvent>,
    mut stop: watch::Receiver<bool>,
) {
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
        match session(&hub, &url, &events, &mut stop).await {
            Session::Ended => {
                let _ = events.send(RtmpEvent::Finished);
                return;
            }
            Session::Stopped => return,
            Session::Lost(reason) => {
                let delay = delays.next().unwrap_or(Duration::from_secs(5));
                let retry_in_ms = delay.as_millis() as u64;
                let unreachable = match unreachable(&url).await {
                    Some(cause) => {
                        tracing::warn!(url = %shown(&url), %cause, attempt, retry_in_ms,
                            "RTMP server unreachable, retrying");
                        true
                    }
                    None => {
                        tracing::warn!(url = %shown(&url), %reason, attempt, retry_in_ms,
                            "RTMP output lost, reconnecting");
                        false
                    }
                };
                let _ = events.send(RtmpEvent::Lost {
                    reason,
                    attempt,
                    unreachable,
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

/// One connection: the hub's preamble (headers + current GOP), then live tags.
async fn session(
    hub: &StreamHub,
    url: &str,
    events: &broadcast::Sender<RtmpEvent>,
    stop: &mut watch::Receiver<bool>,
) -> Session {
    let description =
        "appsrc name=src is-live=true format=time ! rtmp2sink name=sink sync=false chunk-size=4096";
    let pipeline = match gst::parse::launch(description)
        .ok()
        .and_then(|p| p.downcast::<gst::Pipeline>().ok())
    {
        Some(p) => super::NullOnDrop::new(p),
        None => return Session::Lost("cannot build the RTMP pipeline".into()),
    };
    let (Some(src), Some(sink)) = (
        pipeline
            .by_name("src")
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok()),
        pipeline.by_name("sink"),
    ) else {
        return Session::Lost("RTMP pipeline without its elements".into());
    };
    sink.set_property("location", url);
    src.set_caps(Some(&gst::Caps::builder("video/x-flv").build()));
    src.set_property("block", false);
    let Some(bus) = pipeline.bus() else {
        return Session::Lost("pipeline without a bus".into());
    };
    let mut messages = bus.stream();
    let sub = hub.subscribe();
    let mut live = sub.live;
    // Tags that arrived together go down as one buffer list: the appsrc thread and
    // rtmp2sink wake once for them, not once per tag.
    let push = |tags: Vec<bytes::Bytes>| -> bool {
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
        let _ = pipeline.set_state(gst::State::Null);
        return Session::Lost(format!("cannot connect to {}", shown(url)));
    }
    if !sub.preamble.is_empty() {
        push(sub.preamble);
    }
    let mut announced = false;
    let outcome = loop {
        tokio::select! {
            _ = stop.changed() => break Session::Stopped,
            tag = live.recv() => {
                let (tags, ended) = gather(tag, &mut live);
                if !tags.is_empty() {
                    if !push(tags) {
                        break Session::Lost("the RTMP pipeline refused data".into());
                    }
                    if !announced {
                        announced = true;
                        let _ = events.send(RtmpEvent::Publishing);
                    }
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
                        break Session::Ended;
                    }
                    Err(n) => break Session::Lost(format!("fell {n} tags behind the encoder")),
                }
            }
            msg = messages.next() => {
                if let Some(msg) = msg
                    && let gst::MessageView::Error(e) = msg.view()
                {
                    break Session::Lost(e.error().to_string());
                }
            }
        }
    };
    let _ = pipeline.set_state(gst::State::Null);
    outcome
}
