//! `GET /v1/sessions/{id}/recording[?part=N]`: a session's recording (what its room monitor
//! received), under the API's own auth, with Range for players. Only finished files under
//! `--record-dir` are served: a session id that is not one, a link, or a file still being
//! written is not found.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;

use super::error::ApiError;
use super::service::Service;
use crate::session::CloudOps;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Part {
    #[serde(default)]
    part: usize,
}

fn not_found(why: &str) -> ApiError {
    ApiError::problem(StatusCode::NOT_FOUND, why.to_owned())
}

/// The finished files of a session's recording, in order.
fn finished_files(root: &Path, id: &str) -> Vec<PathBuf> {
    let dir = root.join(id);
    // A link is not followed, here nor for the files (their type is their own).
    if !std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
        return Vec::new();
    }
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "mp4" || x == "m4a"))
        .collect();
    files.sort();
    files
}

pub(super) async fn file<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
    UrlPath(id): UrlPath<String>,
    Query(Part { part }): Query<Part>,
    request: Request,
) -> Result<Response, ApiError> {
    let Some(settings) = svc.driver.record.as_ref() else {
        return Err(not_found(
            "this node records no sessions (start serve with --record-dir)",
        ));
    };
    // A session id names a folder: nothing that could leave the recordings' folder.
    if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(not_found("no such session"));
    }
    let root = settings.dir.clone();
    let files = tokio::task::spawn_blocking(move || finished_files(&root, &id))
        .await
        .unwrap_or_default();
    let Some(path) = files.get(part) else {
        return Err(not_found(if files.is_empty() {
            "no finished recording of this session on this node"
        } else {
            "no such part of the recording"
        }));
    };
    let content_type = match path.extension().and_then(|x| x.to_str()) {
        Some("m4a") => "audio/mp4",
        _ => "video/mp4",
    };
    let served = tower_http::services::ServeFile::new_with_mime(
        path,
        &content_type.parse().expect("a MIME type"),
    )
    .oneshot(request)
    .await
    .map_err(|e| ApiError::problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut response = served.into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("private, no-store"),
    );
    Ok(response)
}
