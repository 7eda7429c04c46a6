//! What every TRTC action checks the same way: the error form, unknown parameters, the
//! application, task ids, integers and booleans, and a user's UserSig. A leaf the actions
//! share.

use base64::Engine;
use rand::RngCore;
use serde_json::Value;

use crate::cloud::{UserId, usersig};
use crate::emulator::state::{State, unix_now};

/// An API 3.0 error: code and message.
pub(super) struct ApiError(pub(super) String, pub(super) String);

pub(super) fn err(code: impl Into<String>, message: impl Into<String>) -> ApiError {
    ApiError(code.into(), message.into())
}

pub(super) type Obj = serde_json::Map<String, Value>;

pub(super) fn check_known(params: &Obj, known: &[&str]) -> Result<(), ApiError> {
    match params.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(err(
            "UnknownParameter",
            format!("the parameter `{k}` is not recognized"),
        )),
        None => Ok(()),
    }
}

pub(super) fn sdkappid(state: &State, params: &Obj) -> Result<(), ApiError> {
    match params.get("SdkAppId") {
        None => Err(err("MissingParameter.SdkAppId", "SdkAppId is required")),
        Some(v) if v.as_u64() == Some(state.config.sdkappid) => Ok(()),
        Some(v) => Err(err(
            "InvalidParameter.SdkAppId",
            format!("SdkAppId {v} is not this account's application"),
        )),
    }
}

pub(super) fn task_id(params: &Obj) -> Result<String, ApiError> {
    match params.get("TaskId") {
        None => Err(err("MissingParameter.TaskId", "TaskId is required")),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 512 => Ok(s.clone()),
        Some(_) => Err(err(
            "InvalidParameter.TaskId",
            "TaskId must be a non-empty string",
        )),
    }
}

pub(super) fn optional_int(
    params: &Obj,
    name: &str,
    range: std::ops::RangeInclusive<i64>,
) -> Result<Option<i64>, ApiError> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_i64() {
            Some(n) if range.contains(&n) => Ok(Some(n)),
            _ => Err(err(
                "InvalidParameterValue",
                format!(
                    "{name} must be an integer from {} to {}, got {v}",
                    range.start(),
                    range.end()
                ),
            )),
        },
    }
}

pub(super) fn optional_bool(params: &Obj, name: &str) -> Result<Option<bool>, ApiError> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(err(
            "InvalidParameter",
            format!("{name} must be a boolean, got {v}"),
        )),
    }
}

pub(super) fn new_task_id() -> String {
    let mut bytes = [0u8; 60];
    rand::rng().fill_bytes(&mut bytes);
    let mut id = base64::engine::general_purpose::STANDARD_NO_PAD
        .encode(bytes)
        .replace('/', "-");
    id.insert(24, '.');
    id
}

/// The robot's UserId, once its UserSig is checked against the application's key.
pub(super) fn signed_user<'a>(state: &State, params: &'a Obj) -> Result<&'a str, ApiError> {
    let user = params
        .get("UserId")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            err(
                "MissingParameter",
                "UserId is required and must be a string",
            )
        })?;
    UserId::new("UserId", user).map_err(|e| err("InvalidParameter", e.to_string()))?;
    let sig = params
        .get("UserSig")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            err(
                "InvalidParameter.UserSig",
                "UserSig is required and must be a string",
            )
        })?;
    let key = secrecy::ExposeSecret::expose_secret(&state.config.sdk_secret_key).to_owned();
    usersig::verify(
        sig,
        key.as_bytes(),
        usersig::Expectation {
            sdkappid: state.config.sdkappid,
            identifier: user,
            now: unix_now(),
            userbuf: None,
        },
    )
    .map_err(|e| err("InvalidParameter.UserSig", format!("{e} ({})", e.im_code())))?;
    Ok(user)
}
