//! Room monitors' doors on the RTMP server: the cloud publishes what a session's room carries
//! (StartPublishCdnStream) to `rtmp://HOST:PORT/live/mon-KEY`, a key per session, and what it
//! pushes goes to that session's monitor. Not feeds: nobody lists them, nothing is encoded,
//! and a door closes with its session.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::watch;

use crate::media::inlet::{Container, Inlet, InletWriter};

/// What sets a monitor's stream key apart from a feed's.
const PREFIX: &str = "mon-";

type Doors = Arc<Mutex<HashMap<String, (Inlet, watch::Sender<bool>)>>>;

/// The open doors, by stream key.
#[derive(Default)]
pub(super) struct MonitorDoors(Doors);

/// A session's door: where the cloud publishes to, and what arrives. Dropping it closes the
/// door and drops whoever publishes through it.
pub struct MonitorDoor {
    /// The URL to give StartPublishCdnStream; its key is a secret.
    pub url: SecretString,
    pub inlet: Inlet,
    key: String,
    doors: Doors,
}

impl std::fmt::Debug for MonitorDoor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonitorDoor").finish_non_exhaustive()
    }
}

impl Drop for MonitorDoor {
    fn drop(&mut self) {
        if let Some((_, closed)) = self.doors.lock().remove(&self.key) {
            let _ = closed.send(true);
        }
    }
}

/// A publisher let in through a monitor's door.
pub(crate) struct MonitorSeat {
    writer: InletWriter,
    closed: watch::Receiver<bool>,
}

impl MonitorSeat {
    pub(crate) fn send(&mut self, kind: u8, timestamp_ms: u32, body: &[u8]) -> Result<(), String> {
        self.writer
            .send(kind, timestamp_ms, body)
            .map_err(|e| e.to_string())
    }

    /// Resolves when the session closes its door or stops taking what is sent.
    pub(crate) async fn kicked(&mut self) -> &'static str {
        tokio::select! {
            _ = self.closed.wait_for(|c| *c) => "the session's monitor closed",
            _ = self.writer.closed() => "the session's monitor stopped taking the stream",
        }
    }
}

impl MonitorDoors {
    /// A new door under `base` (`rtmp://HOST:PORT/live`).
    pub(super) fn open(&self, base: &str) -> MonitorDoor {
        let key = format!("{PREFIX}{}", super::secret::stream_key().expose_secret());
        let inlet = Inlet::new();
        let (closed, _) = watch::channel(false);
        self.0.lock().insert(key.clone(), (inlet.clone(), closed));
        MonitorDoor {
            url: SecretString::from(format!("{base}/{key}")),
            inlet,
            key,
            doors: self.0.clone(),
        }
    }

    /// Whether `key` is a monitor's rather than a feed's.
    pub(super) fn is_monitor_key(key: &str) -> bool {
        key.starts_with(PREFIX)
    }

    /// Lets a publisher in through the door `key` opens, if one does. Keys are compared as
    /// map lookups of 128-bit random strings: a wrong guess learns nothing but "no".
    pub(super) fn claim(&self, key: &str) -> Option<MonitorSeat> {
        let doors = self.0.lock();
        let (inlet, closed) = doors.get(key)?;
        let writer = inlet.connect(Container::Flv).ok()?;
        Some(MonitorSeat {
            writer,
            closed: closed.subscribe(),
        })
    }
}
