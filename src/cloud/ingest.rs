//! TRTC StreamIngest actions over TencentCloud API 3.0 (version 2019-07-22):
//! Start, Stop, Describe and Update.
//!
//! Requests are JSON POSTs to `/`, signed with TC3-HMAC-SHA256 over `content-type;host`
//! as the official SDKs sign them. Errors arrive as HTTP 200 with `Response.Error`.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::http::{CloudError, Operation, PreparedRequest, RateClass, Transport, host_header};
use super::ids::{InvalidArgument, UserId, check_stream_url};
use super::room::RoomRef;
use super::{tc3, usersig};

pub const SERVICE: &str = "trtc";
pub const VERSION: &str = "2019-07-22";
/// What the ingest robot's UserSig must outlive: the longest task (7 days) plus a day.
pub const ROBOT_SIG_EXPIRE_SECS: u64 = 8 * 86_400;
pub const MAX_REPEAT_NUM: i32 = 1000;
pub const MAX_DURATION_MINUTES: u32 = 10_080;
/// The China SDK allows 0–200 (the intl docs say 0–100); the wider range is accepted and
/// the cloud decides.
pub const MAX_VOLUME: u32 = 200;
pub const MAX_IDLE_TIMEOUT_SECS: u32 = 600;
pub const TEMPOS: [f32; 7] = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0];

/// API 3.0 credentials (a CAM key pair).
#[derive(Clone)]
pub struct ApiCredentials {
    pub secret_id: String,
    pub secret_key: SecretString,
}

impl std::fmt::Debug for ApiCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiCredentials")
            .field("secret_id", &redact_id(&self.secret_id))
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

/// The first four characters of an id, enough to tell keys apart in a log.
pub fn redact_id(id: &str) -> String {
    let head: String = id.chars().take(4).collect();
    format!("{head}****")
}

/// What every action needs from the client: the app and a way to mint UserSigs.
pub struct IngestContext<'a> {
    pub sdkappid: u64,
    pub app_key: &'a SecretString,
    pub now: u64,
}

impl IngestContext<'_> {
    pub(super) fn user_sig(&self, user: &UserId) -> String {
        usersig::generate(
            self.sdkappid,
            self.app_key.expose_secret().as_bytes(),
            user.as_str(),
            ROBOT_SIG_EXPIRE_SECS,
            self.now,
            None,
        )
    }
}

/// A StreamIngest action: its name, its body and its answer.
pub trait IngestAction {
    const ACTION: &'static str;
    const IDEMPOTENT: bool;
    type Response: DeserializeOwned;
    fn body(&self, ctx: &IngestContext<'_>) -> Result<Value, InvalidArgument>;
}

/// Deprecated encode parameters, still documented and accepted.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct VideoEncodeParams {
    #[serde(rename = "Width")]
    pub width: u32,
    #[serde(rename = "Height")]
    pub height: u32,
    #[serde(rename = "Fps")]
    pub fps: u32,
    #[serde(rename = "BitRate")]
    pub bitrate_kbps: u32,
    #[serde(rename = "Gop")]
    pub gop_secs: u32,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct AudioEncodeParams {
    #[serde(rename = "SampleRate")]
    pub sample_rate: u32,
    #[serde(rename = "Channel")]
    pub channels: u32,
    #[serde(rename = "BitRate", skip_serializing_if = "Option::is_none")]
    pub bitrate_kbps: Option<u32>,
    #[serde(rename = "Volume", skip_serializing_if = "Option::is_none")]
    pub volume: Option<u32>,
}

/// StartStreamIngest: pull `stream_url` into `room` as `user_id`.
#[derive(Clone)]
pub struct StartStreamIngest {
    pub room: RoomRef,
    pub user_id: UserId,
    pub stream_url: String,
    /// Minted from the app key when `None`.
    pub user_sig: Option<SecretString>,
    pub private_map_key: Option<SecretString>,
    pub seek_second: Option<u32>,
    pub auto_push: Option<bool>,
    /// −1 loops until stopped or `max_duration_minutes`; 1..=1000 plays that many times.
    pub repeat_num: Option<i32>,
    pub max_duration_minutes: Option<u32>,
    pub volume: Option<u32>,
    pub enable_progress: Option<bool>,
    pub tempo: Option<f32>,
    pub idle_timeout_secs: Option<u32>,
    pub video_encode_params: Option<VideoEncodeParams>,
    pub audio_encode_params: Option<AudioEncodeParams>,
    /// Deprecated one-element list that older docs required; `stream_url` replaces it.
    pub source_url: Option<Vec<String>>,
}

impl std::fmt::Debug for StartStreamIngest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartStreamIngest")
            .field("room", &self.room)
            .field("user_id", &self.user_id)
            .field("stream_url", &"<url>")
            .field("repeat_num", &self.repeat_num)
            .finish_non_exhaustive()
    }
}

