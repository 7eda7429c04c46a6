//! The call engine (TUICallKit server REST API): the eight commands, the IM envelope and
//! its error codes.
//!
//! Requests are authenticated in the query string with an App administrator's UserSig.
//! Both success and failure arrive as HTTP 200; a non-zero `ErrorCode` is an error.
//! The records commands are in `records`, the callback configuration in `callback`; both
//! are re-exported here.

use std::sync::Arc;

use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use super::http::{CloudError, Operation, PreparedRequest, RateClass, Transport};
use super::ids::{InvalidArgument, UserId};
use super::room::RoomRef;
use super::usersig;

mod callback;
mod records;

pub use callback::{CallbackConfig, DeleteCallback, GetCallback, SetCallback};
pub use records::{
    CallRecord, CallRecordResponse, GetRecordByCallId, GetRecordByFilter, RecordListResponse,
};

/// Lifetime of the admin UserSig minted for each request.
pub const ADMIN_SIG_EXPIRE_SECS: u64 = 86_400;
/// Ring timeout bounds of `start_call_by_robot`, in milliseconds.
pub const MIN_RING_TIMEOUT_MS: u32 = 10_000;
pub const MAX_RING_TIMEOUT_MS: u32 = 600_000;
pub const DEFAULT_RING_TIMEOUT_MS: u32 = 30_000;
/// A group call holds at most 9 people, the robot included.
pub const MAX_CALLEES: usize = 8;
pub const MAX_USER_DATA_BYTES: usize = 1000;

/// Credentials for the IM REST API.
#[derive(Clone)]
pub struct ImCredentials {
    pub sdkappid: u64,
    pub secret_key: SecretString,
    pub admin: UserId,
}

impl std::fmt::Debug for ImCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImCredentials")
            .field("sdkappid", &self.sdkappid)
            .field("secret_key", &"<redacted>")
            .field("admin", &self.admin)
            .finish()
    }
}

/// Reads a JSON string or number as a string; the docs show `User_Account` as both.
pub fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        Value::Null => Ok(String::new()),
        other => Err(serde::de::Error::custom(format!(
            "expected a string or a number, got {other}"
        ))),
    }
}

/// Reads a JSON number or a numeric string as an integer; the docs mislabel some types.
pub fn lenient_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    match Value::deserialize(d)? {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| serde::de::Error::custom("expected an integer")),
        Value::String(s) if s.is_empty() => Ok(0),
        Value::String(s) => s
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("expected an integer, got `{s}`"))),
        Value::Null => Ok(0),
        other => Err(serde::de::Error::custom(format!(
            "expected an integer, got {other}"
        ))),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum MediaType {
    Audio,
    Video,
}

impl MediaType {
    /// The case-sensitive wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaType::Audio => "Audio",
            MediaType::Video => "Video",
        }
    }
}

/// A member's state in a live call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberStatus {
    /// In the call (answered, or the caller).
    Calling,
    /// Ringing, not yet answered.
    Waiting,
    Other(String),
}

impl<'de> Deserialize<'de> for MemberStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "Calling" => MemberStatus::Calling,
            "Waiting" => MemberStatus::Waiting,
            _ => MemberStatus::Other(s),
        })
    }
}

impl serde::Serialize for MemberStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            MemberStatus::Calling => "Calling",
            MemberStatus::Waiting => "Waiting",
            MemberStatus::Other(o) => o,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct UserStatus {
    #[serde(rename = "User_Account", deserialize_with = "lenient_string")]
    pub user: String,
    #[serde(rename = "Status")]
    pub status: MemberStatus,
}

/// A call-engine command: its path, its body and its answer.
pub trait CallCommand {
    /// `service/command` under `/v4/`.
    const PATH: &'static str;
    /// Whether sending it twice is harmless (so a timeout may be retried).
    const IDEMPOTENT: bool;
    type Response: DeserializeOwned;
    /// The JSON body, after checking every field.
    fn body(&self) -> Result<Value, InvalidArgument>;

