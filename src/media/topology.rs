//! Loads `pipelines/topologies.toml` (and the user's `[pipelines]` overrides) and fills in
//! its placeholders. Every fragment is checked when loaded: each placeholder must be one
//! its slot allows, and the filled fragment must parse with the installed elements.
//!
//! No value a user gives ever becomes launch syntax. Numbers and words (a frame rate, a test
//! pattern) are written in only when they match [`is_launch_word`]; free text (a device
//! name, a custom source's argument) is written as a marker, and the marker's property is
//! set to the text through the GStreamer API once the fragment is parsed ([`Fragment::bind`]).
//! User-written fragments come only from the configuration file.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

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
    ("normalize.video_rotated", &["fps", "width", "height"]),
    ("normalize.audio", &["rate", "channels"]),
    (
        "encode.video",
        &["preset", "gop", "kbps", "vbv_ms", "threads"],
    ),
    ("encode.audio", &["audio_bps"]),
];
const CUSTOM_SOURCE_PLACEHOLDERS: &[&str] = &["arg"];

/// Placeholders whose values are free text. They are never written into launch syntax: see
/// [`Fragment`].
const TEXT_PLACEHOLDERS: &[&str] = &["device", "arg"];

/// The normalize slot for an input's pictures: with videoflip only for a picture the probe
/// found rotated (an upright one would be copied by it for nothing).
pub fn normalize_video_slot(rotated: bool) -> &'static str {
    if rotated {
        "normalize.video_rotated"
    } else {
        "normalize.video"
    }
}

/// The marker a text placeholder is parsed with; a counter keeps two in one pipeline apart.
const TEXT_MARKER: &str = "callfeed_text_";
static NEXT_MARKER: AtomicU64 = AtomicU64::new(0);

/// The one grammar for a value written into launch syntax: a number or a word of at most 32
/// letters, digits, `.`, `-` and `_`. Nothing in it can start an element, a link, a property
/// or a quoted string.
pub fn is_launch_word(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 32
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// Values used to check that a filled fragment parses.
const SAMPLES: &[(&str, &str)] = &[
    ("pattern", "ball"),
    ("wave", "sine"),
    ("freq", "440"),
    ("device", "callfeed_text_check"),
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
    ("arg", "callfeed_text_check"),
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
    #[error(
        "no topology for `custom:{0}`: add `{0}_video` and/or `{0}_audio` under [pipelines.source] in the config (see config.example.toml)"
    )]
    UnknownCustom(String),
    #[error("pipelines: `{key}` needs a value for `{{{placeholder}}}`")]
    Unfilled { key: String, placeholder: String },
    #[error(
        "pipelines: `{key}`: the value for `{{{placeholder}}}` must be a number or a word of letters, digits, `.`, `-` and `_`"
    )]
    Value { key: String, placeholder: String },
    #[error(
        "pipelines: `{key}`: `{{{placeholder}}}` must be a whole string property value, e.g. `device={{{placeholder}}}`"
    )]
    Unbound { key: String, placeholder: String },
}

/// A filled fragment: its launch text, and the free text to set on the property that holds
/// its marker once the text is parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    key: String,
    launch: String,
    text: Option<(String, String, String)>,
}

impl Fragment {
    /// The launch text: the topology's own words and checked values only.
    pub fn launch(&self) -> &str {
        &self.launch
    }

