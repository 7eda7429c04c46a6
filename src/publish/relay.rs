//! An RTMP relay a session's stream is pushed to, and the play URL the cloud pulls from it:
//! for nodes the cloud cannot reach (behind NAT). Either any RTMP server (SRS, nginx-rtmp,
//! MediaMTX), given as push and play URLs with a `{stream}` placeholder, or Tencent CSS,
//! given as domains and keys, whose URLs are signed per session.
//!
//! The same fields come from the flags of `call` and `load`, a `serve` session request's
//! `relay` object and the config file's `[relay]` table; [`RelayFields::validate`] is the one
//! place they are checked.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::cloud::InvalidArgument;
use crate::cloud::css::CssStream;

/// Replaced by the session's stream name in a push or play URL.
pub const STREAM_PLACEHOLDER: &str = "{stream}";

/// How long resolving the relay's host may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// A relay as asked for, before validation.
#[derive(Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RelayFields {
    /// The RTMP URL to push to, with `{stream}` where the stream name goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<String>,
    /// The URL the cloud pulls the pushed stream from, with `{stream}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub play: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub css_push_domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub css_play_domain: Option<String>,
    /// Never shown back.
    #[serde(default, skip_serializing)]
    pub css_push_key: Option<SecretString>,
    #[serde(default, skip_serializing)]
    pub css_play_key: Option<SecretString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub css_app: Option<String>,
    /// `flv` (default), `rtmp` or `hls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub css_play_format: Option<String>,
}

impl std::fmt::Debug for RelayFields {
    /// A plain push URL may carry a key in its query; keys show as set or not.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = |u: &Option<String>| u.as_deref().map(crate::redact::redact_url);
        let key = |k: &Option<SecretString>| k.as_ref().map(|_| "<redacted>");
        f.debug_struct("RelayFields")
            .field("push", &url(&self.push))
            .field("play", &url(&self.play))
            .field("css_push_domain", &self.css_push_domain)
            .field("css_play_domain", &self.css_play_domain)
            .field("css_push_key", &key(&self.css_push_key))
            .field("css_play_key", &key(&self.css_play_key))
            .field("css_app", &self.css_app)
            .field("css_play_format", &self.css_play_format)
            .finish()
    }
}

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
    push_domain: String,
    play_domain: String,
    app: String,
    push_key: SecretString,
    play_key: Option<SecretString>,
    play_format: PlayFormat,
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

fn with_stream(template: &str, stream: &str) -> String {
    template.replace(STREAM_PLACEHOLDER, stream)
}

