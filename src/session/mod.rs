//! Sessions: the call, the room and the stream as one lifecycle.
//!
//! `state` is the pure state machine; `driver` is the one task per session that talks to
//! the cloud (through [`CloudOps`]) and the media engine, feeds the machine what happened and
//! carries out its actions; `journal` records what we started so nothing is left running.

pub mod driver;
mod media;
pub mod relay;
mod report;
mod run;
mod settings;
pub mod state;
pub mod teardown;

use std::future::Future;
use std::time::Duration;

use crate::cloud::call::{CallClient, MediaType, StartCallByRobot};
use crate::cloud::http::CloudError;
use crate::cloud::ingest::{IngestClient, IngestStatus, StartStreamIngest};
use crate::cloud::{RoomRef, UserId};

/// Shares the cloud's documented request rates between every session of a process: each
/// session polls less often as more run, so together they never need more than half of a
/// rate limit, and the other half stays for starts, stops and webhook-driven looks.
#[derive(Debug, Default)]
pub struct PollBudget {
    active: std::sync::atomic::AtomicUsize,
}

/// A running session's place in the [`PollBudget`]; leaving frees it.
#[derive(Debug)]
pub struct PollSeat(std::sync::Arc<PollBudget>);

impl Drop for PollSeat {
    fn drop(&mut self) {
        self.0
            .active
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl PollBudget {
    pub fn join(self: &std::sync::Arc<Self>) -> PollSeat {
        self.active
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        PollSeat(self.clone())
    }

    /// How often each session may poll an operation limited to `per_second` requests.
    pub fn interval(&self, base: Duration, per_second: u32) -> Duration {
        let sessions = self.active.load(std::sync::atomic::Ordering::Relaxed) as u64;
        let share = Duration::from_millis(sessions * 2000 / u64::from(per_second.max(1)));
        base.max(share)
    }
}

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
        match self.ingest.describe(task_id).await?.response.status {
            IngestStatus::InProgress => Ok(true),
            IngestStatus::NotExist => Ok(false),
            // Only the cloud's own word that the task is gone counts as gone.
            IngestStatus::Other(status) => Err(CloudError::Decode {
                endpoint: "DescribeStreamIngest".into(),
                expected: "a task status of InProgress or NotExist",
                reason: format!("status `{status}`"),
            }),
        }
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
    /// The media as asked for (for reports), and as it will be opened.
    pub media: String,
    pub input: crate::media::input::InputSpec,
    /// What the input's pipelines may open by themselves (see `media::policy`).
    pub source_guard: Option<crate::media::policy::SourceGuard>,
    pub media_type: MediaType,
    pub profile: crate::media::contract::Profile,
    pub ingest_at: state::IngestAt,
    /// Plays of the media; `None` loops until the call ends.
    pub repeat: Option<u32>,
    pub ring_timeout: Duration,
    pub max_duration: Option<Duration>,
    /// Stream files live (HTTP-FLV) rather than as announcements the cloud plays.
    pub live: bool,
    /// Which of a file's audio tracks is played.
    pub audio_track: crate::media::inspect::tracks::AudioTrack,
    /// Whether a URL is handed to the cloud to pull itself.
    pub direct: crate::media::plan::Direct,
    /// The RTMP relay the stream is pushed to for the cloud to pull, instead of this node
    /// serving it.
    pub relay: Option<crate::publish::relay::Relay>,
}

impl SessionSpec {
    /// Only a URL can be handed to the cloud to pull.
    pub fn check_direct(&self) -> Result<(), crate::cloud::InvalidArgument> {
        let is_url = matches!(self.input, crate::media::input::InputSpec::Url(_));
        if self.direct == crate::media::plan::Direct::Always && !is_url {
            return Err(crate::cloud::InvalidArgument::new(
                "direct",
                "always",
                format!(
                    "a URL the cloud can pull (http, https or rtmp); `{}` is not one, so it is streamed by this node (direct: auto)",
                    crate::redact::redact_url(&self.media)
                ),
            ));
        }
        Ok(())
    }

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

/// Longest a session's media may run: the cloud's own cap on an ingest task (7 days).
pub const MAX_DURATION_SECS: u64 = crate::cloud::ingest::MAX_DURATION_MINUTES as u64 * 60;

/// A session as asked for over the API or the command line, before validation.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    /// At most [`MAX_CALLEES`](crate::cloud::call::MAX_CALLEES), refused while parsing: a
    /// body of a million callees is never held in memory.
    #[serde(deserialize_with = "bounded_callees")]
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
    /// A file's audio track, by number (0 is the first) or language code; the first when
    /// absent.
    #[serde(default)]
    pub audio_track: Option<String>,
    /// `auto` (default), `always` or `never`: whether a URL is handed to the cloud as it is.
    #[serde(default)]
    pub direct: Option<String>,
    /// An RTMP relay to push the stream to, for the cloud to pull from (instead of this
    /// node serving it); the server's configured relay when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<crate::publish::relay::RelayFields>,
}

fn bounded_callees<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct Callees;
    impl<'de> serde::de::Visitor<'de> for Callees {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(
                f,
                "a list of 1 to {} callee user ids",
                crate::cloud::call::MAX_CALLEES
            )
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut callees = Vec::new();
            while let Some(callee) = seq.next_element::<String>()? {
                if callees.len() == crate::cloud::call::MAX_CALLEES {
                    return Err(serde::de::Error::custom(format_args!(
                        "`to`: at most {} callees",
                        crate::cloud::call::MAX_CALLEES
                    )));
                }
                callees.push(callee);
            }
            Ok(callees)
        }
    }
    d.deserialize_seq(Callees)
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

