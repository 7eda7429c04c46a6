//! IM REST and the call engine: query-string auth, the envelope, the eight commands, and
//! the simulated callees whose answers drive each call.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, RawQuery, State as AxState};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::settings::{Behaviour, MAX_BODY_BYTES};
use super::state::{Call, Injected, Member, MemberState, State, unix_now, unix_now_ms};
use crate::cloud::UserId;
use crate::cloud::call::{
    MAX_CALLEES, MAX_RING_TIMEOUT_MS, MAX_USER_DATA_BYTES, MIN_RING_TIMEOUT_MS,
};
use crate::cloud::room::RoomRef;
use crate::cloud::usersig;
use crate::cloud::webhook::CallWebhook;

const KNOWN: [(&str, &str); 8] = [
    ("call_engine_http_srv", "start_call_by_robot"),
    ("call_engine_http_srv", "end_call"),
    ("call_engine_http_srv", "get_call_info"),
    ("call_record_http_srv", "get_record_by_callid"),
    ("call_record_http_srv", "get_record_by_filter"),
    ("call_config", "set_callback"),
    ("call_config", "get_callback"),
    ("call_config", "delete_callback"),
];

fn json_response(body: Value) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn ok(state: &State, response: Option<Value>) -> Response {
    let mut body = json!({"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,
        "RequestId": state.next_im_request_id()});
    if let Some(r) = response {
        body["Response"] = r;
    }
    json_response(body)
}

fn fail(state: &State, code: i64, info: impl Into<String>) -> Response {
    json_response(
        json!({"ActionStatus":"FAIL","ErrorInfo":info.into(),"ErrorCode":code,
        "RequestId": state.next_im_request_id()}),
    )
}

pub(crate) async fn unknown_path(AxState(state): AxState<Arc<State>>) -> Response {
    fail(&state, 60009, "bad request resource: unknown URL path")
}

pub(crate) async fn handle(
    AxState(state): AxState<Arc<State>>,
    Path((service, command)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    method: Method,
    body: Body,
) -> Response {
    if method != Method::POST {
        return fail(
            &state,
            60002,
            "HTTP parse error: the REST API takes POST only",
        );
    }
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return fail(&state, 60003, "request body is over 1 MiB or unreadable");
    };
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let Some(sdkappid) = param("sdkappid") else {
        return fail(&state, 60012, "REST call lacks sdkappid");
    };
    if sdkappid.parse::<u64>().ok() != Some(state.config.sdkappid) {
        return fail(&state, 70020, format!("SDKAppID {sdkappid} not found"));
    }
    let identifier = param("identifier").unwrap_or_default();
    if identifier != state.config.admin {
        return fail(
            &state,
            60010,
            format!("identifier `{identifier}` is not an App administrator"),
        );
    }
    let sig = param("usersig").unwrap_or_default();
    if sig.is_empty() {
        return fail(&state, 70002, "UserSig is empty");
    }
    let key = secrecy::ExposeSecret::expose_secret(&state.config.sdk_secret_key).to_owned();
    if let Err(e) = usersig::verify(
        sig,
        key.as_bytes(),
        usersig::Expectation {
            sdkappid: state.config.sdkappid,
            identifier,
            now: unix_now(),
            userbuf: None,
        },
    ) {
        return fail(&state, e.im_code(), e.to_string());
    }
    if !KNOWN.contains(&(service.as_str(), command.as_str())) {
        return fail(
            &state,
            60009,
            format!("unknown command {service}/{command}"),
        );
    }
    let mut drop_answer = false;
    if let Some(fault) = state.take_fault(&command) {
        match fault.inject().await {
            Injected::Answer(response) => return response,
            Injected::Code(code, message) => {
                if let Some(code) = code.as_i64() {
                    return fail(&state, code, message);
                }
            }
            Injected::Nothing => {}
            Injected::EffectThenDrop => drop_answer = true,
        }
    }
    if state.im_limiter.check_key(&command).is_err() {
        return fail(&state, 60007, "REST call frequency over limit");
    }
    let Ok(Value::Object(req)) = serde_json::from_slice::<Value>(&body) else {
        return fail(&state, 60003, "request body is not a JSON object");
    };
    let answer = match command.as_str() {
        "start_call_by_robot" => start_call(&state, &req),
        "end_call" => end_call(&state, &req),
        "get_call_info" => get_call_info(&state, &req),
        "get_record_by_callid" => get_record(&state, &req),
        "get_record_by_filter" => get_records(&state, &req),
        "set_callback" => set_callback(&state, &req),
        "get_callback" => get_callback(&state),
        _ => delete_callback(&state),
    };
    if drop_answer {
        return super::state::dropped_answer();
    }
    answer
}

