//! What the API answers when it does not do what was asked: one type, one way to a response.
//! Handlers return `Result<_, ApiError>`; the text of an internal failure (a store's address,
//! a path, a driver's message) goes to the log under a reference, never into a body.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::session::RequestError;
use crate::store::StoreError;

/// How long a 429 or a 503 asks the client to wait.
pub(super) const RETRY_AFTER_SECS: u64 = 5;

#[derive(Debug)]
pub(crate) enum ApiError {
    /// A refusal whose message is all the client needs (its text is ours, never a failure's).
    Problem(StatusCode, String),
    /// The client may ask again later: 429 with `Retry-After`.
    TooMany(String),
    /// A bearer token is required and none fits: 401 with `WWW-Authenticate`.
    Unauthorized,
    /// One room has one session: 409 naming the one it has.
    RoomBusy { message: String, existing: String },
    /// A request the rules refuse: 422 naming the field, its value and what is allowed.
    Invalid(RequestError),
    /// A request this node could never run, whatever the wait: 422 on `profile`.
    TooCostly { message: String, profile: Value },
    /// The store does not answer, so `consequence`: a 503 the client may retry.
    StoreUnavailable {
        consequence: &'static str,
        error: StoreError,
    },
    /// A refusal whose body says more than its message (a change's field): sent as it is.
    Custom(StatusCode, Value),
    /// Anything else that went wrong inside: a 500 that says nothing of the inside.
    Internal(String),
}

impl ApiError {
    pub(crate) fn problem(status: StatusCode, message: impl Into<String>) -> Self {
        Self::Problem(status, message.into())
    }

    pub(crate) fn internal(detail: impl std::fmt::Display) -> Self {
        Self::Internal(detail.to_string())
    }

    pub(crate) fn store(error: StoreError, consequence: &'static str) -> Self {
        Self::StoreUnavailable { consequence, error }
    }
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        Self::Invalid(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Problem(status, message) => problem(status, message),
            Self::TooMany(message) => {
                with_retry_after(problem(StatusCode::TOO_MANY_REQUESTS, message))
            }
            Self::Unauthorized => {
                let mut answer =
                    problem(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
                answer
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                answer
            }
            Self::RoomBusy { message, existing } => (
                StatusCode::CONFLICT,
                Json(json!({"error": message, "existing": existing})),
            )
                .into_response(),
            Self::Invalid(e) => invalid(&e),
            Self::Custom(status, body) => (status, Json(body)).into_response(),
            Self::TooCostly { message, profile } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({"error": message, "field": "profile", "value": profile})),
            )
                .into_response(),
            Self::StoreUnavailable { consequence, error } => {
                let reference = reference();
                tracing::warn!(%reference, %error, "session store unavailable: {consequence}");
                with_retry_after(problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "the session store does not answer, so {consequence}; try again shortly (reference {reference} in the server log)"
                    ),
                ))
            }
            Self::Internal(detail) => {
                let reference = reference();
                tracing::error!(%reference, error = %detail, "internal error answering a request");
                problem(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("internal error (reference {reference} in the server log)"),
                )
            }
        }
    }
}

/// The body every refusal has: `{"error": message}`.
pub(crate) fn problem(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

fn with_retry_after(mut answer: Response) -> Response {
    answer
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    answer
}

/// A log line's name that a client can quote.
fn reference() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A 422 that says what to fix: the message, and for a field the cloud's rules refuse, the
/// field, the value (shortened) and what is allowed.
fn invalid(e: &RequestError) -> Response {
    let mut body: Value = json!({ "error": e.to_string() });
    match e {
        RequestError::Invalid(invalid) => {
            body["field"] = json!(invalid.field);
            body["value"] = json!(invalid.value.chars().take(200).collect::<String>());
            body["allowed"] = json!(invalid.allowed);
        }
        RequestError::Input(_) | RequestError::Refused(_) | RequestError::TooLarge(_) => {
            body["field"] = json!("media")
        }
    }
    (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
}
