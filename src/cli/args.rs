//! Argument types several commands share, each with the one conversion to the library type
//! it stands for, so a flag's meaning is decided in one place.

use clap::{Args, ValueEnum};

use crate::cloud::call::MediaType;
use crate::cloud::{InvalidArgument, RoomKind, RoomRef, UserId};
use crate::emulator::Pace;
use crate::media::contract::Profile;
use crate::session::state::IngestAt;

#[derive(Clone, Copy, ValueEnum)]
pub(super) enum RoomTypeArg {
    String,
    Numeric,
}

impl From<RoomTypeArg> for RoomKind {
    fn from(r: RoomTypeArg) -> Self {
        match r {
            RoomTypeArg::String => RoomKind::String,
            RoomTypeArg::Numeric => RoomKind::Numeric,
        }
    }
}

#[derive(Args)]
pub(super) struct RoomArgs {
    /// Room id; digits for a numeric room.
    #[arg(long, value_name = "ID")]
    pub(super) room: String,
    /// How the room is numbered; the callee's app must join the same kind.
    #[arg(long, value_enum, default_value = "string")]
    pub(super) room_type: RoomTypeArg,
}

impl RoomArgs {
    pub(super) fn room(&self) -> Result<RoomRef, InvalidArgument> {
        RoomRef::new(&self.room, self.room_type.into())
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub(super) enum MediaTypeArg {
    Audio,
    Video,
}

impl From<MediaTypeArg> for MediaType {
    fn from(m: MediaTypeArg) -> Self {
        match m {
            MediaTypeArg::Audio => MediaType::Audio,
            MediaTypeArg::Video => MediaType::Video,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub(super) enum IngestAtArg {
    Answer,
    Ring,
}

impl From<IngestAtArg> for IngestAt {
    fn from(i: IngestAtArg) -> Self {
        match i {
            IngestAtArg::Answer => IngestAt::Answer,
            IngestAtArg::Ring => IngestAt::Ring,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub(super) enum PaceArg {
    Realtime,
    Fast,
}

impl From<PaceArg> for Pace {
    fn from(p: PaceArg) -> Self {
        match p {
            PaceArg::Realtime => Pace::Realtime,
            PaceArg::Fast => Pace::Fast,
        }
    }
}

/// How large an input may be decoded: the same flag on every command that opens inputs.
#[derive(Args, Clone, Copy)]
pub(super) struct InputSizeArgs {
    /// Pictures, animations and video up to N times the largest profile's size per side are
    /// decoded (2: up to 3840x2160, either way up); larger ones are refused before decoding.
    #[arg(
        long,
        value_name = "N",
        default_value_t = crate::media::bounds::DEFAULT_INPUT_SCALE,
        value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::media::bounds::MAX_INPUT_SCALE)),
    )]
    max_input_scale: u32,
    /// The longest `tts:` text spoken, in characters; longer ones are refused before
    /// anything rings.
    #[arg(
        long,
        value_name = "N",
        default_value_t = crate::media::bounds::DEFAULT_SPEECH_CHARS,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=crate::media::input::MAX_SPEECH_CHARS as u64),
    )]
    max_speech_chars: usize,
}

impl From<InputSizeArgs> for crate::media::bounds::InputBounds {
    fn from(a: InputSizeArgs) -> Self {
        Self::new(a.max_input_scale)
            .expect("clap checked the range")
            .with_speech_chars(a.max_speech_chars)
    }
}

/// A UserID from a flag; the error names the flag.
pub(super) fn user(flag: &'static str, value: &str) -> Result<UserId, InvalidArgument> {
    UserId::new(flag, value)
}

/// Every `--to` callee, or the first one that is not a valid UserID.
pub(super) fn callees(to: &[String]) -> Result<Vec<UserId>, InvalidArgument> {
    to.iter().map(|c| user("--to", c)).collect()
}

/// The output profiles, listed in `--help` and checked by clap.
pub(super) fn profile_values() -> impl clap::builder::TypedValueParser<Value = Profile> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(Profile::ALL.map(|p| p.name()))
        .map(|name| name.parse::<Profile>().expect("a listed profile"))
}

