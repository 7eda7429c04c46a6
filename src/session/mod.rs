//! Sessions: the call, the room and the stream as one lifecycle.
//!
//! `state` is the pure state machine; `driver` is the one task per session that talks to
//! the cloud (through [`CloudOps`]) and the media engine, feeds the machine what happened and
//! carries out its actions; `journal` records what we started so nothing is left running.

pub mod driver;
pub mod journal;
pub mod state;

use std::future::Future;
use std::time::Duration;

use crate::cloud::call::{CallClient, MediaType, StartCallByRobot};
use crate::cloud::http::CloudError;
use crate::cloud::ingest::{IngestClient, IngestStatus, StartStreamIngest};
use crate::cloud::{RoomRef, UserId};

/// What a callee's phone shows, from `get_call_info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallStatus {
    /// Still ringing or in progress; `answered` once any callee is in the call.
    Live { answered: bool },
    /// The call is over.
    Gone,
}

/// The cloud operations a session needs. The real clients implement it; tests may fake it.
pub trait CloudOps: Send + Sync {
    fn start_call(
        &self,
        req: &StartCallByRobot,
    ) -> impl Future<Output = Result<String, CloudError>> + Send;
    fn call_status(
        &self,
        call_id: &str,
        robot: &str,
    ) -> impl Future<Output = Result<CallStatus, CloudError>> + Send;
    fn end_call(&self, call_id: &str) -> impl Future<Output = Result<(), CloudError>> + Send;
    fn start_ingest(
        &self,
        req: &StartStreamIngest,
    ) -> impl Future<Output = Result<String, CloudError>> + Send;
    fn task_alive(&self, task_id: &str) -> impl Future<Output = Result<bool, CloudError>> + Send;
    fn stop_ingest(&self, task_id: &str) -> impl Future<Output = Result<(), CloudError>> + Send;
}

/// The real cloud: the call engine and TRTC clients.
#[derive(Debug, Clone)]
pub struct CloudClients {
    pub calls: CallClient,
    pub ingest: IngestClient,
}

impl CloudOps for CloudClients {
    async fn start_call(&self, req: &StartCallByRobot) -> Result<String, CloudError> {
        Ok(self.calls.start_call_by_robot(req).await?.response.call_id)
    }

    async fn call_status(&self, call_id: &str, robot: &str) -> Result<CallStatus, CloudError> {
        match self.calls.get_call_info(call_id).await {
            Ok(r) => {
                let answered = r.response.answered(robot).next().is_some();
                let anyone = r.response.users.iter().any(|u| u.user != robot);
                Ok(if anyone {
                    CallStatus::Live { answered }
                } else {
                    CallStatus::Gone
                })
            }
            Err(CloudError::Im { code: 101004, .. }) => Ok(CallStatus::Gone),
            Err(e) => Err(e),
        }
    }

