//! One task per session: prepares the media, rings, binds the stream into the room, watches
//! every stage, and tears everything down together. It owns the session's state machine and
//! feeds it what the cloud and the media engine report.

use std::sync::Arc;

use tokio::sync::watch;

pub use super::report::{
    AnnouncementFigures, Controls, MediaFigures, Phase, Report, Status, Teardown, Timings,
};
pub use super::settings::{DEFAULT_RECORD_SEGMENT, DriverSettings, RecordSettings, RoomWitness};

use super::run::SessionRun;
use super::state::{Outcome, Stage};
use super::teardown::{CloudLeftovers, confirm_teardown};
use super::{CloudOps, SessionSpec};
use crate::media::topology::Topologies;
use crate::store::Store;

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
        status.send_modify(|s| s.phase = Phase::Ended);
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
        publish_task_id: known
            .publish_task_id
            .or_else(|| open.as_ref().and_then(|o| o.publish_task_id.clone())),
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
        queue: Vec::new(),
        monitor: None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_session_is_named_preparing_before_anything_happens() {
        assert_eq!(super::Status::default().phase.name(), "preparing");
    }
}
