//! URLs: a file over HTTP(S), live FLV, RTMP, SRT, HLS or an RTSP camera, decoded by
//! uridecodebin.

use super::spec::{Input, InputError, InputSpec, invalid};

/// A URL input; a URL's credentials are never shown.
pub(super) struct Url<'a>(pub(super) &'a str);

impl Input for Url<'_> {
    fn is_live(&self) -> bool {
        !looks_like_file(self.0)
    }
    fn is_replayable(&self) -> bool {
        looks_like_file(self.0)
    }
    fn uris(&self) -> Option<Vec<String>> {
        Some(vec![if crate::media::rtsp::is_rtsp(self.0) {
            crate::media::rtsp::element_uri(self.0)
        } else {
            self.0.to_owned()
        }])
    }
    fn describe(&self) -> String {
        crate::redact::redact_url(self.0)
    }
}

/// A spec with a `scheme://`: a URL, or a `file://` URI.
pub(super) fn parse(spec: &str, scheme: &str) -> Result<InputSpec, InputError> {
    match scheme {
        "http" | "https" | "rtmp" | "rtmps" | "srt" | "rtsp" | "rtsps" => {
            if spec.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(invalid(spec, "a URL has no spaces or control characters"));
            }
            let url = url::Url::parse(spec)
                .map_err(|e| invalid(spec, format!("not a valid URL: {e}")))?;
            // What was checked is what plays: the parsed URL's own text.
            Ok(InputSpec::Url(url.to_string()))
        }
        "file" => {
            let path = url::Url::parse(spec)
                .ok()
                .and_then(|u| u.to_file_path().ok())
                .ok_or_else(|| invalid(spec, "not a valid file:// URI"))?;
            Ok(InputSpec::File(path))
        }
        other => Err(invalid(
            spec,
            format!(
                "scheme `{other}` is not supported: use http, https, rtmp, srt, rtsp or a file"
            ),
        )),
    }
}

fn looks_like_file(url: &str) -> bool {
    let path = url.split('?').next().unwrap_or(url).to_ascii_lowercase();
    (path.starts_with("http://") || path.starts_with("https://"))
        && [
            ".mp4", ".mov", ".m4a", ".mp3", ".wav", ".ogg", ".opus", ".flac", ".mkv", ".webm",
            ".aac",
        ]
        .iter()
        .any(|ext| path.ends_with(ext))
}
