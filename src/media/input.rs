//! Input specs: what a user names on the command line, parsed and checked before anything
//! starts.
//!
//! | spec | input |
//! |---|---|
//! | `PATH` or `file:PATH` | a file GStreamer decodes (audio, video, or a still image) |
//! | `playlist:A,B,C` | files played one after another |
//! | `http(s)://…`, `rtmp://…`, `srt://…`, `….m3u8` | a URL (file, live FLV, RTMP, SRT, HLS) |
//! | `test:` | a moving ball and a 440 Hz tone; parts joined by `+`: `bars`, `ball`, `black`, `tone=HZ`, `silence` |
//! | `v4l2:/dev/videoN` | a camera; join a microphone with `+`: `v4l2:/dev/video0+alsa:hw:1` |
//! | `alsa:DEVICE`, `pulse:DEVICE` | a microphone |
//! | `custom:NAME[:ARG]` | the user's own `source.NAME_video` / `source.NAME_audio` topology |

use std::path::{Path, PathBuf};

use super::topology::{Fragment, Topologies};

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

fn invalid(spec: &str, reason: impl Into<String>) -> InputError {
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
}

impl InputSpec {
    /// Parses a spec. Files and devices are checked to exist; nothing is opened for media.
    pub fn parse(spec: &str) -> Result<Self, InputError> {
        let parsed = Self::parse_syntax(spec)?;
        parsed.check_available()?;
        Ok(parsed)
    }

