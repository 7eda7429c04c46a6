//! Webhooks the cloud sends us: the three call-engine callbacks and the TRTC ingest and
//! room/media events, plus TRTC's `Sign` header.
//!
//! Parsing is lenient where the documentation contradicts itself: `User_Account` may be a
//! string or a number, the media type may be `MediaType` or `CallMediaType`, and
//! `ActionType` has two spellings for most values.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use super::call::{CallRecord, UserStatus, lenient_string};

type HmacSha256 = Hmac<Sha256>;

/// `Sign` of a TRTC webhook: base64(HMAC-SHA256(callbackKey, raw body)).
pub fn trtc_sign(callback_key: &str, body: &[u8]) -> String {
    let mut mac =
        HmacSha256::new_from_slice(callback_key.as_bytes()).expect("any key length is fine");
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Checks a `Sign` header in constant time against the raw body bytes.
pub fn verify_trtc_sign(callback_key: &str, body: &[u8], sign: &str) -> bool {
    let Ok(presented) = STANDARD.decode(sign.trim()) else {
        return false;
    };
    let mut mac =
        HmacSha256::new_from_slice(callback_key.as_bytes()).expect("any key length is fine");
    mac.update(body);
    mac.verify_slice(&presented).is_ok()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook body is not JSON of the expected shape: {0}")]
    Malformed(String),
    #[error("unknown CallbackCommand `{0}`")]
    UnknownCommand(String),
}

/// What a member did, in either documented spelling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberAction {
    Answer,
    Reject,
    NotAnswer,
    Hangup,
    Join,
    Offline,
    Invite,
    CancelInvite,
    Other(String),
}

