//! The output contract: what every stream callfeed produces looks like, whatever the input.
//!
//! A profile fixes the size, the frame rate, the codecs and their limits. The caps never
//! change during a stream, across input restarts and fallbacks included, because TRTC's
//! ingest expects one resolution per task.

use std::fmt;

/// Audio of every profile: AAC at 48 kHz, stereo.
pub const AUDIO_RATE: u32 = 48_000;
pub const AUDIO_CHANNELS: u32 = 2;
pub const AUDIO_BITRATE: u32 = 128_000;
/// Every video profile's frame rate: the cloud's ingest takes up to 30 fps.
pub const OUTPUT_FPS: u32 = 30;

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Audio only (for audio calls).
    Audio,
    #[serde(rename = "360p")]
    P360,
    #[serde(rename = "540p")]
    P540,
    #[serde(rename = "720p")]
    #[default]
    P720,
    #[serde(rename = "1080p")]
    P1080,
}

impl Profile {
    /// What encoding a live stream of this profile costs a machine, in units of about a
    /// twentieth of a core (decode, scale and encode of a typical input, measured on this
    /// project's benchmark machine: a 720p stream about a quarter of a core, a 1080p one about
    /// 0.6). An announcement, a passthrough or a URL handed over costs one.
    pub fn live_cost(self) -> u32 {
        match self {
            Profile::Audio => 1,
            Profile::P360 => 2,
            Profile::P540 => 3,
            Profile::P720 => 5,
            Profile::P1080 => 12,
        }
    }
}

/// What a machine of this many cores can encode in real time, in the units of
/// [`Profile::live_cost`].
pub const COST_UNITS_PER_CORE: u32 = 20;

/// The video part of a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct VideoContract {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub kbps: u32,
    /// Frames between keyframes: one second, so a late reader waits at most that long.
    pub gop_frames: u32,
}

/// How many threads x264 encodes one stream with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncoderThreads {
    /// A live stream: one thread up to 720p, where a single thread keeps up with 30 fps
    /// several times over and sliced threads only add a synchronisation per frame (measured:
    /// 4 % less CPU per stream, and more streams per machine); x264's choice above.
    Live,
    /// A file transcoded once, as fast as the machine allows.
    Offline,
}

impl VideoContract {
    /// The value of x264enc's `threads` (0 lets x264 choose).
    pub fn encoder_threads(&self, use_: EncoderThreads) -> u32 {
        match use_ {
            EncoderThreads::Live if self.height <= 720 => 1,
            _ => 0,
        }
    }
}

impl Profile {
    pub const ALL: [Profile; 5] = [
        Profile::Audio,
        Profile::P360,
        Profile::P540,
        Profile::P720,
        Profile::P1080,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Profile::Audio => "audio",
            Profile::P360 => "360p",
            Profile::P540 => "540p",
            Profile::P720 => "720p",
            Profile::P1080 => "1080p",
        }
    }

    pub fn video(self) -> Option<VideoContract> {
        let (width, height, kbps) = match self {
            Profile::Audio => return None,
            Profile::P360 => (640, 360, 800),
            Profile::P540 => (960, 540, 1200),
            Profile::P720 => (1280, 720, 2000),
            Profile::P1080 => (1920, 1080, 3500),
        };
        Some(VideoContract {
            width,
            height,
            fps: OUTPUT_FPS,
            kbps,
            gop_frames: 30,
        })
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Profile::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("unknown profile `{s}`: use audio, 360p, 540p, 720p or 1080p"))
    }
}

/// The contract a stream is produced under: a profile plus the encoder speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Contract {
    pub profile: Profile,
    pub video: Option<VideoContract>,
    pub audio_rate: u32,
    pub audio_channels: u32,
    pub audio_bps: u32,
    /// x264 speed preset.
    pub preset: &'static str,
}

impl Contract {
    pub fn new(profile: Profile) -> Self {
        Self {
            profile,
            video: profile.video(),
            audio_rate: AUDIO_RATE,
            audio_channels: AUDIO_CHANNELS,
            audio_bps: AUDIO_BITRATE,
            preset: "veryfast",
        }
    }

    /// Raw video caps every input is normalised to.
    pub fn raw_video_caps(&self) -> Option<String> {
        self.video.map(|v| {
            format!(
                "video/x-raw,format=I420,width={},height={},framerate={}/1,pixel-aspect-ratio=1/1",
                v.width, v.height, v.fps
            )
        })
    }

    pub fn raw_audio_caps(&self) -> String {
        // Encoders want the stereo layout spelled out.
        let mask = if self.audio_channels == 2 {
            ",channel-mask=(bitmask)0x3"
        } else {
            ""
        };
        format!(
            "audio/x-raw,format=S16LE,rate={},channels={},layout=interleaved{mask}",
            self.audio_rate, self.audio_channels
        )
    }
}
