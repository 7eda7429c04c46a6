//! Stopping what a session started in the cloud, and knowing that it stopped.
//!
//! A task or call counts as stopped only when the cloud says so: `StopStreamIngest` and
//! `end_call` answered, or the cloud reported the thing not to exist. Until then the journal
//! keeps the session open as `teardown_pending` (its room stays taken) and the teardown is
//! tried again with jittered backoff, in this process or, after a crash, in the next one.

use std::time::Duration;

use backon::BackoffBuilder;

use super::CloudOps;
use super::report::{Status, Teardown};
use super::settings::DriverSettings;
use super::state::Outcome;
use crate::store::{EventLog, Journal, OpenSession, Store};
use std::sync::Arc;
use tokio::sync::watch;

/// The first retry comes this soon; retries slow down to one per `RETRY_MAX`.
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// How often one node's recovery looks again once nothing is left to recover.
pub const LOOK_EVERY: Duration = RETRY_MAX;

/// Jittered delays between teardown attempts, from `RETRY_MIN` up to `RETRY_MAX`.
fn retry_delays() -> backon::ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(RETRY_MIN)
        .with_max_delay(RETRY_MAX)
        .with_jitter()
        .without_max_times()
        .build()
}

/// What a session started in the cloud and the cloud has not yet confirmed gone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloudLeftovers {
    pub task_id: Option<String>,
    pub call_id: Option<String>,
    /// The room monitor's relay to CDN.
    pub publish_task_id: Option<String>,
}

impl CloudLeftovers {
    pub fn is_empty(&self) -> bool {
        self.task_id.is_none() && self.call_id.is_none() && self.publish_task_id.is_none()
    }

    /// One attempt, bounded by `limit`: each part the cloud confirms gone is forgotten.
    /// On error, says what is left and why.
    pub async fn stop_once<C: CloudOps>(
        &mut self,
        cloud: &C,
        limit: Duration,
    ) -> Result<(), String> {
        let mut failures = Vec::new();
        if let Some(task) = self.publish_task_id.clone() {
            match tokio::time::timeout(limit, cloud.stop_publish(&task)).await {
                Ok(Ok(())) => self.publish_task_id = None,
                Ok(Err(e)) => failures.push(format!("publish task {task} not stopped: {e}")),
                Err(_) => failures.push(format!("publish task {task}: no answer in {limit:?}")),
            }
        }
        if let Some(task) = self.task_id.clone() {
            match tokio::time::timeout(limit, cloud.stop_ingest(&task)).await {
                Ok(Ok(())) => self.task_id = None,
                Ok(Err(e)) => failures.push(format!("ingest task {task} not stopped: {e}")),
                Err(_) => failures.push(format!("ingest task {task}: no answer in {limit:?}")),
            }
        }
        if let Some(call) = self.call_id.clone() {
            match tokio::time::timeout(limit, cloud.end_call(&call)).await {
                Ok(Ok(())) => self.call_id = None,
                Ok(Err(e)) => failures.push(format!("call {call} not ended: {e}")),
                Err(_) => failures.push(format!("call {call}: no answer in {limit:?}")),
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("; "))
        }
    }

    /// Tries until the cloud confirms everything gone, with jittered backoff, for at most
    /// `give_up_after` (forever when `None`). `pending` hears each failed attempt.
    pub async fn stop_until_confirmed<C: CloudOps>(
        &mut self,
        cloud: &C,
        attempt_limit: Duration,
        give_up_after: Option<Duration>,
        mut on_retry: impl FnMut(&str),
        record: Option<PendingRecord<'_>>,
    ) -> Result<(), String> {
        let started = tokio::time::Instant::now();
        let mut delays = retry_delays();
        loop {
            let error = match self.stop_once(cloud, attempt_limit).await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            on_retry(&error);
            if let Some(r) = &record
                && let Err(e) = r.store.teardown_pending(r.id, r.result, r.note).await
            {
                tracing::error!(error = %e, "journal write failed");
            }
            let delay = delays.next().unwrap_or(RETRY_MAX).min(RETRY_MAX);
            if give_up_after.is_some_and(|limit| started.elapsed() + delay > limit) {
                return Err(error);
            }
            tokio::time::sleep(delay).await;
        }
    }
}

/// Where a teardown still unconfirmed is recorded while it is retried, so a crash meanwhile
/// leaves it for the next run.
pub struct PendingRecord<'a> {
    pub store: &'a Store,
    pub id: &'a str,
    pub result: &'a str,
    pub note: &'a str,
}

/// How a session ended, to be written to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// The cloud confirmed everything stopped: the session is finished.
    Finished { result: String, note: String },
    /// The cloud has not confirmed: the session stays open with its result pending, for
    /// recovery to finish.
    Pending { result: String, note: String },
}

/// Writes `record` for session `id` from a task of its own, retrying with jittered backoff
/// until the store takes it: a result reached while the store was away (a restart, a network
/// cut) is written when it is back, not lost and later taken for a crash's `recovered`.
pub fn record_when_back(store: std::sync::Arc<Store>, id: String, record: Record) {
    tokio::spawn(async move {
        let mut delays = retry_delays();
        let mut failed = false;
        loop {
            let written = match &record {
                Record::Finished { result, note } => store.finish(&id, result, note).await,
                Record::Pending { result, note } => store.teardown_pending(&id, result, note).await,
            };
            match written {
                Ok(()) if failed => {
                    tracing::info!(session = %id, ?record, "written now that the store answers");
                    return;
                }
                Ok(()) => return,
                Err(e) => {
                    failed = true;
                    tracing::debug!(session = %id, error = %e, "the store does not answer yet");
                }
            }
            tokio::time::sleep(delays.next().unwrap_or(RETRY_MAX).min(RETRY_MAX)).await;
        }
    });
}

