//! `POST /v1/sessions`: a request checked whole, admitted in the store (which, in a cluster,
//! places it on the live node with the most free room), and run here or picked up by the
//! node it was placed on.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::{Notify, OwnedSemaphorePermit, watch};

use super::error::ApiError;
use super::events;
use super::lost_starts::StrayKind;
use super::service::{Entry, Service, session_json};
use crate::serve::metrics::labels;
use crate::session::driver::{self, Controls, Phase, Report, Status};
use crate::session::{CloudOps, RequestError, SessionRequest, SessionSpec, room_key};
use crate::store::{Cluster, EventLog, Journal, Placement};

/// How often a node looks for sessions other nodes placed on it when no wake-up came (the
/// store's notification is lost while its listening connection is down).
const PICK_UP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

pub(super) async fn create<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    svc.prune();
    if svc.draining.load(Ordering::SeqCst) {
        return Err(draining());
    }
    let request: SessionRequest = serde_json::from_slice(&body).map_err(|e| {
        let malformed = ApiError::problem(
            StatusCode::BAD_REQUEST,
            format!("not a session request: {e}"),
        );
        svc.refuse("malformed", malformed)
    })?;
    let spec = request
        .validate(
            &svc.policy,
            &svc.topologies,
            svc.relay.as_ref(),
            svc.driver.input_bounds,
        )
        .await
        .map_err(|e| {
            let reason = match e {
                RequestError::Refused(_) => "input_policy",
                RequestError::TooLarge(_) => "input_size",
                _ => "invalid",
            };
            svc.refuse(reason, e.into())
        })?;
    let mut spec = spec;
    if request.monitor.is_none() && request.record.is_none() {
        spec.monitor = svc.default_monitor;
    }
    if spec.monitor.is_some() && !svc.feeds().takes_monitors() {
        let refused = ApiError::from(RequestError::Invalid(crate::cloud::InvalidArgument::new(
            "monitor",
            "true",
            "a node with an RTMP server for the cloud to publish the room to: start serve with --rtmp-listen (and --rtmp-public if the cloud reaches it at another address)",
        )));
        return Err(svc.refuse("invalid", refused));
    }
    if spec.monitor.is_some_and(|m| m.record.is_some()) && svc.driver.record.is_none() {
        let refused = ApiError::from(RequestError::Invalid(crate::cloud::InvalidArgument::new(
            "record",
            "true",
            "a node that records: start serve with --record-dir DIR",
        )));
        return Err(svc.refuse("invalid", refused));
    }
    if let crate::media::input::InputSpec::Feed(feed) = &spec.input
        && let Err(e) = svc.feeds().check(feed, spec.stays_after_feed)
    {
        // A feed another node runs: the session is made there, where the feed's stream is.
        if matches!(e, crate::feed::FeedError::NotFound(_))
            && let Some(answer) = super::feed_nodes::answer(
                &svc,
                feed,
                axum::http::Method::POST,
                "/v1/sessions",
                &headers,
                Some(body.clone()),
            )
            .await
        {
            return answer;
        }
        // A field the feed cannot honour is an invalid field, as the request's own are.
        let code = match e {
            crate::feed::FeedError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::BAD_REQUEST,
        };
        let refused = ApiError::problem(code, e.to_string());
        return Err(svc.refuse("feed", refused));
    }
    let id = uuid::Uuid::new_v4().to_string();
    // A request with relay keys is never written down for another node: it runs here; so
    // does a session on a feed, which runs where its feed does.
    let on_feed = matches!(spec.input, crate::media::input::InputSpec::Feed(_));
    let placing = svc.journal.cluster().filter(|_| {
        svc.cluster.is_some()
            && !on_feed
            && request
                .relay
                .as_ref()
                .is_none_or(|r| r.css_push_key.is_none() && r.css_play_key.is_none())
    });
    let slot = match placing {
        Some(cluster) => match admit_placing(&svc, cluster, &id, &request, &spec).await? {
            Placed::Here(slot) => slot,
            Placed::There { api_url } => {
                tracing::info!(session = %id, node = %api_url, "session placed on another node");
                let placed = json!({"id": id, "node": api_url, "status": {"phase": Phase::Placed}});
                return Ok((StatusCode::CREATED, Json(placed)).into_response());
            }
        },
        None => admit_here(&svc, &id, &spec).await?,
    };
    match start_here(&svc, id.clone(), request, spec, slot) {
        Some(created) => Ok((StatusCode::CREATED, Json(created)).into_response()),
        None => {
            finish_refused(&svc, &id, "the service began draining").await;
            Err(draining())
        }
    }
}

