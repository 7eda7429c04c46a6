//! Calls and ingest tasks the cloud started without the session hearing of it: a start
//! whose answer was lost (a timeout, a dropped connection, a 5xx) may have taken effect. The
//! session fails and says so (`unconfirmed_start` in its report); when the cloud then reports
//! a call started in that session's room, or an ingest task no session knows, shortly after,
//! the service stops it. Only after a grace — a start's own answer may come after its
//! webhook — and only what a lost start of this node can explain: calls and tasks that other
//! systems on the same account start are never touched.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::lost_starts::{StrayKind, WATCH_FOR};
use super::service::Service;
use crate::session::CloudOps;
use crate::session::teardown::CloudLeftovers;
use crate::store::Cluster;

/// How long a webhook waits before its call or task may count as no session's: a start's
/// answer can arrive after the webhook it caused.
const GRACE: Duration = Duration::from_secs(2);
/// How long the service tries to stop a stray before it gives up (the call times out or the
/// task ends by itself).
const STOP_FOR: Duration = Duration::from_secs(120);

/// The cloud reports a call started in `room`: if no session knows it and a start of this
/// node for that room lost its answer (now, or within [`WATCH_FOR`]), the call is ended.
pub(super) fn call_started<C: CloudOps + 'static>(
    svc: &Arc<Service<C>>,
    call_id: String,
    room: Option<String>,
) {
    let stray = CloudLeftovers {
        call_id: Some(call_id),
        ..CloudLeftovers::default()
    };
    watch(svc, stray, StrayKind::Call, room);
}

/// The cloud reports an ingest task: if no session knows it and a start of this node lost
/// its answer, the task is stopped.
pub(super) fn task_started<C: CloudOps + 'static>(svc: &Arc<Service<C>>, task_id: String) {
    let stray = CloudLeftovers {
        task_id: Some(task_id),
        ..CloudLeftovers::default()
    };
    watch(svc, stray, StrayKind::Task, None);
}

/// Looks, after the grace and then every second for [`WATCH_FOR`], whether a session knows
/// `stray` (then it is no stray) or a lost start explains it (then it is stopped). The
/// session whose start lost its answer may report it after the webhook came.
fn watch<C: CloudOps + 'static>(
    svc: &Arc<Service<C>>,
    stray: CloudLeftovers,
    kind: StrayKind,
    room: Option<String>,
) {
    let svc = Arc::downgrade(svc);
    tokio::spawn(async move {
        tokio::time::sleep(GRACE).await;
        let until = Instant::now() + WATCH_FOR;
        while Instant::now() < until {
            let Some(svc) = svc.upgrade() else { return };
            let call = stray.call_id.as_deref();
            let task = stray.task_id.as_deref();
            if known(&svc, call, task).await {
                return;
            }
            if svc.lost_starts.take(kind, room.as_deref()) {
                stop(&svc, stray).await;
                return;
            }
            drop(svc);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}

/// Whether a session (this node's, or any the store knows) has this call or task.
async fn known<C: CloudOps + 'static>(
    svc: &Service<C>,
    call_id: Option<&str>,
    task_id: Option<&str>,
) -> bool {
    let local = svc.sessions.lock().values().any(|e| {
        let s = e.status.borrow();
        (call_id.is_some() && s.call_id.as_deref() == call_id)
            || (task_id.is_some() && s.task_id.as_deref() == task_id)
    });
    // A store that cannot say is taken for yes: nothing is stopped on a guess. One node's
    // journal has no other node's sessions to say.
    let Some(cluster) = svc.journal.cluster() else {
        return local;
    };
    local
        || cluster
            .session_by_cloud_id(call_id, task_id)
            .await
            .map_or(true, |s| s.is_some())
}

async fn stop<C: CloudOps + 'static>(svc: &Service<C>, mut stray: CloudLeftovers) {
    tracing::warn!(call = ?stray.call_id, task = ?stray.task_id, "stopping what a start whose answer was lost started");
    let stopped = stray
        .stop_until_confirmed(
            &*svc.cloud,
            svc.driver.teardown_timeout,
            Some(STOP_FOR),
            |e| tracing::warn!(error = %e, "a stray is not stopped yet; retrying"),
            None,
        )
        .await;
    match stopped {
        Ok(()) => {
            svc.metrics.strays_stopped.inc();
        }
        Err(e) => tracing::error!(error = %e, "a stray could not be stopped"),
    }
}
