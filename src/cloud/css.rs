//! Tencent CSS (live streaming) push and play URLs, signed with txSecret/txTime.
//!
//! `txSecret = md5_hex(key + StreamName + txTime)` over the exact txTime text placed in the
//! URL: `5C01D608` and `5c01d608` give different secrets.

use md5::{Digest, Md5};

use super::ids::InvalidArgument;

/// `txTime`: the expiry as upper-case hexadecimal Unix seconds, as the console writes it.
pub fn tx_time(expires_at_unix: u64) -> String {
    format!("{expires_at_unix:X}")
}

/// `txSecret` for a stream and the txTime text exactly as it appears in the URL.
pub fn tx_secret(key: &str, stream_name: &str, tx_time: &str) -> String {
    let mut md5 = Md5::new();
    md5.update(key.as_bytes());
    md5.update(stream_name.as_bytes());
    md5.update(tx_time.as_bytes());
    hex::encode(md5.finalize())
}

/// A stream on a CSS push/play domain pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CssStream {
    pub push_domain: String,
    pub play_domain: String,
    /// Defaults to `live`.
    pub app_name: String,
    /// Without AppName, extension or query.
    pub stream_name: String,
}

fn check_segment(field: &'static str, value: &str) -> Result<(), InvalidArgument> {
    if value.is_empty()
        || !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(InvalidArgument::new(
            field,
            value,
            "letters, digits, `_` and `-`, not empty",
        ));
    }
    Ok(())
}

impl CssStream {
    pub fn new(
        push_domain: &str,
        play_domain: &str,
        app_name: &str,
        stream_name: &str,
    ) -> Result<Self, InvalidArgument> {
        check_segment("AppName", app_name)?;
        check_segment("StreamName", stream_name)?;
        for (field, d) in [("push domain", push_domain), ("play domain", play_domain)] {
            if d.is_empty() || d.contains('/') || d.contains(' ') {
                return Err(InvalidArgument::new(
                    field,
                    d,
                    "a host name such as xxxx.livepush.myqcloud.com",
                ));
            }
        }
        Ok(Self {
            push_domain: push_domain.to_owned(),
            play_domain: play_domain.to_owned(),
            app_name: app_name.to_owned(),
            stream_name: stream_name.to_owned(),
        })
    }

    fn auth_query(&self, key: Option<&str>, expires_at: u64) -> String {
        match key {
            Some(key) => {
                let t = tx_time(expires_at);
                format!(
                    "?txSecret={}&txTime={t}",
                    tx_secret(key, &self.stream_name, &t)
                )
            }
            None => String::new(),
        }
    }

    /// `rtmp://<push>/<app>/<stream>?txSecret=…&txTime=…`
    pub fn rtmp_push_url(&self, push_key: &str, expires_at: u64) -> String {
        format!(
            "rtmp://{}/{}/{}{}",
            self.push_domain,
            self.app_name,
            self.stream_name,
            self.auth_query(Some(push_key), expires_at)
        )
    }

    /// `rtmp://<play>/<app>/<stream>[?…]`; unsigned when the play domain has no auth key.
    pub fn rtmp_play_url(&self, play_key: Option<&str>, expires_at: u64) -> String {
        format!(
            "rtmp://{}/{}/{}{}",
            self.play_domain,
            self.app_name,
            self.stream_name,
            self.auth_query(play_key, expires_at)
        )
    }

    /// HTTP-FLV play URL, the one to hand to StartStreamIngest.
    pub fn flv_play_url(&self, play_key: Option<&str>, expires_at: u64, https: bool) -> String {
        format!(
            "{}://{}/{}/{}.flv{}",
            if https { "https" } else { "http" },
            self.play_domain,
            self.app_name,
            self.stream_name,
            self.auth_query(play_key, expires_at)
        )
    }

    /// HLS play URL (accepted by ingest, with more latency).
    pub fn hls_play_url(&self, play_key: Option<&str>, expires_at: u64, https: bool) -> String {
        format!(
            "{}://{}/{}/{}.m3u8{}",
            if https { "https" } else { "http" },
            self.play_domain,
            self.app_name,
            self.stream_name,
            self.auth_query(play_key, expires_at)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_the_secret_for_the_exact_tx_time() {
        let s = CssStream::new(
            "push.example.com",
            "play.example.com",
            "live",
            "call_42_audio",
        )
        .unwrap();
        assert_eq!(
            s.rtmp_push_url("pushkey123", 1_700_003_600),
            "rtmp://push.example.com/live/call_42_audio?txSecret=a9b6d509ea4a50d6a10aaf3bf0ea0cca&txTime=6553FF10"
        );
        assert_eq!(
            s.flv_play_url(None, 0, true),
            "https://play.example.com/live/call_42_audio.flv"
        );
        assert!(CssStream::new("p", "q", "live", "a/b").is_err());
    }
}
