//! A session's events: recorded in the store as they happen (a `status` event per change of
//! phase, then the `report`), each with its sequence number as the SSE event id, so a client
//! that reconnects with `Last-Event-ID` gets what it missed and nothing twice.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::{Notify, watch};

use super::error::ApiError;
use super::service::Service;
use crate::session::CloudOps;
use crate::session::driver::{Report, Status};
use crate::store::EventLog;

/// How often a stream looks in the store when no event woke it (an event the recorder could
/// not write at once is retried).
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// Records a session's events until its report, waking `recorded` after each. `first` is
/// the status the session was created with: a watch keeps only the newest value, so a
/// session that moved on before this task first looked would otherwise never show it.
pub(super) async fn record<C: CloudOps + 'static>(
    svc: std::sync::Weak<Service<C>>,
    id: String,
    first: Status,
    mut status: watch::Receiver<Status>,
    mut report: watch::Receiver<Option<Report>>,
    recorded: Arc<Notify>,
) {
    let mut last_phase = None;
    let mut told = std::collections::HashMap::new();
    let mut room_told = RoomTold::default();
    let mut first = Some(first);
    loop {
        let finished = report.borrow_and_update().clone();
        let now = first
            .take()
            .unwrap_or_else(|| status.borrow_and_update().clone());
        if let Some(r) = finished {
            if let (Some(svc), Some(recording)) = (
                svc.upgrade(),
                r.monitor.as_ref().and_then(|m| m.recording.as_ref()),
            ) && !recording.files.is_empty()
                && let Some(out) = &svc.outbound
            {
                out.tell(
                    "recording_ready",
                    &id,
                    serde_json::json!({"files": recording.files, "bytes": recording.bytes,
                        "url": format!("/v1/sessions/{id}/recording")}),
                );
            }
            let data = serde_json::to_string(&r).unwrap_or_default();
            append_report(&svc, &id, &data).await;
            recorded.notify_waiters();
            return;
        }
        let Some(svc) = svc.upgrade() else { return };
        if last_phase != Some(now.phase) {
            last_phase = Some(now.phase);
            append(
                &svc,
                &id,
                "status",
                &serde_json::to_string(&now).unwrap_or_default(),
            )
            .await;
            recorded.notify_waiters();
        }
        let room = room_events(&now, &mut room_told);
        if let Some(out) = &svc.outbound {
            for (kind, data) in room.iter().filter(|(k, _)| k.starts_with("room_")) {
                out.tell(kind, &id, data.clone());
            }
        }
        let room = room
            .into_iter()
            .map(|(kind, data)| (kind, data.to_string()));
        for (kind, data) in queue_events(&now, &mut told).into_iter().chain(room) {
            append(&svc, &id, kind, &data).await;
            recorded.notify_waiters();
        }
        drop(svc);
        tokio::select! {
            changed = status.changed() => if changed.is_err() && report.changed().await.is_err() {
                return;
            },
            changed = report.changed() => if changed.is_err() {
                return;
            },
        }
    }
}

/// What the queue did since it was last told: `item_started`, `item_heard` (the room's ear
/// heard the item's start) and `item_finished` events with the item's id, mark and time on
/// the session's clock; `told` remembers, per item, which were told.
fn queue_events(
    status: &Status,
    told: &mut std::collections::HashMap<u64, (bool, bool, bool)>,
) -> Vec<(&'static str, String)> {
    let mut events = Vec::new();
    for item in &status.queue {
        let (started, finished, heard) = told.entry(item.id).or_default();
        let said = |state: serde_json::Value, at: u64| {
            serde_json::json!({"id": item.id, "mark": item.mark, "media": item.media,
                "state": state, "at_ms": at})
            .to_string()
        };
        if let Some(at) = item.started_ms
            && !*started
        {
            *started = true;
            events.push(("item_started", said("playing".into(), at)));
        }
        if let Some(at) = item.heard_ms
            && !*heard
        {
            *heard = true;
            events.push(("item_heard", said("heard".into(), at)));
        }
        if let Some(at) = item.finished_ms
            && !*finished
        {
            *finished = true;
            let state = serde_json::to_value(item.state).unwrap_or_default();
            events.push(("item_finished", said(state, at)));
        }
    }
    events
}

