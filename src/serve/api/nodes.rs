//! `GET /v1/nodes`: the cluster's nodes as the shared store knows them (lease age, capacity,
//! load, draining); one node, not in a cluster, lists none.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::error::ApiError;
use super::service::Service;
use crate::session::CloudOps;
use crate::store::Cluster;

/// `POST /v1/drain`: this node takes no new session from now on (`/readyz` answers 503 and
/// placement passes it by), lets its sessions finish up to its drain grace, ends the rest,
/// and leaves the cluster, as on SIGTERM.
pub(super) async fn drain<C: CloudOps + 'static>(State(svc): State<Arc<Service<C>>>) -> Response {
    svc.draining
        .store(true, std::sync::atomic::Ordering::SeqCst);
    svc.drain_asked.notify_one();
    (
        axum::http::StatusCode::ACCEPTED,
        Json(json!({"draining": true})),
    )
        .into_response()
}

pub(super) async fn list<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    // One node's journal has no cluster: it lists none.
    let nodes = match svc.journal.cluster() {
        Some(cluster) => cluster.nodes().await.map_err(ApiError::internal)?,
        None => Vec::new(),
    };
    Ok(Json(json!({
        "this_node": crate::store::process_identity(),
        "nodes": nodes,
    })))
}