impl MemberAction {
    pub fn parse(s: &str) -> Self {
        match s {
            "Answer" | "Accept" => Self::Answer,
            "Reject" => Self::Reject,
            "NotAnswer" => Self::NotAnswer,
            "Hangup" | "Hang Up" | "HangUp" => Self::Hangup,
            "Join" => Self::Join,
            "Offline" => Self::Offline,
            "Invite" | "Invited" => Self::Invite,
            "Cancel_Invite" | "Canncel_Invite" | "Cancel_invite" => Self::CancelInvite,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The spelling of the documentation's example, which an emulator emits.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Answer => "Answer",
            Self::Reject => "Reject",
            Self::NotAnswer => "NotAnswer",
            Self::Hangup => "Hangup",
            Self::Join => "Join",
            Self::Offline => "Offline",
            Self::Invite => "Invite",
            Self::CancelInvite => "Cancel_Invite",
            Self::Other(s) => s,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedUser {
    pub user: String,
    pub action: MemberAction,
}

/// `CallInfo` in `Call.CallbackAfterStartCall`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WebhookCallInfo {
    #[serde(rename = "CallId")]
    pub call_id: String,
    #[serde(rename = "CallMediaType", alias = "MediaType", default)]
    pub media_type: String,
    #[serde(rename = "ChatGroupId", default)]
    pub chat_group_id: String,
    #[serde(rename = "RoomId", default, deserialize_with = "lenient_string")]
    pub room_id: String,
    #[serde(rename = "RoomIdType", default)]
    pub room_id_type: i64,
}

/// A call-engine webhook.
#[derive(Debug, Clone, PartialEq)]
pub enum CallWebhook {
    AfterStartCall {
        call: WebhookCallInfo,
        users: Vec<UserStatus>,
        event_time_ms: i64,
    },
    AfterEndCall {
        record: CallRecord,
        event_time_ms: i64,
    },
    AfterMemberChanged {
        call_id: String,
        users: Vec<UserStatus>,
        changed: Vec<ChangedUser>,
        event_time_ms: i64,
    },
}

impl CallWebhook {
    pub const AFTER_START_CALL: &'static str = "Call.CallbackAfterStartCall";
    pub const AFTER_END_CALL: &'static str = "Call.CallbackAfterEndCall";
    pub const AFTER_MEMBER_CHANGED: &'static str = "Call.CallbackAfterMemberChanged";
    pub const ALL_COMMANDS: [&'static str; 3] = [
        Self::AFTER_START_CALL,
        Self::AFTER_END_CALL,
        Self::AFTER_MEMBER_CHANGED,
    ];

    /// When the call engine says the event happened, Unix ms.
    pub fn event_time_ms(&self) -> i64 {
        match self {
            Self::AfterStartCall { event_time_ms, .. }
            | Self::AfterEndCall { event_time_ms, .. }
            | Self::AfterMemberChanged { event_time_ms, .. } => *event_time_ms,
        }
    }

    pub fn call_id(&self) -> &str {
        match self {
            Self::AfterStartCall { call, .. } => &call.call_id,
            Self::AfterEndCall { record, .. } => &record.call_id,
            Self::AfterMemberChanged { call_id, .. } => call_id,
        }
    }

    /// Parses a body; `command` is the `CallbackCommand` query parameter when the body
    /// lacks one.
    pub fn parse(body: &[u8], command: Option<&str>) -> Result<Self, WebhookError> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(rename = "CallbackCommand", default)]
            command: Option<String>,
            #[serde(rename = "CallInfo", default)]
            call_info: Option<WebhookCallInfo>,
            #[serde(rename = "CallRecord", default)]
            call_record: Option<CallRecord>,
            #[serde(rename = "CallId", default)]
            call_id: Option<String>,
            #[serde(rename = "UserList", default)]
            users: Vec<UserStatus>,
            #[serde(rename = "ChangedUserList", default)]
            changed: Vec<RawChanged>,
            #[serde(rename = "EventTime", default)]
            event_time_ms: i64,
        }
        #[derive(Deserialize)]
        struct RawChanged {
            #[serde(rename = "User_Account", deserialize_with = "lenient_string")]
            user: String,
            #[serde(rename = "ActionType")]
            action: String,
        }
        let raw: Raw =
            serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
        let command = raw
            .command
            .as_deref()
            .or(command)
            .ok_or_else(|| WebhookError::Malformed("no CallbackCommand".into()))?;
        let missing = |what: &str| WebhookError::Malformed(format!("{command} lacks {what}"));
        match command {
            Self::AFTER_START_CALL => Ok(Self::AfterStartCall {
                call: raw.call_info.ok_or_else(|| missing("CallInfo"))?,
                users: raw.users,
                event_time_ms: raw.event_time_ms,
            }),
            Self::AFTER_END_CALL => Ok(Self::AfterEndCall {
                record: raw.call_record.ok_or_else(|| missing("CallRecord"))?,
                event_time_ms: raw.event_time_ms,
            }),
            Self::AFTER_MEMBER_CHANGED => Ok(Self::AfterMemberChanged {
                call_id: raw.call_id.ok_or_else(|| missing("CallId"))?,
                users: raw.users,
                changed: raw
                    .changed
                    .into_iter()
                    .map(|c| ChangedUser {
                        user: c.user,
                        action: MemberAction::parse(&c.action),
                    })
                    .collect(),
                event_time_ms: raw.event_time_ms,
            }),
            other => Err(WebhookError::UnknownCommand(other.to_owned())),
        }
    }
}

/// `EventGroupId` of TRTC webhooks.
pub const EVENT_GROUP_ROOM: i64 = 1;
pub const EVENT_GROUP_MEDIA: i64 = 2;
pub const EVENT_GROUP_STREAM_INGEST: i64 = 7;
pub const EVENT_INGEST_START: i64 = 701;
pub const EVENT_INGEST_STOP: i64 = 702;

/// What an ingest webhook reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestEvent {
    /// 701 status 0: the task is pulling.
    Started,
    /// 701 status 1: the task could not start.
    StartFailed,
    /// 701 status 2: the source could not be reached or dropped; the cloud retries.
    Restarting,
    /// 702 status 0.
    Stopped,
    Other {
        event_type: i64,
        status: i64,
    },
}

/// A TRTC webhook (ingest, room or media group).
#[derive(Debug, Clone, PartialEq)]
pub enum TrtcWebhook {
    Ingest {
        task_id: String,
        event: IngestEvent,
        event_ms: i64,
        callback_ms: i64,
    },
    Room {
        event_group: i64,
        event_type: i64,
        room_id: String,
        user_id: Option<String>,
        event_ms: i64,
        /// `CallbackTs`: when TRTC sent it, Unix ms.
        callback_ms: i64,
        info: serde_json::Value,
    },
}