impl StartStreamIngest {
    pub fn new(room: RoomRef, user_id: UserId, stream_url: impl Into<String>) -> Self {
        Self {
            room,
            user_id,
            stream_url: stream_url.into(),
            user_sig: None,
            private_map_key: None,
            seek_second: None,
            auto_push: None,
            repeat_num: None,
            max_duration_minutes: None,
            volume: None,
            enable_progress: None,
            tempo: None,
            idle_timeout_secs: None,
            video_encode_params: None,
            audio_encode_params: None,
            source_url: None,
        }
    }
}

fn check_volume(v: Option<u32>) -> Result<(), InvalidArgument> {
    match v {
        Some(v) if v > MAX_VOLUME => Err(InvalidArgument::new(
            "Volume",
            v,
            format!("0 to {MAX_VOLUME} (100 = original level)"),
        )),
        _ => Ok(()),
    }
}

fn check_tempo(t: Option<f32>) -> Result<(), InvalidArgument> {
    match t {
        Some(t) if !TEMPOS.contains(&t) => Err(InvalidArgument::new(
            "Tempo",
            t,
            "one of 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0",
        )),
        _ => Ok(()),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct StartIngestResponse {
    #[serde(rename = "TaskId")]
    pub task_id: String,
}

impl IngestAction for StartStreamIngest {
    const ACTION: &'static str = "StartStreamIngest";
    const IDEMPOTENT: bool = false;
    type Response = StartIngestResponse;

    fn body(&self, ctx: &IngestContext<'_>) -> Result<Value, InvalidArgument> {
        check_stream_url("StreamUrl", &self.stream_url)?;
        for url in self.source_url.iter().flatten() {
            check_stream_url("SourceUrl", url)?;
        }
        match self.repeat_num {
            Some(0) => {
                return Err(InvalidArgument::new(
                    "RepeatNum",
                    0,
                    format!("-1 (loop) or 1 to {MAX_REPEAT_NUM}"),
                ));
            }
            Some(n) if !(-1..=MAX_REPEAT_NUM).contains(&n) => {
                return Err(InvalidArgument::new(
                    "RepeatNum",
                    n,
                    format!("-1 (loop) or 1 to {MAX_REPEAT_NUM}"),
                ));
            }
            _ => {}
        }
        if let Some(m) = self.max_duration_minutes {
            if !(1..=MAX_DURATION_MINUTES).contains(&m) {
                return Err(InvalidArgument::new(
                    "MaxDuration",
                    m,
                    format!("1 to {MAX_DURATION_MINUTES} minutes"),
                ));
            }
            if self.repeat_num != Some(-1) {
                return Err(InvalidArgument::new(
                    "MaxDuration",
                    m,
                    "only together with RepeatNum -1 (loop)",
                ));
            }
        }
        check_volume(self.volume)?;
        check_tempo(self.tempo)?;
        if let Some(t) = self.idle_timeout_secs
            && t > MAX_IDLE_TIMEOUT_SECS
        {
            return Err(InvalidArgument::new(
                "IdleTimeout",
                t,
                format!("0 to {MAX_IDLE_TIMEOUT_SECS} seconds"),
            ));
        }
        let user_sig = match &self.user_sig {
            Some(s) => s.expose_secret().to_owned(),
            None => ctx.user_sig(&self.user_id),
        };
        let mut body = json!({
            "SdkAppId": ctx.sdkappid,
            "RoomId": self.room.id(),
            "RoomIdType": self.room.ingest_room_id_type(),
            "UserId": self.user_id,
            "UserSig": user_sig,
            "StreamUrl": self.stream_url,
        });
        let fields: [(&str, Option<Value>); 12] = [
            (
                "PrivateMapKey",
                self.private_map_key
                    .as_ref()
                    .map(|k| json!(k.expose_secret())),
            ),
            ("SeekSecond", self.seek_second.map(Value::from)),
            ("AutoPush", self.auto_push.map(Value::from)),
            ("RepeatNum", self.repeat_num.map(Value::from)),
            ("MaxDuration", self.max_duration_minutes.map(Value::from)),
            ("Volume", self.volume.map(Value::from)),
            ("EnableProgress", self.enable_progress.map(Value::from)),
            ("Tempo", self.tempo.map(|t| json!(t))),
            ("IdleTimeout", self.idle_timeout_secs.map(Value::from)),
            (
                "VideoEncodeParams",
                self.video_encode_params
                    .as_ref()
                    .map(|p| serde_json::to_value(p).expect("plain data")),
            ),
            (
                "AudioEncodeParams",
                self.audio_encode_params
                    .as_ref()
                    .map(|p| serde_json::to_value(p).expect("plain data")),
            ),
            (
                "SourceUrl",
                self.source_url.as_ref().map(|urls| json!(urls)),
            ),
        ];
        for (name, value) in fields {
            if let Some(v) = value {
                body[name] = v;
            }
        }
        Ok(body)
    }
}

fn check_task_id(task_id: &str) -> Result<(), InvalidArgument> {
    super::ids::check_task_id(task_id, "StartStreamIngest")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopStreamIngest {
    pub task_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Empty {}

impl IngestAction for StopStreamIngest {
    const ACTION: &'static str = "StopStreamIngest";
    const IDEMPOTENT: bool = true;
    type Response = Empty;
    fn body(&self, ctx: &IngestContext<'_>) -> Result<Value, InvalidArgument> {
        check_task_id(&self.task_id)?;
        Ok(json!({ "SdkAppId": ctx.sdkappid, "TaskId": self.task_id }))
    }
}

/// Whether a task is running. A finished task is `NotExist`, not an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestStatus {
    InProgress,
    NotExist,
    Other(String),
}

impl<'de> Deserialize<'de> for IngestStatus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "InProgress" => IngestStatus::InProgress,
            "NotExist" => IngestStatus::NotExist,
            _ => IngestStatus::Other(s),
        })
    }
}

