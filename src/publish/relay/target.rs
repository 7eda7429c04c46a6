//! A validated relay and one session's URLs on it: a plain RTMP server's, with the stream
//! name put in, or Tencent CSS's, signed per session (through `cloud::css`, which owns
//! Tencent's signing). A leaf the fields, the push and the session use.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::cloud::InvalidArgument;
use crate::cloud::css::CssStream;

/// Replaced by the session's stream name in a push or play URL.
pub const STREAM_PLACEHOLDER: &str = "{stream}";

/// How long resolving the relay's host may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// The format of a CSS play URL handed to the cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayFormat {
    Flv,
    Rtmp,
    Hls,
}

impl std::str::FromStr for PlayFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "flv" => Ok(Self::Flv),
            "rtmp" => Ok(Self::Rtmp),
            "hls" => Ok(Self::Hls),
            _ => Err("flv (HTTPS-FLV, the default), rtmp or hls".into()),
        }
    }
}

/// Tencent CSS: a push domain and its play domain, with their auth keys.
#[derive(Debug, Clone)]
pub struct CssRelay {
    pub(super) push_domain: String,
    pub(super) play_domain: String,
    pub(super) app: String,
    pub(super) push_key: SecretString,
    pub(super) play_key: Option<SecretString>,
    pub(super) play_format: PlayFormat,
}

/// A validated relay.
#[derive(Clone)]
pub enum Relay {
    /// Any RTMP server: push and play URLs, each with `{stream}`.
    Rtmp {
        push: String,
        play: String,
    },
    Css(CssRelay),
}

impl std::fmt::Debug for Relay {
    /// A plain push URL may carry a key in its query: never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rtmp { push, play } => f
                .debug_struct("Rtmp")
                .field("push", &crate::redact::redact_url(push))
                .field("play", &crate::redact::redact_url(play))
                .finish(),
            Self::Css(css) => css.fmt(f),
        }
    }
}

/// One session's URLs on the relay.
#[derive(Clone)]
pub struct Endpoints {
    pub stream: String,
    /// A credential (signed, or with the relay's key): given only to the RTMP push.
    pub push: SecretString,
    /// What the cloud pulls; never contains the push key.
    pub play: String,
}

impl std::fmt::Debug for Endpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoints")
            .field("stream", &self.stream)
            .field(
                "push",
                &crate::redact::redact_url(self.push.expose_secret()),
            )
            .field("play", &crate::redact::redact_url(&self.play))
            .finish()
    }
}

/// The stream name of a session on a relay: unique per session, and only letters, digits and
/// `-` (CSS appends `_<template>` for its transcodes, so no `_`).
pub fn stream_name(session_id: &str) -> String {
    let id: String = session_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    format!("callfeed-{id}")
}

pub(super) fn with_stream(template: &str, stream: &str) -> String {
    template.replace(STREAM_PLACEHOLDER, stream)
}

impl Relay {
    /// The session's push and play URLs for stream `stream`; signed ones stay valid until
    /// `expires_at` (Unix seconds), long enough to reconnect at any time in the call.
    pub fn endpoints(&self, stream: &str, expires_at: u64) -> Endpoints {
        match self {
            Self::Rtmp { push, play } => Endpoints {
                stream: stream.to_owned(),
                push: SecretString::from(with_stream(push, stream)),
                play: with_stream(play, stream),
            },
            Self::Css(css) => {
                let names = CssStream::new(&css.push_domain, &css.play_domain, &css.app, stream)
                    .expect("checked when validated; the stream name is ours");
                let play_key = css.play_key.as_ref().map(|k| k.expose_secret());
                let play = match css.play_format {
                    PlayFormat::Flv => names.flv_play_url(play_key, expires_at, true),
                    PlayFormat::Hls => names.hls_play_url(play_key, expires_at, true),
                    PlayFormat::Rtmp => names.rtmp_play_url(play_key, expires_at),
                };
                Endpoints {
                    stream: stream.to_owned(),
                    push: SecretString::from(
                        names.rtmp_push_url(css.push_key.expose_secret(), expires_at),
                    ),
                    play,
                }
            }
        }
    }

    /// The host and port the push connects to.
    pub fn push_host(&self) -> (String, u16) {
        match self {
            Self::Rtmp { push, .. } => host_of(&with_stream(push, "stream")),
            Self::Css(css) => host_of(&format!("rtmp://{}/", css.push_domain)),
        }
    }

    /// The host and port the cloud pulls from.
    pub fn play_host(&self) -> (String, u16) {
        match self {
            Self::Rtmp { play, .. } => host_of(&with_stream(play, "stream")),
            Self::Css(css) => {
                let scheme = match css.play_format {
                    PlayFormat::Rtmp => "rtmp",
                    PlayFormat::Flv | PlayFormat::Hls => "https",
                };
                host_of(&format!("{scheme}://{}/", css.play_domain))
            }
        }
    }

    /// The field that names the push host, for errors.
    pub fn push_field(&self) -> &'static str {
        match self {
            Self::Rtmp { .. } => "relay.push",
            Self::Css(_) => "relay.css_push_domain",
        }
    }

    /// The field that names the play host, for errors.
    pub fn play_field(&self) -> &'static str {
        match self {
            Self::Rtmp { .. } => "relay.play",
            Self::Css(_) => "relay.css_play_domain",
        }
    }

    /// The push host's addresses, or an error naming the field when it does not resolve.
    pub async fn resolve(&self) -> Result<Vec<std::net::SocketAddr>, InvalidArgument> {
        resolve(self.push_field(), self.push_host()).await
    }

    /// The play host's addresses, or an error naming the field when it does not resolve.
    pub async fn resolve_play(&self) -> Result<Vec<std::net::SocketAddr>, InvalidArgument> {
        resolve(self.play_field(), self.play_host()).await
    }
}

/// A URL's host (without IPv6 brackets) and port (the scheme's, RTMP's 1935 by default).
fn host_of(url: &str) -> (String, u16) {
    let parsed = url::Url::parse(url).ok();
    let host = parsed
        .as_ref()
        .and_then(|u| u.host_str())
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .to_owned();
    let port = parsed
        .as_ref()
        .and_then(url::Url::port_or_known_default)
        .unwrap_or(if url.starts_with("rtmps:") { 443 } else { 1935 });
    (host, port)
}

async fn resolve(
    field: &'static str,
    (host, port): (String, u16),
) -> Result<Vec<std::net::SocketAddr>, InvalidArgument> {
    let failed = |why: String| {
        InvalidArgument::new(
            field,
            &host,
            format!("a host name that resolves ({why}); check it for typos"),
        )
    };
    match tokio::time::timeout(
        RESOLVE_TIMEOUT,
        tokio::net::lookup_host((host.as_str(), port)),
    )
    .await
    {
        Err(_) => Err(failed("no answer from DNS within 5 s".into())),
        Ok(Err(e)) => Err(failed(e.to_string())),
        Ok(Ok(addrs)) => {
            let addrs: Vec<_> = addrs.collect();
            if addrs.is_empty() {
                Err(failed("no addresses".into()))
            } else {
                Ok(addrs)
            }
        }
    }
}
