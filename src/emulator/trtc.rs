//! TRTC API 3.0: TC3 verification from the received bytes and the four StreamIngest actions
//! with the documented validation and error codes. The task runner that pulls each stream
//! into the room observer is in `task`; the relay to CDN (StartPublishCdnStream and its
//! kin) in `publish`; what every action checks alike in `params`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::settings::MAX_BODY_BYTES;
use super::state::{Injected, State, Task, TaskCommand, TaskPhase, unix_now};
use crate::cloud::ids::check_stream_url;
use crate::cloud::ingest::{
    MAX_DURATION_MINUTES, MAX_IDLE_TIMEOUT_SECS, MAX_REPEAT_NUM, MAX_VOLUME, SERVICE, TEMPOS,
    VERSION,
};
use crate::cloud::room::RoomRef;
use crate::cloud::tc3;

mod params;
mod publish;
mod task;

use params::{
    ApiError, Obj, check_known, err, new_task_id, optional_bool, optional_int, sdkappid,
    signed_user, task_id,
};

const ACTIONS: [&str; 7] = [
    "StartStreamIngest",
    "StopStreamIngest",
    "DescribeStreamIngest",
    "UpdateStreamIngest",
    "StartPublishCdnStream",
    "StopPublishCdnStream",
    "UpdatePublishCdnStream",
];
/// Every region either site documents for the StreamIngest actions.
const REGIONS: [&str; 9] = [
    "ap-bangkok",
    "ap-beijing",
    "ap-chongqing",
    "ap-guangzhou",
    "ap-jakarta",
    "ap-mumbai",
    "ap-shanghai",
    "ap-singapore",
    "ap-tokyo",
];

/// `Content-Type: application/json` exactly: the Python SDK treats anything else (even with
/// `; charset=utf-8`) as success.
fn respond(result: Result<Value, ApiError>) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let body = match result {
        Ok(mut fields) => {
            fields["RequestId"] = json!(request_id);
            json!({ "Response": fields })
        }
        Err(ApiError(code, message)) => json!({"Response": {
            "Error": {"Code": code, "Message": message}, "RequestId": request_id}}),
    };
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

pub(crate) async fn handle(
    AxState(state): AxState<Arc<State>>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if method != Method::POST {
        return respond(Err(err(
            "UnsupportedProtocol",
            "the emulator takes POST requests with a JSON body",
        )));
    }
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return respond(Err(err(
            "RequestSizeLimitExceeded",
            "the request body is over 1 MiB",
        )));
    };
    let action = match check_envelope(&state, &headers, &body) {
        Ok(action) => action,
        Err(e) => return respond(Err(e)),
    };
    let mut drop_answer = false;
    if let Some(fault) = state.take_fault(action) {
        match fault.inject().await {
            Injected::Answer(response) => return response,
            Injected::Code(code, message) => {
                if let Some(code) = code.as_str() {
                    return respond(Err(err(code, message)));
                }
            }
            Injected::Nothing => {}
            Injected::EffectThenDrop => drop_answer = true,
        }
    }
    if state.api_limiter.check_key(&action.to_owned()).is_err() {
        return respond(Err(err(
            "RequestLimitExceeded",
            format!("{action} is limited to 20 requests per second"),
        )));
    }
    let Ok(Value::Object(params)) = serde_json::from_slice::<Value>(&body) else {
        return respond(Err(err(
            "InvalidParameter.BodyParamsError",
            "the body is not a JSON object",
        )));
    };
    let answer = respond(match action {
        "StartStreamIngest" => start(&state, &params),
        "StopStreamIngest" => stop(&state, &params),
        "DescribeStreamIngest" => describe(&state, &params),
        "StartPublishCdnStream" => publish::start(&state, &params),
        "StopPublishCdnStream" => publish::stop(&state, &params),
        "UpdatePublishCdnStream" => publish::update(&state, &params),
        _ => update(&state, &params),
    });
    if drop_answer {
        return super::state::dropped_answer();
    }
    answer
}

/// The signature, then the action, version and region headers, checked in that order;
/// returns the action. Not `async`: the borrowed closures here are not `Send`.
fn check_envelope(
    state: &State,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<&'static str, ApiError> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let secret_key = secrecy::ExposeSecret::expose_secret(&state.config.secret_key).to_owned();
    let secret_id = state.config.secret_id.clone();
    let key_for = |id: &str| (id == secret_id).then(|| secret_key.clone());
    let received = tc3::ReceivedRequest {
        method: "POST",
        canonical_query: "",
        header: &header,
        body,
    };
    tc3::verify(&received, SERVICE, &key_for, unix_now() as i64)
        .map_err(|e| err(e.code, e.message))?;
    let Some(action) = header("x-tc-action") else {
        return Err(err("MissingParameter", "the X-TC-Action header is missing"));
    };
    match header("x-tc-version") {
        Some(v) if v == VERSION => {}
        Some(v) => {
            return Err(err(
                "NoSuchVersion",
                format!("version `{v}` does not exist; TRTC is {VERSION}"),
            ));
        }
        None => {
            return Err(err(
                "MissingParameter",
                "the X-TC-Version header is missing",
            ));
        }
    }
    let Some(action) = ACTIONS.iter().find(|a| **a == action).copied() else {
        return Err(err(
            "InvalidAction",
            format!("action `{action}` does not exist"),
        ));
    };
    match header("x-tc-region") {
        Some(r) if REGIONS.contains(&r.as_str()) => Ok(action),
        Some(r) => Err(err(
            "UnsupportedRegion",
            format!("{action} is not offered in region `{r}`"),
        )),
        None => Err(err("MissingParameter", "the X-TC-Region header is missing")),
    }
}

