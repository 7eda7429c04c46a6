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
//! | `feed:ID` | a feed: a live input callfeed runs once for any number of calls |
//! | `tts:TEXT[?voice=V&rate=N&lang=L]` | words spoken by the node's speech engine (eSpeak NG) |
//!
//! Each kind is a file of its own implementing one trait (`spec::Input`): `file` (files and
//! playlists), `url`, `test`, `devices`, `custom`, `feed`, `speech`, and `pushed` (what a publisher sends a
//! feed, made in code). This door parses a spec into its kind and
//! asks the kind; `spec` is the vocabulary they share.

mod custom;
mod devices;
mod feed;
mod file;
mod pushed;
mod spec;
mod speech;
mod test;
mod url;

use std::path::PathBuf;

pub use feed::is_feed_id;
pub use spec::{InputError, InputItem, InputSpec, Microphone, SpeechRequest, TestAudio, TestVideo};
pub use speech::MAX_SPEECH_CHARS;

use super::topology::{Fragment, Topologies};
use spec::{Input, invalid};

/// The kind an input is: the one switch from a spec to what knows it.
fn kind_of(spec: &InputSpec) -> Box<dyn Input + '_> {
    match spec {
        InputSpec::File(path) => Box::new(file::File(path)),
        InputSpec::Playlist(items) => Box::new(file::Playlist(items)),
        InputSpec::Url(url) => Box::new(url::Url(url)),
        InputSpec::Test { video, audio } => Box::new(test::Test { video, audio }),
        InputSpec::Devices { camera, microphone } => {
            Box::new(devices::Devices { camera, microphone })
        }
        InputSpec::Custom { name, arg } => Box::new(custom::Custom { name, arg }),
        InputSpec::Feed(id) => Box::new(feed::Feed(id)),
        InputSpec::Speech(request) => Box::new(speech::Speech(request)),
        InputSpec::Pushed(inlet) => Box::new(pushed::Pushed(inlet)),
    }
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
        kind_of(self).check_available()
    }

    /// Parses a spec's syntax only: nothing on this machine is looked at, so the answer says
    /// nothing about which files exist (see `policy`). The one place a spec's kind is told
    /// from its text.
    pub fn parse_syntax(spec: &str) -> Result<Self, InputError> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(invalid(
                spec,
                "empty input: name a file, a URL, `test:` or a device",
            ));
        }
        if let Some(rest) = spec.strip_prefix("test:") {
            return test::parse(spec, rest);
        }
        if let Some(rest) = spec.strip_prefix("playlist:") {
            return file::parse_playlist(spec, rest);
        }
        if let Some(id) = spec.strip_prefix("feed:") {
            return feed::parse(spec, id);
        }
        if let Some(rest) = spec.strip_prefix("tts:") {
            return speech::parse(spec, rest);
        }
        if let Some(rest) = spec.strip_prefix("custom:") {
            return custom::parse(spec, rest);
        }
        if spec.starts_with("v4l2:") || spec.starts_with("alsa:") || spec.starts_with("pulse:") {
            return devices::parse(spec);
        }
        if let Some((scheme, _)) = spec.split_once("://") {
            return url::parse(spec, scheme);
        }
        Ok(InputSpec::File(PathBuf::from(
            spec.strip_prefix("file:").unwrap_or(spec),
        )))
    }

    /// Whether the input runs on its own clock (devices, live URLs, test sources) rather than
    /// being read from storage as fast as asked.
    pub fn is_live(&self) -> bool {
        kind_of(self).is_live()
    }

    /// Whether every source of the input runs on the clock by itself (test patterns, capture
    /// devices), so its media is taken as it comes instead of being paced again: pacing a
    /// live source only waits out the pipeline's latency before the first frame.
    pub fn paces_itself(&self) -> bool {
        kind_of(self).paces_itself()
    }

    /// Whether the input can be played again from the start (loops, playlists).
    pub fn is_replayable(&self) -> bool {
        kind_of(self).is_replayable()
    }

    /// The items played in turn: files for a playlist, one item otherwise.
    pub fn items(&self) -> Vec<InputItem> {
        let kind = kind_of(self);
        match (kind.uris(), kind.item()) {
            (Some(uris), _) => uris.into_iter().map(InputItem::Uri).collect(),
            (None, Some(item)) => vec![item],
            (None, None) => vec![InputItem::Sources(self.clone())],
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
        kind_of(self).source_fragments(topologies, canvas)
    }

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
        kind_of(self).describe()
    }
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
