//! `test:` sources: a moving ball or still patterns, a tone or silence, on the clock.

use super::spec::{Input, InputError, InputSpec, TestAudio, TestVideo, invalid};
use crate::media::topology::{Fragment, Topologies, TopologyError};

pub(super) struct Test<'a> {
    pub(super) video: &'a Option<TestVideo>,
    pub(super) audio: &'a Option<TestAudio>,
}

impl Input for Test<'_> {
    fn paces_itself(&self) -> bool {
        true
    }
    /// `canvas` is the output's picture size; without one, a test picture is not drawn.
    fn source_fragments(
        &self,
        topologies: &Topologies,
        canvas: Option<(u32, u32)>,
    ) -> Result<(Option<Fragment>, Option<Fragment>), TopologyError> {
        let (video, audio) = (self.video, self.audio);
        let v = match (video, canvas) {
            (Some(TestVideo::Still(pattern)), Some(_)) => {
                Some(topologies.render_fragment("source.test_still", &[("pattern", pattern)])?)
            }
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
                topologies.render_fragment("source.test_audio", &[("wave", wave), ("freq", &freq)])
            })
            .transpose()?;
        Ok((v, a))
    }
    /// In the syntax the user wrote (and can write again), never a Rust type.
    fn describe(&self) -> String {
        let video = self.video.as_ref().map(|v| match v {
            TestVideo::Still("smpte") => "bars".to_owned(),
            TestVideo::Still(pattern) => (*pattern).to_owned(),
            TestVideo::Ball => "ball".to_owned(),
        });
        let audio = self.audio.as_ref().map(|a| match a {
            TestAudio::Tone(hz) => format!("tone={hz}"),
            TestAudio::Silence => "silence".to_owned(),
        });
        let parts: Vec<String> = video.into_iter().chain(audio).collect();
        format!("test:{}", parts.join("+"))
    }
}

pub(super) fn parse(spec: &str, rest: &str) -> Result<InputSpec, InputError> {
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