    /// Sets the free text on the property that holds this fragment's marker, anywhere in
    /// `bin`. Must run after the fragment is parsed into `bin` and before it starts.
    pub fn bind(&self, bin: &gst::Bin) -> Result<(), TopologyError> {
        use gst::prelude::*;
        let Some((placeholder, marker, value)) = &self.text else {
            return Ok(());
        };
        let mut bound = false;
        let mut elements = bin.iterate_recurse();
        while let Ok(Some(element)) = elements.next() {
            for pspec in element.list_properties() {
                let flags = pspec.flags();
                if pspec.value_type() != gst::glib::Type::STRING
                    || !flags.contains(gst::glib::ParamFlags::READWRITE)
                {
                    continue;
                }
                let current = element.property_value(pspec.name());
                if current.get::<Option<String>>().ok().flatten().as_deref() == Some(marker) {
                    element.set_property(pspec.name(), value);
                    bound = true;
                }
            }
        }
        if bound {
            Ok(())
        } else {
            Err(TopologyError::Unbound {
                key: self.key.clone(),
                placeholder: placeholder.clone(),
            })
        }
    }
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

/// Fills `fragment`: words are checked and written in, free text is replaced by a marker.
fn fill(key: &str, fragment: &str, values: &[(&str, &str)]) -> Result<Fragment, TopologyError> {
    let mut filled = Fragment {
        key: key.to_owned(),
        launch: fragment.to_owned(),
        text: None,
    };
    for name in placeholders(fragment) {
        let value = values
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| *v)
            .ok_or_else(|| TopologyError::Unfilled {
                key: key.to_owned(),
                placeholder: name.clone(),
            })?;
        let written = if TEXT_PLACEHOLDERS.contains(&name.as_str()) {
            match &filled.text {
                Some((_, marker, _)) => marker.clone(),
                None => {
                    let n = NEXT_MARKER.fetch_add(1, Ordering::Relaxed);
                    let marker = format!("{TEXT_MARKER}{n}");
                    filled.text = Some((name.clone(), marker.clone(), value.to_owned()));
                    marker
                }
            }
        } else if is_launch_word(value) {
            value.to_owned()
        } else {
            return Err(TopologyError::Value {
                key: key.to_owned(),
                placeholder: name,
            });
        };
        filled.launch = filled.launch.replace(&format!("{{{name}}}"), &written);
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
            let launch = if key.starts_with("source.") {
                format!("{} ! fakesink", sample.launch())
            } else {
                format!("identity ! {} ! fakesink", sample.launch())
            };
            let bin = gst::parse::bin_from_description(&launch, false).map_err(|e| {
                TopologyError::Parse {
                    key: key.clone(),
                    reason: e.to_string(),
                }
            })?;
            sample.bind(&bin)?;
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

    /// The fragment `key` filled from `values`, for slots without free text.
    pub fn render(&self, key: &str, values: &[(&str, &str)]) -> Result<String, TopologyError> {
        let filled = self.render_fragment(key, values)?;
        match &filled.text {
            None => Ok(filled.launch),
            Some((placeholder, _, _)) => Err(TopologyError::Unbound {
                key: key.to_owned(),
                placeholder: placeholder.clone(),
            }),
        }
    }

    /// The fragment `key` filled from `values`; free text is bound with [`Fragment::bind`].
    pub fn render_fragment(
        &self,
        key: &str,
        values: &[(&str, &str)],
    ) -> Result<Fragment, TopologyError> {
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
    use gst::prelude::*;

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
        let hostile = "/dev/video3 ! filesink location=/tmp/x";
        let fragment = t
            .render_fragment("source.mycam_video", &[("arg", hostile)])
            .unwrap();
        assert!(!fragment.launch().contains("filesink"), "{fragment:?}");
        let bin =
            gst::parse::bin_from_description(&format!("{} ! fakesink", fragment.launch()), false)
                .unwrap();
        fragment.bind(&bin).unwrap();
        let camera = bin
            .iterate_elements()
            .into_iter()
            .flatten()
            .find(|e| e.factory().is_some_and(|f| f.name() == "v4l2src"))
            .unwrap();
        assert_eq!(camera.property::<String>("device"), hostile);
    }

    #[test]
    fn only_words_are_written_into_launch_syntax() {
        let t = Topologies::builtin().unwrap();
        for hostile in ["30 ! filesink", "1\"", "30,width=1", "x\ny", ""] {
            let err = t
                .render(
                    "normalize.video",
                    &[("fps", hostile), ("width", "640"), ("height", "360")],
                )
                .unwrap_err();
            assert!(
                matches!(err, TopologyError::Value { .. }),
                "{hostile:?}: {err}"
            );
        }
        assert!(is_launch_word("440.5") && is_launch_word("smpte"));
    }
}
