//! What every input kind shares: the parsed input, its errors, what a pipeline plays, and
//! the one trait each kind implements (a file of its own under `input/`). A leaf.

use std::path::PathBuf;

use crate::media::topology::{Fragment, Topologies, TopologyError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("input `{spec}`: {reason}")]
    Invalid { spec: String, reason: String },
    #[error("input file `{path}` does not exist: check the path")]
    Missing { path: PathBuf },
    #[error("input file `{path}` cannot be read: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("input device `{device}` does not exist: list cameras with `ls /dev/video*`")]
    UnknownDevice { device: String },
}

pub(super) fn invalid(spec: &str, reason: impl Into<String>) -> InputError {
    InputError::Invalid {
        spec: crate::redact::redact_url(spec),
        reason: reason.into(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestVideo {
    /// A still `videotestsrc` pattern, drawn once and repeated.
    Still(&'static str),
    /// A ball bouncing on a tile in the middle of a black frame.
    Ball,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TestAudio {
    Tone(f64),
    Silence,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Microphone {
    Alsa(String),
    Pulse(String),
}

/// What to say and how.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpeechRequest {
    pub text: String,
    /// The engine's voice name; its default when `None`.
    pub voice: Option<String>,
    /// Words a minute; the engine's default when `None`.
    pub rate: Option<u32>,
    /// A language, for a voice of it; `voice` wins when both are given.
    pub lang: Option<String>,
    /// The text is SSML markup (which an API client may not send).
    pub markup: bool,
}

/// A parsed input. Its `Debug` hides a URL's credentials.
#[derive(Clone, PartialEq)]
pub enum InputSpec {
    File(PathBuf),
    Playlist(Vec<PathBuf>),
    Url(String),
    Test {
        video: Option<TestVideo>,
        audio: Option<TestAudio>,
    },
    Devices {
        camera: Option<String>,
        microphone: Option<Microphone>,
    },
    Custom {
        name: String,
        arg: String,
    },
    /// `feed:ID`: a running feed, shared by the sessions that name it.
    Feed(String),
    /// `tts:TEXT`: words the node's speech engine says (spoken into a file before playing).
    Speech(SpeechRequest),
    /// What a publisher pushes to a feed; made in code, never parsed.
    Pushed(crate::media::inlet::Inlet),
}

impl std::fmt::Debug for InputSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InputSpec::File(p) => f.debug_tuple("File").field(p).finish(),
            InputSpec::Playlist(items) => f.debug_tuple("Playlist").field(items).finish(),
            InputSpec::Url(u) => f
                .debug_tuple("Url")
                .field(&crate::redact::redact_url(u))
                .finish(),
            InputSpec::Test { video, audio } => f
                .debug_struct("Test")
                .field("video", video)
                .field("audio", audio)
                .finish(),
            InputSpec::Devices { camera, microphone } => f
                .debug_struct("Devices")
                .field("camera", camera)
                .field("microphone", microphone)
                .finish(),
            InputSpec::Custom { name, arg } => f
                .debug_struct("Custom")
                .field("name", name)
                .field("arg", arg)
                .finish(),
            InputSpec::Feed(id) => f.debug_tuple("Feed").field(id).finish(),
            InputSpec::Speech(r) => f.debug_tuple("Speech").field(&r.text.len()).finish(),
            InputSpec::Pushed(_) => f.write_str("Pushed"),
        }
    }
}

/// One thing an input pipeline plays. Its `Debug` hides a URL's credentials.
#[derive(Clone, PartialEq)]
pub enum InputItem {
    /// Decoded with uridecodebin.
    Uri(String),
    /// Built from source fragments.
    Sources(InputSpec),
    /// A publisher's FLV tags, a connection at a time.
    Pushed(crate::media::inlet::Inlet),
}

impl std::fmt::Debug for InputItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InputItem::Uri(u) => f
                .debug_tuple("Uri")
                .field(&crate::redact::redact_url(u))
                .finish(),
            InputItem::Sources(spec) => f.debug_tuple("Sources").field(spec).finish(),
            InputItem::Pushed(_) => f.write_str("Pushed"),
        }
    }
}

/// What an input kind knows of itself. `InputSpec` asks its kind (see `input::kind_of`);
/// a new kind is a new file that implements this, one variant, and one arm where specs are
/// parsed and kinds picked.
pub(super) trait Input {
    /// Checks that what it names on this machine exists and can be read.
    fn check_available(&self) -> Result<(), InputError> {
        Ok(())
    }
    /// Whether it runs on its own clock rather than being read from storage as fast as
    /// asked: a source built from fragments does.
    fn is_live(&self) -> bool {
        true
    }
    /// Whether every source runs on the clock by itself, so its media is taken as it comes.
    fn paces_itself(&self) -> bool {
        false
    }
    /// Whether it can be played again from the start (loops, playlists): a source built
    /// from fragments cannot.
    fn is_replayable(&self) -> bool {
        false
    }
    /// The URIs uridecodebin plays in turn; `None` for a source built from fragments, which
    /// is played as it is.
    fn uris(&self) -> Option<Vec<String>> {
        None
    }
    /// What a pipeline plays when it is neither URIs nor source fragments.
    fn item(&self) -> Option<InputItem> {
        None
    }
    /// The launch fragments of a source input: (video, audio).
    fn source_fragments(
        &self,
        _topologies: &Topologies,
        _canvas: Option<(u32, u32)>,
    ) -> Result<(Option<Fragment>, Option<Fragment>), TopologyError> {
        Ok((None, None))
    }
    /// How a user names it, with any credentials hidden.
    fn describe(&self) -> String;
}
