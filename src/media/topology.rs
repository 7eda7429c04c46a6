//! Loads `pipelines/topologies.toml` (and the user's `[pipelines]` overrides) and fills in
//! its placeholders. Every fragment is checked when loaded: each placeholder must be one
//! its slot allows, and the filled fragment must parse with the installed elements.

use std::collections::BTreeMap;

use gstreamer as gst;

const BUILTIN: &str = include_str!("../../pipelines/topologies.toml");

/// The placeholders each slot may use. A user-added source may use `{arg}` (checked with
/// the value `x`, so it suits string properties such as a device path).
const ALLOWED: &[(&str, &[&str])] = &[
    ("source.test_still", &["pattern"]),
    (
        "source.test_ball",
        &[
            "width",
            "height",
            "tile_width",
            "tile_height",
            "tile_x",
            "tile_y",
        ],
    ),
    ("source.test_audio", &["wave", "freq"]),
    ("source.v4l2_video", &["device"]),
    ("source.alsa_audio", &["device"]),
    ("source.pulse_audio", &["device"]),
    ("normalize.video", &["fps", "width", "height"]),
    ("normalize.audio", &["rate", "channels"]),
    (
        "encode.video",
        &["preset", "gop", "kbps", "vbv_ms", "threads"],
    ),
    ("encode.audio", &["audio_bps"]),
];
const CUSTOM_SOURCE_PLACEHOLDERS: &[&str] = &["arg"];

/// Values used to check that a filled fragment parses.
const SAMPLES: &[(&str, &str)] = &[
    ("pattern", "ball"),
    ("wave", "sine"),
    ("freq", "440"),
    ("device", "/dev/null"),
    ("fps", "30"),
    ("width", "1280"),
    ("height", "720"),
    ("rate", "48000"),
    ("channels", "2"),
    ("preset", "veryfast"),
    ("gop", "30"),
    ("kbps", "2000"),
    ("vbv_ms", "1000"),
    ("threads", "1"),
    ("audio_bps", "128000"),
    ("arg", "x"),
    ("tile_width", "320"),
    ("tile_height", "180"),
    ("tile_x", "480"),
    ("tile_y", "270"),
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    #[error("pipelines: {0}")]
    Syntax(String),
    #[error(
        "pipelines: `{key}` uses `{{{placeholder}}}`, which it cannot have (allowed: {allowed})"
    )]
    Placeholder {
        key: String,
        placeholder: String,
        allowed: String,
    },
    #[error("pipelines: `{key}` does not parse: {reason}")]
    Parse { key: String, reason: String },
    #[error("pipelines: no topology `{0}`")]
    Missing(String),
    #[error("pipelines: `{key}` needs a value for `{{{placeholder}}}`")]
    Unfilled { key: String, placeholder: String },
}

/// The checked topologies.
#[derive(Debug, Clone)]
pub struct Topologies {
    entries: BTreeMap<String, String>,
}

fn placeholders(fragment: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = fragment;
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        out.push(rest[start + 1..start + len].to_owned());
        rest = &rest[start + len + 1..];
    }
    out
}

fn fill(key: &str, fragment: &str, values: &[(&str, &str)]) -> Result<String, TopologyError> {
    let mut filled = fragment.to_owned();
    for name in placeholders(fragment) {
        let value = values
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| *v)
            .ok_or_else(|| TopologyError::Unfilled {
                key: key.to_owned(),
                placeholder: name.clone(),
            })?;
        filled = filled.replace(&format!("{{{name}}}"), value);
    }
    Ok(filled)
}