/// A listening address: `HOST:PORT`, or a port alone (`8080` or `:8080`), which listens on
/// every interface: what a server the cloud must reach needs.
pub(super) fn listen_addr(value: &str) -> Result<std::net::SocketAddr, String> {
    let port = value.strip_prefix(':').unwrap_or(value);
    if let Ok(port) = port.parse::<u16>() {
        return Ok(std::net::SocketAddr::from(([0, 0, 0, 0], port)));
    }
    value.parse().map_err(|_| {
        format!("`{value}` is not an address: give HOST:PORT (127.0.0.1:8080, [::1]:8080) or a port (8080)")
    })
}

#[cfg(test)]
mod tests {
    use super::listen_addr;

    #[test]
    fn a_port_alone_listens_everywhere() {
        assert_eq!(listen_addr("8080").unwrap().to_string(), "0.0.0.0:8080");
        assert_eq!(listen_addr(":8080").unwrap().to_string(), "0.0.0.0:8080");
        assert_eq!(
            listen_addr("127.0.0.1:0").unwrap().to_string(),
            "127.0.0.1:0"
        );
        assert_eq!(listen_addr("[::1]:9").unwrap().to_string(), "[::1]:9");
        let err = listen_addr("localhost:80x").unwrap_err();
        assert!(err.contains("HOST:PORT"), "{err}");
    }
}

/// An RTMP relay the stream is pushed to, for the cloud to pull from: for a node the cloud
/// cannot reach (see the README's "Deployment shapes"). The same on `call` and `load`.
#[derive(Args, Clone, Default)]
#[command(next_help_heading = "Relay (the node pushes, the cloud pulls from the relay)")]
pub(super) struct RelayArgs {
    /// Push the stream to this RTMP server (SRS, nginx-rtmp, MediaMTX...); `{stream}` is
    /// replaced by the session's own stream name.
    #[arg(long, value_name = "RTMP_URL")]
    relay_push: Option<String>,
    /// The URL the cloud pulls the pushed stream from, with `{stream}`.
    #[arg(long, value_name = "URL")]
    relay_play: Option<String>,
    /// Push to Tencent CSS on this push domain; the push URL is signed per session.
    #[arg(long, value_name = "DOMAIN")]
    css_push_domain: Option<String>,
    /// The CSS playback domain the cloud pulls from.
    #[arg(long, value_name = "DOMAIN")]
    css_play_domain: Option<String>,
    /// The push domain's auth key (or CALLFEED_CSS_PUSH_KEY, or `css_push_key` in [relay]).
    #[arg(long, value_name = "KEY")]
    css_push_key: Option<String>,
    /// The play domain's auth key, when playback authentication is on (or
    /// CALLFEED_CSS_PLAY_KEY).
    #[arg(long, value_name = "KEY")]
    css_play_key: Option<String>,
    /// The CSS application name (default `live`).
    #[arg(long, value_name = "APP")]
    css_app: Option<String>,
    /// The play URL handed to the cloud: `flv` (HTTPS-FLV, default), `rtmp` or `hls`.
    #[arg(long, value_name = "flv|rtmp|hls")]
    css_play_format: Option<String>,
}

impl RelayArgs {
    /// The relay the flags name, with keys they leave out taken from the config; `None`
    /// when they name none.
    pub(super) fn fields(
        &self,
        config: &crate::config::Config,
    ) -> Option<crate::publish::relay::RelayFields> {
        let key = |k: &Option<String>| k.clone().map(secrecy::SecretString::from);
        let fields = crate::publish::relay::RelayFields {
            push: self.relay_push.clone(),
            play: self.relay_play.clone(),
            css_push_domain: self.css_push_domain.clone(),
            css_play_domain: self.css_play_domain.clone(),
            css_push_key: key(&self.css_push_key),
            css_play_key: key(&self.css_play_key),
            css_app: self.css_app.clone(),
            css_play_format: self.css_play_format.clone(),
        };
        if !fields.names_a_relay() && fields.css_push_key.is_none() {
            return None;
        }
        Some(fields.with_keys_from(&config.relay_fields))
    }

    /// The relay the flags name (keys they leave out from the config), for a request to
    /// validate; `None` when they name none. A key alone names nothing to push to.
    pub(super) fn named(
        &self,
        config: &crate::config::Config,
    ) -> Result<Option<crate::publish::relay::RelayFields>, InvalidArgument> {
        match self.fields(config) {
            Some(fields) if !fields.names_a_relay() => Err(key_alone()),
            named => Ok(named),
        }
    }
}

fn key_alone() -> InvalidArgument {
    InvalidArgument::new(
        "relay.css_push_domain",
        "missing",
        "--css-push-domain and --css-play-domain with --css-push-key",
    )
}