fn draining() -> ApiError {
    ApiError::problem(StatusCode::SERVICE_UNAVAILABLE, "draining: no new sessions")
}

/// Where the cluster's store placed a session.
enum Placed {
    /// Here, holding this node's slot.
    Here(OwnedSemaphorePermit),
    There {
        api_url: String,
    },
}

/// Admits a session in the cluster's store, which places it on the live node with the most
/// free room.
async fn admit_placing<C: CloudOps + 'static>(
    svc: &Service<C>,
    cluster: &impl Cluster,
    id: &str,
    request: &SessionRequest,
    spec: &SessionSpec,
) -> Result<Placed, ApiError> {
    let stored = serde_json::to_string(request).unwrap_or_default();
    let cost = svc.costs.of(spec);
    let placement = cluster
        .admit_placing(
            id,
            &room_key(&spec.room),
            spec.robot.as_str(),
            &stored,
            cost,
        )
        .await
        .map_err(|e| store_away(svc, e))?;
    match placement {
        Placement::Here => {}
        Placement::There { api_url } => return Ok(Placed::There { api_url }),
        Placement::Busy { existing } => return Err(busy(svc, spec, existing)),
        Placement::Full { cpu_bound } => {
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
            return Err(svc.refuse(reason, ApiError::TooMany(error.to_owned())));
        }
    }
    match svc.take_slot(cost) {
        Some(slot) => Ok(Placed::Here(slot)),
        None => {
            finish_refused(svc, id, "this node was full").await;
            Err(full(svc, cost))
        }
    }
}

/// Admits a session on this node alone: its slot, once the journal has it.
async fn admit_here<C: CloudOps + 'static>(
    svc: &Service<C>,
    id: &str,
    spec: &SessionSpec,
) -> Result<OwnedSemaphorePermit, ApiError> {
    let cost = svc.costs.of(spec);
    if cost as usize > svc.max_sessions {
        // It never fits, however long the client waits: not a 429.
        let refused = ApiError::TooCostly {
            message: format!(
                "this session costs {cost} units and this node's whole room is {} (--max-sessions): ask for a smaller profile",
                svc.max_sessions
            ),
            profile: json!(spec.profile),
        };
        return Err(svc.refuse("too_costly", refused));
    }
    let slot = svc.take_slot(cost).ok_or_else(|| full(svc, cost))?;
    // A refusal below drops the slot: its place is given back.
    match svc
        .journal
        .admit(id, &room_key(&spec.room), spec.robot.as_str())
        .await
    {
        Ok(crate::store::Admission::Admitted) => Ok(slot),
        Ok(crate::store::Admission::Busy { existing }) => Err(busy(svc, spec, existing)),
        Err(e) => Err(store_away(svc, e)),
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

fn full<C: CloudOps + 'static>(svc: &Service<C>, cost: u32) -> ApiError {
    let refused = ApiError::TooMany(format!(
        "this node cannot run this session in real time now: it costs {cost} of the node's {} units (--max-sessions) and {} are taken; try again later, or ask for a smaller profile",
        svc.max_sessions,
        svc.taken()
    ));
    svc.refuse("capacity", refused)
}

fn busy<C: CloudOps + 'static>(svc: &Service<C>, spec: &SessionSpec, existing: String) -> ApiError {
    let refused = ApiError::RoomBusy {
        message: format!("{} already has a session for {}", spec.room, spec.robot),
        existing,
    };
    svc.refuse("room_busy", refused)
}

/// The store is away (a restart, a network cut): running sessions go on; new ones wait
/// until it answers again, since nothing may ring that is not recorded.
fn store_away<C: CloudOps + 'static>(svc: &Service<C>, e: crate::store::StoreError) -> ApiError {
    svc.refuse(
        "store_unavailable",
        ApiError::store(e, "no session can be recorded"),
    )
}

