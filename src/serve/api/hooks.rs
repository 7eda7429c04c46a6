//! The webhook endpoints: each one checked before it is believed, counted by verdict, and
//! a believed one makes the sessions it is about look at the cloud at once.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::error::ApiError;
use super::service::Service;
use crate::cloud::webhook::TrtcWebhook;
use crate::serve::metrics::labels;
use crate::serve::webhooks::Verdict;
use crate::session::CloudOps;
use crate::session::driver::Status;

/// Makes the sessions a webhook is about look at the cloud now; whether any runs here.
fn nudge_where(svc: &Service<impl CloudOps>, about: impl Fn(&Status) -> bool) -> bool {
    let mut found = false;
    for e in svc.sessions.lock().values() {
        if about(&e.status.borrow()) {
            e.nudge.notify_one();
            found = true;
        }
    }
    found
}

/// A believed webhook about a session this node does not run: in a cluster, the node that
/// runs it is told to look at the cloud now (in the background: the cloud gets its answer
/// at once).
fn nudge_elsewhere<C: CloudOps + 'static>(
    svc: &Arc<Service<C>>,
    call_id: Option<String>,
    task_id: Option<String>,
) {
    if svc.cluster.is_none() {
        return;
    }
    let svc = svc.clone();
    tokio::spawn(async move {
        super::elsewhere::nudge_owner(&svc, call_id.as_deref(), task_id.as_deref()).await;
    });
}

/// `POST /v1/sessions/{id}/nudge`: another node received a webhook about this session.
pub(super) async fn nudge<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<StatusCode, ApiError> {
    let found = svc.session(&id, |e| e.nudge.notify_one()).is_some();
    if found {
        count_webhook(&svc, "forwarded", Verdict::Accepted);
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::problem(StatusCode::NOT_FOUND, "no such session"))
    }
}

fn count_webhook(svc: &Service<impl CloudOps>, kind: &str, verdict: Verdict) {
    svc.metrics
        .webhooks
        .get_or_create(&labels(&[("kind", kind), ("verdict", verdict.name())]))
        .inc();
}

pub(super) async fn call_webhook<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let param = |n: &str| query.get(n).map(String::as_str);
    let checks = svc.webhooks.as_ref().ok_or_else(no_webhooks)?;
    let verdict = match checks.call(
        param("SdkAppid"),
        param("token"),
        param("CallbackCommand"),
        &body,
    ) {
        Ok(hook) => {
            if !nudge_where(&svc, |s| s.call_id.as_deref() == Some(hook.call_id())) {
                nudge_elsewhere(&svc, Some(hook.call_id().to_owned()), None);
            }
            if let crate::cloud::webhook::CallWebhook::AfterStartCall { call, .. } = &hook {
                let room = crate::cloud::RoomRef::from_call(&call.room_id, call.room_id_type)
                    .ok()
                    .flatten()
                    .map(|r| crate::session::room_key(&r));
                super::strays::call_started(&svc, call.call_id.clone(), room);
            }
            Verdict::Accepted
        }
        Err(v) => v,
    };
    count_webhook(&svc, "call", verdict);
    let (status, ok) = if verdict == Verdict::Accepted {
        (StatusCode::OK, "OK")
    } else {
        (StatusCode::BAD_REQUEST, "FAIL")
    };
    // The call engine reads its own answer shape, refusals included.
    Ok((
        status,
        Json(json!({"ActionStatus": ok, "ErrorCode": 0, "ErrorInfo": verdict.name()})),
    )
        .into_response())
}

/// The receivers are mounted only with webhooks configured; a request that reaches one
/// without them finds nothing.
fn no_webhooks() -> ApiError {
    ApiError::problem(
        StatusCode::NOT_FOUND,
        "webhooks are not configured on this node",
    )
}

pub(super) async fn trtc_webhook<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let checks = svc.webhooks.as_ref().ok_or_else(no_webhooks)?;
    let verdict = match checks.trtc(header("SdkAppId"), header("Sign"), &body) {
        Ok(TrtcWebhook::Ingest { task_id, event, .. }) => {
            use crate::cloud::webhook::IngestEvent;
            if matches!(event, IngestEvent::Started | IngestEvent::Restarting) {
                super::strays::task_started(&svc, task_id.clone());
            }
            if !nudge_where(&svc, |s| s.task_id.as_deref() == Some(task_id.as_str())) {
                nudge_elsewhere(&svc, None, Some(task_id));
            }
            Verdict::Accepted
        }
        Ok(_) => Verdict::Accepted,
        Err(v) => v,
    };
    count_webhook(&svc, "trtc", verdict);
    if verdict == Verdict::Accepted {
        Ok(Json(json!({"code": 0})))
    } else {
        Err(ApiError::problem(StatusCode::BAD_REQUEST, verdict.name()))
    }
}
