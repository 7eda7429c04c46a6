//! How the session driver works, beyond a session's own spec: polling, teardown limits,
//! where streams are published, and what watches the room. A leaf the driver and the
//! session's phases share.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::PollBudget;
use crate::publish::Publisher;

/// How the driver works, beyond the session's own spec.
#[derive(Clone)]
pub struct DriverSettings {
    pub poll_call: Duration,
    /// How often a ringing call is polled: an answer is noticed this soon (the ingest is
    /// bound at the answer, so every millisecond here is heard as silence).
    pub poll_ringing: Duration,
    pub poll_task: Duration,
    pub teardown_timeout: Duration,
    /// Where the session's stream is published for the cloud to pull.
    pub publisher: Arc<dyn Publisher>,
    pub cache_dir: PathBuf,
    /// How long an unconfirmed teardown is retried before the session returns with it
    /// pending (the journal keeps it for the next run); `None` retries until the cloud
    /// confirms.
    pub teardown_retry_for: Option<Duration>,
    /// The cloud's request rates, shared by every session of this process.
    pub poll_budget: Arc<PollBudget>,
    /// Asked, with a session's CallId, what reached its room: only the emulator knows.
    pub room_witness: Option<RoomWitness>,
    /// How large an input may be (`--max-input-scale`); a larger one is refused at probe.
    pub input_bounds: crate::media::bounds::InputBounds,
    /// The node's feeds, which sessions on `feed:ID` take their stream from (and whose RTMP
    /// server takes the room monitors' pushes).
    pub feeds: Option<crate::feed::Feeds>,
    /// Where room monitors' recordings go (`--record-dir`), when sessions may ask for them.
    pub record: Option<RecordSettings>,
}

/// Where recordings are written, and how long one file lasts.
#[derive(Debug, Clone)]
pub struct RecordSettings {
    /// One folder per session under it.
    pub dir: PathBuf,
    pub segment: Duration,
}

/// A recording's file is cut after this long by default.
pub const DEFAULT_RECORD_SEGMENT: Duration = Duration::from_secs(3600);

/// What reached a call's room, by its CallId (`None`: not known).
pub type RoomWitness = Arc<dyn Fn(&str) -> Option<super::state::RoomSeen> + Send + Sync>;

impl DriverSettings {
    /// The defaults, publishing through `publisher`.
    pub fn new(publisher: Arc<dyn Publisher>) -> Self {
        Self {
            poll_call: Duration::from_millis(500),
            poll_ringing: Duration::from_millis(50),
            poll_task: Duration::from_secs(1),
            teardown_timeout: Duration::from_secs(5),
            publisher,
            cache_dir: crate::media::announce::default_cache_dir(),
            teardown_retry_for: Some(Duration::from_secs(30)),
            poll_budget: Arc::new(PollBudget::default()),
            room_witness: None,
            input_bounds: Default::default(),
            feeds: None,
            record: None,
        }
    }
}

impl std::fmt::Debug for DriverSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriverSettings")
            .field("poll_call", &self.poll_call)
            .field("poll_task", &self.poll_task)
            .field("teardown_timeout", &self.teardown_timeout)
            .field("publisher", &self.publisher.public_base())
            .field("cache_dir", &self.cache_dir)
            .field("teardown_retry_for", &self.teardown_retry_for)
            .finish_non_exhaustive()
    }
}