type Obj = serde_json::Map<String, Value>;

fn invalid(state: &State, info: impl Into<String>) -> Response {
    fail(state, 101002, info)
}

fn call_id(req: &Obj) -> Option<&str> {
    req.get("CallId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// A `start_call_by_robot` request that passed every check, in the order the checks ran.
struct StartRequest {
    robot: String,
    callees: Vec<String>,
    timeout_ms: u64,
    media_type: String,
    room: Option<RoomRef>,
}

fn start_call(state: &Arc<State>, req: &Obj) -> Response {
    let start = match parse_start(req) {
        Ok(start) => start,
        Err(info) => return invalid(state, info),
    };
    let id = uuid::Uuid::new_v4().to_string();
    let behaviours = register_call(state, &id, &start);
    let StartRequest {
        robot,
        callees,
        timeout_ms,
        ..
    } = start;
    tracing::info!(call_id = %id, robot, callees = ?callees, "emulated call started");
    for (user, behaviour) in behaviours {
        tokio::spawn(play_callee(state.clone(), id.clone(), user, behaviour));
    }
    spawn_ring_timeout(state, id.clone(), timeout_ms);
    ok(
        state,
        Some(json!({"CallId": id, "CallResult": callees.iter()
            .map(|c| json!({"Callee_Account": c, "ResultCode": 0})).collect::<Vec<_>>()})),
    )
}

/// Checks a start request; the error is the `ErrorInfo` of a 101002 answer.
fn parse_start(req: &Obj) -> Result<StartRequest, String> {
    let Some(robot) = req.get("Robot_Account").and_then(Value::as_str) else {
        return Err("Robot_Account must be a string".into());
    };
    if UserId::new("Robot_Account", robot).is_err() {
        return Err(format!("Robot_Account `{robot}` is not a valid UserID"));
    }
    let callees = parse_callees(req, robot)?;
    let timeout = req.get("Timeout").and_then(Value::as_u64);
    let Some(timeout_ms) = timeout
        .filter(|t| (u64::from(MIN_RING_TIMEOUT_MS)..=u64::from(MAX_RING_TIMEOUT_MS)).contains(t))
    else {
        return Err("Timeout must be 10000 to 600000 ms".into());
    };
    if let Some(data) = req.get("UserData")
        && data.as_str().is_none_or(|d| d.len() > MAX_USER_DATA_BYTES)
    {
        return Err("UserData must be a string of at most 1000 bytes".into());
    }
    let Some(info) = req.get("CallInfo").and_then(Value::as_object) else {
        return Err("CallInfo must be an object".into());
    };
    let media_type = match info.get("MediaType").and_then(Value::as_str) {
        Some(m @ ("Audio" | "Video")) => m.to_owned(),
        _ => return Err("CallInfo.MediaType must be \"Audio\" or \"Video\"".into()),
    };
    let room = parse_room(info)?;
    Ok(StartRequest {
        robot: robot.to_owned(),
        callees,
        timeout_ms,
        media_type,
        room,
    })
}

/// The callees: valid UserIDs, each once, not the robot, 1 to `MAX_CALLEES` of them.
fn parse_callees(req: &Obj, robot: &str) -> Result<Vec<String>, String> {
    let Some(list) = req.get("CalleeList_Account").and_then(Value::as_array) else {
        return Err("CalleeList_Account must be an array of strings".into());
    };
    let mut callees: Vec<String> = Vec::new();
    for c in list {
        match c.as_str() {
            Some(c)
                if UserId::new("callee", c).is_ok()
                    && !callees.iter().any(|x| x == c)
                    && c != robot =>
            {
                callees.push(c.to_owned())
            }
            _ => return Err(format!("CalleeList_Account has an invalid entry {c}")),
        }
    }
    if callees.is_empty() || callees.len() > MAX_CALLEES {
        return Err(format!(
            "CalleeList_Account must hold 1 to {MAX_CALLEES} users"
        ));
    }
    Ok(callees)
}

/// No `RoomId` (or an empty one) means no room; otherwise its `RoomIdType` must say how to read it.
fn parse_room(info: &Obj) -> Result<Option<RoomRef>, String> {
    let room_id = info
        .get("RoomId")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if room_id.is_empty() {
        return Ok(None);
    }
    let Some(kind) = info.get("RoomIdType").and_then(Value::as_i64) else {
        return Err("CallInfo.RoomIdType must be 1 (numeric) or 2 (string)".into());
    };
    RoomRef::from_call(room_id, kind).map_err(|e| e.to_string())
}

/// Stores the new call and sends its start webhook under one lock, so no member change can
/// be seen before the call exists; returns each callee's script.
fn register_call(state: &State, id: &str, start: &StartRequest) -> Vec<(String, Behaviour)> {
    let call = Call {
        id: id.to_owned(),
        robot: start.robot.clone(),
        media_type: start.media_type.clone(),
        room: start.room.clone(),
        callees: start
            .callees
            .iter()
            .map(|u| Member {
                user: u.clone(),
                state: MemberState::Waiting,
                saw_media: false,
            })
            .collect(),
        start_time: unix_now(),
        accept_time: 0,
        end_time: 0,
        result: None,
        ended_at: None,
    };
    let mut inner = state.lock();
    if let Some(url) = callback_for(&inner.call_callback, CallWebhook::AFTER_START_CALL) {
        let c = &call;
        state.outbox.send_call(
            &url,
            CallWebhook::AFTER_START_CALL,
            json!({"CallbackCommand": CallWebhook::AFTER_START_CALL,
                "CallInfo": {"CallId": c.id, "CallMediaType": c.media_type, "ChatGroupId": "",
                    "RoomId": c.room.as_ref().map(|r| r.id().to_owned()).unwrap_or_default(),
                    "RoomIdType": c.room.as_ref().map_or(0, |r| r.call_room_id_type())},
                "UserList": c.user_list(), "EventTime": unix_now_ms()}),
        );
    }
    let behaviours = start
        .callees
        .iter()
        .map(|u| {
            let b = inner
                .behaviours
                .get(u)
                .cloned()
                .unwrap_or_else(|| inner.default_behaviour.clone());
            (u.clone(), b)
        })
        .collect();
    inner.calls.insert(id.to_owned(), call);
    behaviours
}

/// When the ring timeout passes, every callee still waiting becomes NotAnswered.
fn spawn_ring_timeout(state: &Arc<State>, call_id: String, timeout_ms: u64) {
    let weak = Arc::downgrade(state);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(timeout_ms)).await;
        let Some(state) = weak.upgrade() else {
            return;
        };
        let waiting: Vec<String> = state
            .lock()
            .calls
            .get(&call_id)
            .map(|c| {
                c.callees
                    .iter()
                    .filter(|m| m.state == MemberState::Waiting)
                    .map(|m| m.user.clone())
                    .collect()
            })
            .unwrap_or_default();
        for user in waiting {
            change_member(
                &state,
                &call_id,
                &user,
                MemberState::NotAnswered,
                "NotAnswer",
            );
        }
    });
}