fn tempo(params: &Obj) -> Result<(), ApiError> {
    match params.get("Tempo") {
        None | Some(Value::Null) => Ok(()),
        Some(v)
            if v.as_f64()
                .is_some_and(|t| TEMPOS.iter().any(|x| f64::from(*x) == t)) =>
        {
            Ok(())
        }
        Some(v) => Err(err(
            "InvalidParameterValue",
            format!("Tempo must be one of 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, got {v}"),
        )),
    }
}

fn stream_url(value: Option<&Value>) -> Result<String, ApiError> {
    let url = value.and_then(Value::as_str).ok_or_else(|| {
        err(
            "InvalidParameter.StreamUrl",
            "StreamUrl is required and must be a string",
        )
    })?;
    check_stream_url("StreamUrl", url)
        .map_err(|e| err("InvalidParameter.StreamUrl", e.to_string()))?;
    Ok(url.to_owned())
}

/// The parameters StartStreamIngest accepts; any other is an UnknownParameter.
const START_PARAMS: [&str; 18] = [
    "SdkAppId",
    "RoomId",
    "RoomIdType",
    "UserId",
    "UserSig",
    "StreamUrl",
    "PrivateMapKey",
    "VideoEncodeParams",
    "AudioEncodeParams",
    "SourceUrl",
    "SeekSecond",
    "AutoPush",
    "RepeatNum",
    "MaxDuration",
    "Volume",
    "EnableProgress",
    "Tempo",
    "IdleTimeout",
];

/// A StartStreamIngest request that passed every check.
struct StartRequest<'a> {
    room: RoomRef,
    user: &'a str,
    url: String,
    repeat: i64,
    max_duration: Option<i64>,
    volume: Option<i64>,
}

fn start(state: &Arc<State>, params: &Obj) -> Result<Value, ApiError> {
    let request = parse_start(state, params)?;
    let id = new_task_id();
    let (commands, rx) = mpsc::unbounded_channel();
    let user = request.user;
    add_task(state, &id, &request, commands)?;
    let plays = (request.repeat > 0).then_some(request.repeat as u64);
    let runner = tokio::spawn(task::run_task(
        Arc::downgrade(state),
        id.clone(),
        request.url,
        plays,
        request
            .max_duration
            .map(|m| Duration::from_secs(m as u64 * 60)),
        rx,
    ));
    if let Some(task) = state.lock().tasks.get_mut(&id) {
        task.runner = Some(runner);
    }
    tracing::info!(task_id = %id, user, "emulated ingest task started");
    Ok(json!({ "TaskId": id }))
}

/// Every StartStreamIngest check, in the order the cloud reports them.
fn parse_start<'a>(state: &State, params: &'a Obj) -> Result<StartRequest<'a>, ApiError> {
    check_known(params, &START_PARAMS)?;
    sdkappid(state, params)?;
    let room = start_room(params)?;
    let user = signed_user(state, params)?;
    let url = match (params.get("StreamUrl"), params.get("SourceUrl")) {
        (Some(url), _) => stream_url(Some(url))?,
        (None, Some(Value::Array(urls))) if urls.len() == 1 => stream_url(urls.first())?,
        _ => stream_url(None)?,
    };
    let repeat = optional_int(params, "RepeatNum", -1..=i64::from(MAX_REPEAT_NUM))?.unwrap_or(1);
    if repeat == 0 {
        return Err(err(
            "InvalidParameterValue",
            "RepeatNum must be -1 or 1 to 1000, got 0",
        ));
    }
    let max_duration = optional_int(params, "MaxDuration", 1..=i64::from(MAX_DURATION_MINUTES))?;
    if max_duration.is_some() && repeat != -1 {
        return Err(err(
            "InvalidParameterValue",
            "MaxDuration applies only with RepeatNum -1",
        ));
    }
    let volume = optional_int(params, "Volume", 0..=i64::from(MAX_VOLUME))?;
    optional_int(params, "SeekSecond", 0..=i64::from(u32::MAX))?;
    optional_int(params, "IdleTimeout", 0..=i64::from(MAX_IDLE_TIMEOUT_SECS))?;
    optional_bool(params, "AutoPush")?;
    optional_bool(params, "EnableProgress")?;
    tempo(params)?;
    Ok(StartRequest {
        room,
        user,
        url,
        repeat,
        max_duration,
        volume,
    })
}