impl serde::Serialize for IngestStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            IngestStatus::InProgress => "InProgress",
            IngestStatus::NotExist => "NotExist",
            IngestStatus::Other(o) => o,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct StatusResponse {
    #[serde(rename = "Status")]
    pub status: IngestStatus,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeStreamIngest {
    pub task_id: String,
}

impl IngestAction for DescribeStreamIngest {
    const ACTION: &'static str = "DescribeStreamIngest";
    const IDEMPOTENT: bool = true;
    type Response = StatusResponse;
    fn body(&self, ctx: &IngestContext<'_>) -> Result<Value, InvalidArgument> {
        check_task_id(&self.task_id)?;
        Ok(json!({ "SdkAppId": ctx.sdkappid, "TaskId": self.task_id }))
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpdateStreamIngest {
    pub task_id: String,
    pub stream_url: Option<String>,
    pub volume: Option<u32>,
    pub is_pause: Option<bool>,
    pub enable_progress: Option<bool>,
    pub tempo: Option<f32>,
}

impl IngestAction for UpdateStreamIngest {
    const ACTION: &'static str = "UpdateStreamIngest";
    const IDEMPOTENT: bool = true;
    type Response = StatusResponse;
    fn body(&self, ctx: &IngestContext<'_>) -> Result<Value, InvalidArgument> {
        check_task_id(&self.task_id)?;
        if let Some(url) = &self.stream_url {
            check_stream_url("StreamUrl", url)?;
        }
        check_volume(self.volume)?;
        check_tempo(self.tempo)?;
        let mut body = json!({ "SdkAppId": ctx.sdkappid, "TaskId": self.task_id });
        if let Some(url) = &self.stream_url {
            body["StreamUrl"] = json!(url);
        }
        if let Some(v) = self.volume {
            body["Volume"] = json!(v);
        }
        if let Some(p) = self.is_pause {
            body["IsPause"] = json!(p);
        }
        if let Some(p) = self.enable_progress {
            body["EnableProgress"] = json!(p);
        }
        if let Some(t) = self.tempo {
            body["Tempo"] = json!(t);
        }
        Ok(body)
    }
}

/// A successful answer with its request id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApiReply<T> {
    pub request_id: String,
    pub response: T,
}

/// The StreamIngest client.
#[derive(Clone)]
pub struct IngestClient {
    transport: Arc<Transport>,
    endpoint: url::Url,
    region: String,
    creds: ApiCredentials,
    sdkappid: u64,
    app_key: SecretString,
}

impl std::fmt::Debug for IngestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestClient")
            .field("endpoint", &self.endpoint.as_str())
            .field("region", &self.region)
            .field("creds", &self.creds)
            .field("sdkappid", &self.sdkappid)
            .finish_non_exhaustive()
    }
}

