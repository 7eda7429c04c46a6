//! The console's login to the event stream. A browser's `EventSource` cannot send an
//! `Authorization` header, and a token in a URL ends up in logs and history. So
//! `POST /v1/console/login`, authorised with the bearer token, sets a cookie that opens
//! `GET /v1/events` and nothing else: `HttpOnly`, `SameSite=Strict`, scoped to that path,
//! valid 12 hours. Its value is an expiry and a nonce signed with a key derived from the
//! API token — never the token — so every node sharing the token (a cluster, or this one
//! after a restart) accepts it without a shared table.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::logins::VIEWER_LIFETIME;
use super::service::Service;
use crate::session::CloudOps;

/// The cookie that admits a console to the event stream.
const VIEWER_COOKIE: &str = "callfeed_viewer";

/// The login a request's cookie carries, if any.
fn viewer_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == VIEWER_COOKIE)
        .map(|(_, value)| value)
}

/// The console login a request to the event stream holds (its cookie's value), if any.
pub(super) fn admitted_viewer<C>(svc: &Service<C>, headers: &HeaderMap) -> Option<String> {
    viewer_cookie(headers)
        .filter(|v| svc.viewers.knows(v))
        .map(str::to_owned)
}

fn set_cookie(value: &str, max_age: u64) -> HeaderValue {
    // The path scopes it to the stream (and its logout under it): no other request
    // carries it.
    HeaderValue::from_str(&format!(
        "{VIEWER_COOKIE}={value}; Path=/v1/events; Max-Age={max_age}; HttpOnly; SameSite=Strict"
    ))
    .expect("a cookie of ASCII")
}

/// `GET /v1/console/hello` (open): what the console must know before it asks anything —
/// whether a token is required (so it sends no request bound to be refused) and whether
/// rooms can be looked into (only with the embedded emulator).
pub(super) async fn hello<C: CloudOps + 'static>(State(svc): State<Arc<Service<C>>>) -> Response {
    axum::Json(json!({
        "token_required": svc.token.is_some(),
        "room_observer": svc.room_view.is_some(),
        // How long an ended session stays listed (--keep-ended), so the page forgets it
        // when the server does.
        "keep_ended_secs": svc.keep_ended.as_secs(),
    }))
    .into_response()
}

/// `POST /v1/console/login` (bearer token): a cookie for the event stream.
pub(super) async fn login<C: CloudOps + 'static>(State(svc): State<Arc<Service<C>>>) -> Response {
    let value = svc.viewers.admit();
    let mut answer = StatusCode::NO_CONTENT.into_response();
    answer.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(&value, VIEWER_LIFETIME.as_secs()),
    );
    answer
}

/// `POST /v1/events/logout` (open; under the cookie's path, so the browser sends it): the
/// login is refused here from now on, and the browser drops the cookie.
pub(super) async fn logout<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
    headers: HeaderMap,
) -> Response {
    if let Some(value) = viewer_cookie(&headers) {
        svc.viewers.sign_out(value);
    }
    let mut answer = StatusCode::NO_CONTENT.into_response();
    answer
        .headers_mut()
        .insert(header::SET_COOKIE, set_cookie("", 0));
    answer
}
