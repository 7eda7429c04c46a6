//! `POST /v1/sessions`: a request checked whole, admitted in the store (which, in a cluster,
//! places it on the live node with the most free room), and run here or picked up by the
//! node it was placed on.

use std::sync::{Arc, OnceLock};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};

use super::{
    Entry, RETRY_AFTER_SECS, Service, problem, refused_request, run_session, session_json,
};
use crate::session::driver::{Controls, Status};
use crate::session::{CloudOps, RequestError, SessionRequest, SessionSpec, room_key};
use crate::store::{Placement, SessionStore};
use std::sync::atomic::Ordering;

/// How often a node looks for sessions other nodes placed on it when no wake-up came (the
/// store's notification is lost while its listening connection is down).
const PICK_UP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

pub(super) async fn create<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
    body: Bytes,
) -> Response {
    svc.prune();
    if svc.draining.load(Ordering::SeqCst) {
        return problem(StatusCode::SERVICE_UNAVAILABLE, "draining: no new sessions");
    }
    let request: SessionRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            let answer = problem(
                StatusCode::BAD_REQUEST,
                format!("not a session request: {e}"),
            );
            return svc.refuse("malformed", answer);
        }
    };
    let spec = match request
        .validate(
            &svc.policy,
            &svc.topologies,
            svc.relay.as_ref(),
            svc.driver.input_bounds,
        )
        .await
    {
        Ok(s) => s,
        Err(e) => {
            let reason = match e {
                RequestError::Refused(_) => "input_policy",
                RequestError::TooLarge(_) => "input_size",
                _ => "invalid",
            };
            return svc.refuse(reason, refused_request(&e));
        }
    };
    let id = uuid::Uuid::new_v4().to_string();
    let room = room_key(&spec.room);
    let robot = spec.robot.as_str().to_owned();
    // A request with relay keys is never written down for another node: it runs here.
    let placeable = svc.cluster.is_some()
        && request
            .relay
            .as_ref()
            .is_none_or(|r| r.css_push_key.is_none() && r.css_play_key.is_none());
    if placeable {
        let stored = serde_json::to_string(&request).unwrap_or_default();
        let cost = svc.costs.of(&spec);
        match svc
            .journal
            .admit_placing(&id, &room, &robot, &stored, cost)
            .await
        {
            Ok(Placement::Here) => {}
            Ok(Placement::There { api_url }) => {
                tracing::info!(session = %id, node = %api_url, "session placed on another node");
                return (
                    StatusCode::CREATED,
                    Json(json!({"id": id, "node": api_url, "status": {"phase": "placed"}})),
                )
                    .into_response();
            }
            Ok(Placement::Busy { existing }) => return busy(&svc, &spec, existing),
            Ok(Placement::Full { cpu_bound }) => {
                let (reason, error) = if cpu_bound {
                    (
                        "cpu",
                        "every node with room for this session is over its CPU limit (--max-cpu); try again later",
                    )
                } else {
                    (
                        "capacity",
                        "no node of the cluster has room for this session (--max-sessions, in cost units); try again later",
                    )
                };
                let answer = (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, RETRY_AFTER_SECS.to_string())],
                    Json(json!({"error": error})),
                )
                    .into_response();
                return svc.refuse(reason, answer);
            }
            Err(e) => return store_away(&svc, e),
        }
        if !svc.take_slot(cost) {
            finish_refused(&svc, &id, "this node was full").await;
            return full(&svc, cost);
        }
    } else {
        let cost = svc.costs.of(&spec);
        if cost as usize > svc.max_sessions {
            // It never fits, however long the client waits: not a 429.
            let answer = (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({
                    "error": format!(
                        "this session costs {cost} units and this node's whole room is {} (--max-sessions): ask for a smaller profile",
                        svc.max_sessions
                    ),
                    "field": "profile",
                    "value": spec.profile,
                })),
            )
                .into_response();
            return svc.refuse("too_costly", answer);
        }
        if !svc.take_slot(cost) {
            return full(&svc, cost);
        }
        match svc.journal.admit(&id, &room, &robot).await {
            Ok(crate::store::Admission::Admitted) => {}
            Ok(crate::store::Admission::Busy { existing }) => {
                svc.give_back(cost);
                return busy(&svc, &spec, existing);
            }
            Err(e) => {
                svc.give_back(cost);
                return store_away(&svc, e);
            }
        }
    }
    match start_here(&svc, id.clone(), request, spec) {
        Some(created) => (StatusCode::CREATED, Json(created)).into_response(),
        None => {
            finish_refused(&svc, &id, "the service began draining").await;
            problem(StatusCode::SERVICE_UNAVAILABLE, "draining: no new sessions")
        }
    }
}