impl IngestClient {
    pub fn new(
        transport: Arc<Transport>,
        endpoint: url::Url,
        region: String,
        creds: ApiCredentials,
        sdkappid: u64,
        app_key: SecretString,
    ) -> Self {
        Self {
            transport,
            endpoint,
            region,
            creds,
            sdkappid,
            app_key,
        }
    }

    /// Builds the exact signed request for `action` at `now`.
    pub fn prepare_at<A: IngestAction>(
        &self,
        action: &A,
        now: u64,
    ) -> Result<PreparedRequest, CloudError> {
        let ctx = IngestContext {
            sdkappid: self.sdkappid,
            app_key: &self.app_key,
            now,
        };
        let body = serde_json::to_vec(&action.body(&ctx)?).expect("a JSON value serialises");
        let host = host_header(&self.endpoint);
        let content_type = "application/json";
        let timestamp = now as i64;
        let signature = tc3::sign(
            self.creds.secret_key.expose_secret(),
            &tc3::SignInput {
                method: "POST",
                canonical_uri: "/",
                canonical_query: "",
                signed_headers: &[("content-type", content_type), ("host", &host)],
                payload: Some(&body),
                timestamp,
                service: SERVICE,
            },
        );
        Ok(PreparedRequest {
            method: "POST",
            url: self.endpoint.clone(),
            headers: vec![
                (
                    "Authorization".into(),
                    signature.authorization(&self.creds.secret_id),
                ),
                ("Content-Type".into(), content_type.into()),
                ("Host".into(), host),
                ("X-TC-Action".into(), A::ACTION.into()),
                ("X-TC-Timestamp".into(), timestamp.to_string()),
                ("X-TC-Version".into(), VERSION.into()),
                ("X-TC-Region".into(), self.region.clone()),
                (
                    "X-TC-RequestClient".into(),
                    concat!("callfeed_", env!("CARGO_PKG_VERSION")).into(),
                ),
            ],
            body: body.into(),
        })
    }

    pub fn prepare<A: IngestAction>(&self, action: &A) -> Result<PreparedRequest, CloudError> {
        self.prepare_at(action, super::call::unix_now())
    }

    pub async fn execute<A: IngestAction + Sync>(
        &self,
        action: &A,
    ) -> Result<ApiReply<A::Response>, CloudError> {
        // Refuse bad input before the rate limiter or the network sees it.
        self.prepare(action)?;
        let op = Operation {
            name: A::ACTION,
            rate: RateClass::IngestAction,
            idempotent: A::IDEMPOTENT,
        };
        let endpoint = self.endpoint.to_string();
        self.transport
            .execute(op, &|| self.prepare(action), &|_status, body| {
                parse_reply::<A::Response>(A::ACTION, &endpoint, body)
            })
            .await
    }

    pub async fn start(
        &self,
        req: &StartStreamIngest,
    ) -> Result<ApiReply<StartIngestResponse>, CloudError> {
        self.execute(req).await
    }

    pub async fn stop(&self, task_id: &str) -> Result<ApiReply<Empty>, CloudError> {
        self.execute(&StopStreamIngest {
            task_id: task_id.to_owned(),
        })
        .await
    }

    pub async fn describe(&self, task_id: &str) -> Result<ApiReply<StatusResponse>, CloudError> {
        self.execute(&DescribeStreamIngest {
            task_id: task_id.to_owned(),
        })
        .await
    }

    pub async fn update(
        &self,
        req: &UpdateStreamIngest,
    ) -> Result<ApiReply<StatusResponse>, CloudError> {
        self.execute(req).await
    }
}

/// Reads the API 3.0 envelope: `Response.Error` is an error whatever the HTTP status.
pub fn parse_reply<T: DeserializeOwned>(
    action: &'static str,
    endpoint: &str,
    body: &[u8],
) -> Result<ApiReply<T>, CloudError> {
    let decode = |reason: String| CloudError::Decode {
        endpoint: endpoint.to_owned(),
        expected: "an API 3.0 response",
        reason,
    };
    let v: Value = serde_json::from_slice(body).map_err(|e| decode(e.to_string()))?;
    let response = v
        .get("Response")
        .ok_or_else(|| decode("no `Response` object".into()))?;
    let request_id = response
        .get("RequestId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if let Some(error) = response.get("Error") {
        return Err(CloudError::Api {
            action,
            code: error
                .get("Code")
                .and_then(Value::as_str)
                .unwrap_or("UnknownError")
                .to_owned(),
            message: error
                .get("Message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            request_id,
        });
    }
    let response = serde_json::from_value(response.clone()).map_err(|e| decode(e.to_string()))?;
    Ok(ApiReply {
        request_id,
        response,
    })
}
