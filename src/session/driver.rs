//! One task per session: prepares the media, rings, binds the stream into the room, watches
//! every stage, and tears everything down together. It owns the session's state machine and
//! feeds it what the cloud and the media engine report.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use super::run::SessionRun;
use super::state::{Outcome, Stage};
use super::teardown::CloudLeftovers;
use super::{CloudOps, PollBudget, SessionSpec};
use crate::media::live::StreamStats;
use crate::media::topology::Topologies;
use crate::publish::Publisher;
use crate::store::{SessionStore, Store};

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
}

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
    pub relay: Option<super::relay::RelayFigures>,
    /// A start whose answer was lost (a timeout, a dropped connection, a 5xx): the cloud may
    /// have started a `call` or an `ingest_task` the session never heard of. A service
    /// with webhooks stops it when the cloud reports it (see `serve::api::strays`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unconfirmed_start: Option<&'static str>,
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

/// What a status line shows while the session runs.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub phase: String,
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
    pub relay: Option<super::relay::RelayFigures>,
    /// The plan's name once the media is ready: announcement, passthrough, live or direct.
    pub mode: Option<&'static str>,
    /// The URL the cloud pulls (it carries the stream's own token, never an API secret).
    pub stream_url: Option<String>,
    /// When each phase began, on the session's clock.
    pub timings: Timings,
    /// A live stream's running figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media: Option<crate::media::live::StreamStats>,
}

impl Default for Status {
    /// A session not yet under way is preparing: named from the start, never `""`.
    fn default() -> Self {
        Self {
            phase: "preparing".into(),
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
            timings: Timings::default(),
            media: None,
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
}

/// Runs one session to its end. A panic inside it is caught: what the journal says the
/// session started is still stopped, and the report says it failed.
pub async fn run<C: CloudOps>(
    session_id: String,
    spec: SessionSpec,
    cloud: &C,
    journal: Option<Arc<Store>>,
    settings: DriverSettings,
    topologies: Topologies,
    controls: Controls,
) -> Report {
    use futures::FutureExt;
    let status = controls.status.clone();
    // What the session started, shared so a panic still knows what to stop.
    let leftovers = Arc::new(std::sync::Mutex::new(CloudLeftovers::default()));
    let run = SessionRun::new(
        session_id.clone(),
        spec,
        cloud,
        journal.clone(),
        settings.clone(),
        controls,
        leftovers.clone(),
    );
    let report = match std::panic::AssertUnwindSafe(run.run(topologies))
        .catch_unwind()
        .await
    {
        Ok(report) => report,
        Err(panic) => {
            let reason = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_owned());
            tracing::error!(session = %session_id, %reason, "session task panicked; tearing down");
            let known = leftovers.lock().map(|l| l.clone()).unwrap_or_default();
            after_panic(
                session_id.clone(),
                known,
                cloud,
                journal,
                &settings,
                &status,
                reason,
            )
            .await
        }
    };
    if report.teardown == Teardown::Confirmed {
        status.send_modify(|s| s.phase = "ended".into());
    }
    // Its pipelines are gone: what they used goes back to the system, not to the next peak.
    crate::memory::release();
    let reason = match &report.outcome {
        Outcome::Failed { stage, reason } => format!("{}: {reason}", stage.name()),
        _ => String::new(),
    };
    tracing::info!(
        session = %session_id,
        outcome = report.outcome.name(),
        %reason,
        ended_ms = report.timings.ended_ms,
        "session ended"
    );
    report
}

/// The session's task died: stop what the journal says it started.
async fn after_panic<C: CloudOps>(
    session_id: String,
    known: CloudLeftovers,
    cloud: &C,
    journal: Option<Arc<Store>>,
    settings: &DriverSettings,
    status: &watch::Sender<Status>,
    reason: String,
) -> Report {
    let open = match &journal {
        Some(j) => j.open_session(&session_id).await.ok().flatten(),
        None => None,
    };
    // What the run knew, else what the journal recorded.
    let mut leftovers = CloudLeftovers {
        task_id: known
            .task_id
            .or_else(|| open.as_ref().and_then(|o| o.task_id.clone())),
        call_id: known
            .call_id
            .or_else(|| open.as_ref().and_then(|o| o.call_id.clone())),
    };
    let (call_id, task_id) = (leftovers.call_id.clone(), leftovers.task_id.clone());
    let outcome = Outcome::Failed {
        stage: Stage::Teardown,
        reason: format!("internal error: {reason}"),
    };
    let teardown = confirm_teardown(
        &mut leftovers,
        cloud,
        settings,
        status,
        journal.as_ref().map(|j| (j, session_id.as_str(), &outcome)),
    )
    .await;
    Report {
        session_id,
        call_id,
        task_id,
        outcome,
        mode: "none",
        mode_reason: None,
        timings: Timings::default(),
        media: None,
        task_restarts: 0,
        error_code: None,
        teardown,
        room: None,
        relay: None,
        unconfirmed_start: None,
    }
}

/// The journal's note for an outcome.
fn outcome_note(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Failed { stage, reason } => format!("{}: {reason}", stage.name()),
        _ => String::new(),
    }
}

/// Stops `leftovers` until the cloud confirms, within the settings' retry time, and records
/// the result: finished, or `teardown_pending` for a later run.
pub(super) async fn confirm_teardown<C: CloudOps>(
    leftovers: &mut CloudLeftovers,
    cloud: &C,
    settings: &DriverSettings,
    status: &watch::Sender<Status>,
    journal: Option<(&Arc<Store>, &str, &Outcome)>,
) -> Teardown {
    let note = journal.map(|(_, _, o)| outcome_note(o)).unwrap_or_default();
    let result = leftovers
        .stop_until_confirmed(
            cloud,
            settings.teardown_timeout,
            settings.teardown_retry_for,
            |e| {
                tracing::warn!(error = %e, "the cloud has not confirmed the teardown; retrying");
                status.send_modify(|s| s.phase = "teardown_pending".into());
            },
            journal.map(|(store, id, outcome)| super::teardown::PendingRecord {
                store: store.as_ref(),
                id,
                result: outcome.name(),
                note: &note,
            }),
        )
        .await;
    // What the session ended with is kept, whatever the store does meanwhile: a write it
    // refuses now is made when it answers again.
    match result {
        Ok(()) => {
            if let Some((j, id, outcome)) = journal
                && let Err(e) = j.finish(id, outcome.name(), &note).await
            {
                tracing::error!(error = %e, "journal write failed; writing the result once the store answers");
                super::teardown::record_when_back(
                    j.clone(),
                    id.to_owned(),
                    super::teardown::Record::Finished {
                        result: outcome.name().to_owned(),
                        note,
                    },
                );
            }
            Teardown::Confirmed
        }
        Err(reason) => {
            tracing::error!(%reason, "teardown not confirmed; the journal keeps the session for the next run");
            if let Some((j, id, outcome)) = journal {
                super::teardown::record_when_back(
                    j.clone(),
                    id.to_owned(),
                    super::teardown::Record::Pending {
                        result: outcome.name().to_owned(),
                        note,
                    },
                );
            }
            Teardown::Pending { reason }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_session_is_named_preparing_before_anything_happens() {
        assert_eq!(super::Status::default().phase, "preparing");
    }
}
