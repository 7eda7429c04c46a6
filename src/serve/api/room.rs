//! `GET /v1/sessions/{id}/room`: what the emulator's room observer saw arrive in the
//! session's call — its callees, and each ingest task's frames, picture size, audio level
//! and dominant tone: what the callee heard. Tencent's cloud shows nobody that, so the
//! route answers 404 unless the cloud is the embedded emulator (`serve --emulator`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::error::ApiError;
use super::service::Service;
use crate::session::CloudOps;

pub(super) async fn seen<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Some(view) = svc.room_view.clone() else {
        return Err(ApiError::problem(
            StatusCode::NOT_FOUND,
            "no room observer: only the embedded emulator (serve --emulator) shows what reached a room",
        ));
    };
    match svc.session(&id, |e| e.status.borrow().call_id.clone()) {
        Some(call_id) => {
            let seen = call_id.as_deref().and_then(|c| view(c));
            Ok(Json(json!({ "id": id, "call_id": call_id, "room": seen })).into_response())
        }
        None => super::elsewhere::answer(&svc, &id, Method::GET, uri.path(), &headers).await,
    }
}