fn callback_for(config: &Option<(String, Vec<String>)>, command: &str) -> Option<String> {
    config
        .as_ref()
        .filter(|(_, commands)| commands.iter().any(|c| c == command))
        .map(|(url, _)| url.clone())
}

/// A simulated callee, following its script.
async fn play_callee(state: Arc<State>, call_id: String, user: String, behaviour: Behaviour) {
    let weak = Arc::downgrade(&state);
    drop(state);
    let act = |to: MemberState, action: &'static str| {
        let weak = weak.clone();
        let (call_id, user) = (call_id.clone(), user.clone());
        move || {
            if let Some(state) = weak.upgrade() {
                change_member(&state, &call_id, &user, to, action);
            }
        }
    };
    match behaviour {
        Behaviour::Answer {
            after_ms,
            hangup_after_ms,
        } => {
            tokio::time::sleep(Duration::from_millis(after_ms)).await;
            act(MemberState::Calling, "Answer")();
            if let Some(after) = hangup_after_ms {
                tokio::time::sleep(Duration::from_millis(after)).await;
                act(MemberState::HungUp, "Hangup")();
            }
        }
        Behaviour::Reject { after_ms } => {
            tokio::time::sleep(Duration::from_millis(after_ms)).await;
            act(MemberState::Rejected, "Reject")();
        }
        Behaviour::Busy => act(MemberState::Busy, "Reject")(),
        Behaviour::NeverAnswer => {}
    }
}

