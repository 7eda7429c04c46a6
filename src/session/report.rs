//! What a session shows: its status while it runs, the report it ends with, and the
//! channels that carry them. A leaf the driver, its phases and the service share.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::watch;

use super::state::Outcome;
use crate::media::live::StreamStats;

/// Milliseconds since the session started, per stage.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Timings {
    pub prepared_ms: Option<u64>,
    pub call_started_ms: Option<u64>,
    pub answered_ms: Option<u64>,
    pub ingest_started_ms: Option<u64>,
    pub ended_ms: Option<u64>,
}

/// The session's final report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub session_id: String,
    pub call_id: Option<String>,
    pub task_id: Option<String>,
    #[serde(flatten)]
    pub outcome: Outcome,
    pub mode: &'static str,
    /// Why the media took that path (the plan's reason).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode_reason: Option<String>,
    pub timings: Timings,
    /// What the media did: a live stream's figures, or an announcement's.
    pub media: Option<MediaFigures>,
    pub task_restarts: u32,
    /// The cloud's error code, when the cloud refused something.
    pub error_code: Option<String>,
    pub teardown: Teardown,
    /// What the room's witness saw arrive (with the emulator).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room: Option<super::state::RoomSeen>,
    /// The push to the relay the cloud pulled from, when the session had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay: Option<crate::publish::relay::RelayFigures>,
    /// A start whose answer was lost (a timeout, a dropped connection, a 5xx): the cloud may
    /// have started a `call` or an `ingest_task` the session never heard of. A service
    /// with webhooks stops it when the cloud reports it (see `serve::api::strays`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unconfirmed_start: Option<&'static str>,
    /// Each item queued (by PATCH's queue), with when it started and finished.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub queue: Vec<QueuedItem>,
    /// What the room monitor received of the room, when the session had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitor: Option<super::room_watch::MonitorView>,
}

/// What a session's media did.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum MediaFigures {
    Live(StreamStats),
    Announcement(AnnouncementFigures),
}

/// An announcement the cloud played: how long it is, how often it was to play, and how long
/// the cloud's task was bound.
#[derive(Debug, Clone, Serialize)]
pub struct AnnouncementFigures {
    /// Always `announcement`, so a report reader tells the two kinds apart.
    pub kind: &'static str,
    pub duration_ms: Option<u64>,
    /// `None`: looped until the call ended.
    pub plays: Option<u32>,
    /// From StartStreamIngest to the end of the session.
    pub bound_ms: Option<u64>,
}

impl MediaFigures {
    /// The live stream's figures, if the media was live.
    pub fn live(&self) -> Option<&StreamStats> {
        match self {
            Self::Live(stats) => Some(stats),
            Self::Announcement(_) => None,
        }
    }
}

impl Report {
    /// The live stream's figures, if the media was live.
    pub fn live(&self) -> Option<&StreamStats> {
        self.media.as_ref().and_then(MediaFigures::live)
    }

    /// Where an ended session stands: ended once the cloud confirmed its teardown.
    pub fn phase(&self) -> Phase {
        match self.teardown {
            Teardown::Confirmed => Phase::Ended,
            Teardown::Pending { .. } => Phase::TeardownPending,
        }
    }
}

/// Whether the cloud confirmed the session's task and call gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Teardown {
    Confirmed,
    /// Not yet: the journal keeps the session open and a later run retries.
    Pending {
        reason: String,
    },
}

/// Where a session stands, as the API, the metrics, the console and status lines name it:
/// named here once, so no reader derives it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// A session not yet under way is preparing: named from the start, never `""`.
    #[default]
    Preparing,
    Ringing,
    /// A callee answered; the ingest task is being started.
    Answered,
    Ingesting,
    Ending,
    /// Ended, and the cloud confirmed that what it started is stopped.
    Ended,
    /// Ended, but the cloud has not yet confirmed the teardown: it is retried.
    TeardownPending,
    /// Admitted in a cluster and placed on another node, not yet picked up there.
    Placed,
}

