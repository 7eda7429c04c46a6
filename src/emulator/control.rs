//! The control API (`/emulator/v1`): what arrived in each room, call and task, the relays to
//! CDN, callee behaviours and voices, fault injection, and the TRTC webhook target.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use super::settings::{Behaviour, TrtcCallback};
use super::state::{Fault, Inner, MemberState, PublishView, State, TaskCommand, TaskView};
use crate::cloud::room::{RoomKind, RoomRef};

fn not_found(what: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": format!("no {what}")})),
    )
        .into_response()
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": message}))).into_response()
}

/// The room a control path names (`/rooms/{kind}/{id}`), or why it names none.
fn room_named(kind: &str, id: &str) -> Result<RoomRef, String> {
    kind.parse::<RoomKind>()
        .and_then(|k| RoomRef::new(id, k))
        .map_err(|e| e.to_string())
}

#[derive(Debug, Serialize)]
struct RoomMember {
    user_id: String,
    role: &'static str,
}

#[derive(Debug, Serialize)]
struct RoomView {
    room_id: String,
    room_kind: RoomKind,
    members: Vec<RoomMember>,
    tasks: Vec<TaskView>,
}

fn room_view(inner: &Inner, room: &RoomRef) -> RoomView {
    let mut members: Vec<RoomMember> = State::callees_in_room(inner, room)
        .into_iter()
        .map(|user_id| RoomMember {
            user_id,
            role: "callee",
        })
        .collect();
    let tasks: Vec<TaskView> = inner
        .tasks
        .values()
        .filter(|t| &t.room == room)
        .map(|t| t.view())
        .collect();
    members.extend(
        tasks
            .iter()
            .filter(|t| t.status == "InProgress")
            .map(|t| RoomMember {
                user_id: t.user_id.clone(),
                role: "ingest_robot",
            }),
    );
    RoomView {
        room_id: room.id().to_owned(),
        room_kind: room.kind(),
        members,
        tasks,
    }
}

fn all_rooms(inner: &Inner) -> Vec<RoomRef> {
    let mut rooms: Vec<RoomRef> = inner
        .calls
        .values()
        .filter_map(|c| c.room.clone())
        .chain(inner.tasks.values().map(|t| t.room.clone()))
        .collect();
    rooms.sort();
    rooms.dedup();
    rooms
}

pub(crate) async fn rooms(AxState(state): AxState<Arc<State>>) -> Response {
    let inner = state.lock();
    let views: Vec<RoomView> = all_rooms(&inner)
        .iter()
        .map(|r| room_view(&inner, r))
        .collect();
    Json(json!({ "rooms": views })).into_response()
}

pub(crate) async fn room(
    AxState(state): AxState<Arc<State>>,
    Path((kind, id)): Path<(String, String)>,
) -> Response {
    let room = match room_named(&kind, &id) {
        Ok(r) => r,
        Err(why) => return bad_request(why),
    };
    let inner = state.lock();
    Json(room_view(&inner, &room)).into_response()
}

pub(crate) fn call_view(inner: &Inner, id: &str) -> Option<serde_json::Value> {
    let call = inner.calls.get(id)?;
    // A callee sees media when it is in the call and a task pulls into the same room.
    let room_media: Vec<TaskView> = call
        .room
        .as_ref()
        .map(|room| {
            inner
                .tasks
                .values()
                .filter(|t| &t.room == room)
                .map(|t| t.view())
                .collect()
        })
        .unwrap_or_default();
    let media_flowing = room_media
        .iter()
        .any(|t| t.media.video_frames > 0 || t.media.audio_ms > 0);
    let members: Vec<serde_json::Value> = call
        .callees
        .iter()
        .map(|m| {
            json!({"user_id": m.user, "state": m.state,
                "sees_media": m.saw_media || (m.state == MemberState::Calling && call.result.is_none() && media_flowing)})
        })
        .collect();
    Some(json!({
        "call_id": call.id,
        "robot": call.robot,
        "media_type": call.media_type,
        "room_id": call.room.as_ref().map(|r| r.id().to_owned()),
        "room_kind": call.room.as_ref().map(|r| r.kind()),
        "state": if call.result.is_some() { "ended" } else if call.accept_time > 0 { "connected" } else { "ringing" },
        "result": call.result,
        "start_time": call.start_time,
        "accept_time": call.accept_time,
        "end_time": call.end_time,
        "members": members,
        "media": room_media,
    }))
}

pub(crate) async fn calls(AxState(state): AxState<Arc<State>>) -> Response {
    let inner = state.lock();
    let views: Vec<_> = inner
        .calls
        .keys()
        .filter_map(|id| call_view(&inner, id))
        .collect();
    Json(json!({ "calls": views })).into_response()
}

pub(crate) async fn call(AxState(state): AxState<Arc<State>>, Path(id): Path<String>) -> Response {
    let inner = state.lock();
    match call_view(&inner, &id) {
        Some(v) => Json(v).into_response(),
        None => not_found("call with that CallId"),
    }
}