/// Whether media has reached the room of call `call_id` (any task pulling into it has
/// delivered audio or video).
fn media_in_call_room(inner: &super::state::Inner, call_id: &str) -> bool {
    let Some(room) = inner.calls.get(call_id).and_then(|c| c.room.clone()) else {
        return false;
    };
    inner
        .tasks
        .values()
        .filter(|t| t.room == room)
        .map(|t| t.view())
        .any(|v| v.media.video_frames > 0 || v.media.audio_ms > 0)
}

/// Moves a member to `to` if the move is possible from where it is, emits the webhooks and
/// ends the call when nobody is left.
pub(crate) fn change_member(
    state: &State,
    call_id: &str,
    user: &str,
    to: MemberState,
    action: &str,
) {
    let mut inner = state.lock();
    let hook_changed = callback_for(&inner.call_callback, CallWebhook::AFTER_MEMBER_CHANGED);
    let hook_end = callback_for(&inner.call_callback, CallWebhook::AFTER_END_CALL);
    let flowing = media_in_call_room(&inner, call_id);
    let Some(call) = inner.calls.get_mut(call_id) else {
        return;
    };
    if call.result.is_some() {
        return;
    }
    let Some(member) = call.callees.iter_mut().find(|m| m.user == user) else {
        return;
    };
    let allowed = match to {
        MemberState::Calling
        | MemberState::Rejected
        | MemberState::Busy
        | MemberState::NotAnswered => member.state == MemberState::Waiting,
        MemberState::HungUp => member.state == MemberState::Calling,
        MemberState::Cancelled | MemberState::Ended => member.state.present(),
        MemberState::Waiting => false,
    };
    if !allowed {
        return;
    }
    if member.state == MemberState::Calling {
        member.saw_media |= flowing;
    }
    member.state = to;
    if to == MemberState::Calling && call.accept_time == 0 {
        call.accept_time = unix_now();
    }
    tracing::info!(call_id, user, action, "emulated member changed");
    if let Some(url) = hook_changed {
        state.outbox.send_call(
            &url,
            CallWebhook::AFTER_MEMBER_CHANGED,
            json!({"CallbackCommand": CallWebhook::AFTER_MEMBER_CHANGED, "CallId": call.id,
                "UserList": call.user_list(),
                "ChangedUserList": [{"User_Account": user, "ActionType": action}],
                "EventTime": unix_now_ms()}),
        );
    }
    if !call.callees.iter().any(|m| m.state.present()) {
        finish(state, call, None, hook_end);
    }
}

/// Ends a call: the result, the record, the webhook.
fn finish(state: &State, call: &mut Call, forced: Option<&str>, hook: Option<String>) {
    let any = |s: MemberState| call.callees.iter().any(|m| m.state == s);
    let result = match forced {
        Some(r) => r,
        None if call.accept_time > 0 => "NormalEnd",
        None if any(MemberState::Busy) => "CallBusy",
        None if any(MemberState::Rejected) => "Reject",
        None if any(MemberState::NotAnswered) => "NotAnswer",
        None => "Cancel",
    };
    call.result = Some(result.to_owned());
    call.end_time = unix_now();
    call.ended_at = Some(Instant::now());
    tracing::info!(call_id = %call.id, result, "emulated call ended");
    if let Some(url) = hook {
        state.outbox.send_call(
            &url,
            CallWebhook::AFTER_END_CALL,
            json!({"CallbackCommand": CallWebhook::AFTER_END_CALL, "CallRecord": call.record(),
                "EventTime": unix_now_ms()}),
        );
    }
}

fn end_call(state: &State, req: &Obj) -> Response {
    let Some(id) = call_id(req) else {
        return invalid(state, "CallId must be a non-empty string");
    };
    {
        let mut inner = state.lock();
        let hook = callback_for(&inner.call_callback, CallWebhook::AFTER_END_CALL);
        let flowing = media_in_call_room(&inner, id);
        match inner.calls.get_mut(id) {
            Some(call) if call.result.is_none() => {
                let result = if call.accept_time > 0 {
                    "NormalEnd"
                } else {
                    "Cancel"
                };
                for m in call.callees.iter_mut().filter(|m| m.state.present()) {
                    m.saw_media |= flowing && m.state == MemberState::Calling;
                    m.state = if m.state == MemberState::Calling {
                        MemberState::Ended
                    } else {
                        MemberState::Cancelled
                    };
                }
                finish(state, call, Some(result), hook);
            }
            _ => {
                drop(inner);
                return fail(state, 101004, "call does not exist or has already ended");
            }
        }
    }
    ok(state, None)
}