    fn name() -> &'static str {
        Self::PATH.rsplit('/').next().unwrap_or(Self::PATH)
    }
}

/// `OfflinePushInfo`: the common fields typed, the vendor-specific ones passed through.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, Deserialize)]
pub struct OfflinePushInfo {
    #[serde(rename = "PushFlag", skip_serializing_if = "Option::is_none")]
    pub push_flag: Option<u8>,
    #[serde(rename = "Title", skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(rename = "Desc", skip_serializing_if = "Option::is_none")]
    pub desc: Option<String>,
    #[serde(rename = "Ext", skip_serializing_if = "Option::is_none")]
    pub ext: Option<String>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StartCallByRobot {
    pub robot: UserId,
    pub callees: Vec<UserId>,
    pub timeout_ms: u32,
    pub media_type: MediaType,
    pub room: Option<RoomRef>,
    pub user_data: Option<String>,
    pub offline_push: Option<OfflinePushInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct CalleeResult {
    #[serde(rename = "Callee_Account", deserialize_with = "lenient_string")]
    pub callee: String,
    #[serde(rename = "ResultCode", default)]
    pub result_code: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct StartCallResponse {
    #[serde(rename = "CallId")]
    pub call_id: String,
    #[serde(rename = "CallResult", default)]
    pub call_result: Vec<CalleeResult>,
}

impl CallCommand for StartCallByRobot {
    const PATH: &'static str = "call_engine_http_srv/start_call_by_robot";
    const IDEMPOTENT: bool = false;
    type Response = StartCallResponse;

    fn body(&self) -> Result<Value, InvalidArgument> {
        if self.callees.is_empty() {
            return Err(InvalidArgument::new(
                "CalleeList_Account",
                "[]",
                format!("1 to {MAX_CALLEES} callees"),
            ));
        }
        if self.callees.len() > MAX_CALLEES {
            return Err(InvalidArgument::new(
                "CalleeList_Account",
                format!("{} callees", self.callees.len()),
                format!(
                    "1 to {MAX_CALLEES} callees (a call holds at most 9 people with the robot)"
                ),
            ));
        }
        for (i, callee) in self.callees.iter().enumerate() {
            if callee == &self.robot {
                return Err(InvalidArgument::new(
                    "CalleeList_Account",
                    callee,
                    "callees other than the robot itself",
                ));
            }
            if self.callees[..i].contains(callee) {
                return Err(InvalidArgument::new(
                    "CalleeList_Account",
                    callee,
                    "each callee once",
                ));
            }
        }
        if !(MIN_RING_TIMEOUT_MS..=MAX_RING_TIMEOUT_MS).contains(&self.timeout_ms) {
            return Err(InvalidArgument::new(
                "Timeout",
                format!("{} ms", self.timeout_ms),
                format!(
                    "{MIN_RING_TIMEOUT_MS} to {MAX_RING_TIMEOUT_MS} ms (10 s to 10 min of ringing)"
                ),
            ));
        }
        if let Some(data) = &self.user_data
            && data.len() > MAX_USER_DATA_BYTES
        {
            return Err(InvalidArgument::new(
                "UserData",
                format!("{} bytes", data.len()),
                format!("at most {MAX_USER_DATA_BYTES} bytes"),
            ));
        }
        let mut call_info = json!({ "MediaType": self.media_type.as_str() });
        if let Some(room) = &self.room {
            call_info["RoomId"] = json!(room.id());
            call_info["RoomIdType"] = json!(room.call_room_id_type());
        }
        let mut body = json!({
            "Robot_Account": self.robot,
            "CalleeList_Account": self.callees,
            "Timeout": self.timeout_ms,
        });
        if let Some(data) = &self.user_data {
            body["UserData"] = json!(data);
        }
        body["CallInfo"] = call_info;
        if let Some(push) = &self.offline_push {
            body["OfflinePushInfo"] = serde_json::to_value(push).expect("plain data serialises");
        }
        Ok(body)
    }
}

fn check_call_id(call_id: &str) -> Result<(), InvalidArgument> {
    if call_id.is_empty() || call_id.len() > 128 || !call_id.chars().all(|c| c.is_ascii_graphic()) {
        return Err(InvalidArgument::new(
            "CallId",
            call_id,
            "the CallId returned by start_call_by_robot (a UUID)",
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndCall {
    pub call_id: String,
}

impl CallCommand for EndCall {
    const PATH: &'static str = "call_engine_http_srv/end_call";
    const IDEMPOTENT: bool = true;
    type Response = ();
    fn body(&self) -> Result<Value, InvalidArgument> {
        check_call_id(&self.call_id)?;
        Ok(json!({ "CallId": self.call_id }))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetCallInfo {
    pub call_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct CallInfo {
    #[serde(rename = "CallId")]
    pub call_id: String,
    #[serde(rename = "MediaType", alias = "CallMediaType", default)]
    pub media_type: String,
    #[serde(rename = "ChatGroupId", default)]
    pub chat_group_id: String,
    #[serde(rename = "RoomId", default, deserialize_with = "lenient_string")]
    pub room_id: String,
    #[serde(rename = "RoomIdType", default, deserialize_with = "lenient_i64")]
    pub room_id_type: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct CallInfoResponse {
    #[serde(rename = "CallInfo")]
    pub call_info: CallInfo,
    #[serde(rename = "UserList", default)]
    pub users: Vec<UserStatus>,
}

impl CallInfoResponse {
    /// Callees (not the robot) who have answered and are in the call.
    pub fn answered<'a>(&'a self, robot: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.users
            .iter()
            .filter(move |u| u.user != robot && u.status == MemberStatus::Calling)
            .map(|u| u.user.as_str())
    }
}

impl CallCommand for GetCallInfo {
    const PATH: &'static str = "call_engine_http_srv/get_call_info";
    const IDEMPOTENT: bool = true;
    type Response = CallInfoResponse;
    fn body(&self) -> Result<Value, InvalidArgument> {
        check_call_id(&self.call_id)?;
        Ok(json!({ "CallId": self.call_id }))
    }
}

/// A successful answer: the command's `Response` object and the request id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImReply<T> {
    pub request_id: String,
    pub response: T,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "ActionStatus", default)]
    action_status: String,
    #[serde(rename = "ErrorCode", default, deserialize_with = "lenient_i64")]
    error_code: i64,
    #[serde(rename = "ErrorInfo", default)]
    error_info: String,
    #[serde(rename = "RequestId", default)]
    request_id: String,
    #[serde(rename = "Response", default)]
    response: Option<Value>,
}

/// The call-engine client.
#[derive(Debug, Clone)]
pub struct CallClient {
    transport: Arc<Transport>,
    /// Base URL ending in `/`; `v4/...` is joined onto it.
    base: url::Url,
    creds: ImCredentials,
}

impl CallClient {
    pub fn new(transport: Arc<Transport>, base: url::Url, creds: ImCredentials) -> Self {
        Self {
            transport,
            base,
            creds,
        }
    }

    pub fn sdkappid(&self) -> u64 {
        self.creds.sdkappid
    }

    /// Builds the exact request for `cmd` with the given clock and nonce.
    pub fn prepare_at<C: CallCommand>(
        &self,
        cmd: &C,
        now: u64,
        random: u32,
    ) -> Result<PreparedRequest, CloudError> {
        let body = serde_json::to_vec(&cmd.body()?).expect("a JSON value serialises");
        let sig = usersig::generate(
            self.creds.sdkappid,
            self.creds.secret_key.expose_secret().as_bytes(),
            self.creds.admin.as_str(),
            ADMIN_SIG_EXPIRE_SECS,
            now,
            None,
        );
        let mut url = self
            .base
            .join(&format!("v4/{}", C::PATH))
            .map_err(|e| InvalidArgument::new("IM endpoint", &self.base, e.to_string()))?;
        url.query_pairs_mut()
            .append_pair("sdkappid", &self.creds.sdkappid.to_string())
            .append_pair("identifier", self.creds.admin.as_str())
            .append_pair("usersig", &sig)
            .append_pair("random", &random.to_string())
            .append_pair("contenttype", "json");
        Ok(PreparedRequest {
            method: "POST",
            headers: vec![
                ("Host".into(), super::http::host_header(&url)),
                ("Content-Type".into(), "application/json".into()),
            ],
            url,
            body: body.into(),
        })
    }

    /// Builds the request as it would be sent now.
    pub fn prepare<C: CallCommand>(&self, cmd: &C) -> Result<PreparedRequest, CloudError> {
        self.prepare_at(cmd, unix_now(), rand::rng().random())
    }

    pub async fn execute<C: CallCommand + Sync>(
        &self,
        cmd: &C,
    ) -> Result<ImReply<C::Response>, CloudError> {
        // Refuse bad input before the rate limiter or the network sees it.
        cmd.body()?;
        let op = Operation {
            name: C::name(),
            rate: RateClass::CallCommand,
            idempotent: C::IDEMPOTENT,
        };
        let endpoint = self
            .base
            .join(&format!("v4/{}", C::PATH))
            .map_or_else(|_| self.base.to_string(), |u| u.to_string());
        self.transport
            .execute(op, &|| self.prepare(cmd), &|_status, body| {
                parse_reply::<C::Response>(C::name(), &endpoint, body)
            })
            .await
    }

    pub async fn start_call_by_robot(
        &self,
        req: &StartCallByRobot,
    ) -> Result<ImReply<StartCallResponse>, CloudError> {
        self.execute(req).await
    }

    pub async fn end_call(&self, call_id: &str) -> Result<ImReply<()>, CloudError> {
        self.execute(&EndCall {
            call_id: call_id.to_owned(),
        })
        .await
    }

    pub async fn get_call_info(
        &self,
        call_id: &str,
    ) -> Result<ImReply<CallInfoResponse>, CloudError> {
        self.execute(&GetCallInfo {
            call_id: call_id.to_owned(),
        })
        .await
    }

    pub async fn get_record_by_callid(
        &self,
        call_id: &str,
    ) -> Result<ImReply<CallRecordResponse>, CloudError> {
        self.execute(&GetRecordByCallId {
            call_id: call_id.to_owned(),
        })
        .await
    }

    pub async fn get_record_by_filter(
        &self,
        filter: &GetRecordByFilter,
    ) -> Result<ImReply<RecordListResponse>, CloudError> {
        self.execute(filter).await
    }

    pub async fn set_callback(&self, req: &SetCallback) -> Result<ImReply<()>, CloudError> {
        self.execute(req).await
    }

    pub async fn get_callback(&self) -> Result<ImReply<CallbackConfig>, CloudError> {
        self.execute(&GetCallback).await
    }

    pub async fn delete_callback(&self) -> Result<ImReply<()>, CloudError> {
        self.execute(&DeleteCallback).await
    }
}

/// Reads the IM envelope: a non-zero `ErrorCode` (or `ActionStatus` FAIL) is an error.
pub fn parse_reply<T: DeserializeOwned>(
    command: &'static str,
    endpoint: &str,
    body: &[u8],
) -> Result<ImReply<T>, CloudError> {
    let decode = |reason: String| CloudError::Decode {
        endpoint: endpoint.to_owned(),
        expected: "an IM REST envelope",
        reason,
    };
    let env: Envelope = serde_json::from_slice(body).map_err(|e| decode(e.to_string()))?;
    if env.error_code != 0 || env.action_status != "OK" {
        return Err(CloudError::Im {
            command,
            code: if env.error_code == 0 {
                -1
            } else {
                env.error_code
            },
            info: env.error_info,
            request_id: env.request_id,
        });
    }
    let response = serde_json::from_value(env.response.unwrap_or(Value::Null))
        .map_err(|e| decode(format!("Response: {e}")))?;
    Ok(ImReply {
        request_id: env.request_id,
        response,
    })
}

pub(crate) fn unix_now() -> u64 {
    crate::clock::unix_secs()
}
