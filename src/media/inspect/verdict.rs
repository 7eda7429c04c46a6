//! Whether an input can be taken as it is — remuxed by this node, or pulled by the cloud
//! itself — and why: the rules alone, on what the inspection found and measured. A Main or
//! High stream without B-frames passes, a Baseline one with a 10 s GOP does not.

use super::report::{AudioStream, Check, VideoMeasures, VideoStream};

/// What the passthrough verdict looks at.
pub(crate) struct Candidate<'a> {
    pub(crate) container: &'a str,
    pub(crate) video: Option<&'a VideoStream>,
    pub(crate) audio: Option<&'a AudioStream>,
    pub(crate) audio_tracks: usize,
    pub(crate) measures: Option<&'a Result<VideoMeasures, String>>,
    /// Where its first sample is, when later than its start.
    pub(crate) start_ms: Option<u64>,
}

/// A keyframe at least this often: a late reader (the cloud's pull) starts within it.
pub const MAX_KEYFRAME_GAP_MS: u64 = 2000;
/// How far over the profile's bitrate cap a passed-through stream may be.
pub const BITRATE_SLACK: f64 = 1.5;

/// Who would take the input as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Taker {
    /// This node, remuxing a local file without decoding it (passthrough, or an
    /// announcement served as it is).
    Remux,
    /// The cloud, pulling a URL itself (`direct`): any container it pulls, and a bitrate
    /// that a few seconds of packets cannot tell.
    Cloud,
}

/// Whether the input can be taken as it is, why, and every criterion checked (up to the
/// first that fails). One place decides it, for a local passthrough and for a URL the
/// cloud pulls alike: any H.264 without B-frames, upright, no larger than the profile's
/// picture, at most its frame rate, a keyframe at least every 2 s, starting at 0, with one
/// AAC track at the contract's rate; for a remux also in MP4/MOV or FLV and within 1.5 ×
/// the profile's bitrate cap.
pub(crate) fn verdict(
    c: &Candidate<'_>,
    contract: &crate::media::contract::Contract,
    taker: Taker,
) -> (bool, String, Vec<Check>) {
    let mut checks = Vec::new();
    let mut check = |criterion: &str, measured: String, ok: bool| {
        checks.push(Check {
            criterion: criterion.to_owned(),
            measured,
            ok,
        });
        ok
    };
    let passes = (taker == Taker::Cloud
        || check(
            "container MP4/MOV or FLV",
            super::report::container_label(c.container).to_owned(),
            matches!(c.container, "video/quicktime" | "video/x-flv"),
        ))
        && check(
            "its first sample at 0 s",
            c.start_ms.map_or("its first sample at 0 s".into(), |ms| {
                format!("its first sample at {:.2} s", ms as f64 / 1000.0)
            }),
            c.start_ms.is_none(),
        )
        && check(
            "one audio track",
            match c.audio_tracks {
                1 => "1 audio track".to_owned(),
                n => format!("{n} audio tracks"),
            },
            c.audio_tracks == 1,
        )
        && check(
            &format!("AAC at {} Hz, mono or stereo", contract.audio_rate),
            c.audio.map_or("no audio".into(), |a| {
                format!("{} at {} Hz, {} ch", a.codec, a.rate, a.channels)
            }),
            c.audio.is_some_and(|a| {
                a.codec == "aac" && a.rate == contract.audio_rate && (1..=2).contains(&a.channels)
            }),
        )
        && video_checks(c, contract, taker, &mut check);
    let reason = match (checks.iter().find(|k| !k.ok), taker) {
        (Some(k), _) => format!("re-encoded: needs {}, it has {}", k.criterion, k.measured),
        (None, Taker::Remux) => {
            "H.264 without B-frames and AAC within the contract: remuxed without decoding"
                .to_owned()
        }
        (None, Taker::Cloud) => "H.264 without B-frames and AAC within the contract".to_owned(),
    };
    (passes, reason, checks)
}