fn json_i64(v: Option<&serde_json::Value>) -> Option<i64> {
    match v? {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

impl TrtcWebhook {
    pub fn parse(body: &[u8]) -> Result<Self, WebhookError> {
        let v: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
        let group = json_i64(v.get("EventGroupId"))
            .ok_or_else(|| WebhookError::Malformed("no EventGroupId".into()))?;
        let event_type = json_i64(v.get("EventType"))
            .ok_or_else(|| WebhookError::Malformed("no EventType".into()))?;
        let info = v.get("EventInfo").cloned().unwrap_or_default();
        let event_ms = json_i64(info.get("EventMsTs")).unwrap_or_default();
        if group == EVENT_GROUP_STREAM_INGEST {
            let task_id = info
                .get("TaskId")
                .and_then(|t| t.as_str())
                .ok_or_else(|| WebhookError::Malformed("ingest event lacks TaskId".into()))?
                .to_owned();
            let status = json_i64(info.get("Status")).unwrap_or(-1);
            let event = match (event_type, status) {
                (EVENT_INGEST_START, 0) => IngestEvent::Started,
                (EVENT_INGEST_START, 1) => IngestEvent::StartFailed,
                (EVENT_INGEST_START, 2) => IngestEvent::Restarting,
                (EVENT_INGEST_STOP, 0) => IngestEvent::Stopped,
                (event_type, status) => IngestEvent::Other { event_type, status },
            };
            return Ok(Self::Ingest {
                task_id,
                event,
                event_ms,
                callback_ms: json_i64(v.get("CallbackMsTs")).unwrap_or_default(),
            });
        }
        let room_id = match info.get("RoomId") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        Ok(Self::Room {
            event_group: group,
            event_type,
            room_id,
            user_id: info
                .get("UserId")
                .and_then(|u| u.as_str())
                .map(str::to_owned),
            event_ms,
            callback_ms: json_i64(v.get("CallbackTs"))
                .or_else(|| json_i64(v.get("CallbackMsTs")))
                .unwrap_or_default(),
            info,
        })
    }

    /// When TRTC sent the webhook, Unix ms (0 when the body does not say).
    pub fn sent_ms(&self) -> i64 {
        match self {
            Self::Ingest { callback_ms, .. } | Self::Room { callback_ms, .. } => *callback_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_changed_accepts_both_spellings_and_numeric_accounts() {
        let body = br#"{"CallbackCommand":"Call.CallbackAfterMemberChanged","CallId":"c1",
            "UserList":[{"User_Account":144115212830834855,"Status":"Calling"},{"User_Account":"u2","Status":"Calling"}],
            "ChangedUserList":[{"User_Account":"u2","ActionType":"Accept"},{"User_Account":"u3","ActionType":"Hang Up"},{"User_Account":"u4","ActionType":"Canncel_Invite"}],
            "EventTime":1740464128807}"#;
        let CallWebhook::AfterMemberChanged { users, changed, .. } =
            CallWebhook::parse(body, None).unwrap()
        else {
            panic!("wrong kind")
        };
        assert_eq!(users[0].user, "144115212830834855");
        let actions: Vec<_> = changed.iter().map(|c| c.action.clone()).collect();
        assert_eq!(
            actions,
            [
                MemberAction::Answer,
                MemberAction::Hangup,
                MemberAction::CancelInvite
            ]
        );
    }

    #[test]
    fn start_call_takes_either_media_type_field() {
        for field in ["CallMediaType", "MediaType"] {
            let body = format!(
                r#"{{"CallbackCommand":"Call.CallbackAfterStartCall","CallInfo":{{"CallId":"x","{field}":"Audio","ChatGroupId":"","RoomId":"","RoomIdType":1}},"UserList":[],"EventTime":1}}"#
            );
            let CallWebhook::AfterStartCall { call, .. } =
                CallWebhook::parse(body.as_bytes(), None).unwrap()
            else {
                panic!("wrong kind")
            };
            assert_eq!(call.media_type, "Audio");
        }
    }

    #[test]
    fn ingest_events() {
        let body = br#"{"EventGroupId":7,"EventType":701,"CallbackMsTs":1701937900012,"EventInfo":{"EventMsTs":1701937900013,"TaskId":"xx","Status":2}}"#;
        assert_eq!(
            TrtcWebhook::parse(body).unwrap(),
            TrtcWebhook::Ingest {
                task_id: "xx".into(),
                event: IngestEvent::Restarting,
                event_ms: 1701937900013,
                callback_ms: 1701937900012
            }
        );
        assert!(TrtcWebhook::parse(b"{}").is_err());
    }
}
