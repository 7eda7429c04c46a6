//! TRTC's relay to CDN (API 3.0, version 2019-07-22): `StartPublishCdnStream`,
//! `StopPublishCdnStream` and `UpdatePublishCdnStream`, signed like the StreamIngest actions.
//!
//! callfeed uses them to hear its own rooms: the cloud publishes what a callee receives (the
//! robot's stream, or the room's mix) over RTMP to callfeed's own listener. Careful: here
//! `RoomIdType` is 0 = numeric, 1 = string, the reverse of StartStreamIngest's.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ids::{InvalidArgument, UserId};
use super::ingest::{IngestAction, IngestContext};
use super::room::RoomRef;

/// The documented limits.
pub const MAX_CDN_URLS: usize = 10;
pub const AUDIO_SAMPLE_RATES: [u32; 6] = [48_000, 44_100, 32_000, 24_000, 16_000, 8_000];
pub const MAX_AUDIO_KBPS: u32 = 500;
pub const MIN_AUDIO_KBPS: u32 = 8;
pub const MAX_VIDEO_SIDE: u32 = 1920;
pub const MAX_VIDEO_FPS: u32 = 60;
pub const MAX_VIDEO_KBPS: u32 = 10_000;
pub const MAX_GOP_SECS: u32 = 5;
pub const MAX_IDLE_SECS: u32 = 86_400;
pub const MIN_IDLE_SECS: u32 = 5;

/// What the cloud publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishSource {
    /// One user's stream as it reaches the room, without mixing (`WithTranscoding` 0,
    /// `SingleSubscribeParams`): the video is relayed as the user sent it.
    User(UserId),
    /// The room's mix of every user (`WithTranscoding` 1): the callee's voice too.
    Mix,
}

/// `AudioParams.AudioEncode`: the sound is always encoded again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishAudio {
    pub sample_rate: u32,
    pub channels: u32,
    pub bitrate_kbps: u32,
    /// 0 LC-AAC, 1 HE-AAC, 2 HE-AACv2.
    pub codec: u32,
}

impl Default for PublishAudio {
    fn default() -> Self {
        Self {
            sample_rate: 48_000,
            channels: 1,
            bitrate_kbps: 64,
            codec: 0,
        }
    }
}

/// `VideoParams.VideoEncode`; without it the cloud publishes sound only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishVideo {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_kbps: u32,
    pub gop_secs: u32,
}

/// StartPublishCdnStream: publish `source` in `room` to `cdn_urls`.
#[derive(Clone)]
pub struct StartPublishCdnStream {
    pub room: RoomRef,
    /// The cloud's own user in the room that subscribes and publishes (`AgentParams`); it
    /// must not be any other user's id.
    pub agent_user: UserId,
    /// Minted from the app key when `None`.
    pub agent_sig: Option<SecretString>,
    /// The task stops itself once no user has been in the room this long.
    pub max_idle_secs: Option<u32>,
    pub source: PublishSource,
    pub audio: PublishAudio,
    pub video: Option<PublishVideo>,
    /// `rtmp://` URLs, pushed with `IsTencentCdn` 0 (not Tencent's CDN).
    pub cdn_urls: Vec<SecretString>,
}

impl std::fmt::Debug for StartPublishCdnStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartPublishCdnStream")
            .field("room", &self.room)
            .field("agent_user", &self.agent_user)
            .field("source", &self.source)
            .field("audio", &self.audio)
            .field("video", &self.video)
            .field(
                "cdn_urls",
                &format_args!("<{} url(s)>", self.cdn_urls.len()),
            )
            .finish_non_exhaustive()
    }
}

impl StartPublishCdnStream {
    pub fn new(
        room: RoomRef,
        agent_user: UserId,
        source: PublishSource,
        cdn_url: SecretString,
    ) -> Self {
        Self {
            room,
            agent_user,
            agent_sig: None,
            max_idle_secs: None,
            source,
            audio: PublishAudio::default(),
            video: None,
            cdn_urls: vec![cdn_url],
        }
    }
}

