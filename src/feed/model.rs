//! What feeds are, as the API, the CLI and sessions see them: kinds, states, the request that
//! makes one, the view that shows one, and the errors. A leaf.

use std::time::Duration;

use crate::media::contract::Profile;

/// How a feed's media arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedKind {
    /// An encoder pushes RTMP to callfeed with the feed's stream key.
    Rtmp,
    /// An encoder calls callfeed's SRT listener (a port of the feed's own), encrypted with
    /// the feed's passphrase.
    Srt,
    /// callfeed pulls an IP camera's RTSP stream (`url`: rtsp:// or rtsps://).
    Rtsp,
    /// callfeed plays an input of its own: a URL, a device or a test source.
    Pull,
    /// A browser or OBS 30+ publishes over WebRTC to the feed's WHIP endpoint, on the
    /// node's own HTTP server, with the feed's key as its bearer token.
    Whip,
}

impl FeedKind {
    pub fn name(self) -> &'static str {
        match self {
            FeedKind::Rtmp => "rtmp",
            FeedKind::Srt => "srt",
            FeedKind::Rtsp => "rtsp",
            FeedKind::Pull => "pull",
            FeedKind::Whip => "whip",
        }
    }

    /// Whether a publisher pushes to it (with a secret of the feed's).
    pub fn is_pushed(self) -> bool {
        matches!(self, FeedKind::Rtmp | FeedKind::Srt | FeedKind::Whip)
    }
}

/// Where a feed stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedState {
    /// Nothing has arrived yet: its calls see the slate.
    Waiting,
    /// Its media arrives.
    Live,
    /// It had media, and the publisher (or source) went away: its calls see the slate until
    /// it comes back.
    Lost,
    /// Deleted, timed out or failed: its calls have ended.
    Ended,
}

impl FeedState {
    pub fn name(self) -> &'static str {
        match self {
            FeedState::Waiting => "waiting",
            FeedState::Live => "live",
            FeedState::Lost => "lost",
            FeedState::Ended => "ended",
        }
    }
}

/// How a feed's media reaches its calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedMode {
    /// Decoded and encoded once to the profile; the slate while the publisher is away.
    #[default]
    Encoded,
    /// An RTMP publisher's stream as it comes, a byte copy, when it already meets the
    /// contract (H.264 without B-frames, AAC 48 kHz); its calls see no slate while it is
    /// away (their picture holds).
    Passthrough,
}

/// A new feed, as `POST /v1/feeds` and `callfeed feed create` ask for it.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedRequest {
    pub kind: Option<FeedKind>,
    pub name: Option<String>,
    pub profile: Option<Profile>,
    /// What an `rtsp` feed pulls (its camera's URL), or what a `pull` feed plays (an input
    /// spec: a URL, `test:`, a device).
    pub url: Option<String>,
    /// Ends the feed after this long without media (waiting or lost); never when absent.
    pub idle_timeout_secs: Option<u64>,
    /// `encoded` (default) or `passthrough` (rtmp and whip only).
    pub mode: Option<FeedMode>,
}

/// The longest feed name taken.
pub(super) const MAX_NAME: usize = 100;
/// The longest idle timeout taken: a week.
pub(super) const MAX_IDLE_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

/// What a person pastes into OBS (or an encoder's form) to publish to a feed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum PublishSettings {
    Rtmp {
        /// OBS's "Server".
        server: String,
        /// OBS's "Stream Key".
        stream_key: String,
        /// Both in one, for ffmpeg and GStreamer.
        url: String,
    },
    Srt {
        /// OBS's "Server" (its "Stream Key" stays empty), and ffmpeg's output URL.
        url: String,
        streamid: String,
        passphrase: String,
        /// The receive latency, in milliseconds (the URL says it in microseconds, as OBS
        /// and ffmpeg take it).
        latency_ms: u32,
    },
    Whip {
        /// OBS's "Server" (Service: WHIP): the endpoint a publisher POSTs its offer to.
        url: String,
        /// OBS's "Bearer Token".
        bearer: String,
    },
}