/// What the room monitor's events have told so far.
#[derive(Default)]
struct RoomTold {
    /// The session clock of the last `monitor` event.
    figures_at: Option<u64>,
    alerts: usize,
}

/// The room monitor's figures as a `monitor` event once a second, and each alert
/// (`room_silent`, `room_frozen`, `room_lost`) once, as an event of its kind.
fn room_events(status: &Status, told: &mut RoomTold) -> Vec<(&'static str, serde_json::Value)> {
    let Some(monitor) = &status.monitor else {
        return Vec::new();
    };
    let mut events = Vec::new();
    if told.figures_at.is_none_or(|at| monitor.at_ms >= at + 1000) {
        told.figures_at = Some(monitor.at_ms);
        events.push(("monitor", serde_json::to_value(monitor).unwrap_or_default()));
    }
    for alert in monitor.alerts.iter().skip(told.alerts) {
        events.push((alert.kind, serde_json::to_value(alert).unwrap_or_default()));
    }
    told.alerts = monitor.alerts.len();
    events
}

/// How long the recorder waits at most between tries of a report the store refused.
const REPORT_RETRY_MAX: Duration = Duration::from_secs(30);

/// Records a session's report, trying again while the store is away (for as long as the
/// service lives): the last event is what followers on any node and replays end on.
async fn append_report<C: CloudOps + 'static>(
    svc: &std::sync::Weak<Service<C>>,
    id: &str,
    data: &str,
) {
    let mut wait = Duration::from_millis(500);
    loop {
        let Some(svc) = svc.upgrade() else { return };
        match svc.journal.append_event(id, "report", data).await {
            Ok(_) => {
                svc.any_recorded.notify_waiters();
                return;
            }
            Err(e) => {
                tracing::warn!(session = %id, error = %e, "cannot record a session's report yet; retrying");
            }
        }
        drop(svc);
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(REPORT_RETRY_MAX);
    }
}

async fn append<C: CloudOps + 'static>(svc: &Service<C>, id: &str, kind: &str, data: &str) {
    if let Err(e) = svc.journal.append_event(id, kind, data).await {
        tracing::warn!(session = %id, error = %e, "cannot record a session event");
    }
    svc.any_recorded.notify_waiters();
}

/// `GET /v1/sessions/{id}/events`: the events recorded so far (after `Last-Event-ID`, when
/// given), then each as it is recorded, until the report. A session another node runs is
/// streamed from that node.
pub(super) async fn stream<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Some(recorded) = svc.session(&id, |e| e.recorded.clone()) else {
        return super::elsewhere::answer(&svc, &id, Method::GET, uri.path(), &headers).await;
    };
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(0);
    let state = Follow {
        svc,
        id,
        after,
        pending: std::collections::VecDeque::new(),
        recorded,
        done: false,
    };
    let events = futures::stream::unfold(state, |mut f| async move {
        let ev = f.next().await?;
        Some((Ok::<_, Infallible>(ev), f))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// One client's place in a session's events.
struct Follow<C> {
    svc: Arc<Service<C>>,
    id: String,
    after: i64,
    pending: std::collections::VecDeque<(i64, String, String)>,
    recorded: Arc<Notify>,
    done: bool,
}

impl<C: CloudOps + 'static> Follow<C> {
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some((seq, kind, data)) = self.pending.pop_front() {
                self.after = seq;
                if kind == "report" {
                    self.done = true;
                }
                return Some(
                    SseEvent::default()
                        .id(seq.to_string())
                        .event(kind)
                        .data(data),
                );
            }
            if self.done {
                return None;
            }
            // Registered before looking, so an event recorded meanwhile still wakes it.
            let woken = self.recorded.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            match self.svc.journal.events_after(&self.id, self.after).await {
                Ok(events) if !events.is_empty() => {
                    self.pending.extend(events);
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(session = %self.id, error = %e, "cannot read session events")
                }
            }
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep(LOOK_EVERY) => {}
            }
        }
    }
}