    /// Checks that the files and cameras the input names exist and can be read.
    pub fn check_available(&self) -> Result<(), InputError> {
        match self {
            InputSpec::File(path) => check_file(path),
            InputSpec::Playlist(items) => items.iter().try_for_each(|p| check_file(p)),
            InputSpec::Devices {
                camera: Some(dev), ..
            } if !Path::new(dev).exists() => Err(InputError::UnknownDevice {
                device: dev.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// Parses a spec's syntax only: nothing on this machine is looked at, so the answer says
    /// nothing about which files exist (see `policy`).
    pub fn parse_syntax(spec: &str) -> Result<Self, InputError> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(invalid(
                spec,
                "empty input: name a file, a URL, `test:` or a device",
            ));
        }
        if let Some(rest) = spec.strip_prefix("test:") {
            return parse_test(spec, rest);
        }
        if let Some(rest) = spec.strip_prefix("playlist:") {
            let items: Vec<PathBuf> = rest
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| PathBuf::from(s.trim()))
                .collect();
            if items.is_empty() {
                return Err(invalid(
                    spec,
                    "a playlist needs at least one file: playlist:a.mp3,b.mp4",
                ));
            }
            return Ok(InputSpec::Playlist(items));
        }
        if let Some(rest) = spec.strip_prefix("custom:") {
            let (name, arg) = rest.split_once(':').unwrap_or((rest, ""));
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(invalid(
                    spec,
                    "custom:NAME[:ARG] with NAME of letters, digits and _",
                ));
            }
            return Ok(InputSpec::Custom {
                name: name.to_owned(),
                arg: arg.to_owned(),
            });
        }
        if spec.starts_with("v4l2:") || spec.starts_with("alsa:") || spec.starts_with("pulse:") {
            return parse_devices(spec);
        }
        if let Some(scheme) = spec.split_once("://").map(|(s, _)| s) {
            return match scheme {
                "http" | "https" | "rtmp" | "rtmps" | "srt" => {
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
                        "scheme `{other}` is not supported: use http, https, rtmp, srt or a file"
                    ),
                )),
            };
        }
        Ok(InputSpec::File(PathBuf::from(
            spec.strip_prefix("file:").unwrap_or(spec),
        )))
    }

    /// Whether the input runs on its own clock (devices, live URLs, test sources) rather than
    /// being read from storage as fast as asked.
    pub fn is_live(&self) -> bool {
        match self {
            InputSpec::File(_) | InputSpec::Playlist(_) => false,
            InputSpec::Url(u) => !looks_like_file(u),
            _ => true,
        }
    }

    /// Whether every source of the input runs on the clock by itself (test patterns, capture
    /// devices), so its media is taken as it comes instead of being paced again: pacing a
    /// live source only waits out the pipeline's latency before the first frame. A custom
    /// fragment may read a file, so it is paced.
    pub fn paces_itself(&self) -> bool {
        matches!(self, InputSpec::Test { .. } | InputSpec::Devices { .. })
    }

    /// Whether the input can be played again from the start (loops, playlists).
    pub fn is_replayable(&self) -> bool {
        match self {
            InputSpec::File(_) | InputSpec::Playlist(_) => true,
            InputSpec::Url(u) => looks_like_file(u),
            _ => false,
        }
    }

    /// The items played in turn: files for a playlist, one item otherwise.
    pub fn items(&self) -> Vec<InputItem> {
        match self {
            InputSpec::File(p) => vec![InputItem::Uri(file_uri(p))],
            InputSpec::Playlist(items) => {
                items.iter().map(|p| InputItem::Uri(file_uri(p))).collect()
            }
            InputSpec::Url(u) => vec![InputItem::Uri(u.clone())],
            other => vec![InputItem::Sources(other.clone())],
        }
    }

    /// The launch fragments of a source input (test, devices, custom): (video, audio).
    /// `canvas` is the output's picture size; without one, a test picture is not drawn.
    /// Device names and custom arguments stay data: see [`Fragment::bind`].
    pub fn source_fragments(
        &self,
        topologies: &Topologies,
        canvas: Option<(u32, u32)>,
    ) -> Result<(Option<Fragment>, Option<Fragment>), super::topology::TopologyError> {
        match self {
            InputSpec::Test { video, audio } => {
                let v = match (video, canvas) {
                    (Some(TestVideo::Still(pattern)), Some(_)) => Some(
                        topologies.render_fragment("source.test_still", &[("pattern", pattern)])?,
                    ),
                    (Some(TestVideo::Ball), Some((width, height))) => {
                        // A quarter of each side, even for 4:2:0, in the middle.
                        let (tile_w, tile_h) = ((width / 4) & !1, (height / 4) & !1);
                        Some(topologies.render_fragment(
                            "source.test_ball",
                            &[
                                ("width", &width.to_string()),
                                ("height", &height.to_string()),
                                ("tile_width", &tile_w.to_string()),
                                ("tile_height", &tile_h.to_string()),
                                ("tile_x", &((width - tile_w) / 2).to_string()),
                                ("tile_y", &((height - tile_h) / 2).to_string()),
                            ],
                        )?)
                    }
                    _ => None,
                };
                let a = audio
                    .as_ref()
                    .map(|a| {
                        let (wave, freq) = match a {
                            TestAudio::Tone(hz) => ("sine", format!("{hz}")),
                            TestAudio::Silence => ("silence", "440".to_owned()),
                        };
                        topologies.render_fragment(
                            "source.test_audio",
                            &[("wave", wave), ("freq", &freq)],
                        )
                    })
                    .transpose()?;
                Ok((v, a))
            }
            InputSpec::Devices { camera, microphone } => {
                let v = camera
                    .as_ref()
                    .map(|d| topologies.render_fragment("source.v4l2_video", &[("device", d)]))
                    .transpose()?;
                let a = microphone
                    .as_ref()
                    .map(|m| match m {
                        Microphone::Alsa(d) => {
                            topologies.render_fragment("source.alsa_audio", &[("device", d)])
                        }
                        Microphone::Pulse(d) => {
                            topologies.render_fragment("source.pulse_audio", &[("device", d)])
                        }
                    })
                    .transpose()?;
                Ok((v, a))
            }
            InputSpec::Custom { name, arg } => {
                let (vk, ak) = (
                    format!("source.{name}_video"),
                    format!("source.{name}_audio"),
                );
                if !topologies.has(&vk) && !topologies.has(&ak) {
                    return Err(super::topology::TopologyError::UnknownCustom(name.clone()));
                }
                let v = topologies
                    .has(&vk)
                    .then(|| topologies.render_fragment(&vk, &[("arg", arg)]))
                    .transpose()?;
                let a = topologies
                    .has(&ak)
                    .then(|| topologies.render_fragment(&ak, &[("arg", arg)]))
                    .transpose()?;
                Ok((v, a))
            }
            _ => Ok((None, None)),
        }
    }
}

impl InputSpec {
    /// Builds (never starts) a source input's elements, so a custom topology that does not
    /// exist or does not take its argument is refused before anything rings.
    pub fn check_sources(&self, topologies: &Topologies) -> Result<(), InputError> {
        use gstreamer::prelude::*;
        let shown = |reason: String| InputError::Invalid {
            spec: self.describe(),
            reason,
        };
        let (video, audio) = self
            .source_fragments(topologies, Some((1280, 720)))
            .map_err(|e| shown(e.to_string()))?;
        for fragment in video.iter().chain(audio.iter()) {
            // A fragment may end in caps: it needs something downstream to parse.
            let launch = format!("{} ! fakesink", fragment.launch());
            let bin = gstreamer::parse::bin_from_description(&launch, false)
                .map_err(|e| shown(e.to_string()))?;
            fragment.bind(&bin).map_err(|e| shown(e.to_string()))?;
            let _ = bin.set_state(gstreamer::State::Null);
        }
        Ok(())
    }