    async fn end_call(&self, call_id: &str) -> Result<(), CloudError> {
        match self.calls.end_call(call_id).await {
            Ok(_) | Err(CloudError::Im { code: 101004, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn start_ingest(&self, req: &StartStreamIngest) -> Result<String, CloudError> {
        Ok(self.ingest.start(req).await?.response.task_id)
    }

    async fn task_alive(&self, task_id: &str) -> Result<bool, CloudError> {
        Ok(self.ingest.describe(task_id).await?.response.status == IngestStatus::InProgress)
    }

    async fn stop_ingest(&self, task_id: &str) -> Result<(), CloudError> {
        match self.ingest.stop(task_id).await {
            Ok(_) => Ok(()),
            // Already over is what we wanted.
            Err(CloudError::Api { code, .. })
                if code == "FailedOperation.TaskFinished" || code == "InvalidParameter.TaskId" =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// Everything a session is asked to do, validated.
#[derive(Debug, Clone)]
pub struct SessionSpec {
    pub callees: Vec<UserId>,
    pub robot: UserId,
    /// The UserID the stream appears as in the room (the robot's by default).
    pub ingest_user: UserId,
    pub room: RoomRef,
    pub media: String,
    pub media_type: MediaType,
    pub profile: crate::media::contract::Profile,
    pub ingest_at: state::IngestAt,
    /// Plays of the media; `None` loops until the call ends.
    pub repeat: Option<u32>,
    pub ring_timeout: Duration,
    pub max_duration: Option<Duration>,
    /// Stream files live (HTTP-FLV) rather than as announcements the cloud plays.
    pub live: bool,
}

impl SessionSpec {
    pub fn start_call_request(&self) -> StartCallByRobot {
        StartCallByRobot {
            robot: self.robot.clone(),
            callees: self.callees.clone(),
            timeout_ms: u32::try_from(self.ring_timeout.as_millis()).unwrap_or(u32::MAX),
            media_type: self.media_type,
            room: Some(self.room.clone()),
            user_data: None,
            offline_push: None,
        }
    }
}

/// Journal key of a room: its kind and id.
pub fn room_key(room: &RoomRef) -> String {
    format!("{}:{}", room.kind(), room.id())
}

/// A session as asked for over the API or the command line, before validation.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    pub to: Vec<String>,
    pub media: String,
    pub room: String,
    #[serde(default = "default_room_type")]
    pub room_type: String,
    #[serde(default = "default_robot")]
    pub robot: String,
    #[serde(default = "default_media_type")]
    pub media_type: String,
    #[serde(default)]
    pub profile: Option<String>,
    #[serde(default = "default_ingest_at")]
    pub ingest_at: String,
    /// Plays; `None` with `loop_forever` plays until the call ends.
    #[serde(default)]
    pub repeat: Option<u32>,
    #[serde(default)]
    pub loop_forever: bool,
    #[serde(default = "default_ring_timeout")]
    pub ring_timeout_secs: u32,
    #[serde(default)]
    pub max_duration_secs: Option<u64>,
    #[serde(default)]
    pub live: bool,
}

fn default_room_type() -> String {
    "string".into()
}
fn default_robot() -> String {
    "robot".into()
}
fn default_media_type() -> String {
    "video".into()
}
fn default_ingest_at() -> String {
    "answer".into()
}
fn default_ring_timeout() -> u32 {
    crate::cloud::call::DEFAULT_RING_TIMEOUT_MS / 1000
}

/// Why a session request was refused before anything started.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Invalid(#[from] crate::cloud::InvalidArgument),
    #[error(transparent)]
    Input(#[from] crate::media::input::InputError),
}

impl SessionRequest {
    /// Checks every field the way the cloud would, and the media input exists.
    pub fn validate(&self) -> Result<SessionSpec, RequestError> {
        use crate::cloud::InvalidArgument;
        use crate::cloud::call::{MAX_RING_TIMEOUT_MS, MIN_RING_TIMEOUT_MS};
        let callees = self
            .to
            .iter()
            .map(|c| UserId::new("to", c))
            .collect::<Result<Vec<_>, _>>()?;
        if callees.is_empty() {
            return Err(InvalidArgument::new("to", "[]", "1 to 8 callees").into());
        }
        let robot = UserId::new("robot", &self.robot)?;
        let kind: crate::cloud::RoomKind = self.room_type.parse()?;
        let room = RoomRef::new(&self.room, kind)?;
        let ring_ms = self.ring_timeout_secs.saturating_mul(1000);
        if !(MIN_RING_TIMEOUT_MS..=MAX_RING_TIMEOUT_MS).contains(&ring_ms) {
            return Err(InvalidArgument::new(
                "ring_timeout",
                format!("{} s", self.ring_timeout_secs),
                "10 to 600 seconds",
            )
            .into());
        }
        let media_type = match self.media_type.as_str() {
            "audio" => MediaType::Audio,
            "video" => MediaType::Video,
            other => {
                return Err(InvalidArgument::new("media_type", other, "audio or video").into());
            }
        };
        let profile = match &self.profile {
            Some(p) => p
                .parse()
                .map_err(|e: String| InvalidArgument::new("profile", p, e))?,
            None => match media_type {
                MediaType::Audio => crate::media::contract::Profile::Audio,
                MediaType::Video => crate::media::contract::Profile::P720,
            },
        };
        let ingest_at = match self.ingest_at.as_str() {
            "answer" => state::IngestAt::Answer,
            "ring" => state::IngestAt::Ring,
            other => {
                return Err(InvalidArgument::new("ingest_at", other, "answer or ring").into());
            }
        };
        crate::media::input::InputSpec::parse(&self.media)?;
        Ok(SessionSpec {
            callees,
            ingest_user: robot.clone(),
            robot,
            room,
            media: self.media.clone(),
            media_type,
            profile,
            ingest_at,
            repeat: if self.loop_forever {
                None
            } else {
                Some(self.repeat.unwrap_or(1).max(1))
            },
            ring_timeout: Duration::from_millis(u64::from(ring_ms)),
            max_duration: self.max_duration_secs.map(Duration::from_secs),
            live: self.live,
        })
    }
}
