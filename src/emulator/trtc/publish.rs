//! TRTC's relay to CDN, emulated: StartPublishCdnStream, StopPublishCdnStream and
//! UpdatePublishCdnStream with the documented fields, and a publisher per task that really
//! encodes what the room carries and pushes it over RTMP (see `media::room_publish`).
//! `RoomIdType` here is 0 = numeric, 1 = string.

use std::sync::{Arc, Weak};

use serde_json::{Value, json};

use super::params::{
    ApiError, Obj, check_known, err, new_task_id, optional_int, sdkappid, signed_user, task_id,
};
use crate::cloud::publish_cdn::{
    AUDIO_SAMPLE_RATES, MAX_AUDIO_KBPS, MAX_CDN_URLS, MAX_GOP_SECS, MAX_IDLE_SECS, MAX_VIDEO_FPS,
    MAX_VIDEO_KBPS, MAX_VIDEO_SIDE, MIN_AUDIO_KBPS, MIN_IDLE_SECS, check_publish_url,
};
use crate::cloud::room::RoomRef;
use crate::emulator::state::{PublishFrom, PublishTask, State};
use crate::media::room_publish::{PublishPicture, RoomPublishSpec, RoomPublisher, RoomSources};
use crate::media::tap::RoomTap;

/// AgentParams.MaxIdleTime when not given, as documented.
const DEFAULT_IDLE_SECS: i64 = 30;

const START_PARAMS: [&str; 12] = [
    "SdkAppId",
    "RoomId",
    "RoomIdType",
    "AgentParams",
    "WithTranscoding",
    "AudioParams",
    "VideoParams",
    "SingleSubscribeParams",
    "PublishCdnParams",
    "SeiParams",
    "FeedBackRoomParams",
    "RecordParams",
];

fn object<'a>(params: &'a Obj, name: &str) -> Result<Option<&'a Obj>, ApiError> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(v) => Err(err(
            format!("InvalidParameter.{name}"),
            format!("{name} must be an object, got {v}"),
        )),
    }
}

fn required<'a>(params: &'a Obj, name: &str) -> Result<&'a Obj, ApiError> {
    object(params, name)?.ok_or_else(|| {
        err(
            format!("MissingParameter.{name}"),
            format!("{name} is required"),
        )
    })
}

fn int_in(params: &Obj, name: &str, range: std::ops::RangeInclusive<i64>) -> Result<i64, ApiError> {
    optional_int(params, name, range)?.ok_or_else(|| {
        err(
            format!("MissingParameter.{name}"),
            format!("{name} is required"),
        )
    })
}

/// RoomId and RoomIdType as this action numbers them: 0 = numeric (the default), 1 = string.
fn room(params: &Obj, id_field: &str) -> Result<RoomRef, ApiError> {
    let id = match params.get(id_field) {
        Some(Value::String(s)) => s,
        None => {
            return Err(err(
                format!("MissingParameter.{id_field}"),
                format!("{id_field} is required"),
            ));
        }
        Some(v) => {
            return Err(err(
                format!("InvalidParameter.{id_field}"),
                format!("{id_field} must be a string, got {v}"),
            ));
        }
    };
    let kind = optional_int(params, "RoomIdType", 0..=1)?.unwrap_or(0);
    RoomRef::from_publish_cdn(id, kind).map_err(|e| {
        let code = if kind == 1 {
            "InvalidParameter.StrRoomId"
        } else {
            "InvalidParameter.RoomId"
        };
        err(
            code,
            format!("{e} (RoomIdType {kind}: 0 numeric, 1 string)"),
        )
    })
}

struct Audio {
    rate: u32,
    channels: u32,
    kbps: u32,
}

fn audio(params: &Obj) -> Result<Audio, ApiError> {
    let encode = required(required(params, "AudioParams")?, "AudioEncode")?;
    let rate = int_in(encode, "SampleRate", 8_000..=48_000)?;
    if !AUDIO_SAMPLE_RATES.contains(&(rate as u32)) {
        return Err(err(
            "InvalidParameterValue",
            format!("SampleRate {rate} is not one of 48000, 44100, 32000, 24000, 16000, 8000"),
        ));
    }
    let channels = int_in(encode, "Channel", 1..=2)?;
    let kbps = int_in(
        encode,
        "BitRate",
        i64::from(MIN_AUDIO_KBPS)..=i64::from(MAX_AUDIO_KBPS),
    )?;
    optional_int(encode, "Codec", 0..=2)?;
    Ok(Audio {
        rate: rate as u32,
        channels: channels as u32,
        kbps: kbps as u32,
    })
}

