//! The one place that decides how an input becomes a stream: an announcement file the cloud
//! plays itself, a conforming file passed through live, or a live encode. `push`, `probe`
//! and sessions all ask here, so they cannot drift apart.

use std::path::PathBuf;
use std::time::Duration;

use super::input::InputSpec;
use super::inspect::ProbeReport;

/// How an input is turned into what the cloud pulls.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Mode {
    /// A file served whole (with Range) for the cloud to pace and loop itself: transcoded
    /// once to the contract and cached, or served as it is when it already conforms.
    Announcement { path: PathBuf, conforms: bool },
    /// A conforming file remuxed to live FLV without decoding.
    Passthrough { path: PathBuf, container: String },
    /// Decoded and encoded to the contract, live, kept alive on the slate.
    Live,
    /// A URL the cloud pulls itself: handed to it unchanged, with no pipeline here.
    Direct { url: String },
}

/// The decision and why it was made.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Plan {
    #[serde(flatten)]
    pub mode: Mode,
    pub reason: String,
}

impl Plan {
    /// The mode's name, as reports show it.
    pub fn name(&self) -> &'static str {
        match self.mode {
            Mode::Announcement { .. } => "announcement",
            Mode::Passthrough { .. } => "passthrough",
            Mode::Live => "live",
            Mode::Direct { .. } => "direct",
        }
    }
}

/// What the caller asks beyond the input.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanOptions {
    /// Stream files live (HTTP-FLV) rather than as announcement files.
    pub live: bool,
    /// Start this far into the input: only a decoded stream can start mid-file.
    pub start: Option<Duration>,
    /// The output can carry a whole file (served with Range, or written as MP4); an RTMP
    /// push cannot.
    pub file_output: bool,
    /// Whether a URL may be handed to the cloud to pull itself.
    pub direct: Direct,
}

/// Whether a URL input is handed to the cloud as it is (`--direct`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direct {
    /// When the probe says the cloud can take it as it is; restreamed otherwise.
    #[default]
    Auto,
    /// Always, unprobed: for a URL the cloud can reach and this node cannot.
    Always,
    /// Never: always restreamed through this node.
    Never,
}

impl Direct {
    /// As the flag and the request field spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Always => "always",
            Self::Never => "never",
        }
    }
}

impl std::str::FromStr for Direct {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "always" => Ok(Self::Always),
            "never" => Ok(Self::Never),
            _ => Err("auto, always or never".into()),
        }
    }
}

/// Decides how `input` (probed as `report`, when it is a file or URL) is streamed.
pub fn plan(input: &InputSpec, report: Option<&ProbeReport>, options: PlanOptions) -> Plan {
    let live = || Plan {
        mode: Mode::Live,
        reason: "encoded live to the contract".into(),
    };
    if let InputSpec::Url(url) = input {
        match (options.direct, report) {
            (Direct::Always, _) => {
                return Plan {
                    mode: Mode::Direct { url: url.clone() },
                    reason: "handed to the cloud as it is (direct: always), not probed".into(),
                };
            }
            (
                Direct::Auto,
                Some(ProbeReport {
                    direct: Some((pullable, why)),
                    ..
                }),
            ) => {
                return if *pullable {
                    Plan {
                        mode: Mode::Direct { url: url.clone() },
                        reason: format!("handed to the cloud as it is: {why}"),
                    }
                } else {
                    Plan {
                        mode: Mode::Live,
                        reason: format!("restreamed live to the contract, {why}"),
                    }
                };
            }
            _ => {}
        }
    }
    let (InputSpec::File(path), Some(report)) = (input, report) else {
        return match input {
            InputSpec::Playlist(_) => Plan {
                mode: Mode::Live,
                reason: "a playlist is encoded live to the contract".into(),
            },
            InputSpec::Url(_) => Plan {
                mode: Mode::Live,
                reason: "a URL is re-encoded live to the contract".into(),
            },
            _ => Plan {
                mode: Mode::Live,
                reason: "a live source is encoded to the contract".into(),
            },
        };
    };
    // A still picture has no length of its own: it is shown live, until stopped.
    if report.video.as_ref().is_some_and(|v| v.still_image) {
        return Plan {
            reason: "a still picture is shown live until stopped".into(),
            ..live()
        };
    }
    if options.file_output && !options.live {
        return Plan {
            mode: Mode::Announcement {
                path: path.clone(),
                conforms: report.passthrough,
            },
            reason: if report.passthrough {
                format!("served as it is for the cloud to play ({})", report.reason)
            } else {
                "transcoded once to the contract, cached, served for the cloud to play".into()
            },
        };
    }
    if report.passthrough && options.start.is_none() {
        return Plan {
            mode: Mode::Passthrough {
                path: path.clone(),
                container: report.container.clone().unwrap_or_default(),
            },
            reason: format!("passed through live without decoding ({})", report.reason),
        };
    }
    Plan {
        reason: report.reason.clone(),
        ..live()
    }
}