/// Records an admitted session as refused before anything started; a store that does not
/// take it now is written to when it answers again (the node claims only sessions whose
/// result is pending, so a lost write would hold the room until a restart).
async fn finish_refused<C: CloudOps + 'static>(svc: &Service<C>, id: &str, why: &str) {
    if let Err(e) = svc.journal.finish(id, "refused", why).await {
        tracing::warn!(session = %id, error = %e, "cannot record a refusal yet; retrying");
        crate::session::teardown::record_when_back(
            svc.journal.clone(),
            id.to_owned(),
            crate::session::teardown::Record::Finished {
                result: "refused".to_owned(),
                note: why.to_owned(),
            },
        );
    }
}

fn full<C: CloudOps + 'static>(svc: &Service<C>, cost: u32) -> Response {
    let taken = svc.running.load(Ordering::Acquire);
    let answer = (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, RETRY_AFTER_SECS.to_string())],
        Json(json!({"error": format!(
            "this node cannot run this session in real time now: it costs {cost} of the node's {} units (--max-sessions) and {taken} are taken; try again later, or ask for a smaller profile",
            svc.max_sessions
        )})),
    )
        .into_response();
    svc.refuse("capacity", answer)
}

fn busy<C: CloudOps + 'static>(svc: &Service<C>, spec: &SessionSpec, existing: String) -> Response {
    let answer = (
        StatusCode::CONFLICT,
        Json(json!({"error": format!("{} already has a session for {}", spec.room, spec.robot), "existing": existing})),
    )
        .into_response();
    svc.refuse("room_busy", answer)
}

/// The store is away (a restart, a network cut): running sessions go on; new ones wait
/// until it answers again, since nothing may ring that is not recorded.
fn store_away<C: CloudOps + 'static>(svc: &Service<C>, e: crate::store::StoreError) -> Response {
    let answer = super::store_unavailable(&e, "no session can be recorded");
    svc.refuse("store_unavailable", answer)
}

