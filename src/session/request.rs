//! A session as asked for (over the API or on the command line) and as validated: the one
//! `validate` both take, so a refusal names the same field wherever it was asked.

use std::time::Duration;

use crate::cloud::call::{CallCommand, MediaType, StartCallByRobot};
use crate::cloud::{InvalidArgument, RoomRef, UserId};

use super::state;

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
    /// On a feed: ring only once it is live, waiting at most this long.
    pub ring_when_live: Option<Duration>,
    /// On a feed: the call stays on the slate when the feed ends, instead of ending.
    pub stays_after_feed: bool,
    /// Start this far into a file streamed live (a seek in a file the cloud played, moved
    /// to a stream of the session's own).
    pub start: Option<Duration>,
    /// The room monitor: the cloud publishes what the room carries back to this node.
    pub monitor: Option<super::monitor_spec::MonitorSpec>,
}

impl SessionSpec {
    /// Only a URL can be handed to the cloud to pull.
    pub fn check_direct(&self) -> Result<(), InvalidArgument> {
        let is_url = matches!(self.input, crate::media::input::InputSpec::Url(_));
        if self.direct == crate::media::plan::Direct::Always && !is_url {
            return Err(InvalidArgument::new(
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

    /// The longest the call can last: its whole ring and its longest media.
    pub fn lasts_up_to(&self) -> Duration {
        self.ring_timeout
            + self
                .max_duration
                .unwrap_or(Duration::from_secs(MAX_DURATION_SECS))
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
    /// On a feed: `now` (default; the callee sees the slate until the feed is live) or
    /// `when_live` (ring once it is, waiting at most `feed_wait_secs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feed_wait_secs: Option<u64>,
    /// On a feed: `end` (default; the session ends `feed_ended` with its feed) or `slate`
    /// (the call stays on the slate until it ends for another reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_feed_end: Option<String>,
    /// `true` (the robot's stream as the room carries it) or `"mix"` (the room's mix): the
    /// cloud publishes it back, its figures are in the status and the verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<serde_json::Value>,
    /// `true` or `"audio"`: what the monitor receives is recorded (asks for a monitor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<serde_json::Value>,
}

/// How long a session waits for its feed to go live when it rings only then, by default.
pub(crate) const DEFAULT_FEED_WAIT_SECS: u64 = 60;
/// The longest it may wait: an hour.
pub(crate) const MAX_FEED_WAIT_SECS: u64 = 3600;

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
    Invalid(#[from] InvalidArgument),
    #[error(transparent)]
    Input(#[from] crate::media::input::InputError),
    #[error(transparent)]
    Refused(#[from] crate::media::policy::Refused),
    /// The media is larger than this node decodes.
    #[error(transparent)]
    TooLarge(#[from] crate::media::inspect::ProbeError),
}

/// An input as an API client names it, admitted under `policy`: its syntax, that the
/// policy allows it, that it exists (and, for sources, that it builds), and that a file is
/// no larger than `bounds` for `profile` (by its headers and parsers, nothing decoded).
pub(super) async fn admit_media(
    media: &str,
    policy: &crate::media::policy::InputPolicy,
    topologies: &crate::media::topology::Topologies,
    bounds: crate::media::bounds::InputBounds,
    profile: crate::media::contract::Profile,
) -> Result<crate::media::input::InputSpec, RequestError> {
    let input = crate::media::input::InputSpec::parse_syntax(media)?;
    let input = policy.admit(input).await?;
    input.check_available()?;
    input.check_sources(topologies)?;
    let (measured, contract) = (
        input.clone(),
        crate::media::contract::Contract::new(profile),
    );
    tokio::task::spawn_blocking(move || {
        crate::media::inspect::admit::check_size(&measured, contract, bounds)
    })
    .await
    .map_err(|e| crate::media::inspect::ProbeError {
        input: media.to_owned(),
        reason: format!("its size could not be read: {e}"),
    })??;
    Ok(input)
}

impl SessionRequest {
    /// The stream's profile: the one asked for, or the media type's default (a request
    /// already validated).
    pub fn profile(&self) -> crate::media::contract::Profile {
        let media_type = match self.media_type.as_str() {
            "audio" => MediaType::Audio,
            _ => MediaType::Video,
        };
        self.profile
            .as_deref()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| default_profile(media_type))
    }

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
                InvalidArgument::new(
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
        let input = admit_media(&self.media, policy, topologies, bounds, spec.profile).await?;
        let ring_when_live = self.ring_when_live(&input)?;
        let stays_after_feed = self.stays_after_feed(&input)?;
        let spec = SessionSpec {
            source_guard: policy.source_guard(&input),
            input,
            ring_when_live,
            stays_after_feed,
            ..spec
        };
        spec.check_direct()?;
        Ok(spec)
    }

    /// `ring` and `feed_wait_secs`, which only a feed takes.
    fn ring_when_live(
        &self,
        input: &crate::media::input::InputSpec,
    ) -> Result<Option<Duration>, InvalidArgument> {
        let on_feed = matches!(input, crate::media::input::InputSpec::Feed(_));
        let when_live = match self.ring.as_deref() {
            None | Some("now") => false,
            Some("when_live") if on_feed => true,
            Some("when_live") => {
                return Err(InvalidArgument::new(
                    "ring",
                    "when_live",
                    "when_live only with a feed (media: \"feed:ID\")",
                ));
            }
            Some(other) => {
                return Err(InvalidArgument::new("ring", other, "now or when_live"));
            }
        };
        let wait = match self.feed_wait_secs {
            Some(s) if !(1..=MAX_FEED_WAIT_SECS).contains(&s) => {
                return Err(InvalidArgument::new(
                    "feed_wait_secs",
                    s,
                    format!("1 to {MAX_FEED_WAIT_SECS} seconds"),
                ));
            }
            Some(_) if !when_live => {
                return Err(InvalidArgument::new(
                    "feed_wait_secs",
                    self.feed_wait_secs.unwrap_or_default(),
                    "only with ring: when_live",
                ));
            }
            Some(s) => s,
            None => DEFAULT_FEED_WAIT_SECS,
        };
        Ok(when_live.then(|| Duration::from_secs(wait)))
    }

    /// `on_feed_end`, which only a feed takes.
    fn stays_after_feed(
        &self,
        input: &crate::media::input::InputSpec,
    ) -> Result<bool, InvalidArgument> {
        let on_feed = matches!(input, crate::media::input::InputSpec::Feed(_));
        match self.on_feed_end.as_deref() {
            None | Some("end") => Ok(false),
            Some("slate") if on_feed => Ok(true),
            Some("slate") => Err(InvalidArgument::new(
                "on_feed_end",
                "slate",
                "slate only with a feed (media: \"feed:ID\")",
            )),
            Some(other) => Err(InvalidArgument::new("on_feed_end", other, "end or slate")),
        }
    }

    /// Every field but the media.
    fn validate_fields(&self) -> Result<SessionSpec, RequestError> {
        let (callees, robot) = self.parties()?;
        let room = self.room()?;
        let ring_timeout = self.ring_timeout()?;
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
        let (repeat, max_duration) = (self.plays()?, self.max_duration()?);
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
            ring_timeout,
            max_duration,
            live: self.live,
            audio_track,
            relay: None,
            ring_when_live: None,
            stays_after_feed: false,
            start: None,
            monitor: super::monitor_spec::parse(self.monitor.as_ref(), self.record.as_ref())?,
        };
        // The cloud request's own checks, so nothing the cloud would refuse gets this far.
        spec.start_call_request().body()?;
        Ok(spec)
    }

    /// The callees and the robot that calls them, never among them.
    fn parties(&self) -> Result<(Vec<UserId>, UserId), InvalidArgument> {
        use crate::cloud::call::MAX_CALLEES;
        if self.to.is_empty() || self.to.len() > MAX_CALLEES {
            return Err(InvalidArgument::new(
                "to",
                format!("{} callees", self.to.len()),
                format!("1 to {MAX_CALLEES} callees"),
            ));
        }
        let callees = self
            .to
            .iter()
            .map(|c| UserId::new("to", c))
            .collect::<Result<Vec<_>, _>>()?;
        let robot = UserId::new("robot", &self.robot)?;
        if callees.contains(&robot) {
            return Err(InvalidArgument::new(
                "to",
                robot.as_str(),
                "callees other than the robot",
            ));
        }
        Ok((callees, robot))
    }

    /// The room, by the cloud's rules, reported under the request's own field names.
    fn room(&self) -> Result<RoomRef, InvalidArgument> {
        let kind: crate::cloud::RoomKind =
            self.room_type
                .parse()
                .map_err(|e: InvalidArgument| InvalidArgument {
                    field: "room_type",
                    ..e
                })?;
        RoomRef::new(&self.room, kind).map_err(|e| InvalidArgument { field: "room", ..e })
    }

    fn ring_timeout(&self) -> Result<Duration, InvalidArgument> {
        use crate::cloud::call::{MAX_RING_TIMEOUT_MS, MIN_RING_TIMEOUT_MS};
        let ring_ms = self.ring_timeout_secs.saturating_mul(1000);
        if !(MIN_RING_TIMEOUT_MS..=MAX_RING_TIMEOUT_MS).contains(&ring_ms) {
            return Err(InvalidArgument::new(
                "ring_timeout_secs",
                self.ring_timeout_secs,
                "10 to 600 seconds",
            ));
        }
        Ok(Duration::from_millis(u64::from(ring_ms)))
    }

    /// How many plays: `None` loops until the call ends.
    fn plays(&self) -> Result<Option<u32>, InvalidArgument> {
        use crate::cloud::ingest::MAX_REPEAT_NUM;
        match (self.loop_forever, self.repeat) {
            (true, Some(_)) => Err(InvalidArgument::new(
                "repeat",
                "with loop_forever",
                "either repeat or loop_forever",
            )),
            (true, None) => Ok(None),
            (false, None) => Ok(Some(1)),
            (false, Some(n)) if (1..=MAX_REPEAT_NUM.unsigned_abs()).contains(&n) => Ok(Some(n)),
            (false, Some(n)) => Err(InvalidArgument::new(
                "repeat",
                n,
                format!("1 to {MAX_REPEAT_NUM} plays"),
            )),
        }
    }

    fn max_duration(&self) -> Result<Option<Duration>, InvalidArgument> {
        match self.max_duration_secs {
            None => Ok(None),
            Some(s) if (1..=MAX_DURATION_SECS).contains(&s) => Ok(Some(Duration::from_secs(s))),
            Some(s) => Err(InvalidArgument::new(
                "max_duration_secs",
                s,
                format!("1 to {MAX_DURATION_SECS} seconds (7 days)"),
            )),
        }
    }
}