pub(crate) async fn tasks(AxState(state): AxState<Arc<State>>) -> Response {
    let inner = state.lock();
    let views: Vec<TaskView> = inner.tasks.values().map(|t| t.view()).collect();
    Json(json!({ "tasks": views })).into_response()
}

pub(crate) async fn task(AxState(state): AxState<Arc<State>>, Path(id): Path<String>) -> Response {
    let inner = state.lock();
    match inner.tasks.get(&id) {
        Some(t) => Json(t.view()).into_response(),
        None => not_found("task with that TaskId"),
    }
}

/// Ends a task as if the cloud had ended it (702 is sent; Describe says NotExist).
pub(crate) async fn kill_task(
    AxState(state): AxState<Arc<State>>,
    Path(id): Path<String>,
) -> Response {
    let inner = state.lock();
    match inner.tasks.get(&id) {
        Some(t) if !t.phase.ended() => {
            let _ = t.commands.send(TaskCommand::Kill);
            Json(json!({"killed": id})).into_response()
        }
        Some(_) => bad_request("the task has already ended".into()),
        None => not_found("task with that TaskId"),
    }
}

pub(crate) async fn set_behaviour(
    AxState(state): AxState<Arc<State>>,
    Path(user): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    match serde_json::from_slice::<Behaviour>(&body) {
        Ok(b) => {
            state.set_behaviour(&user, b.clone());
            Json(json!({"user": user, "behaviour": b})).into_response()
        }
        Err(e) => bad_request(format!(
            "behaviour must be {{\"action\":\"answer\",\"after_ms\":N,\"hangup_after_ms\":N}}, \
             {{\"action\":\"reject\",\"after_ms\":N}}, {{\"action\":\"never_answer\"}} or {{\"action\":\"busy\"}}: {e}"
        )),
    }
}

pub(crate) async fn add_fault(
    AxState(state): AxState<Arc<State>>,
    body: axum::body::Bytes,
) -> Response {
    match serde_json::from_slice::<Fault>(&body) {
        Ok(f) => {
            state.lock().faults.push(f.clone());
            Json(json!({"added": f})).into_response()
        }
        Err(e) => bad_request(format!("not a fault: {e}")),
    }
}

pub(crate) async fn clear_faults(AxState(state): AxState<Arc<State>>) -> Response {
    state.lock().faults.clear();
    Json(json!({ "faults": [] })).into_response()
}

pub(crate) async fn faults(AxState(state): AxState<Arc<State>>) -> Response {
    let faults = state.lock().faults.clone();
    Json(json!({ "faults": faults })).into_response()
}

pub(crate) async fn set_trtc_callback(
    AxState(state): AxState<Arc<State>>,
    body: axum::body::Bytes,
) -> Response {
    match serde_json::from_slice::<TrtcCallback>(&body) {
        Ok(c) => {
            state.set_trtc_callback(Some(c.clone()));
            Json(json!({"url": c.url})).into_response()
        }
        Err(e) => bad_request(format!("expected {{\"url\":..,\"key\":..}}: {e}")),
    }
}

/// Every StartPublishCdnStream task, with how it stands.
pub(crate) async fn publishes(AxState(state): AxState<Arc<State>>) -> Response {
    let inner = state.lock();
    let views: Vec<PublishView> = inner.publishes.values().map(|p| p.view()).collect();
    Json(json!({ "publishes": views })).into_response()
}

/// Stops a publish as if the cloud had given up on it mid-call (a fault).
pub(crate) async fn kill_publish(
    AxState(state): AxState<Arc<State>>,
    Path(id): Path<String>,
) -> Response {
    match state.end_publish(&id, "killed") {
        Some(true) => Json(json!({"killed": id})).into_response(),
        Some(false) => bad_request("the publish has already ended".into()),
        None => not_found("publish with that TaskId"),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Voice {
    /// The tone the callee "speaks" in its room's mix; `null` for silence.
    tone_hz: Option<f64>,
}

pub(crate) async fn set_voice(
    AxState(state): AxState<Arc<State>>,
    Path(user): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    match serde_json::from_slice::<Voice>(&body) {
        Ok(Voice { tone_hz: Some(hz) }) if !(20.0..=20_000.0).contains(&hz) => {
            bad_request("tone_hz must be from 20 to 20000".into())
        }
        Ok(Voice { tone_hz }) => {
            state.set_voice(&user, tone_hz);
            Json(json!({"user": user, "tone_hz": tone_hz})).into_response()
        }
        Err(e) => bad_request(format!("expected {{\"tone_hz\": 660}}: {e}")),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Mute {
    muted: bool,
}

/// A fault: the room's ingest tasks run, yet nothing of them reaches anyone in the room.
pub(crate) async fn mute_room(
    AxState(state): AxState<Arc<State>>,
    Path((kind, id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let room = match room_named(&kind, &id) {
        Ok(r) => r,
        Err(why) => return bad_request(why),
    };
    match serde_json::from_slice::<Mute>(&body) {
        Ok(Mute { muted }) => {
            state.set_room_muted(&room, muted);
            Json(json!({"room_id": room.id(), "muted": muted})).into_response()
        }
        Err(e) => bad_request(format!("expected {{\"muted\": true}}: {e}")),
    }
}