/// Runs an admitted session on this node, holding its slot; what `POST` answers, or `None`
/// when the service began draining meanwhile (the slot is given back).
fn start_here<C: CloudOps + 'static>(
    svc: &Arc<Service<C>>,
    id: String,
    request: SessionRequest,
    spec: SessionSpec,
    slot: OwnedSemaphorePermit,
) -> Option<Value> {
    let (status_tx, status_rx) = watch::channel(Status::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    // A PATCH waits for its change; a few more may queue behind it.
    let (changes_tx, changes_rx) = tokio::sync::mpsc::channel(4);
    let report = Arc::new(watch::Sender::new(None));
    let nudge = Arc::new(Notify::new());
    let ended_at = Arc::new(OnceLock::new());
    let recorded = Arc::new(Notify::new());
    let recorder = events::record(
        Arc::downgrade(svc),
        id.clone(),
        status_rx.borrow().clone(),
        status_rx.clone(),
        report.subscribe(),
        recorded.clone(),
    );
    let entry = Entry {
        request,
        status: status_rx,
        stop: stop_tx,
        changes: changes_tx,
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
        slot,
        Controls {
            status: status_tx,
            stop: stop_rx,
            nudge,
            changes: Some(changes_rx),
        },
        report,
        ended_at,
    );
    // Checked, recorded and spawned under one lock, so a drain either sees this session
    // and waits for it, or this request sees the drain.
    let mut sessions = svc.sessions.lock();
    if svc.draining.load(Ordering::SeqCst) {
        return None;
    }
    sessions.insert(id, entry);
    tokio::spawn(recorder);
    svc.tasks.lock().spawn(task);
    Some(created)
}

/// One admitted session, run to its end: its place is freed, its result counted, its
/// report published.
async fn run_session<C: CloudOps + 'static>(
    svc: Arc<Service<C>>,
    id: String,
    spec: SessionSpec,
    slot: OwnedSemaphorePermit,
    controls: Controls,
    report: Arc<watch::Sender<Option<Report>>>,
    ended_at: Arc<OnceLock<Instant>>,
) {
    let room = room_key(&spec.room);
    let finished = driver::run(
        id,
        spec,
        &*svc.cloud,
        Some(svc.journal.clone()),
        svc.driver.clone(),
        svc.topologies.clone(),
        controls,
    )
    .await;
    drop(slot);
    if let Some(unconfirmed) = finished.unconfirmed_start {
        svc.lost_starts.note(StrayKind::of(unconfirmed), room);
    }
    svc.metrics
        .results
        .get_or_create(&labels(&[("result", finished.outcome.name())]))
        .inc();
    if let Some(m) = finished.live() {
        svc.metrics.restarts.inc_by(u64::from(m.restarts));
        svc.metrics.slate_seconds.inc_by(m.slate_ms as f64 / 1000.0);
        svc.metrics.bytes_served.inc_by(m.bytes_out);
    }
    let _ = ended_at.set(Instant::now());
    report.send_replace(Some(finished));
}

/// Places again what was placed on a node that never picked it up (killed just after, or
/// silent for a lease): an admitted session is run somewhere, or refused with a reason —
/// never lost. Only while this node's own lease is sound, so an outage of the store is not
/// taken for nodes gone.
async fn replace_stranded<C: CloudOps + 'static>(svc: &Service<C>, cluster: &impl Cluster) {
    let Some(lease) = svc.cluster.as_ref().filter(|c| c.may_reap()) else {
        return;
    };
    let replaced = match cluster.replace_stranded(lease.lease).await {
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
/// the reason. Only a store shared by nodes places sessions anywhere.
pub(super) async fn pick_up_placed<C: CloudOps + 'static>(svc: std::sync::Weak<Service<C>>) {
    let mut wake_ups = None;
    loop {
        if wake_ups.is_none()
            && let Some(s) = svc.upgrade()
        {
            let Some(cluster) = s.journal.cluster() else {
                return;
            };
            wake_ups = cluster.placed_here().await;
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
        let Some(cluster) = svc.journal.cluster() else {
            return;
        };
        replace_stranded(&svc, cluster).await;
        let placed = match cluster.take_placed().await {
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
            let Some(slot) = svc.take_slot(svc.costs.of(&spec)) else {
                refused("the node it was placed on was full".into()).await;
                continue;
            };
            tracing::info!(session = %id, "running a session placed here by another node");
            if start_here(&svc, id.clone(), request, spec, slot).is_none() {
                refused("the node it was placed on began draining".into()).await;
            }
        }
    }
}