/// The profile a call gets when none is asked for: audio for audio calls, 720p for video.
pub fn default_profile(media_type: MediaType) -> crate::media::contract::Profile {
    match media_type {
        MediaType::Audio => crate::media::contract::Profile::Audio,
        MediaType::Video => crate::media::contract::Profile::P720,
    }
}

/// Why a session request was refused before anything started.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Invalid(#[from] crate::cloud::InvalidArgument),
    #[error(transparent)]
    Input(#[from] crate::media::input::InputError),
    #[error(transparent)]
    Refused(#[from] crate::media::policy::Refused),
    /// The media is larger than this node decodes.
    #[error(transparent)]
    TooLarge(#[from] crate::media::inspect::ProbeError),
}

impl SessionRequest {
    /// Checks every field the way the cloud would, with the cloud requests' own validators,
    /// admits the media under `policy`, and checks that it exists (and, for sources, that it
    /// builds), that a file is no larger than `bounds` (by its headers and parsers, nothing
    /// decoded), and that a relay's host resolves. `configured` is the relay sessions use
    /// when the request names none. Nothing rings and nothing is opened for media before
    /// this passes.
    pub async fn validate(
        &self,
        policy: &crate::media::policy::InputPolicy,
        topologies: &crate::media::topology::Topologies,
        configured: Option<&crate::publish::relay::Relay>,
        bounds: crate::media::bounds::InputBounds,
    ) -> Result<SessionSpec, RequestError> {
        let mut spec = self.validate_fields()?;
        let asked = match &self.relay {
            Some(fields) => fields.validate()?,
            None => None,
        };
        if let Some(relay) = &asked {
            // A requester's relay is a place this server connects to, and its play URL one
            // the cloud is sent to: the same rule as a URL input's host (and a direct URL's).
            let refused = |field, host| {
                crate::cloud::InvalidArgument::new(
                    field,
                    host,
                    "a relay on a public host, or one this server allows with --allow-url-host",
                )
            };
            let addrs = relay.resolve().await?;
            if !policy.allows_host(&relay.push_host().0, &addrs) {
                return Err(refused(relay.push_field(), relay.push_host().0).into());
            }
            if policy.is_restricted() {
                let addrs = relay.resolve_play().await?;
                if !policy.allows_host(&relay.play_host().0, &addrs) {
                    return Err(refused(relay.play_field(), relay.play_host().0).into());
                }
            }
        }
        spec.relay = asked.or_else(|| configured.cloned());
        let input = crate::media::input::InputSpec::parse_syntax(&self.media)?;
        let input = policy.admit(input).await?;
        input.check_available()?;
        input.check_sources(topologies)?;
        let (measured, contract) = (
            input.clone(),
            crate::media::contract::Contract::new(spec.profile),
        );
        tokio::task::spawn_blocking(move || {
            crate::media::inspect::admit::check_size(&measured, contract, bounds)
        })
        .await
        .map_err(|e| crate::media::inspect::ProbeError {
            input: self.media.clone(),
            reason: format!("its size could not be read: {e}"),
        })??;
        let spec = SessionSpec {
            source_guard: policy.source_guard(&input),
            input,
            ..spec
        };
        spec.check_direct()?;
        Ok(spec)
    }

    /// Every field but the media.
    fn validate_fields(&self) -> Result<SessionSpec, RequestError> {
        use crate::cloud::InvalidArgument;
        use crate::cloud::call::{
            CallCommand, MAX_CALLEES, MAX_RING_TIMEOUT_MS, MIN_RING_TIMEOUT_MS,
        };
        use crate::cloud::ingest::MAX_REPEAT_NUM;
        if self.to.is_empty() || self.to.len() > MAX_CALLEES {
            return Err(InvalidArgument::new(
                "to",
                format!("{} callees", self.to.len()),
                format!("1 to {MAX_CALLEES} callees"),
            )
            .into());
        }
        let callees = self
            .to
            .iter()
            .map(|c| UserId::new("to", c))
            .collect::<Result<Vec<_>, _>>()?;
        let robot = UserId::new("robot", &self.robot)?;
        if callees.contains(&robot) {
            return Err(
                InvalidArgument::new("to", robot.as_str(), "callees other than the robot").into(),
            );
        }
        // The cloud's rules, reported under the request's own field names.
        let kind: crate::cloud::RoomKind =
            self.room_type
                .parse()
                .map_err(|e: InvalidArgument| InvalidArgument {
                    field: "room_type",
                    ..e
                })?;
        let room =
            RoomRef::new(&self.room, kind).map_err(|e| InvalidArgument { field: "room", ..e })?;
        let ring_ms = self.ring_timeout_secs.saturating_mul(1000);
        if !(MIN_RING_TIMEOUT_MS..=MAX_RING_TIMEOUT_MS).contains(&ring_ms) {
            return Err(InvalidArgument::new(
                "ring_timeout_secs",
                self.ring_timeout_secs,
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
            None => default_profile(media_type),
        };
        let ingest_at = match self.ingest_at.as_str() {
            "answer" => state::IngestAt::Answer,
            "ring" => state::IngestAt::Ring,
            other => {
                return Err(InvalidArgument::new("ingest_at", other, "answer or ring").into());
            }
        };
        let repeat = match (self.loop_forever, self.repeat) {
            (true, Some(_)) => {
                return Err(InvalidArgument::new(
                    "repeat",
                    "with loop_forever",
                    "either repeat or loop_forever",
                )
                .into());
            }
            (true, None) => None,
            (false, None) => Some(1),
            (false, Some(n)) if (1..=MAX_REPEAT_NUM.unsigned_abs()).contains(&n) => Some(n),
            (false, Some(n)) => {
                return Err(InvalidArgument::new(
                    "repeat",
                    n,
                    format!("1 to {MAX_REPEAT_NUM} plays"),
                )
                .into());
            }
        };
        let max_duration = match self.max_duration_secs {
            None => None,
            Some(s) if (1..=MAX_DURATION_SECS).contains(&s) => Some(Duration::from_secs(s)),
            Some(s) => {
                return Err(InvalidArgument::new(
                    "max_duration_secs",
                    s,
                    format!("1 to {MAX_DURATION_SECS} seconds (7 days)"),
                )
                .into());
            }
        };
        let audio_track = match &self.audio_track {
            Some(t) => {
                t.parse()
                    .map_err(|e: crate::media::inspect::tracks::InvalidAudioTrack| {
                        InvalidArgument::new("audio_track", t, e.to_string())
                    })?
            }
            None => Default::default(),
        };
        let direct = match &self.direct {
            Some(d) => d
                .parse()
                .map_err(|e: String| InvalidArgument::new("direct", d, e))?,
            None => Default::default(),
        };
        let spec = SessionSpec {
            direct,
            callees,
            ingest_user: robot.clone(),
            robot,
            room,
            media: self.media.clone(),
            input: crate::media::input::InputSpec::Test {
                video: None,
                audio: None,
            },
            source_guard: None,
            media_type,
            profile,
            ingest_at,
            repeat,
            ring_timeout: Duration::from_millis(u64::from(ring_ms)),
            max_duration,
            live: self.live,
            audio_track,
            relay: None,
        };
        // The cloud request's own checks, so nothing the cloud would refuse gets this far.
        spec.start_call_request().body()?;
        Ok(spec)
    }
}
