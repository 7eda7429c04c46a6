//! `GET /v1/sessions`, `GET /v1/sessions/{id}`, `DELETE /v1/sessions/{id}`: the sessions as
//! they stand, this node's and, in a cluster, the others' (see `elsewhere`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::elsewhere;
use super::error::ApiError;
use super::service::{Service, session_json};
use crate::session::CloudOps;

/// Every session: this node's, and in a cluster the other nodes' (asked with `headers`).
pub(super) async fn all_sessions<C: CloudOps + 'static>(
    svc: &Service<C>,
    headers: &HeaderMap,
) -> Vec<Value> {
    svc.prune();
    let mut all: Vec<Value> = {
        let sessions = svc.sessions.lock();
        sessions.iter().map(|(id, e)| session_json(id, e)).collect()
    };
    all.extend(elsewhere::other_nodes_sessions(svc, headers).await);
    all
}

pub(super) async fn list<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
    headers: HeaderMap,
) -> Json<Value> {
    let all = all_sessions(&svc, &headers).await;
    Json(json!({ "sessions": all }))
}

pub(super) async fn one<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    match svc.session(&id, |e| session_json(&id, e)) {
        Some(v) => Ok(Json(v).into_response()),
        None => elsewhere::answer(&svc, &id, Method::GET, uri.path(), &headers).await,
    }
}

pub(super) async fn stop<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    match svc.session(&id, |e| e.stop.send(true)) {
        Some(_) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({"id": id, "stopping": true})),
        )
            .into_response()),
        None => elsewhere::answer(&svc, &id, Method::DELETE, uri.path(), &headers).await,
    }
}