fn picture(params: &Obj) -> Result<Option<PublishPicture>, ApiError> {
    let Some(video) = object(params, "VideoParams")? else {
        return Ok(None);
    };
    let encode = required(video, "VideoEncode")?;
    let side = 0..=i64::from(MAX_VIDEO_SIDE);
    Ok(Some(PublishPicture {
        width: int_in(encode, "Width", side.clone())? as u32,
        height: int_in(encode, "Height", side)? as u32,
        fps: int_in(encode, "Fps", 1..=i64::from(MAX_VIDEO_FPS))? as u32,
        bitrate_kbps: int_in(encode, "BitRate", 1..=i64::from(MAX_VIDEO_KBPS))? as u32,
        gop_secs: int_in(encode, "Gop", 1..=i64::from(MAX_GOP_SECS))? as u32,
    }))
}

/// The URLs to push to, each checked; their scheme, host and path for views.
fn cdn_urls(params: &Obj) -> Result<(Vec<String>, Vec<String>), ApiError> {
    let list = match params.get("PublishCdnParams") {
        Some(Value::Array(list)) if !list.is_empty() && list.len() <= MAX_CDN_URLS => list,
        None if params.contains_key("FeedBackRoomParams") => {
            return Err(err(
                "UnsupportedOperation",
                "the emulator publishes to PublishCdnParams only, not back into rooms",
            ));
        }
        _ => {
            return Err(err(
                "InvalidParameter.PublishCdnParams",
                format!("PublishCdnParams must list 1 to {MAX_CDN_URLS} URLs"),
            ));
        }
    };
    let mut urls = Vec::new();
    for entry in list {
        let Some(entry) = entry.as_object() else {
            return Err(err(
                "InvalidParameter.PublishCdnParams",
                "each PublishCdnParams entry is an object",
            ));
        };
        check_known(entry, &["PublishCdnUrl", "IsTencentCdn"])?;
        optional_int(entry, "IsTencentCdn", 0..=1)?;
        let url = entry
            .get("PublishCdnUrl")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                err(
                    "MissingParameter.PublishCdnUrl",
                    "PublishCdnUrl is required",
                )
            })?;
        check_publish_url(url).map_err(|e| err("InvalidParameter.PublishCdnUrl", e.to_string()))?;
        urls.push(url.to_owned());
    }
    let shown = urls.iter().map(|u| without_key(u)).collect();
    Ok((urls, shown))
}

/// An RTMP URL as far as its application: the stream key after it is a secret.
fn without_key(url: &str) -> String {
    let Ok(parsed) = url::Url::parse(url) else {
        return "<not a URL>".to_owned();
    };
    let app = parsed
        .path_segments()
        .and_then(|mut s| s.next())
        .unwrap_or_default();
    let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
    let host = parsed.host_str().unwrap_or_default();
    format!("{}://{host}{port}/{app}/***", parsed.scheme())
}

/// Whose stream a relay without mixing carries; it must be in the same room.
fn single_user(params: &Obj, room: &RoomRef) -> Result<String, ApiError> {
    let stream = required(
        required(params, "SingleSubscribeParams")?,
        "UserMediaStream",
    )?;
    let info = required(stream, "UserInfo")?;
    let user = info
        .get("UserId")
        .and_then(Value::as_str)
        .ok_or_else(|| err("MissingParameter.UserId", "UserInfo.UserId is required"))?;
    if &self::room(info, "RoomId")? != room {
        return Err(err(
            "InvalidParameter.SingleSubscribeParams",
            "UserInfo names another room (or the same id with another RoomIdType)",
        ));
    }
    Ok(user.to_owned())
}

/// What a publish takes from: its room's streams, as the emulator's state has them now.
struct Room {
    state: Weak<State>,
    room: RoomRef,
    from: PublishFrom,
}

impl RoomSources for Room {
    fn taps(&self) -> Vec<RoomTap> {
        let Some(state) = self.state.upgrade() else {
            return Vec::new();
        };
        let inner = state.lock();
        if inner.muted_rooms.contains(&self.room) {
            return Vec::new();
        }
        inner
            .tasks
            .values()
            .filter(|t| t.room == self.room && !t.phase.ended())
            .filter(|t| match &self.from {
                PublishFrom::User(u) => &t.user_id == u,
                PublishFrom::Mix => true,
            })
            .map(|t| t.tap.clone())
            .collect()
    }

    fn occupied(&self) -> bool {
        let Some(state) = self.state.upgrade() else {
            return false;
        };
        let inner = state.lock();
        inner
            .tasks
            .values()
            .any(|t| t.room == self.room && !t.phase.ended())
            || !State::callees_in_room(&inner, &self.room).is_empty()
    }

    fn voices(&self) -> Vec<f64> {
        let Some(state) = self.state.upgrade() else {
            return Vec::new();
        };
        let inner = state.lock();
        State::callees_in_room(&inner, &self.room)
            .iter()
            .filter_map(|u| inner.voices.get(u).copied())
            .collect()
    }
}

