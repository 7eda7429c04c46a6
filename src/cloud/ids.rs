//! Identifiers that cross the wire and the checks every request applies to them.

use std::fmt;

/// A request argument that was refused before anything was sent.
///
/// The message names the field, the value and what is allowed, so a user can fix the
/// command line or config without reading the reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field} `{value}`: {allowed}")]
pub struct InvalidArgument {
    pub field: &'static str,
    pub value: String,
    pub allowed: String,
}

impl InvalidArgument {
    pub fn new(field: &'static str, value: impl fmt::Display, allowed: impl Into<String>) -> Self {
        Self {
            field,
            value: value.to_string(),
            allowed: allowed.into(),
        }
    }
}

/// Longest UserID the IM account system accepts.
pub const MAX_USER_ID_BYTES: usize = 32;

/// A user (callee, robot or ingest robot) as the IM and TRTC backends know it.
///
/// Restricted to `[A-Za-z0-9_-]`, at most 32 bytes: the set every Tencent product agrees on,
/// so the same id works in the call engine, in TRTC rooms and in UserSig.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct UserId(String);

impl UserId {
    pub fn new(field: &'static str, value: &str) -> Result<Self, InvalidArgument> {
        let allowed = "1 to 32 bytes of A-Z a-z 0-9 _ -";
        if value.is_empty() || value.len() > MAX_USER_ID_BYTES {
            return Err(InvalidArgument::new(
                field,
                value,
                format!("{allowed} (it has {} bytes)", value.len()),
            ));
        }
        if let Some(bad) = value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        {
            return Err(InvalidArgument::new(
                field,
                value,
                format!("{allowed} (`{bad}` is not allowed)"),
            ));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for UserId {
    type Err = InvalidArgument;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new("UserId", s)
    }
}

/// A TaskId as the cloud hands them out (by `started_by`): printable ASCII, at most 512.
pub fn check_task_id(task_id: &str, started_by: &str) -> Result<(), InvalidArgument> {
    if task_id.is_empty() || task_id.len() > 512 || !task_id.chars().all(|c| c.is_ascii_graphic()) {
        return Err(InvalidArgument::new(
            "TaskId",
            task_id,
            format!("the TaskId returned by {started_by}"),
        ));
    }
    Ok(())
}

/// Checks that a URL we hand to the cloud uses a scheme the ingest service can pull.
pub fn check_stream_url(field: &'static str, value: &str) -> Result<url::Url, InvalidArgument> {
    const SCHEMES: &str = "an http://, https:// or rtmp:// URL";
    let parsed = url::Url::parse(value)
        .map_err(|e| InvalidArgument::new(field, value, format!("{SCHEMES} ({e})")))?;
    match parsed.scheme() {
        "http" | "https" | "rtmp" if parsed.host_str().is_some_and(|h| !h.is_empty()) => Ok(parsed),
        "http" | "https" | "rtmp" => Err(InvalidArgument::new(
            field,
            value,
            format!("{SCHEMES} with a host"),
        )),
        other => Err(InvalidArgument::new(
            field,
            value,
            format!("{SCHEMES} (scheme `{other}` cannot be pulled by TRTC)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_checked() {
        assert!(UserId::new("robot", "robot_1-A").is_ok());
        let long = "a".repeat(33);
        let err = UserId::new("robot", &long).unwrap_err();
        assert_eq!(err.field, "robot");
        assert!(err.to_string().contains("33 bytes"), "{err}");
        let err = UserId::new("callee", "jack smith").unwrap_err();
        assert!(err.to_string().contains("` ` is not allowed"), "{err}");
        assert!(UserId::new("callee", "").is_err());
        assert!(UserId::new("callee", "jäck").is_err());
    }

    #[test]
    fn stream_url_schemes() {
        assert!(check_stream_url("StreamUrl", "https://a.b/x.flv").is_ok());
        assert!(check_stream_url("StreamUrl", "rtmp://127.0.0.1:1935/live/s").is_ok());
        let err = check_stream_url("StreamUrl", "srt://a.b:9000").unwrap_err();
        assert!(err.to_string().contains("scheme `srt`"), "{err}");
        assert!(check_stream_url("StreamUrl", "not a url").is_err());
        assert!(check_stream_url("StreamUrl", "file:///tmp/x.mp4").is_err());
    }
}
