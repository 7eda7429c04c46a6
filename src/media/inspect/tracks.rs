//! Which of a file's streams go into the contract: every track listed with its language,
//! one audio track chosen (the first, or the user's pick by index or language), and
//! attached pictures (cover art) never carried as a stream.

use gstreamer_pbutils as pbutils;

use super::report::Track;
use gstreamer_pbutils::prelude::*;

/// Which audio track a user wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AudioTrack {
    /// The first. (GStreamer 1.22's Discoverer does not say which track a file marks as
    /// default, and players differ on it; the first is what ffmpeg plays too.)
    #[default]
    Default,
    /// The Nth audio track, from 0, as `probe` lists them.
    Index(usize),
    /// The first audio track in this language (ISO 639: `en`, `eng` or `fre` alike).
    Language(String),
}

/// Why an `--audio-track` value is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not an audio track: give its number as `callfeed probe` lists them (0 is the first) or its language code (e.g. `en` or `eng`)"
)]
pub struct InvalidAudioTrack(String);

impl std::str::FromStr for AudioTrack {
    type Err = InvalidAudioTrack;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let shown = || InvalidAudioTrack(s.chars().take(16).collect());
        if s.is_empty() || s.len() > 8 {
            return Err(shown());
        }
        if s.bytes().all(|b| b.is_ascii_digit()) {
            return s.parse().map(Self::Index).map_err(|_| shown());
        }
        if (2..=3).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Ok(Self::Language(s.to_ascii_lowercase()));
        }
        Err(shown())
    }
}

impl std::fmt::Display for AudioTrack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::Index(n) => write!(f, "{n}"),
            Self::Language(l) => f.write_str(l),
        }
    }
}

/// Every stream of a probed file, in the order a decoder offers them.
pub(super) fn list(info: &pbutils::DiscovererInfo) -> Vec<Track> {
    numbered(info.stream_list().iter().filter_map(|stream| {
        let (name, s) = super::report::caps_name(stream.caps());
        let codec = super::report::codec_name(&name, s.as_ref());
        if let Some(a) = stream.downcast_ref::<pbutils::DiscovererAudioInfo>() {
            Some(("audio", codec, a.language().map(|l| l.to_string())))
        } else if let Some(v) = stream.downcast_ref::<pbutils::DiscovererVideoInfo>() {
            let kind = if v.is_image() { "picture" } else { "video" };
            Some((kind, codec, None))
        } else if let Some(t) = stream.downcast_ref::<pbutils::DiscovererSubtitleInfo>() {
            Some(("subtitle", codec, t.language().map(|l| l.to_string())))
        } else if stream.is::<pbutils::DiscovererContainerInfo>() {
            None
        } else if crate::media::pads::never_played(&name) {
            // Timed metadata, captions, data: listed, never played.
            Some(("data", codec, None))
        } else {
            None
        }
    }))
}

/// Tracks from `(kind, codec, language)` in the file's order, each numbered among its kind.
pub(super) fn numbered(
    streams: impl IntoIterator<Item = (&'static str, String, Option<String>)>,
) -> Vec<Track> {
    let mut counts = std::collections::HashMap::<&str, usize>::new();
    streams
        .into_iter()
        .map(|(kind, codec, language)| {
            let count = counts.entry(kind).or_default();
            let index = *count;
            *count += 1;
            Track {
                kind,
                index,
                codec,
                language: language.filter(|l| !l.is_empty() && l != "und"),
                chosen: false,
            }
        })
        .collect()
}

/// Marks the audio track `choice` names, and the first video track, as chosen; the
/// chosen audio track's index, or why there is none.
pub(super) fn choose(tracks: &mut [Track], choice: &AudioTrack) -> Result<Option<usize>, String> {
    let audio: Vec<&Track> = tracks.iter().filter(|t| t.kind == "audio").collect();
    let listed = || {
        let names: Vec<String> = audio
            .iter()
            .map(|t| match &t.language {
                Some(l) => format!("{} ({l})", t.index),
                None => t.index.to_string(),
            })
            .collect();
        if names.is_empty() {
            "it has no audio track".to_owned()
        } else {
            format!("its audio tracks are {}", names.join(", "))
        }
    };
    let picked = match choice {
        AudioTrack::Default => audio.first().map(|t| t.index),
        AudioTrack::Index(n) => Some(
            audio
                .iter()
                .find(|t| t.index == *n)
                .map(|t| t.index)
                .ok_or_else(|| format!("there is no audio track {n}: {}", listed()))?,
        ),
        AudioTrack::Language(code) => {
            let wanted = iso_639_1(code);
            Some(
                audio
                    .iter()
                    .find(|t| t.language.as_deref().map(iso_639_1) == Some(wanted.clone()))
                    .map(|t| t.index)
                    .ok_or_else(|| format!("no audio track is in `{code}`: {}", listed()))?,
            )
        }
    };
    let mut video_chosen = false;
    for t in tracks.iter_mut() {
        t.chosen = match t.kind {
            "audio" => Some(t.index) == picked,
            "video" if !video_chosen => {
                video_chosen = true;
                true
            }
            _ => false,
        };
    }
    Ok(picked)
}

/// A language code in its two-letter form where one exists (`eng` and `en` alike).
fn iso_639_1(code: &str) -> String {
    gstreamer_tag::language_codes::language_code_iso_639_1(code)
        .map(|c| c.to_string())
        .unwrap_or_else(|| code.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(kind: &'static str, index: usize, language: Option<&str>) -> Track {
        Track {
            kind,
            index,
            codec: "opus".into(),
            language: language.map(Into::into),
            chosen: false,
        }
    }

    #[test]
    fn an_audio_track_is_chosen_by_default_index_or_language() {
        crate::media::init().unwrap();
        let mut tracks = vec![
            track("video", 0, None),
            track("audio", 0, Some("en")),
            track("audio", 1, Some("fr")),
        ];
        assert_eq!(choose(&mut tracks, &AudioTrack::Default), Ok(Some(0)));
        assert!(tracks[0].chosen && tracks[1].chosen && !tracks[2].chosen);
        assert_eq!(choose(&mut tracks, &"1".parse().unwrap()), Ok(Some(1)));
        assert!(tracks[2].chosen && !tracks[1].chosen);
        for code in ["en", "eng", "ENG"] {
            assert_eq!(choose(&mut tracks, &code.parse().unwrap()), Ok(Some(0)));
        }
        for code in ["fre", "fra", "fr"] {
            assert_eq!(choose(&mut tracks, &code.parse().unwrap()), Ok(Some(1)));
        }
        let err = choose(&mut tracks, &"5".parse().unwrap()).unwrap_err();
        assert!(
            err.contains("no audio track 5") && err.contains("0 (en), 1 (fr)"),
            "{err}"
        );
        let err = choose(&mut tracks, &"de".parse().unwrap()).unwrap_err();
        assert!(err.contains("`de`"), "{err}");
    }

    #[test]
    fn a_file_without_audio_has_no_audio_track_to_choose() {
        assert_eq!(choose(&mut [], &AudioTrack::Default), Ok(None));
        let err = choose(&mut [], &AudioTrack::Index(0)).unwrap_err();
        assert!(err.contains("it has no audio track"), "{err}");
    }

    #[test]
    fn hostile_track_names_are_refused() {
        for bad in ["", "-1", "e n", "english!", "../x", "1;2", "a", "e\u{301}n"] {
            assert!(bad.parse::<AudioTrack>().is_err(), "{bad:?}");
        }
    }
}