impl Phase {
    /// The name the API and the metrics spell.
    pub fn name(self) -> &'static str {
        match self {
            Self::Preparing => "preparing",
            Self::Ringing => "ringing",
            Self::Answered => "answered",
            Self::Ingesting => "ingesting",
            Self::Ending => "ending",
            Self::Ended => "ended",
            Self::TeardownPending => "teardown_pending",
            Self::Placed => "placed",
        }
    }
}

impl From<&super::state::Phase> for Phase {
    fn from(machine: &super::state::Phase) -> Self {
        use super::state::Phase as Machine;
        match machine {
            Machine::Preparing => Self::Preparing,
            Machine::Ringing => Self::Ringing,
            Machine::Answered => Self::Answered,
            Machine::Ingesting => Self::Ingesting,
            Machine::Ending { .. } => Self::Ending,
            Machine::Ended { .. } => Self::Ended,
        }
    }
}

/// A phase equals its name: readers that know it as a string (tests, status lines) compare
/// as before.
impl PartialEq<&str> for Phase {
    fn eq(&self, name: &&str) -> bool {
        self.name() == *name
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a status line shows while the session runs.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub phase: Phase,
    /// The call and ingest task, once they exist: webhooks find their session by them.
    pub call_id: Option<String>,
    pub task_id: Option<String>,
    pub elapsed_ms: u64,
    pub iteration: u32,
    pub position_ms: u64,
    pub task: Option<&'static str>,
    /// While preparing an announcement: the fraction of its transcode done (0..=1).
    pub prepared: Option<f64>,
    /// The push to a relay, when the session has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay: Option<crate::publish::relay::RelayFigures>,
    /// The plan's name once the media is ready: announcement, passthrough, live or direct.
    pub mode: Option<&'static str>,
    /// The URL the cloud pulls (it carries the stream's own token, never an API secret).
    pub stream_url: Option<String>,
    /// When each phase began, on the session's clock.
    pub timings: Timings,
    /// A live stream's running figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media: Option<crate::media::live::StreamStats>,
    /// The sound's level in percent of the input's own (changed by PATCH).
    pub volume: u32,
    pub paused: bool,
    /// The input playing now, when a change replaced the one the session began with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub switched_to: Option<String>,
    /// Every item queued, in the order it was, with how it went.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub queue: Vec<QueuedItem>,
    /// The room monitor's figures, once it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitor: Option<super::room_watch::MonitorView>,
}

/// A queued item and how it went, on the session's clock.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueuedItem {
    pub id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mark: Option<String>,
    pub media: String,
    pub state: ItemState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<u64>,
    /// When the room was heard to reach it (with the emulator's ear).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heard_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemState {
    Waiting,
    Playing,
    /// Played to its end.
    Played,
    /// Cut while it played (a replace, a clear, a switch, the session's end).
    Cut,
    /// Dropped before it played.
    Dropped,
}

impl Default for Status {
    /// A session not yet under way is preparing: named from the start, never `""`.
    fn default() -> Self {
        Self {
            phase: Phase::Preparing,
            call_id: None,
            task_id: None,
            elapsed_ms: 0,
            iteration: 0,
            position_ms: 0,
            task: None,
            prepared: None,
            relay: None,
            mode: None,
            stream_url: None,
            volume: 100,
            paused: false,
            switched_to: None,
            queue: Vec::new(),
            timings: Timings::default(),
            media: None,
            monitor: None,
        }
    }
}

/// How the outside follows and steers a running session.
pub struct Controls {
    /// Where the session publishes its status line.
    pub status: watch::Sender<Status>,
    /// Set to `true` to ask for a clean early end (Ctrl-C, DELETE).
    pub stop: watch::Receiver<bool>,
    /// Notified when a webhook says something changed: poll the cloud now, not at the tick.
    pub nudge: Arc<tokio::sync::Notify>,
    /// Changes to the running session (volume, pause, another input), when it takes any.
    pub changes: Option<tokio::sync::mpsc::Receiver<super::change::ChangeRequest>>,
}
