//! A session's room monitor: what the cloud publishes of the room (StartPublishCdnStream, to
//! the session's door on the RTMP server) decoded by the same observer the emulator's room
//! uses, so the figures read alike: audio ms, frames, size, fps, level, tone, gaps.
//!
//! Each connection the cloud makes is one observation; the figures add up across them, and
//! the link says whether the room is being received now.

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::MediaInitError;
use super::inlet::{Connection, Inlet};
use super::observer::{MediaTally, ObserveSpec, ObservedMedia, Observer, Pace, PushedConnection};
use super::recording::Recording;

/// Whether the room's publish reaches the monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MonitorLink {
    /// The cloud has not connected yet.
    Waiting,
    Receiving,
    /// It was connected, and is no more.
    Lost,
}

/// A running monitor; dropping it stops observing.
pub struct RoomMonitor {
    tally: MediaTally,
    started: Instant,
    link: watch::Receiver<(MonitorLink, u32)>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RoomMonitor {
    /// Observes what publishers push into `inlet` (and records it, when asked); figures
    /// count from now.
    pub fn start(inlet: Inlet, recording: Option<Recording>) -> Result<Self, MediaInitError> {
        super::init()?;
        let started = Instant::now();
        let tally = MediaTally::new(started);
        let (stop, stop_rx) = watch::channel(false);
        let (link_tx, link) = watch::channel((MonitorLink::Waiting, 0));
        let task = tokio::spawn(watch_room(
            inlet,
            recording,
            tally.clone(),
            stop_rx,
            link_tx,
        ));
        Ok(Self {
            tally,
            started,
            link,
            stop,
            task: Some(task),
        })
    }

    /// Now, on the figures' clock (`first_media_ms` and the like count from the start).
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub fn figures(&self) -> ObservedMedia {
        self.tally.snapshot()
    }

    /// The link now, and how many connections the cloud made.
    pub fn link(&self) -> (MonitorLink, u32) {
        *self.link.borrow()
    }

    pub async fn stop(mut self) -> ObservedMedia {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        self.tally.snapshot()
    }
}

impl Drop for RoomMonitor {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn watch_room(
    inlet: Inlet,
    recording: Option<Recording>,
    tally: MediaTally,
    mut stop: watch::Receiver<bool>,
    link: watch::Sender<(MonitorLink, u32)>,
) {
    let mut connections = 0u32;
    loop {
        let connection = tokio::select! {
            c = inlet.accept() => c,
            _ = stopped(&mut stop) => return,
        };
        let Some(connection) = connection else {
            return;
        };
        connections += 1;
        let _ = link.send((MonitorLink::Receiving, connections));
        let (connection, recorder) = match &recording {
            Some(r) => {
                let (observed, carried) = record_as_well(r, connections, connection, stop.clone());
                (observed, Some(carried))
            }
            None => (connection, None),
        };
        let mut spec = ObserveSpec::new("rtmp push", Pace::Realtime, Some(1));
        spec.pushed = Some(PushedConnection::new(connection));
        // The push ends when the cloud stops; the RTMP server drops a silent one.
        spec.first_media_timeout = Duration::from_secs(30);
        spec.stall_timeout = Duration::from_secs(3600);
        let (events, _) = mpsc::unbounded_channel();
        let mut observer = match Observer::start(spec, tally.clone(), events) {
            Ok(o) => o,
            Err(e) => {
                tally.record_error(e.to_string());
                return;
            }
        };
        tokio::select! {
            exit = observer.wait() => {
                tracing::info!(?exit, "room monitor: the cloud's push ended");
            }
            _ = stopped(&mut stop) => {
                observer.stop().await;
                if let Some(r) = recorder {
                    let _ = r.await;
                }
                return;
            }
        }
        if let Some(r) = recorder {
            let _ = r.await;
        }
        let _ = link.send((MonitorLink::Lost, connections));
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Tees a connection: what it carries goes to the recorder too. The observer reads the
/// returned connection; the task ends (the recorder's file finished) when the connection
/// does or the monitor stops.
fn record_as_well(
    recording: &Recording,
    n: u32,
    mut connection: Connection,
    mut stop: watch::Receiver<bool>,
) -> (Connection, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(crate::media::inlet::TAG_QUEUE);
    let observed = Connection {
        tags: rx,
        container: connection.container,
    };
    let mut recorder = recording.connection(n);
    let carried = tokio::spawn(async move {
        loop {
            let tag = tokio::select! {
                tag = connection.tags.recv() => tag,
                _ = stopped(&mut stop) => None,
            };
            let Some(tag) = tag else { break };
            if let Some(r) = recorder.as_mut() {
                r.feed(&tag);
            }
            // The observer gone is no reason to stop recording.
            let _ = tx.try_send(tag);
        }
        drop(tx);
        if let Some(r) = recorder {
            r.finish().await;
        }
    });
    (observed, carried)
}