impl Topologies {
    /// The built-in topologies with `overrides` (section → name → fragment) on top.
    pub fn load(
        overrides: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> Result<Self, TopologyError> {
        super::init().map_err(|e| TopologyError::Syntax(e.to_string()))?;
        let builtin: BTreeMap<String, BTreeMap<String, String>> =
            toml::from_str(BUILTIN).map_err(|e| TopologyError::Syntax(e.to_string()))?;
        let mut entries = BTreeMap::new();
        for (section, items) in builtin.iter().chain(overrides.iter()) {
            for (name, fragment) in items {
                entries.insert(format!("{section}.{name}"), fragment.clone());
            }
        }
        for (key, fragment) in &entries {
            let allowed: &[&str] = match ALLOWED.iter().find(|(k, _)| k == key) {
                Some((_, allowed)) => allowed,
                None if key.starts_with("source.") => CUSTOM_SOURCE_PLACEHOLDERS,
                None => {
                    return Err(TopologyError::Syntax(format!(
                        "unknown slot `{key}`: sections are source, normalize and encode"
                    )));
                }
            };
            for name in placeholders(fragment) {
                if !allowed.contains(&name.as_str()) {
                    return Err(TopologyError::Placeholder {
                        key: key.clone(),
                        placeholder: name,
                        allowed: allowed.join(", "),
                    });
                }
            }
            // Fragments end in caps or need an upstream, so check them between two elements.
            let sample = fill(key, fragment, SAMPLES)?;
            let sample = if key.starts_with("source.") {
                format!("{sample} ! fakesink")
            } else {
                format!("identity ! {sample} ! fakesink")
            };
            gst::parse::bin_from_description(&sample, false).map_err(|e| TopologyError::Parse {
                key: key.clone(),
                reason: e.to_string(),
            })?;
        }
        Ok(Self { entries })
    }

    pub fn builtin() -> Result<Self, TopologyError> {
        Self::load(&BTreeMap::new())
    }

    pub fn has(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// The fragment `key` with its placeholders filled from `values`.
    /// The video encoder fragment for a contract's video.
    pub fn render_video_encoder(
        &self,
        contract: &super::contract::Contract,
        video: &super::contract::VideoContract,
        threads: super::contract::EncoderThreads,
    ) -> Result<String, TopologyError> {
        self.render(
            "encode.video",
            &[
                ("preset", contract.preset),
                ("gop", &video.gop_frames.to_string()),
                ("kbps", &video.kbps.to_string()),
                // The rate cap is enforced over one second of video.
                ("vbv_ms", "1000"),
                ("threads", &video.encoder_threads(threads).to_string()),
            ],
        )
    }

    pub fn render(&self, key: &str, values: &[(&str, &str)]) -> Result<String, TopologyError> {
        let fragment = self
            .entries
            .get(key)
            .ok_or_else(|| TopologyError::Missing(key.to_owned()))?;
        fill(key, fragment, values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_topologies_load_and_fill() {
        let t = Topologies::builtin().unwrap();
        let v = t
            .render(
                "normalize.video",
                &[("fps", "30"), ("width", "640"), ("height", "360")],
            )
            .unwrap();
        assert!(v.contains("width=640,height=360"), "{v}");
        let err = t.render("normalize.video", &[("fps", "30")]).unwrap_err();
        assert!(err.to_string().contains("{width}"), "{err}");
    }

    #[test]
    fn overrides_are_checked() {
        let mut o = BTreeMap::new();
        o.insert(
            "encode".to_owned(),
            BTreeMap::from([("audio".to_owned(), "voaacenc bitrate={kbps}".to_owned())]),
        );
        let err = Topologies::load(&o).unwrap_err();
        assert!(matches!(err, TopologyError::Placeholder { .. }), "{err}");
        o.insert(
            "encode".to_owned(),
            BTreeMap::from([("audio".to_owned(), "no_such_element_here".to_owned())]),
        );
        assert!(matches!(
            Topologies::load(&o).unwrap_err(),
            TopologyError::Parse { .. }
        ));
        o.clear();
        o.insert(
            "source".to_owned(),
            BTreeMap::from([(
                "mycam_video".to_owned(),
                "v4l2src device={arg} ! decodebin".to_owned(),
            )]),
        );
        let t = Topologies::load(&o).unwrap();
        assert_eq!(
            t.render("source.mycam_video", &[("arg", "/dev/video3")])
                .unwrap(),
            "v4l2src device=/dev/video3 ! decodebin"
        );
    }
}