/// An RTMP URL the cloud can push to. The URL carries a stream key: errors name its host,
/// never the rest.
pub fn check_publish_url(value: &str) -> Result<(), InvalidArgument> {
    let allowed = "an rtmp:// URL with a host (the cloud publishes over RTMP only)";
    let Ok(url) = url::Url::parse(value) else {
        return Err(InvalidArgument::new(
            "PublishCdnUrl",
            "<not a URL>",
            allowed,
        ));
    };
    let host = url.host_str().unwrap_or_default().to_owned();
    if url.scheme() != "rtmp" || host.is_empty() {
        return Err(InvalidArgument::new(
            "PublishCdnUrl",
            format!("{}://{host}/…", url.scheme()),
            allowed,
        ));
    }
    Ok(())
}

fn check_range(
    field: &'static str,
    value: u32,
    range: std::ops::RangeInclusive<u32>,
    unit: &str,
) -> Result<(), InvalidArgument> {
    if range.contains(&value) {
        return Ok(());
    }
    Err(InvalidArgument::new(
        field,
        value,
        format!("{} to {}{unit}", range.start(), range.end()),
    ))
}

impl PublishAudio {
    fn check(&self) -> Result<(), InvalidArgument> {
        if !AUDIO_SAMPLE_RATES.contains(&self.sample_rate) {
            return Err(InvalidArgument::new(
                "AudioEncode.SampleRate",
                self.sample_rate,
                "48000, 44100, 32000, 24000, 16000 or 8000",
            ));
        }
        check_range("AudioEncode.Channel", self.channels, 1..=2, "")?;
        check_range(
            "AudioEncode.BitRate",
            self.bitrate_kbps,
            MIN_AUDIO_KBPS..=MAX_AUDIO_KBPS,
            " kbit/s",
        )?;
        check_range("AudioEncode.Codec", self.codec, 0..=2, " (0 LC-AAC)")
    }
}

