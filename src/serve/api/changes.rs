//! `PATCH /v1/sessions/{id}`: a running session changed without hanging up — another
//! input, its volume, a pause, a seek; `POST /v1/sessions/{id}/queue` plays items one after
//! another, `DELETE` on it clears what has not played. Checked as a new request's fields
//! are, carried out by the session's own task, answered with the session's new status.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::error::ApiError;
use super::service::{Service, session_json};
use crate::session::CloudOps;
use crate::session::change::{
    Admission, Change, ChangeError, ChangeRequest, QueueChange, QueueRequest, SessionUpdate,
};
use crate::store::Journal;

/// How long a change may take: a new announcement is transcoded before the switch.
const CHANGE_WITHIN: Duration = Duration::from_secs(120);

pub(super) async fn update<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let asked: SessionUpdate =
        parsed(&body, "a session change (media, volume, paused, seek_secs)")?;
    let profile = profile_of(&svc, &id).await?;
    let change = asked.validate(&admission(&svc, profile)).await?;
    made(&svc, &id, change).await
}

/// `POST /v1/sessions/{id}/queue`: `{items: [{media, mark?}], mode: append|replace}`.
pub(super) async fn enqueue<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let asked: QueueRequest = parsed(&body, "a queue request (items: [{media, mark}], mode)")?;
    let profile = profile_of(&svc, &id).await?;
    let change = asked.validate(&admission(&svc, profile)).await?;
    made(&svc, &id, change).await
}

/// `DELETE /v1/sessions/{id}/queue`: what has not played is dropped, the queued item on air
/// cut (barge-in).
pub(super) async fn clear_queue<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    profile_of(&svc, &id).await?;
    let change = Change {
        queue: Some(QueueChange::Clear),
        ..Default::default()
    };
    made(&svc, &id, change).await
}

/// The body as `T`, or a 400 saying what was expected.
fn parsed<T: serde::de::DeserializeOwned>(body: &[u8], expected: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::problem(StatusCode::BAD_REQUEST, format!("not {expected}: {e}")))
}

/// What a change's inputs are admitted by on this server, for a session of `profile`.
fn admission<C: CloudOps + 'static>(
    svc: &Service<C>,
    profile: crate::media::contract::Profile,
) -> Admission<'_> {
    Admission {
        policy: &svc.policy,
        topologies: &svc.topologies,
        bounds: svc.driver.input_bounds,
        profile,
    }
}

/// The profile of session `id`, which this node runs; why not otherwise.
async fn profile_of<C: CloudOps + 'static>(
    svc: &Service<C>,
    id: &str,
) -> Result<crate::media::contract::Profile, ApiError> {
    match svc.session(id, |e| e.request.profile()) {
        Some(profile) => Ok(profile),
        None => Err(not_here(svc, id).await),
    }
}

/// Has session `id`'s task make `change`; its new status, or why not.
async fn made<C: CloudOps + 'static>(
    svc: &Service<C>,
    id: &str,
    change: Change,
) -> Result<Response, ApiError> {
    let changes = svc
        .session(id, |e| e.changes.clone())
        .ok_or_else(|| refused(ChangeError::Ended))?;
    let (reply, outcome) = tokio::sync::oneshot::channel();
    if changes.send(ChangeRequest { change, reply }).await.is_err() {
        return Err(refused(ChangeError::Ended));
    }
    match tokio::time::timeout(CHANGE_WITHIN, outcome).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => return Err(refused(e)),
        Ok(Err(_)) => return Err(refused(ChangeError::Ended)),
        Err(_) => {
            return Err(ApiError::problem(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "the change took more than {}s; the session's status tells whether it came through",
                    CHANGE_WITHIN.as_secs()
                ),
            ));
        }
    }
    let now = svc
        .session(id, |e| session_json(id, e))
        .ok_or_else(|| refused(ChangeError::Ended))?;
    Ok(Json(now).into_response())
}

/// A session this node does not run: ended (409), or unknown here (404).
async fn not_here<C: CloudOps + 'static>(svc: &Service<C>, id: &str) -> ApiError {
    match svc.journal.whereabouts(id).await {
        Ok(Some(place)) if place.result.is_some() => refused(ChangeError::Ended),
        Ok(Some(_)) => ApiError::problem(
            StatusCode::MISDIRECTED_REQUEST,
            "the session runs on another node: send the change to the node its status names",
        ),
        Ok(None) => ApiError::problem(StatusCode::NOT_FOUND, "no such session"),
        Err(e) => ApiError::store(e, "the session cannot be found"),
    }
}

fn refused(e: ChangeError) -> ApiError {
    let (status, field) = match &e {
        ChangeError::NotBound(_) | ChangeError::Ended => (StatusCode::CONFLICT, None),
        ChangeError::Unsupported { field, .. } => (StatusCode::UNPROCESSABLE_ENTITY, Some(*field)),
        ChangeError::Media(_) => (StatusCode::UNPROCESSABLE_ENTITY, Some("media")),
        ChangeError::Cloud(_) => (StatusCode::BAD_GATEWAY, None),
    };
    ApiError::Custom(status, json!({"error": e.to_string(), "field": field}))
}