/// A value someone typed: no spaces or control characters anywhere (a URL parser would
/// silently trim them, and a key with a stray newline signs nothing the relay accepts).
fn clean(value: &str) -> bool {
    !value.is_empty() && !value.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn check_url(
    field: &'static str,
    template: &str,
    schemes: &[&str],
    allowed: &str,
) -> Result<url::Url, InvalidArgument> {
    // As typed, unless it may carry a key.
    let shown = if template.contains(['?', '@']) {
        crate::redact::redact_url(template)
    } else {
        template.to_owned()
    };
    if !clean(template) {
        return Err(InvalidArgument::new(
            field,
            shown,
            format!("{allowed}, without spaces"),
        ));
    }
    if !template.contains(STREAM_PLACEHOLDER) {
        return Err(InvalidArgument::new(
            field,
            shown,
            format!(
                "{allowed} with `{STREAM_PLACEHOLDER}` where the stream name goes, so each session has its own stream"
            ),
        ));
    }
    // The host is checked once, as written: a name made per session could resolve anywhere.
    let authority = template
        .split_once("://")
        .map_or(template, |(_, rest)| rest)
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    if authority.contains(STREAM_PLACEHOLDER) {
        return Err(InvalidArgument::new(
            field,
            shown,
            format!("{allowed}, with `{STREAM_PLACEHOLDER}` in the path or query, not the host"),
        ));
    }
    match url::Url::parse(&with_stream(template, "stream")) {
        Ok(url)
            if schemes.contains(&url.scheme()) && url.host_str().is_some_and(|h| !h.is_empty()) =>
        {
            Ok(url)
        }
        Ok(_) | Err(_) => Err(InvalidArgument::new(field, shown, allowed.to_owned())),
    }
}

fn check_key(field: &'static str, key: &SecretString) -> Result<(), InvalidArgument> {
    if clean(key.expose_secret()) {
        Ok(())
    } else {
        Err(InvalidArgument::new(
            field,
            "<redacted>",
            "the key as the CSS console shows it, without spaces or line breaks",
        ))
    }
}

fn check_domain(field: &'static str, domain: &str) -> Result<(), InvalidArgument> {
    let parsed = url::Url::parse(&format!("rtmp://{domain}/"));
    let plain = parsed.as_ref().is_ok_and(|u| {
        u.host_str().is_some_and(|h| !h.is_empty())
            && u.path() == "/"
            && u.username().is_empty()
            && u.password().is_none()
    });
    if clean(domain) && plain && !domain.contains(['/', '?', '#', '@']) {
        Ok(())
    } else {
        Err(InvalidArgument::new(
            field,
            domain,
            "a host name such as xxxx.livepush.myqcloud.com (a port may follow a `:`)",
        ))
    }
}

impl RelayFields {
    /// Whether any field names a relay (keys alone do not: they may sit in the environment
    /// for `push`).
    pub fn names_a_relay(&self) -> bool {
        self.push.is_some()
            || self.play.is_some()
            || self.css_push_domain.is_some()
            || self.css_play_domain.is_some()
            || self.css_app.is_some()
            || self.css_play_format.is_some()
    }

    /// These fields, with the keys not given taken from `base` (the config file's).
    pub fn with_keys_from(mut self, base: &RelayFields) -> Self {
        if self.css_push_key.is_none() {
            self.css_push_key = base.css_push_key.clone();
        }
        if self.css_play_key.is_none() {
            self.css_play_key = base.css_play_key.clone();
        }
        self
    }

    /// The relay these fields describe, `None` when they name none; every field is checked,
    /// and an error names the field and what it takes.
    pub fn validate(&self) -> Result<Option<Relay>, InvalidArgument> {
        if !self.names_a_relay() {
            return Ok(None);
        }
        if self.push.is_some() && self.css_push_domain.is_some() {
            return Err(InvalidArgument::new(
                "relay.push",
                "with relay.css_push_domain",
                "either an RTMP push URL (any relay) or the CSS fields, not both",
            ));
        }
        if self.css_push_domain.is_some() {
            return self.validate_css().map(|css| Some(Relay::Css(css)));
        }
        let Some(push) = &self.push else {
            return Err(InvalidArgument::new(
                "relay.push",
                "missing",
                "the RTMP URL to push to, e.g. rtmp://relay.example.com/live/{stream} (or --css-push-domain for Tencent CSS)",
            ));
        };
        check_url(
            "relay.push",
            push,
            &["rtmp", "rtmps"],
            "an rtmp:// or rtmps:// URL",
        )?;
        let Some(play) = &self.play else {
            return Err(InvalidArgument::new(
                "relay.play",
                "missing",
                "the URL the cloud pulls the pushed stream from, e.g. rtmp://relay.example.com/live/{stream} or https://relay.example.com/live/{stream}.flv",
            ));
        };
        check_url(
            "relay.play",
            play,
            &["http", "https", "rtmp"],
            "an http(s):// (FLV or HLS) or rtmp:// URL the cloud can pull",
        )?;
        Ok(Some(Relay::Rtmp {
            push: push.clone(),
            play: play.clone(),
        }))
    }

    fn validate_css(&self) -> Result<CssRelay, InvalidArgument> {
        if self.play.is_some() {
            return Err(InvalidArgument::new(
                "relay.play",
                "with relay.css_push_domain",
                "no play URL with CSS: it is made from relay.css_play_domain",
            ));
        }
        let push_domain = self.css_push_domain.clone().unwrap_or_default();
        check_domain("relay.css_push_domain", &push_domain)?;
        let Some(play_domain) = self.css_play_domain.clone() else {
            return Err(InvalidArgument::new(
                "relay.css_play_domain",
                "missing",
                "the CSS playback domain bound to the push domain (the cloud pulls from it)",
            ));
        };
        check_domain("relay.css_play_domain", &play_domain)?;
        let Some(push_key) = self.css_push_key.clone() else {
            return Err(InvalidArgument::new(
                "relay.css_push_key",
                "missing",
                "the push domain's auth key (--css-push-key, CALLFEED_CSS_PUSH_KEY or `css_push_key` in [relay])",
            ));
        };
        check_key("relay.css_push_key", &push_key)?;
        if let Some(key) = &self.css_play_key {
            check_key("relay.css_play_key", key)?;
        }
        let app = self.css_app.clone().unwrap_or_else(|| "live".into());
        // The stream name is ours; the app must be a valid path segment.
        CssStream::new(&push_domain, &play_domain, &app, "callfeed-check")
            .map_err(|e| InvalidArgument::new("relay.css_app", &app, e.allowed))?;
        let play_format = match &self.css_play_format {
            Some(f) => f
                .parse()
                .map_err(|e: String| InvalidArgument::new("relay.css_play_format", f, e))?,
            None => PlayFormat::Flv,
        };
        Ok(CssRelay {
            push_domain,
            play_domain,
            app,
            push_key,
            play_key: self.css_play_key.clone(),
            play_format,
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn css(key: &str) -> RelayFields {
        RelayFields {
            css_push_domain: Some("push.example.com".into()),
            css_play_domain: Some("play.example.com".into()),
            css_push_key: Some(SecretString::from(key)),
            ..Default::default()
        }
    }

    /// The reference vector of `tencent-cloud-apis.md` §7.2, signed the way a session does.
    #[test]
    fn a_session_on_css_signs_its_push_url_as_the_reference_says() {
        let relay = css("pushkey123").validate().unwrap().unwrap();
        let e = relay.endpoints("call_42_audio", 1_700_003_600);
        assert_eq!(
            e.push.expose_secret(),
            "rtmp://push.example.com/live/call_42_audio?txSecret=a9b6d509ea4a50d6a10aaf3bf0ea0cca&txTime=6553FF10"
        );
        // The play URL never carries the push key nor its signature.
        assert_eq!(e.play, "https://play.example.com/live/call_42_audio.flv");
        let mut with_play_key = css("pushkey123");
        with_play_key.css_play_key = Some(SecretString::from("ngoeiq03"));
        with_play_key.css_play_format = Some("rtmp".into());
        let relay = with_play_key.validate().unwrap().unwrap();
        let e = relay.endpoints("test01", 1_543_624_200);
        assert_eq!(
            e.play,
            "rtmp://play.example.com/live/test01?txSecret=ce797dc6238156d548ef945e6ad1ea20&txTime=5C01D608"
        );
        assert!(!format!("{relay:?}{e:?}").contains("pushkey123"));
        assert!(!format!("{e:?}").contains("a9b6d509"));
    }

    #[test]
    fn a_plain_relay_gets_the_stream_name_in_both_urls() {
        let fields = RelayFields {
            push: Some("rtmp://relay.example.com:1936/live/{stream}?secret=s3".into()),
            play: Some("http://relay.example.com/live/{stream}.flv".into()),
            ..Default::default()
        };
        let relay = fields.validate().unwrap().unwrap();
        let e = relay.endpoints(&stream_name("0a1b-2c"), 0);
        assert_eq!(e.stream, "callfeed-0a1b2c");
        assert_eq!(
            e.push.expose_secret(),
            "rtmp://relay.example.com:1936/live/callfeed-0a1b2c?secret=s3"
        );
        assert_eq!(e.play, "http://relay.example.com/live/callfeed-0a1b2c.flv");
        assert_eq!(relay.push_host(), ("relay.example.com".into(), 1936));
        assert!(!format!("{relay:?}{fields:?}").contains("s3"));
    }

    #[test]
    fn bad_relays_are_refused_naming_the_field() {
        let field = |f: RelayFields| f.validate().unwrap_err().field;
        let plain = |push: &str, play: Option<&str>| RelayFields {
            push: Some(push.into()),
            play: play.map(Into::into),
            ..Default::default()
        };
        let play = Some("rtmp://r/live/{stream}");
        assert_eq!(field(plain("http://r/live/{stream}", play)), "relay.push");
        assert_eq!(field(plain("srt://r/{stream}", play)), "relay.push");
        assert_eq!(field(plain("rtmp://r/live/fixed", play)), "relay.push");
        assert_eq!(field(plain(" rtmp://r/live/{stream}", play)), "relay.push");
        assert_eq!(field(plain("rtmp://r/live/{stream}", None)), "relay.play");
        assert_eq!(
            field(plain("rtmp://{stream}.r.example/live/s", play)),
            "relay.push"
        );
        assert_eq!(
            field(plain(
                "rtmp://r/live/{stream}",
                Some("http://{stream}.r.example/x")
            )),
            "relay.play"
        );
        assert_eq!(
            field(plain(
                "rtmp://r/live/{stream}",
                Some("file:///etc/{stream}")
            )),
            "relay.play"
        );
        let only_play = RelayFields {
            play: Some("rtmp://r/live/{stream}".into()),
            ..Default::default()
        };
        assert_eq!(field(only_play), "relay.push");
        let err = css("key with space").validate().unwrap_err();
        assert_eq!(err.field, "relay.css_push_key");
        assert!(!err.to_string().contains("with space"), "{err}");
        assert_eq!(field(css("k\n")), "relay.css_push_key");
        let mut no_play = css("k");
        no_play.css_play_domain = None;
        assert_eq!(field(no_play), "relay.css_play_domain");
        let mut no_key = css("k");
        no_key.css_push_key = None;
        assert_eq!(field(no_key), "relay.css_push_key");
        let mut bad_domain = css("k");
        bad_domain.css_push_domain = Some("push.example.com/app".into());
        assert_eq!(field(bad_domain), "relay.css_push_domain");
        let mut bad_app = css("k");
        bad_app.css_app = Some("../x".into());
        assert_eq!(field(bad_app), "relay.css_app");
        let mut bad_format = css("k");
        bad_format.css_play_format = Some("webrtc".into());
        assert_eq!(field(bad_format), "relay.css_play_format");
        // Keys alone name no relay: they may sit in the environment for `push`.
        let keys_only = RelayFields {
            css_push_key: Some(SecretString::from("k")),
            ..Default::default()
        };
        assert!(keys_only.validate().unwrap().is_none());
    }

    #[tokio::test]
    async fn a_push_host_that_does_not_resolve_is_named() {
        let fields = RelayFields {
            push: Some("rtmp://no-such-relay.invalid/live/{stream}".into()),
            play: Some("rtmp://no-such-relay.invalid/live/{stream}".into()),
            ..Default::default()
        };
        let err = fields
            .validate()
            .unwrap()
            .unwrap()
            .resolve()
            .await
            .unwrap_err();
        assert_eq!(err.field, "relay.push");
        assert!(err.to_string().contains("no-such-relay.invalid"), "{err}");
    }
}