impl PublishVideo {
    fn check(&self) -> Result<(), InvalidArgument> {
        check_range("VideoEncode.Width", self.width, 0..=MAX_VIDEO_SIDE, "")?;
        check_range("VideoEncode.Height", self.height, 0..=MAX_VIDEO_SIDE, "")?;
        check_range("VideoEncode.Fps", self.fps, 1..=MAX_VIDEO_FPS, "")?;
        check_range(
            "VideoEncode.BitRate",
            self.bitrate_kbps,
            1..=MAX_VIDEO_KBPS,
            " kbit/s",
        )?;
        check_range("VideoEncode.Gop", self.gop_secs, 1..=MAX_GOP_SECS, " s")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct PublishCdnResponse {
    #[serde(rename = "TaskId")]
    pub task_id: String,
}

impl IngestAction for StartPublishCdnStream {
    const ACTION: &'static str = "StartPublishCdnStream";
    const IDEMPOTENT: bool = false;
    type Response = PublishCdnResponse;

    fn body(&self, ctx: &IngestContext<'_>) -> Result<Value, InvalidArgument> {
        if self.cdn_urls.is_empty() || self.cdn_urls.len() > MAX_CDN_URLS {
            return Err(InvalidArgument::new(
                "PublishCdnParams",
                self.cdn_urls.len(),
                format!("1 to {MAX_CDN_URLS} URLs"),
            ));
        }
        for url in &self.cdn_urls {
            check_publish_url(url.expose_secret())?;
        }
        if let PublishSource::User(user) = &self.source
            && *user == self.agent_user
        {
            return Err(InvalidArgument::new(
                "AgentParams.UserId",
                &self.agent_user,
                "an id of its own: not the user whose stream it publishes",
            ));
        }
        if let Some(idle) = self.max_idle_secs {
            check_range(
                "AgentParams.MaxIdleTime",
                idle,
                MIN_IDLE_SECS..=MAX_IDLE_SECS,
                " s",
            )?;
        }
        self.audio.check()?;
        if let Some(video) = &self.video {
            video.check()?;
        }
        let sig = match &self.agent_sig {
            Some(s) => s.expose_secret().to_owned(),
            None => ctx.user_sig(&self.agent_user),
        };
        let mut agent = json!({ "UserId": self.agent_user, "UserSig": sig });
        if let Some(idle) = self.max_idle_secs {
            agent["MaxIdleTime"] = json!(idle);
        }
        let room_type = self.room.publish_cdn_room_id_type();
        let mut body = json!({
            "SdkAppId": ctx.sdkappid,
            "RoomId": self.room.id(),
            "RoomIdType": room_type,
            "AgentParams": agent,
            "WithTranscoding": u8::from(self.source == PublishSource::Mix),
            "AudioParams": {"AudioEncode": {
                "SampleRate": self.audio.sample_rate,
                "Channel": self.audio.channels,
                "BitRate": self.audio.bitrate_kbps,
                "Codec": self.audio.codec,
            }},
            "PublishCdnParams": self.cdn_urls.iter().map(|u| json!({
                "PublishCdnUrl": u.expose_secret(),
                "IsTencentCdn": 0,
            })).collect::<Vec<_>>(),
        });
        if let Some(v) = &self.video {
            body["VideoParams"] = json!({"VideoEncode": {
                "Width": v.width, "Height": v.height, "Fps": v.fps,
                "BitRate": v.bitrate_kbps, "Gop": v.gop_secs,
            }});
        }
        if let PublishSource::User(user) = &self.source {
            body["SingleSubscribeParams"] = json!({"UserMediaStream": {
                "UserInfo": {"UserId": user, "RoomId": self.room.id(), "RoomIdType": room_type},
                "StreamType": 0,
            }});
        }
        Ok(body)
    }
}

fn check_task_id(task_id: &str) -> Result<(), InvalidArgument> {
    super::ids::check_task_id(task_id, "StartPublishCdnStream")
}

/// StopPublishCdnStream: the relay task `task_id` stops publishing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopPublishCdnStream {
    pub task_id: String,
}

impl IngestAction for StopPublishCdnStream {
    const ACTION: &'static str = "StopPublishCdnStream";
    const IDEMPOTENT: bool = true;
    type Response = PublishCdnResponse;

    fn body(&self, ctx: &IngestContext<'_>) -> Result<Value, InvalidArgument> {
        check_task_id(&self.task_id)?;
        Ok(json!({ "SdkAppId": ctx.sdkappid, "TaskId": self.task_id }))
    }
}

/// The cloud's answers to a stop that mean the task is gone already: what a stop wants.
pub fn already_stopped(code: &str) -> bool {
    matches!(
        code,
        "FailedOperation.TaskNotExist"
            | "FailedOperation.TaskFinished"
            | "InvalidParameter.TaskId"
            | "ResourceNotFound"
    )
}

impl super::ingest::IngestClient {
    pub async fn start_publish_cdn(
        &self,
        req: &StartPublishCdnStream,
    ) -> Result<super::ingest::ApiReply<PublishCdnResponse>, super::http::CloudError> {
        self.execute(req).await
    }

