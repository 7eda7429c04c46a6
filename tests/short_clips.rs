//! Short clips written as the contract MP4 (`push --mp4`) keep every sample: the tone a
//! player hears starts and ends where the input's does and the audio track is as long as
//! the input, give or take one AAC frame.

use std::path::{Path, PathBuf};

use crate::common::*;

/// One AAC frame at the contract's 48 kHz, in seconds.
const AAC_FRAME_S: f64 = 1024.0 / 48_000.0;

fn callfeed() -> tokio::process::Command {
    callfeed_cli("callfeed-short-clips-state")
}

/// `ffmpeg` writing `dir/name`.
fn make(dir: &Path, name: &str, args: &str) -> PathBuf {
    let path = dir.join(name);
    ffmpeg(&format!("{args} {}", path.display()));
    path
}

/// The audio stream's duration as ffprobe reads it (the edit list's, when there is one).
fn audio_duration(path: &Path) -> f64 {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a:0"])
        .args(["-show_entries", "stream=duration", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("ffprobe {path:?}: {text}"))
}

/// When the tone is heard in `path`'s audio as ffmpeg plays it: its first and last audible
/// samples, in seconds from the start.
fn tone_heard(path: &Path) -> (f64, f64) {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args([
            "-map", "0:a:0", "-ac", "1", "-ar", "48000", "-f", "s16le", "-",
        ])
        .output()
        .unwrap();
    let samples: Vec<i16> = out
        .stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    // The tone peaks at an eighth of full scale; the encoder's silence is far below this.
    let audible = |s: &i16| s.unsigned_abs() > 1000;
    let first = samples.iter().position(audible).expect("a tone is heard");
    let last = samples.iter().rposition(audible).unwrap();
    (first as f64 / 48_000.0, (last + 1) as f64 / 48_000.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_clip_keeps_its_last_audio_frame() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases = [
        (
            make(d, "one.wav", "-f lavfi -i sine=f=440:d=1:sample_rate=48000"),
            1.0,
            "audio",
        ),
        // Resampled, and with a picture beside it.
        (
            make(
                d,
                "two-and-a-half.flac",
                "-f lavfi -i sine=f=440:d=2.5:sample_rate=44100",
            ),
            2.5,
            "360p",
        ),
    ];
    for (input, length, profile) in &cases {
        let name = input.file_name().unwrap().to_string_lossy().into_owned();
        let out = d.join(format!("{name}.mp4"));
        let run = callfeed()
            .arg("push")
            .arg(input)
            .args(["--profile", profile, "--mp4"])
            .arg(&out)
            .output()
            .await
            .unwrap();
        assert_eq!(run.status.code(), Some(0), "{name}: {run:?}");

        let track = audio_duration(&out);
        let (from, to) = tone_heard(&out);
        let summary = format!(
            "{name} ({length} s): audio track {track:.4} s, tone heard from {from:.4} s to {to:.4} s"
        );
        eprintln!("{summary}");
        assert!((track - length).abs() <= AAC_FRAME_S, "{summary}");
        assert!(from <= AAC_FRAME_S, "the tone starts late: {summary}");
        assert!(
            (to - from - length).abs() <= AAC_FRAME_S,
            "the tone is cut short: {summary}"
        );
    }
}