fn get_call_info(state: &State, req: &Obj) -> Response {
    let Some(id) = call_id(req) else {
        return invalid(state, "CallId must be a non-empty string");
    };
    let view = {
        let inner = state.lock();
        inner.calls.get(id).filter(|c| c.result.is_none()).map(|c| {
            json!({"CallInfo": {"CallId": c.id, "MediaType": c.media_type, "ChatGroupId": "",
                    "RoomId": c.room.as_ref().map(|r| r.id().to_owned()).unwrap_or_default(),
                    "RoomIdType": c.room.as_ref().map_or(0, |r| r.call_room_id_type())},
                "UserList": c.user_list()})
        })
    };
    match view {
        Some(v) => ok(state, Some(v)),
        None => fail(state, 101004, "call does not exist or has already ended"),
    }
}

fn visible_record(state: &State, call: &Call) -> bool {
    call.ended_at
        .is_some_and(|t| t.elapsed() >= state.config.record_delay)
}

fn get_record(state: &State, req: &Obj) -> Response {
    let Some(id) = call_id(req) else {
        return invalid(state, "CallId must be a non-empty string");
    };
    let record = {
        let inner = state.lock();
        inner
            .calls
            .get(id)
            .filter(|c| visible_record(state, c))
            .map(Call::record)
    };
    match record {
        Some(r) => ok(state, Some(json!({"CallRecord": r}))),
        None => fail(state, 101050, "call record does not exist"),
    }
}

fn get_records(state: &State, req: &Obj) -> Response {
    let now = unix_now();
    let int = |k: &str| req.get(k).and_then(Value::as_i64);
    let start = int("StartTime").unwrap_or(0).max(now as i64 - 7 * 86_400);
    let end = int("EndTime").unwrap_or(now as i64);
    let per_page = int("NumberPerPage").unwrap_or(10);
    let page = int("Page").unwrap_or(1);
    if per_page < 1 || page < 1 || start > end {
        return invalid(
            state,
            "NumberPerPage and Page must be 1 or more, StartTime not after EndTime",
        );
    }
    let result_filter = req.get("CallResult").and_then(Value::as_str);
    let type_filter = req.get("CallType").and_then(Value::as_str);
    let records: Vec<Value> = {
        let inner = state.lock();
        inner
            .calls
            .values()
            .filter(|c| visible_record(state, c))
            .filter(|c| (start..=end).contains(&(c.start_time as i64)))
            .filter(|c| result_filter.is_none_or(|r| c.result.as_deref() == Some(r)))
            .filter(|c| type_filter.is_none_or(|t| c.call_type() == t))
            .map(Call::record)
            .collect()
    };
    let total = records.len();
    let page_records: Vec<Value> = records
        .into_iter()
        .skip(((page - 1) * per_page) as usize)
        .take(per_page as usize)
        .collect();
    let page_out = if page_records.is_empty() { 0 } else { page };
    ok(
        state,
        Some(json!({"TotalNum": total, "Page": page_out, "CallRecordList": page_records})),
    )
}

fn set_callback(state: &State, req: &Obj) -> Response {
    let url = req.get("Url").and_then(Value::as_str).unwrap_or_default();
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return fail(state, 100002, "Url must start with http:// or https://");
    }
    let Some(list) = req.get("CallbackCommandList").and_then(Value::as_array) else {
        return fail(state, 100002, "CallbackCommandList must be an array");
    };
    let mut commands = Vec::new();
    for c in list {
        match c.as_str() {
            Some(c) if CallWebhook::ALL_COMMANDS.contains(&c) => commands.push(c.to_owned()),
            _ => return fail(state, 100002, format!("unknown callback command {c}")),
        }
    }
    state.lock().call_callback = Some((url.to_owned(), commands));
    ok(state, None)
}

fn get_callback(state: &State) -> Response {
    let config = state.lock().call_callback.clone();
    match config {
        Some((url, commands)) => ok(
            state,
            Some(json!({"Url": url, "CallbackCommandList": commands})),
        ),
        None => fail(state, 100301, "callback config does not exist"),
    }
}

fn delete_callback(state: &State) -> Response {
    state.lock().call_callback = None;
    ok(state, None)
}