    pub async fn stop_publish_cdn(
        &self,
        task_id: &str,
    ) -> Result<super::ingest::ApiReply<PublishCdnResponse>, super::http::CloudError> {
        self.execute(&StopPublishCdnStream {
            task_id: task_id.to_owned(),
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::RoomKind;

    fn ctx_key() -> SecretString {
        SecretString::from("app-key")
    }

    fn body(req: &StartPublishCdnStream) -> Result<Value, InvalidArgument> {
        let key = ctx_key();
        req.body(&IngestContext {
            sdkappid: 1_400_000_000,
            app_key: &key,
            now: 1_700_000_000,
        })
    }

    fn request(room: RoomRef, source: PublishSource) -> StartPublishCdnStream {
        StartPublishCdnStream::new(
            room,
            UserId::new("agent", "monitor_r1").unwrap(),
            source,
            SecretString::from("rtmp://127.0.0.1:1935/live/monitor-secret"),
        )
    }

    #[test]
    fn room_id_type_is_the_reverse_of_stream_ingest() {
        let robot = UserId::new("robot", "robot_1").unwrap();
        let numeric = RoomRef::new("12345", RoomKind::Numeric).unwrap();
        let b = body(&request(
            numeric.clone(),
            PublishSource::User(robot.clone()),
        ))
        .unwrap();
        assert_eq!(b["RoomIdType"], 0);
        assert_eq!(
            b["SingleSubscribeParams"]["UserMediaStream"]["UserInfo"]["RoomIdType"],
            0
        );
        assert_eq!(numeric.ingest_room_id_type(), 1);
        let string = RoomRef::new("room-a", RoomKind::String).unwrap();
        let b = body(&request(string.clone(), PublishSource::User(robot))).unwrap();
        assert_eq!(b["RoomIdType"], 1);
        assert_eq!(b["RoomId"], "room-a");
        assert_eq!(string.ingest_room_id_type(), 0);
        for room in [numeric, string] {
            let kind = room.publish_cdn_room_id_type();
            assert_eq!(
                RoomRef::from_publish_cdn(room.id(), i64::from(kind)).unwrap(),
                room
            );
        }
    }

    #[test]
    fn a_single_user_relay_and_a_mix_say_so_and_never_go_to_tencents_cdn() {
        let room = RoomRef::new("7", RoomKind::Numeric).unwrap();
        let robot = UserId::new("robot", "robot_1").unwrap();
        let b = body(&request(room.clone(), PublishSource::User(robot))).unwrap();
        assert_eq!(b["WithTranscoding"], 0);
        assert_eq!(
            b["SingleSubscribeParams"]["UserMediaStream"]["UserInfo"]["UserId"],
            "robot_1"
        );
        assert_eq!(b["PublishCdnParams"][0]["IsTencentCdn"], 0);
        assert_eq!(b["AudioParams"]["AudioEncode"]["SampleRate"], 48_000);
        assert!(b.get("VideoParams").is_none());
        let mut mix = request(room, PublishSource::Mix);
        mix.video = Some(PublishVideo {
            width: 640,
            height: 360,
            fps: 15,
            bitrate_kbps: 500,
            gop_secs: 2,
        });
        let b = body(&mix).unwrap();
        assert_eq!(b["WithTranscoding"], 1);
        assert!(b.get("SingleSubscribeParams").is_none());
        assert_eq!(b["VideoParams"]["VideoEncode"]["Width"], 640);
        assert!(b["AgentParams"]["UserSig"].as_str().unwrap().len() > 20);
    }

    #[test]
    fn bad_fields_are_refused_without_echoing_the_stream_key() {
        let room = RoomRef::new("7", RoomKind::Numeric).unwrap();
        let mut req = request(room.clone(), PublishSource::Mix);
        req.cdn_urls = vec![SecretString::from("http://cdn.example/live/secret-key")];
        let e = body(&req).unwrap_err();
        assert_eq!(e.field, "PublishCdnUrl");
        assert!(!e.to_string().contains("secret-key"), "{e}");
        let mut req = request(room.clone(), PublishSource::Mix);
        req.audio.sample_rate = 22_050;
        assert_eq!(body(&req).unwrap_err().field, "AudioEncode.SampleRate");
        let agent = UserId::new("agent", "monitor_r1").unwrap();
        let req = request(room.clone(), PublishSource::User(agent));
        assert_eq!(body(&req).unwrap_err().field, "AgentParams.UserId");
        let mut req = request(room, PublishSource::Mix);
        req.cdn_urls.clear();
        assert_eq!(body(&req).unwrap_err().field, "PublishCdnParams");
        assert!(!format!("{req:?}").contains("secret"));
    }
}
