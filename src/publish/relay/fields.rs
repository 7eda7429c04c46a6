//! A relay as asked for — by the flags of `call` and `load`, a `serve` session request's
//! `relay` object, or the config file's `[relay]` table (its keys from the environment
//! too) — and [`RelayFields::validate`], the one place they are checked.
//! The CSS keys may come from the environment instead, as `callfeed push` takes them.

use secrecy::{ExposeSecret, SecretString};

use super::target::{CssRelay, PlayFormat, Relay, STREAM_PLACEHOLDER, with_stream};
use crate::cloud::InvalidArgument;
use crate::cloud::css::CssStream;

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

pub const ENV_CSS_PUSH_KEY: &str = "CALLFEED_CSS_PUSH_KEY";
pub const ENV_CSS_PLAY_KEY: &str = "CALLFEED_CSS_PLAY_KEY";

/// The table's fields with the environment's keys over the file's, and the relay they name.
pub(crate) fn load(
    table: Option<RelayFields>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(RelayFields, Option<Relay>), InvalidArgument> {
    let mut fields = table.unwrap_or_default();
    let from_env = |name| env(name).filter(|v| !v.is_empty()).map(SecretString::from);
    if let Some(key) = from_env(ENV_CSS_PUSH_KEY) {
        fields.css_push_key = Some(key);
    }
    if let Some(key) = from_env(ENV_CSS_PLAY_KEY) {
        fields.css_play_key = Some(key);
    }
    let relay = fields.validate()?;
    Ok((fields, relay))
}

#[cfg(test)]
mod tests {
    use super::super::target::stream_name;
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

#[cfg(test)]
mod config_table {
    use crate::config::{Config, ConfigError};
    use std::io::Write;

    fn config(toml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(toml.as_bytes()).unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load_with(Some(file.path()), &move |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn the_relay_table_names_every_sessions_relay_with_keys_from_the_environment() {
        let css = "[relay]\ncss_push_domain = \"push.example.com\"\ncss_play_domain = \"play.example.com\"\n";
        // The key only in the environment.
        let c = config(css, &[(super::ENV_CSS_PUSH_KEY, "envkey")]).unwrap();
        let relay = c.relay.clone().expect("a relay");
        let e = relay.endpoints("s", 1_700_003_600);
        let push = secrecy::ExposeSecret::expose_secret(&e.push).to_owned();
        assert!(push.starts_with("rtmp://push.example.com/live/s?txSecret="));
        assert!(!format!("{c:?}").contains("envkey"));
        // Without a key it is refused at load, naming the field.
        let err = config(css, &[]).unwrap_err().to_string();
        assert!(err.contains("relay.css_push_key"), "{err}");
        let err = config("[relay]\npush = \"rtmp://r/live/{stream}\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("relay.play"), "{err}");
        // No table, no relay; a key alone in the environment is for `push`.
        let c = config("", &[(super::ENV_CSS_PUSH_KEY, "k")]).unwrap();
        assert!(c.relay.is_none());
    }
}
