//! Changes to a running session (`PATCH /v1/sessions/{id}`): what may be asked, checked as
//! a new request's fields are (the same input policy), and why a change was not made. A
//! leaf the service and the session's task share; the task carries changes out.

use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;

use crate::cloud::InvalidArgument;
use crate::media::input::InputSpec;
use crate::media::stream::control::MAX_VOLUME_PERCENT;

use super::request::{RequestError, admit_media};

/// What a change's inputs are admitted by: the server's input policy and bounds, for the
/// session's profile — as a new session's media is.
pub struct Admission<'a> {
    pub policy: &'a crate::media::policy::InputPolicy,
    pub topologies: &'a crate::media::topology::Topologies,
    pub bounds: crate::media::bounds::InputBounds,
    pub profile: crate::media::contract::Profile,
}

impl Admission<'_> {
    /// `named` admitted: parsed, allowed, there, and not too large.
    async fn admit(&self, named: &str) -> Result<NewMedia, RequestError> {
        let input = admit_media(
            named,
            self.policy,
            self.topologies,
            self.bounds,
            self.profile,
        )
        .await?;
        Ok(NewMedia {
            named: named.to_owned(),
            guard: self.policy.source_guard(&input),
            input,
        })
    }
}

/// A change as an API client sends it: any of the fields, each checked by hand so a wrong
/// one is refused by its name.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionUpdate {
    /// Another input, named as a new session's `media` is.
    #[serde(default)]
    pub media: Option<Value>,
    /// The sound's level in percent of the input's own, 0 to 200.
    #[serde(default)]
    pub volume: Option<Value>,
    #[serde(default)]
    pub paused: Option<Value>,
    /// Where in the current file to go on from, in seconds.
    #[serde(default)]
    pub seek_secs: Option<Value>,
}

/// A checked change.
#[derive(Debug, Clone, Default)]
pub struct Change {
    pub media: Option<NewMedia>,
    pub volume: Option<u32>,
    pub paused: Option<bool>,
    pub seek: Option<Duration>,
    pub queue: Option<QueueChange>,
}

/// Items a request may queue at once.
pub const MAX_QUEUED_AT_ONCE: usize = 100;
/// Items a session's queue may hold waiting.
pub const MAX_QUEUE_WAITING: usize = 200;
/// A mark's length at most.
const MAX_MARK_CHARS: usize = 128;

/// A change to the session's play queue.
#[derive(Debug, Clone)]
pub enum QueueChange {
    /// Items to play one after another; `replace` drops what waits and cuts what plays.
    Add {
        items: Vec<QueueItem>,
        replace: bool,
    },
    /// What waits is dropped and the queued item on air cut (barge-in).
    Clear,
}

#[derive(Debug, Clone)]
pub struct QueueItem {
    pub media: NewMedia,
    pub mark: Option<String>,
}

/// `POST /v1/sessions/{id}/queue` as an API client sends it.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueRequest {
    pub items: Vec<QueueRequestItem>,
    #[serde(default)]
    pub mode: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueRequestItem {
    pub media: String,
    #[serde(default)]
    pub mark: Option<String>,
}

impl QueueRequest {
    /// Checks the mode, the number of items, each mark, and each item's media as a new
    /// session's is admitted.
    pub async fn validate(&self, rules: &Admission<'_>) -> Result<Change, RequestError> {
        let replace = match self.mode.as_deref() {
            None | Some("append") => false,
            Some("replace") => true,
            Some(other) => {
                return Err(InvalidArgument::new("mode", other, "append or replace").into());
            }
        };
        if self.items.is_empty() || self.items.len() > MAX_QUEUED_AT_ONCE {
            return Err(InvalidArgument::new(
                "items",
                self.items.len(),
                format!("1 to {MAX_QUEUED_AT_ONCE} items a request"),
            )
            .into());
        }
        let mut items = Vec::with_capacity(self.items.len());
        for item in &self.items {
            if let Some(mark) = &item.mark
                && (mark.chars().count() > MAX_MARK_CHARS || mark.chars().any(char::is_control))
            {
                return Err(InvalidArgument::new(
                    "mark",
                    mark.chars().take(40).collect::<String>(),
                    format!("up to {MAX_MARK_CHARS} characters, no control characters"),
                )
                .into());
            }
            items.push(QueueItem {
                media: rules.admit(&item.media).await?,
                mark: item.mark.clone(),
            });
        }
        Ok(Change {
            queue: Some(QueueChange::Add { items, replace }),
            ..Default::default()
        })
    }
}

/// An input to switch to, admitted.
#[derive(Debug, Clone)]
pub struct NewMedia {
    /// As the client named it.
    pub named: String,
    pub input: InputSpec,
    pub guard: Option<crate::media::policy::SourceGuard>,
}

/// A change on its way to the session's task, and where its outcome goes.
#[derive(Debug)]
pub struct ChangeRequest {
    pub change: Change,
    pub reply: oneshot::Sender<Result<(), ChangeError>>,
}

/// Why a change was not made. The session runs on as it was.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ChangeError {
    #[error("the session is not bound to its call yet ({0}): change it once it is ingesting")]
    NotBound(String),
    #[error("the session has ended")]
    Ended,
    /// The change cannot be made to this session's media.
    #[error("{field}: {reason}")]
    Unsupported { field: &'static str, reason: String },
    /// The new input could not be made ready.
    #[error("media: {0}")]
    Media(String),
    /// The cloud refused the change.
    #[error("the cloud refused the change: {0}")]
    Cloud(String),
}

impl SessionUpdate {
    /// Checks every field; the media is admitted as a new session's is.
    pub async fn validate(&self, rules: &Admission<'_>) -> Result<Change, RequestError> {
        let volume = self
            .volume
            .as_ref()
            .map(|v| {
                v.as_u64()
                    .filter(|v| *v <= u64::from(MAX_VOLUME_PERCENT))
                    .map(|v| v as u32)
                    .ok_or_else(|| {
                        InvalidArgument::new(
                            "volume",
                            v,
                            "a whole number from 0 to 200 (percent of the input's own level)",
                        )
                    })
            })
            .transpose()?;
        let paused = self
            .paused
            .as_ref()
            .map(|v| {
                v.as_bool()
                    .ok_or_else(|| InvalidArgument::new("paused", v, "true or false"))
            })
            .transpose()?;
        let seek = self
            .seek_secs
            .as_ref()
            .map(|v| {
                v.as_f64()
                    .filter(|s| s.is_finite() && (0.0..=1e7).contains(s))
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| {
                        InvalidArgument::new(
                            "seek_secs",
                            v,
                            "seconds from the file's start, 0 or more",
                        )
                    })
            })
            .transpose()?;
        let media = match &self.media {
            None => None,
            Some(Value::String(named)) => Some(rules.admit(named).await?),
            Some(other) => {
                return Err(InvalidArgument::new(
                    "media",
                    other,
                    "an input as a new session names it (a file, a URL, feed:ID, test:...)",
                )
                .into());
            }
        };
        if media.is_some() && seek.is_some() {
            return Err(InvalidArgument::new(
                "seek_secs",
                self.seek_secs.as_ref().unwrap_or(&Value::Null),
                "not with media: a new input plays from its start",
            )
            .into());
        }
        let change = Change {
            media,
            volume,
            paused,
            seek,
            queue: None,
        };
        if change.media.is_none()
            && change.volume.is_none()
            && change.paused.is_none()
            && change.seek.is_none()
        {
            return Err(InvalidArgument::new(
                "media",
                "(nothing)",
                "at least one of media, volume, paused, seek_secs",
            )
            .into());
        }
        Ok(change)
    }
}