    /// The input as a user would name it, with any URL's credentials hidden.
    pub fn describe(&self) -> String {
        match self {
            InputSpec::File(p) => p.display().to_string(),
            InputSpec::Playlist(items) => format!(
                "playlist:{}",
                items
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            InputSpec::Url(u) => crate::redact::redact_url(u),
            // In the syntax the user wrote (and can write again), never a Rust type.
            InputSpec::Test { video, audio } => {
                let video = video.as_ref().map(|v| match v {
                    TestVideo::Still("smpte") => "bars".to_owned(),
                    TestVideo::Still(pattern) => (*pattern).to_owned(),
                    TestVideo::Ball => "ball".to_owned(),
                });
                let audio = audio.as_ref().map(|a| match a {
                    TestAudio::Tone(hz) => format!("tone={hz}"),
                    TestAudio::Silence => "silence".to_owned(),
                });
                let parts: Vec<String> = video.into_iter().chain(audio).collect();
                format!("test:{}", parts.join("+"))
            }
            InputSpec::Devices { camera, microphone } => {
                let camera = camera.as_ref().map(|c| format!("v4l2:{c}"));
                let microphone = microphone.as_ref().map(|m| match m {
                    Microphone::Alsa(d) => format!("alsa:{d}"),
                    Microphone::Pulse(d) => format!("pulse:{d}"),
                });
                let parts: Vec<String> = camera.into_iter().chain(microphone).collect();
                parts.join("+")
            }
            InputSpec::Custom { name, arg } if arg.is_empty() => format!("custom:{name}"),
            InputSpec::Custom { name, arg } => format!("custom:{name}:{arg}"),
        }
    }
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
}

impl std::fmt::Debug for InputItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InputItem::Uri(u) => f
                .debug_tuple("Uri")
                .field(&crate::redact::redact_url(u))
                .finish(),
            InputItem::Sources(spec) => f.debug_tuple("Sources").field(spec).finish(),
        }
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

/// The path as a URI, made absolute but not resolved: links are followed when it is opened,
/// where the input's guard judges where they lead — a message naming the file names the path
/// that was given, never where a link swapped in since points.
fn file_uri(path: &Path) -> String {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    url::Url::from_file_path(&absolute)
        .map(|u| u.to_string())
        .unwrap_or_else(|_| format!("file://{}", absolute.display()))
}

fn check_file(path: &Path) -> Result<(), InputError> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(InputError::Missing {
            path: path.to_path_buf(),
        }),
        Err(e) => Err(InputError::Unreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }),
        Ok(m) if m.is_dir() => Err(InputError::Unreadable {
            path: path.to_path_buf(),
            reason: "it is a directory".into(),
        }),
        Ok(m) if m.len() == 0 => Err(InputError::Unreadable {
            path: path.to_path_buf(),
            reason: "it is empty".into(),
        }),
        Ok(_) => std::fs::File::open(path)
            .map(|_| ())
            .map_err(|e| InputError::Unreadable {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }),
    }
}

fn parse_test(spec: &str, rest: &str) -> Result<InputSpec, InputError> {
    if rest.is_empty() {
        return Ok(InputSpec::Test {
            video: Some(TestVideo::Ball),
            audio: Some(TestAudio::Tone(440.0)),
        });
    }
    let (mut video, mut audio) = (None, None);
    for part in rest.split('+') {
        match part {
            "bars" => video = Some(TestVideo::Still("smpte")),
            "ball" => video = Some(TestVideo::Ball),
            "black" => video = Some(TestVideo::Still("black")),
            "silence" => audio = Some(TestAudio::Silence),
            "tone" => audio = Some(TestAudio::Tone(440.0)),
            p if p.starts_with("tone=") => {
                let hz: f64 = p[5..]
                    .parse()
                    .ok()
                    .filter(|hz| (20.0..=20_000.0).contains(hz))
                    .ok_or_else(|| invalid(spec, format!("`{p}`: a tone is 20 to 20000 Hz")))?;
                audio = Some(TestAudio::Tone(hz));
            }
            other => {
                return Err(invalid(
                    spec,
                    format!(
                        "unknown test part `{other}`: use bars, ball, black, tone=HZ or silence, joined by +"
                    ),
                ));
            }
        }
    }
    Ok(InputSpec::Test { video, audio })
}