/// Where publishers reach this node, as a feed's publish settings name it.
#[derive(Debug, Clone, Default)]
pub struct PublishEndpoints {
    /// `rtmp://HOST:PORT/live`.
    pub rtmp: Option<String>,
    pub srt: Option<SrtEndpoint>,
    /// Where the node's API answers publishers (`http(s)://HOST:PORT`), when it takes WHIP.
    pub whip: Option<String>,
}

/// The node's SRT listeners: a port per feed, from a range.
#[derive(Debug, Clone)]
pub struct SrtEndpoint {
    /// The address listened on.
    pub bind: std::net::IpAddr,
    /// The ports feeds take; `0..=0` asks the system for a free one each time.
    pub ports: std::ops::RangeInclusive<u16>,
    /// The host publishers reach the ports at.
    pub public_host: String,
    pub latency_ms: u32,
}

/// The publisher currently connected to a feed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PublisherView {
    pub address: String,
    /// Seconds since the Unix epoch when it connected.
    pub since: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoder: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fps: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video_codec: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio_codec: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio_rate: Option<u32>,
}

impl PublisherView {
    /// A publisher just connected from `address`, before it says anything of its stream.
    pub(crate) fn connected(address: &str) -> Self {
        Self {
            address: address.to_owned(),
            since: crate::clock::unix_secs(),
            encoder: None,
            width: None,
            height: None,
            fps: None,
            video_codec: None,
            audio_codec: None,
            audio_rate: None,
        }
    }
}

/// A feed's running figures.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct FeedFigures {
    /// What arrives from the publisher, over the last second.
    pub kbps: u64,
    pub bytes_in: u64,
    pub frames_in: u64,
    pub frames_out: u64,
    pub slate_ms: u64,
    /// Publishers that connected again after the first (or a pulled input's restarts).
    pub reconnects: u32,
}

/// A feed as the API shows it. `publish` (which holds its secret) only where asked for.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FeedView {
    pub id: String,
    pub kind: FeedKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub state: FeedState,
    /// Seconds since the Unix epoch of the last state change.
    pub since: u64,
    pub created: u64,
    pub profile: Profile,
    /// `encoded` (decoded and encoded once to the profile for all its calls) or
    /// `passthrough` (the publisher's stream as it comes).
    pub mode: FeedMode,
    pub mode_reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish: Option<PublishSettings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publisher: Option<PublisherView>,
    pub figures: FeedFigures,
    /// The sessions on it.
    pub sessions: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout_secs: Option<u64>,
    /// Why the last publisher was refused or dropped, and when (Unix seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_refusal: Option<Refusal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_reason: Option<String>,
}

/// A publisher turned away or dropped.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Refusal {
    pub reason: String,
    pub address: String,
    pub at: u64,
}

/// What happens to feeds, for the API's event streams.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum FeedEvent {
    /// Its state changed (and how it stands now).
    State { feed: Box<FeedView> },
    /// Once a second while it runs.
    Stats {
        id: String,
        state: FeedState,
        figures: FeedFigures,
    },
}

impl FeedEvent {
    pub fn feed_id(&self) -> &str {
        match self {
            FeedEvent::State { feed } => &feed.id,
            FeedEvent::Stats { id, .. } => id,
        }
    }
}

/// Why a feed could not be made, found or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    #[error("no feed `{0}`: list them with GET /v1/feeds or `callfeed feed list`")]
    NotFound(String),
    #[error("feed `{0}` has ended: create a new one")]
    Ended(String),
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("{0} feeds run already, the most this node takes (--max-feeds)")]
    Full(usize),
    #[error("this node takes no {kind} publishers: start `callfeed serve` with {flag}")]
    NoListener {
        kind: &'static str,
        flag: &'static str,
    },
    #[error("the feed's stream could not start: {0}")]
    Start(String),
}

impl FeedError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        FeedError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

/// Where WHIP publishers reach the node, and how it takes WebRTC.
#[derive(Debug, Clone)]
pub struct WhipEndpoint {
    /// The node's API as publishers reach it (`http(s)://HOST:PORT`).
    pub base: String,
    pub webrtc: crate::media::whip::WebRtcSettings,
}