/// What recovery did with one open session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    pub session_id: String,
    /// The result recorded: the session's own when only its teardown was pending,
    /// `recovered` for a crashed run's session.
    pub result: String,
    pub note: String,
}

/// Stops what open sessions left in the cloud — those `claim` picks: a crashed run's (see
/// [`OpenSession::orphaned`]), or a teardown never confirmed — one attempt each (several at
/// once), recording what the cloud confirmed. Sessions still unconfirmed stay open in the
/// journal and come back as `Err`, for the next round.
pub async fn recover<C: CloudOps>(
    journal: &Store,
    cloud: &C,
    attempt_limit: Duration,
    claim: impl Fn(&OpenSession) -> bool,
) -> Vec<Result<Recovered, (String, String)>> {
    use futures::StreamExt;
    let open = match journal.open_sessions().await {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the journal");
            return Vec::new();
        }
    };
    futures::stream::iter(open.into_iter().filter(|s| claim(s)))
        .map(|s| recover_one(journal, cloud, attempt_limit, s))
        .buffer_unordered(RECOVER_AT_ONCE)
        .collect()
        .await
}

/// Sessions recovered at once: enough to clear a crash's leftovers quickly, few enough to
/// stay far below the cloud's rate limits.
const RECOVER_AT_ONCE: usize = 8;

async fn recover_one<C: CloudOps>(
    journal: &Store,
    cloud: &C,
    attempt_limit: Duration,
    s: OpenSession,
) -> Result<Recovered, (String, String)> {
    // Taken over first, atomically: of nodes recovering it at once, one goes on; and a
    // node that comes back finds its session no longer its own.
    match journal.claim(&s.id, s.owner.as_deref()).await {
        Ok(true) => {}
        Ok(false) => return Err((s.id, "taken over by another node".to_owned())),
        Err(e) => return Err((s.id, e.to_string())),
    }
    let mut leftovers = CloudLeftovers {
        task_id: s.task_id.clone(),
        call_id: s.call_id.clone(),
        publish_task_id: s.publish_task_id.clone(),
    };
    let (result, pending_note) = s.recovered_result();
    if let Err(e) = leftovers.stop_once(cloud, attempt_limit).await {
        tracing::warn!(session = %s.id, error = %e, "recovery: the cloud has not confirmed the teardown yet");
        let _ = journal
            .teardown_pending(&s.id, &result, &pending_note)
            .await;
        return Err((s.id, e));
    }
    let mut stopped = Vec::new();
    if let Some(t) = &s.publish_task_id {
        stopped.push(format!("stopped publish task {t}"));
    }
    if let Some(t) = &s.task_id {
        stopped.push(format!("stopped task {t}"));
    }
    if let Some(c) = &s.call_id {
        stopped.push(format!("ended call {c}"));
    }
    let stopped = if stopped.is_empty() {
        "nothing had started".to_owned()
    } else {
        stopped.join("; ")
    };
    let note = if pending_note.is_empty() {
        stopped
    } else {
        format!("{pending_note}; {stopped}")
    };
    tracing::warn!(session = %s.id, %result, %note, "recovered a session an earlier run left open");
    let _ = journal.finish(&s.id, &result, &note).await;
    // Its last event, for whoever follows or replays its events.
    let last = serde_json::json!({"session_id": s.id, "result": result, "note": note});
    let _ = journal
        .append_event(&s.id, "report", &last.to_string())
        .await;
    Ok(Recovered {
        session_id: s.id,
        result,
        note,
    })
}

/// Recovers in rounds, after the round its caller has just made: one attempt per claimed
/// session per round, jittered backoff between rounds while some are left (so one the cloud
/// keeps refusing never holds up the others), and a look now and then once none are, for
/// teardowns that give up later. `confirmed` hears each session the cloud confirmed.
pub async fn recover_until_done<C: CloudOps>(
    journal: &Store,
    cloud: &C,
    attempt_limit: Duration,
    claim: impl Fn(&OpenSession) -> bool,
    mut confirmed: impl FnMut(&Recovered),
    look_every: Duration,
) {
    let mut delays = retry_delays();
    let mut pause = delays.next().unwrap_or(RETRY_MAX).min(look_every);
    loop {
        tokio::time::sleep(pause).await;
        let round = recover(journal, cloud, attempt_limit, &claim).await;
        for r in round.iter().flatten() {
            confirmed(r);
        }
        pause = if round.iter().any(Result::is_err) {
            delays.next().unwrap_or(RETRY_MAX).min(look_every)
        } else {
            delays = retry_delays();
            look_every
        };
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
                status.send_modify(|s| s.phase = super::report::Phase::TeardownPending);
            },
            journal.map(|(store, id, outcome)| PendingRecord {
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
                record_when_back(
                    j.clone(),
                    id.to_owned(),
                    Record::Finished {
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
                record_when_back(
                    j.clone(),
                    id.to_owned(),
                    Record::Pending {
                        result: outcome.name().to_owned(),
                        note,
                    },
                );
            }
            Teardown::Pending { reason }
        }
    }
}