pub(super) fn start(state: &Arc<State>, params: &Obj) -> Result<Value, ApiError> {
    check_known(params, &START_PARAMS)?;
    sdkappid(state, params)?;
    let room = room(params, "RoomId")?;
    let agent = required(params, "AgentParams")?;
    check_known(agent, &["UserId", "UserSig", "MaxIdleTime"])?;
    let agent_user = signed_user(state, agent)?.to_owned();
    let max_idle = optional_int(
        agent,
        "MaxIdleTime",
        i64::from(MIN_IDLE_SECS)..=i64::from(MAX_IDLE_SECS),
    )?
    .unwrap_or(DEFAULT_IDLE_SECS);
    let mix = int_in(params, "WithTranscoding", 0..=1)? == 1;
    let audio = audio(params)?;
    let picture = picture(params)?;
    let from = if mix {
        PublishFrom::Mix
    } else {
        PublishFrom::User(single_user(params, &room)?)
    };
    let (urls, shown_urls) = cdn_urls(params)?;
    if from == PublishFrom::User(agent_user.clone()) {
        return Err(err(
            "InvalidParameter.AgentParams",
            "AgentParams.UserId must differ from the user it publishes",
        ));
    }
    let id = new_task_id();
    let inner = state.lock();
    let clash = inner
        .tasks
        .values()
        .any(|t| t.room == room && !t.phase.ended() && t.user_id == agent_user)
        || inner
            .publishes
            .values()
            .any(|p| p.room == room && p.ended.is_none() && p.agent_user == agent_user);
    if clash {
        return Err(err(
            "FailedOperation.TaskExist",
            format!("{agent_user} is already a user in {room}: give the agent an id of its own"),
        ));
    }
    drop(inner);
    // Only the first URL is pushed to: one listener is what callfeed's monitor needs.
    let spec = RoomPublishSpec {
        url: urls[0].clone(),
        sample_rate: audio.rate,
        channels: audio.channels,
        audio_kbps: audio.kbps,
        picture,
        mix,
        max_idle: std::time::Duration::from_secs(max_idle as u64),
    };
    let sources = Arc::new(Room {
        state: Arc::downgrade(state),
        room: room.clone(),
        from: from.clone(),
    });
    let publisher =
        RoomPublisher::start(spec, sources).map_err(|e| err("InternalError", e.to_string()))?;
    tracing::info!(task_id = %id, %room, ?from, "emulated CDN publish started");
    state.lock().publishes.insert(
        id.clone(),
        PublishTask {
            id: id.clone(),
            room,
            agent_user,
            from,
            shown_urls,
            with_video: picture.is_some(),
            sequence: 0,
            publisher: Some(publisher),
            ended: None,
        },
    );
    Ok(json!({ "TaskId": id }))
}

pub(super) fn stop(state: &State, params: &Obj) -> Result<Value, ApiError> {
    check_known(params, &["SdkAppId", "TaskId", "RecordKey"])?;
    sdkappid(state, params)?;
    let id = task_id(params)?;
    match state.end_publish(&id, "stopped") {
        Some(true) => Ok(json!({ "TaskId": id })),
        Some(false) => Err(err(
            "FailedOperation.TaskNotExist",
            "the publish task has already ended",
        )),
        None => Err(err("InvalidParameter.TaskId", format!("no task `{id}`"))),
    }
}

pub(super) fn update(state: &State, params: &Obj) -> Result<Value, ApiError> {
    check_known(
        params,
        &[
            "SdkAppId",
            "TaskId",
            "SequenceNumber",
            "WithTranscoding",
            "AudioParams",
            "VideoParams",
            "SingleSubscribeParams",
            "PublishCdnParams",
            "SeiParams",
            "FeedBackRoomParams",
        ],
    )?;
    sdkappid(state, params)?;
    let id = task_id(params)?;
    let sequence = int_in(params, "SequenceNumber", 0..=i64::MAX)?;
    let mut inner = state.lock();
    match inner.publishes.get_mut(&id) {
        Some(t) if t.ended.is_none() => {
            if sequence <= t.sequence {
                return Err(err(
                    "InvalidParameter.SequenceNumber",
                    format!(
                        "SequenceNumber must grow with each update; the last was {}",
                        t.sequence
                    ),
                ));
            }
            t.sequence = sequence;
            Ok(json!({ "TaskId": id }))
        }
        Some(_) => Err(err(
            "FailedOperation.TaskNotExist",
            "the publish task has already ended",
        )),
        None => Err(err("InvalidParameter.TaskId", format!("no task `{id}`"))),
    }
}