fn parse_devices(spec: &str) -> Result<InputSpec, InputError> {
    let (mut camera, mut microphone) = (None, None);
    for part in spec.split('+') {
        if let Some(dev) = part.strip_prefix("v4l2:") {
            camera = Some(dev.to_owned());
        } else if let Some(dev) = part.strip_prefix("alsa:") {
            microphone = Some(Microphone::Alsa(
                if dev.is_empty() { "default" } else { dev }.to_owned(),
            ));
        } else if let Some(dev) = part.strip_prefix("pulse:") {
            microphone = Some(Microphone::Pulse(
                if dev.is_empty() { "default" } else { dev }.to_owned(),
            ));
        } else {
            return Err(invalid(
                spec,
                format!("`{part}` is not v4l2:, alsa: or pulse:"),
            ));
        }
    }
    Ok(InputSpec::Devices { camera, microphone })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_input_is_described_in_the_syntax_that_names_it() {
        for written in [
            "test:ball+tone=440",
            "test:bars+silence",
            "test:black",
            "v4l2:/dev/video9+alsa:hw:1",
            "pulse:default",
            "custom:mycam:x=1",
        ] {
            let spec = InputSpec::parse_syntax(written).unwrap();
            assert_eq!(spec.describe(), written);
        }
        assert_eq!(
            InputSpec::parse_syntax("test:").unwrap().describe(),
            "test:ball+tone=440"
        );
    }

    #[test]
    fn a_url_never_shows_its_credentials() {
        let spec = InputSpec::parse("rtmp://bob:hunter2@relay.example.com/live/s?key=k").unwrap();
        for shown in [
            format!("{spec:?}"),
            spec.describe(),
            format!("{:?}", spec.items()),
        ] {
            assert!(
                !shown.contains("hunter2") && !shown.contains("key=k"),
                "{shown}"
            );
        }
    }

    #[test]
    fn specs_parse() {
        assert_eq!(
            InputSpec::parse("test:bars+tone=880").unwrap(),
            InputSpec::Test {
                video: Some(TestVideo::Still("smpte")),
                audio: Some(TestAudio::Tone(880.0))
            }
        );
        assert!(matches!(
            InputSpec::parse("https://a.b/live.flv").unwrap(),
            InputSpec::Url(_)
        ));
        assert!(InputSpec::parse("https://a.b/live.flv").unwrap().is_live());
        assert!(!InputSpec::parse("https://a.b/x.mp4").unwrap().is_live());
        assert!(matches!(
            InputSpec::parse("/nonexistent/x.mp4"),
            Err(InputError::Missing { .. })
        ));
        let err = InputSpec::parse("ftp://a/b").unwrap_err().to_string();
        assert!(err.contains("ftp"), "{err}");
        let err = InputSpec::parse("test:plaid").unwrap_err().to_string();
        assert!(err.contains("plaid"), "{err}");
        let err = InputSpec::parse("v4l2:/dev/video99")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/dev/video99") && err.contains("does not exist"),
            "{err}"
        );
        assert!(matches!(
            InputSpec::parse("playlist:"),
            Err(InputError::Invalid { .. })
        ));
        assert!(matches!(
            InputSpec::parse("pulse:default").unwrap(),
            InputSpec::Devices {
                camera: None,
                microphone: Some(Microphone::Pulse(_))
            }
        ));
    }

    /// No camera on the build machines: the description a camera gets is checked instead.
    #[test]
    fn a_camera_and_microphone_build_their_fragments() {
        let t = Topologies::builtin().unwrap();
        let spec = InputSpec::Devices {
            camera: Some("/dev/video0".into()),
            microphone: Some(Microphone::Alsa("hw:1".into())),
        };
        let (v, a) = spec.source_fragments(&t, Some((1280, 720))).unwrap();
        let (v, a) = (v.unwrap(), a.unwrap());
        assert!(
            v.launch().starts_with("v4l2src device=callfeed_text_"),
            "{v:?}"
        );
        assert!(v.launch().ends_with(" ! decodebin"), "{v:?}");
        assert!(
            a.launch().starts_with("alsasrc device=callfeed_text_"),
            "{a:?}"
        );
    }
}
