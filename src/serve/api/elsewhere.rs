//! Sessions this node does not run. In a cluster another node may run it: the request is
//! passed to that node as it came (token, `Last-Event-ID`), and its answer streamed back, so
//! any node answers GET, SSE and DELETE for every session. A session that has ended is told
//! from the shared store.

use axum::Json;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::error::ApiError;
use super::service::Service;
use crate::session::CloudOps;
use crate::session::driver::Phase;
use crate::store::{Cluster, Journal};

/// Marks a request one node passed to another: it is never passed on again.
pub(super) const FORWARDED: &str = "x-callfeed-forwarded";

/// How long connecting to another node may take.
pub(super) const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// How long a passed-on request may take, event streams aside.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The answer for session `id`, which this node does not have: `path` is the request's own.
pub(super) async fn answer<C: CloudOps + 'static>(
    svc: &Service<C>,
    id: &str,
    method: Method,
    path: &str,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::problem(StatusCode::NOT_FOUND, "no such session");
    if headers.contains_key(FORWARDED) {
        return Err(not_found());
    }
    let place = svc
        .journal
        .whereabouts(id)
        .await
        .map_err(|e| ApiError::store(e, "the session cannot be found"))?
        .ok_or_else(not_found)?;
    if let Some((result, note)) = place.result {
        return Ok(ended(id, &method, &result, &note));
    }
    let me = crate::store::process_identity();
    if place.state == "placed" && place.owner.as_deref() == Some(me.as_str()) {
        if method == Method::DELETE {
            // Stopped before it was picked up: nothing started, it never will.
            svc.journal
                .finish(id, "stopped", "stopped before it started")
                .await
                .map_err(|e| ApiError::store(e, "the stop cannot be recorded"))?;
            return Ok((
                StatusCode::ACCEPTED,
                Json(json!({"id": id, "stopping": true})),
            )
                .into_response());
        }
        // Placed here; picked up within a moment.
        return Ok(Json(json!({"id": id, "status": {"phase": Phase::Placed}})).into_response());
    }
    match (place.owner, place.live_node_api) {
        (Some(owner), Some(api)) if owner != me => {
            pass_on(svc, &api, method, path, headers, None).await
        }
        (Some(owner), None) if owner != me => Err(ApiError::problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "the node running this session does not renew its lease; another node takes the session over when it runs out",
        )),
        _ => Err(not_found()),
    }
}

/// Tells the node running the session with these cloud ids to look at the cloud now.
pub(super) async fn nudge_owner<C: CloudOps + 'static>(
    svc: &Service<C>,
    call_id: Option<&str>,
    task_id: Option<&str>,
) {
    let Some(cluster) = svc.journal.cluster() else {
        return;
    };
    let id = match cluster.session_by_cloud_id(call_id, task_id).await {
        Ok(Some(id)) => id,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, "cannot find a webhook's session in the store");
            return;
        }
    };
    let Ok(Some(place)) = svc.journal.whereabouts(&id).await else {
        return;
    };
    let me = crate::store::process_identity();
    let (Some(owner), Some(api)) = (place.owner, place.live_node_api) else {
        return;
    };
    if owner == me {
        return;
    }
    let mut request = svc
        .peers
        .post(format!(
            "{}/v1/sessions/{id}/nudge",
            api.trim_end_matches('/')
        ))
        .header(FORWARDED, "1")
        .timeout(REQUEST_TIMEOUT);
    if let Some(token) = &svc.token {
        request = request.bearer_auth(secrecy::ExposeSecret::expose_secret(token));
    }
    if let Err(e) = request.send().await {
        tracing::warn!(node = %api, error = %e, "cannot pass a webhook on to the session's node");
    }
}

/// The sessions the other live nodes of the cluster hold, asked of each with the caller's
/// token (none outside a cluster, and none for a request another node passed on).
pub(super) async fn other_nodes_sessions<C: CloudOps + 'static>(
    svc: &Service<C>,
    headers: &HeaderMap,
) -> Vec<serde_json::Value> {
    let cluster = match svc.journal.cluster() {
        Some(c) if svc.cluster.is_some() && !headers.contains_key(FORWARDED) => c,
        _ => return Vec::new(),
    };
    let me = crate::store::process_identity();
    let nodes = match cluster.nodes().await {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the cluster's nodes");
            return Vec::new();
        }
    };
    let asks = nodes.into_iter().filter(|n| n.live && n.id != me).map(|n| {
        let mut request = svc
            .peers
            .get(format!("{}/v1/sessions", n.api_url.trim_end_matches('/')))
            .header(FORWARDED, "1")
            .timeout(REQUEST_TIMEOUT);
        if let Some(auth) = headers.get(header::AUTHORIZATION) {
            request = request.header(header::AUTHORIZATION, auth);
        }
        async move {
            let body = request.send().await.ok()?.bytes().await.ok()?;
            let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
            v["sessions"].as_array().cloned()
        }
    });
    futures::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .flatten()
        .collect()
}

/// A session that ended, as the store recorded it.
fn ended(id: &str, method: &Method, result: &str, note: &str) -> Response {
    let report = json!({"result": result, "note": note});
    if *method == Method::DELETE {
        return (
            StatusCode::OK,
            Json(json!({"id": id, "stopping": false, "report": report})),
        )
            .into_response();
    }
    Json(json!({"id": id, "status": {"phase": Phase::Ended}, "report": report})).into_response()
}

pub(super) async fn pass_on<C: CloudOps + 'static>(
    svc: &Service<C>,
    api: &str,
    method: Method,
    path: &str,
    headers: &HeaderMap,
    body: Option<axum::body::Bytes>,
) -> Result<Response, ApiError> {
    let events = path.ends_with("/events");
    let mut request = svc
        .peers
        .request(method, format!("{}{path}", api.trim_end_matches('/')))
        .header(FORWARDED, "1");
    if let Some(body) = body {
        request = request
            .header(header::CONTENT_TYPE, "application/json")
            .body(body);
    }
    for name in [
        header::AUTHORIZATION,
        header::ACCEPT,
        "last-event-id".parse().expect("a header name"),
    ] {
        if let Some(value) = headers.get(&name) {
            request = request.header(name, value);
        }
    }
    if !events {
        request = request.timeout(REQUEST_TIMEOUT);
    }
    let answer = match request.send().await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(node = %api, error = %e, "cannot reach the session's node");
            return Err(ApiError::problem(
                StatusCode::BAD_GATEWAY,
                format!("the node running this session ({api}) does not answer"),
            ));
        }
    };
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
    let body = axum::body::Body::from_stream(answer.bytes_stream());
    let mut response = (status, body).into_response();
    if let Some(ct) = content_type {
        response.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    Ok(response)
}