/// Runs an admitted session on this node (its slot taken); what `POST` answers, or `None`
/// when the service began draining meanwhile (the slot is given back).
fn start_here<C: CloudOps + 'static>(
    svc: &Arc<Service<C>>,
    id: String,
    request: SessionRequest,
    spec: SessionSpec,
) -> Option<Value> {
    let cost = svc.costs.of(&spec);
    let (status_tx, status_rx) = watch::channel(Status::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let report = Arc::new(watch::Sender::new(None));
    let nudge = Arc::new(Notify::new());
    let ended_at = Arc::new(OnceLock::new());
    let recorded = Arc::new(Notify::new());
    let recorder = super::events::record(
        Arc::downgrade(svc),
        id.clone(),
        status_rx.clone(),
        report.subscribe(),
        recorded.clone(),
    );
    let entry = Entry {
        request,
        status: status_rx,
        stop: stop_tx,
        nudge: nudge.clone(),
        report: report.clone(),
        ended_at: ended_at.clone(),
        recorded,
    };
    let created = session_json(&id, &entry);
    let task = run_session(
        svc.clone(),
        id.clone(),
        spec,
        Controls {
            status: status_tx,
            stop: stop_rx,
            nudge,
        },
        report,
        ended_at,
    );
    // Checked, recorded and spawned under one lock, so a drain either sees this session
    // and waits for it, or this request sees the drain.
    let mut sessions = svc.sessions.lock().expect("sessions lock");
    if svc.draining.load(Ordering::SeqCst) {
        drop(sessions);
        svc.give_back(cost);
        return None;
    }
    sessions.insert(id, entry);
    tokio::spawn(recorder);
    svc.tasks.lock().expect("tasks lock").spawn(task);
    Some(created)
}

/// Places again what was placed on a node that never picked it up (killed just after, or
/// silent for a lease): an admitted session is run somewhere, or refused with a reason —
/// never lost. Only while this node's own lease is sound, so an outage of the store is not
/// taken for nodes gone.
async fn replace_stranded<C: CloudOps + 'static>(svc: &Service<C>) {
    let Some(cluster) = svc.cluster.as_ref().filter(|c| c.may_reap()) else {
        return;
    };
    let replaced = match svc.journal.replace_stranded(cluster.lease).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "cannot look for sessions placed on gone nodes");
            return;
        }
    };
    for r in replaced {
        match r.to {
            Some(node) => {
                tracing::warn!(session = %r.id, %node, "placed again: the node it was placed on did not pick it up");
            }
            None => {
                tracing::warn!(session = %r.id, reason = crate::store::STRANDED_NOTE, "refused");
                let last = json!({"session_id": r.id, "result": "refused", "note": crate::store::STRANDED_NOTE});
                if let Err(e) = svc
                    .journal
                    .append_event(&r.id, "report", &last.to_string())
                    .await
                {
                    tracing::warn!(session = %r.id, error = %e, "cannot record a session event");
                }
            }
        }
    }
}

/// Runs the sessions other nodes placed on this one, for as long as the service lives: each
/// is checked again under this node's own rules, and one that fails them is finished with
/// the reason.
pub(super) async fn pick_up_placed<C: CloudOps + 'static>(svc: std::sync::Weak<Service<C>>) {
    let mut wake_ups = None;
    loop {
        if wake_ups.is_none()
            && let Some(s) = svc.upgrade()
        {
            wake_ups = s.journal.placed_here().await;
        }
        // Woken by the placing node's notification, or looking anyway now and then.
        let woken = async {
            match wake_ups.as_mut() {
                Some(w) => w.next().await,
                None => std::future::pending().await,
            }
        };
        let look_every = svc
            .upgrade()
            .and_then(|s| s.cluster.as_ref().map(|c| c.look_every()))
            .map_or(PICK_UP_EVERY, |every| every.min(PICK_UP_EVERY));
        tokio::select! {
            w = woken => if w.is_none() { wake_ups = None },
            _ = tokio::time::sleep(look_every) => {}
        }
        let Some(svc) = svc.upgrade() else { return };
        replace_stranded(&svc).await;
        let placed = match svc.journal.take_placed().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for placed sessions");
                continue;
            }
        };
        for (id, stored) in placed {
            let refused = |why: String| {
                let svc = svc.clone();
                let id = id.clone();
                async move {
                    tracing::warn!(session = %id, reason = %why, "a placed session is refused here");
                    finish_refused(&svc, &id, &why).await;
                }
            };
            if svc.draining.load(Ordering::SeqCst) {
                refused("the node it was placed on began draining; ask again".into()).await;
                continue;
            }
            let request: SessionRequest = match serde_json::from_str(&stored) {
                Ok(r) => r,
                Err(e) => {
                    refused(format!("its request cannot be read: {e}")).await;
                    continue;
                }
            };
            let spec = match request
                .validate(
                    &svc.policy,
                    &svc.topologies,
                    svc.relay.as_ref(),
                    svc.driver.input_bounds,
                )
                .await
            {
                Ok(s) => s,
                Err(e) => {
                    refused(e.to_string()).await;
                    continue;
                }
            };
            if !svc.take_slot(svc.costs.of(&spec)) {
                refused("the node it was placed on was full".into()).await;
                continue;
            }
            tracing::info!(session = %id, "running a session placed here by another node");
            if start_here(&svc, id.clone(), request, spec).is_none() {
                refused("the node it was placed on began draining".into()).await;
            }
        }
    }
}