fn video_checks(
    c: &Candidate<'_>,
    contract: &crate::media::contract::Contract,
    taker: Taker,
    check: &mut impl FnMut(&str, String, bool) -> bool,
) -> bool {
    let Some(limit) = contract.video else {
        // The cloud takes an audio-only URL as it is; a local file in the audio profile is
        // made into the profile's own announcement.
        if taker == Taker::Cloud {
            return check(
                "no video in the audio profile",
                if c.video.is_some() {
                    "video"
                } else {
                    "no video"
                }
                .into(),
                c.video.is_none(),
            );
        }
        return check(
            "a video profile (the audio profile drops the video by encoding)",
            "the audio profile".into(),
            false,
        );
    };
    let Some(v) = c.video else {
        return check(
            "a video stream (a slate is added by encoding)",
            "no video".into(),
            false,
        );
    };
    if !check(
        "an upright picture (no rotation to apply)",
        v.orientation.clone().unwrap_or_else(|| "upright".into()),
        v.orientation.is_none(),
    ) || !check("H.264", v.codec.clone(), v.codec == "h264")
    {
        return false;
    }
    let m = match c.measures {
        Some(Ok(m)) => m,
        Some(Err(e)) => return check("readable H.264 packets", e.clone(), false),
        None => return check("H.264 packets read", "none read".into(), false),
    };
    check(
        "no B-frames (frames shown in decode order)",
        if m.reordered { "B-frames" } else { "none" }.into(),
        !m.reordered,
    ) && check(
        &format!("at most {}x{}", limit.width, limit.height),
        format!("{}x{}", v.width, v.height),
        v.width <= limit.width && v.height <= limit.height,
    ) && check(
        &format!("at most {} fps", limit.fps),
        format!("{:.2} fps", v.fps),
        v.fps > 0.0 && v.fps <= f64::from(limit.fps) + 0.01,
    ) && check(
        &format!("a keyframe at least every {} s", MAX_KEYFRAME_GAP_MS / 1000),
        format!(
            "keyframes up to {:.1} s apart",
            m.max_keyframe_gap_ms as f64 / 1000.0
        ),
        m.max_keyframe_gap_ms <= MAX_KEYFRAME_GAP_MS,
    ) && (taker == Taker::Cloud
        || check(
            &format!(
                "at most {:.0} kb/s ({BITRATE_SLACK} × the profile's cap)",
                f64::from(limit.kbps) * BITRATE_SLACK
            ),
            format!("{} kb/s", m.kbps),
            m.kbps as f64 <= f64::from(limit.kbps) * BITRATE_SLACK,
        ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::contract::{Contract, Profile};

    fn video(orientation: Option<&str>) -> VideoStream {
        VideoStream {
            codec: "h264".into(),
            profile: Some("main".into()),
            width: 640,
            height: 360,
            fps: 30.0,
            still_image: false,
            orientation: orientation.map(Into::into),
        }
    }

    fn audio(rate: u32) -> AudioStream {
        AudioStream {
            codec: "aac".into(),
            rate,
            channels: 2,
        }
    }

    fn measures(reordered: bool, gap_ms: u64, kbps: u64) -> Result<VideoMeasures, String> {
        Ok(VideoMeasures {
            reordered,
            max_keyframe_gap_ms: gap_ms,
            kbps,
            scanned_ms: 3000,
        })
    }

    /// Each case: what differs from a conforming 360p MP4, who takes it, and the criterion
    /// it fails on (`None`: it passes).
    #[test]
    fn the_rules_in_a_table() {
        let upright = video(None);
        let rotated = video(Some("rotate-90"));
        let (at_48k, at_44k) = (audio(48_000), audio(44_100));
        let good = measures(false, 1000, 500);
        let bframes = measures(true, 1000, 500);
        let long_gop = measures(false, 10_000, 500);
        let heavy = measures(false, 1000, 5_000);
        let base = Candidate {
            container: "video/quicktime",
            video: Some(&upright),
            audio: Some(&at_48k),
            audio_tracks: 1,
            measures: Some(&good),
            start_ms: None,
        };
        let p360 = Contract::new(Profile::P360);
        let audio_only = Contract::new(Profile::Audio);
        let cases: Vec<(&str, Candidate<'_>, &Contract, Taker, Option<&str>)> = vec![
            (
                "conforming",
                Candidate { ..base },
                &p360,
                Taker::Remux,
                None,
            ),
            ("pulled", Candidate { ..base }, &p360, Taker::Cloud, None),
            (
                "matroska remuxed",
                Candidate {
                    container: "video/x-matroska",
                    ..base
                },
                &p360,
                Taker::Remux,
                Some("container"),
            ),
            (
                "matroska pulled",
                Candidate {
                    container: "video/x-matroska",
                    ..base
                },
                &p360,
                Taker::Cloud,
                None,
            ),
            (
                "rotated",
                Candidate {
                    video: Some(&rotated),
                    ..base
                },
                &p360,
                Taker::Cloud,
                Some("upright"),
            ),
            (
                "44.1 kHz",
                Candidate {
                    audio: Some(&at_44k),
                    ..base
                },
                &p360,
                Taker::Cloud,
                Some("48000 Hz"),
            ),
            (
                "B-frames",
                Candidate {
                    measures: Some(&bframes),
                    ..base
                },
                &p360,
                Taker::Remux,
                Some("B-frames"),
            ),
            (
                "10 s GOP",
                Candidate {
                    measures: Some(&long_gop),
                    ..base
                },
                &p360,
                Taker::Cloud,
                Some("keyframe"),
            ),
            (
                "over the bitrate",
                Candidate {
                    measures: Some(&heavy),
                    ..base
                },
                &p360,
                Taker::Remux,
                Some("kb/s"),
            ),
            (
                "over the bitrate, pulled",
                Candidate {
                    measures: Some(&heavy),
                    ..base
                },
                &p360,
                Taker::Cloud,
                None,
            ),
            (
                "late first sample",
                Candidate {
                    start_ms: Some(10_000),
                    ..base
                },
                &p360,
                Taker::Cloud,
                Some("first sample"),
            ),
            (
                "audio-only URL in the audio profile",
                Candidate {
                    video: None,
                    measures: None,
                    ..base
                },
                &audio_only,
                Taker::Cloud,
                None,
            ),
            (
                "video in the audio profile",
                Candidate { ..base },
                &audio_only,
                Taker::Cloud,
                Some("no video"),
            ),
        ];
        for (name, candidate, contract, taker, fails_on) in cases {
            let (passes, reason, checks) = verdict(&candidate, contract, taker);
            let failed = checks.iter().find(|c| !c.ok).map(|c| c.criterion.clone());
            match fails_on {
                None => assert!(passes && failed.is_none(), "{name}: {reason}"),
                Some(criterion) => {
                    assert!(!passes, "{name} passed: {reason}");
                    assert!(
                        failed.as_deref().is_some_and(|c| c.contains(criterion)),
                        "{name}: failed on {failed:?}, not {criterion}"
                    );
                }
            }
        }
    }
}