fn start_room(params: &Obj) -> Result<RoomRef, ApiError> {
    let room_id = match params.get("RoomId") {
        None => return Err(err("MissingParameter.RoomId", "RoomId is required")),
        Some(Value::String(s)) => s,
        Some(v) => {
            return Err(err(
                "InvalidParameter.RoomId",
                format!("RoomId must be a string, got {v}"),
            ));
        }
    };
    // The API reference: 0 = string room, 1 = 32-bit integer room (the default).
    let room_type = optional_int(params, "RoomIdType", 0..=1)?.unwrap_or(1);
    RoomRef::from_ingest(room_id, room_type).map_err(|e| {
        let code = if room_type == 0 {
            "InvalidParameter.StrRoomId"
        } else {
            "InvalidParameter.RoomId"
        };
        err(code, e.to_string())
    })
}

/// Records the task, unless this user already pulls a stream into this room.
fn add_task(
    state: &State,
    id: &str,
    request: &StartRequest<'_>,
    commands: mpsc::UnboundedSender<TaskCommand>,
) -> Result<(), ApiError> {
    let StartRequest {
        room,
        user,
        url,
        repeat,
        max_duration,
        volume,
        ..
    } = request;
    let requested_at = Instant::now();
    let mut inner = state.lock();
    let busy = inner
        .tasks
        .values()
        .any(|t| !t.phase.ended() && t.room == *room && t.user_id == *user);
    if busy {
        return Err(err(
            "FailedOperation.TaskExist",
            format!("{user} already pulls a stream into {room}"),
        ));
    }
    inner.tasks.insert(
        id.to_owned(),
        Task {
            id: id.to_owned(),
            room: room.clone(),
            user_id: (*user).to_owned(),
            url: url.clone(),
            repeat_num: *repeat,
            max_duration: *max_duration,
            volume: volume.map(|v| v as u64),
            phase: TaskPhase::Connecting,
            reconnects: 0,
            tally: crate::media::observer::MediaTally::new(requested_at),
            commands,
            runner: None,
            tap: crate::media::tap::RoomTap::new(),
        },
    );
    Ok(())
}

fn stop(state: &State, params: &Obj) -> Result<Value, ApiError> {
    check_known(params, &["SdkAppId", "TaskId"])?;
    sdkappid(state, params)?;
    let id = task_id(params)?;
    let mut inner = state.lock();
    match inner.tasks.get_mut(&id) {
        None => Err(err("InvalidParameter.TaskId", format!("no task `{id}`"))),
        Some(t) if t.phase.ended() => Err(err(
            "FailedOperation.TaskFinished",
            "the task has already finished",
        )),
        Some(t) => {
            // Ended from the API's point of view at once; the runner tears down and reports 702.
            t.phase = TaskPhase::Stopped;
            let _ = t.commands.send(TaskCommand::Stop);
            Ok(json!({}))
        }
    }
}

fn status_of(state: &State, id: &str) -> &'static str {
    match state.lock().tasks.get(id) {
        Some(t) if !t.phase.ended() => "InProgress",
        _ => "NotExist",
    }
}

fn describe(state: &State, params: &Obj) -> Result<Value, ApiError> {
    check_known(params, &["SdkAppId", "TaskId"])?;
    sdkappid(state, params)?;
    let id = task_id(params)?;
    Ok(json!({ "Status": status_of(state, &id) }))
}

fn update(state: &State, params: &Obj) -> Result<Value, ApiError> {
    check_known(
        params,
        &[
            "SdkAppId",
            "TaskId",
            "StreamUrl",
            "Volume",
            "IsPause",
            "EnableProgress",
            "Tempo",
        ],
    )?;
    sdkappid(state, params)?;
    let id = task_id(params)?;
    let url = match params.get("StreamUrl") {
        None | Some(Value::Null) => None,
        some => Some(stream_url(some)?),
    };
    let volume = optional_int(params, "Volume", 0..=i64::from(MAX_VOLUME))?;
    let pause = optional_bool(params, "IsPause")?;
    optional_bool(params, "EnableProgress")?;
    tempo(params)?;
    let mut inner = state.lock();
    match inner.tasks.get_mut(&id) {
        Some(t) if !t.phase.ended() => {
            if let Some(v) = volume {
                t.volume = Some(v as u64);
            }
            if let Some(u) = &url {
                t.url = u.clone();
            }
            let volume = volume.map(|v| v as u64);
            let _ = t.commands.send(TaskCommand::Update { url, pause, volume });
            Ok(json!({ "Status": "InProgress" }))
        }
        _ => Ok(json!({ "Status": "NotExist" })),
    }
}
