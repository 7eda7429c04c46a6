//! Files users really have, made small by ffmpeg: animated pictures, several audio tracks,
//! cover art. Each comes out as the user meant: moving, the chosen track, no extra stream.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use tokio::process::Command;

fn callfeed() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_callfeed"));
    cmd.env_remove("CALLFEED_CONFIG").kill_on_drop(true);
    cmd
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ffmpeg(args: &str) {
    let ok = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args.split_whitespace())
        .status()
        .expect("ffmpeg must be installed: run `make setup`")
        .success();
    assert!(ok, "ffmpeg {args}");
}

async fn probe(input: &Path) -> serde_json::Value {
    let out = callfeed()
        .arg("probe")
        .arg(input)
        .args(["--json", "--profile", "360p"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn push_mp4(input: &Path, extra: &[&str]) -> PathBuf {
    let name = input.file_name().unwrap().to_string_lossy();
    let out_path = input.with_file_name(format!("{name}.mp4"));
    let out = callfeed()
        .arg("push")
        .arg(input)
        .arg("--mp4")
        .arg(&out_path)
        .args(["--profile", "360p"])
        .args(extra)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    out_path
}

/// The streams of `file` as ffprobe sees them: (codec type, codec name, duration in s).
fn streams(file: &Path) -> Vec<(String, String, f64)> {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-of", "json", "-show_streams"])
        .arg(file)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["codec_type"].as_str().unwrap_or_default().to_owned(),
                s["codec_name"].as_str().unwrap_or_default().to_owned(),
                s["duration"]
                    .as_str()
                    .and_then(|d| d.parse().ok())
                    .unwrap_or(0.0),
            )
        })
        .collect()
}

/// The mean luma (0..=255) of the picture shown at `at` seconds into `video`.
fn luma_at(video: &Path, at: f64) -> f64 {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-ss", &at.to_string(), "-i"])
        .arg(video)
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .unwrap();
    assert!(!out.stdout.is_empty(), "no picture at {at} s in {video:?}");
    out.stdout.iter().map(|&l| f64::from(l)).sum::<f64>() / out.stdout.len() as f64
}

#[tokio::test]
async fn an_animated_picture_plays_as_video_with_its_own_timing() {
    let dir = tempfile::tempdir().unwrap();
    // One second black, then one second white, at 4 frames a second.
    let frames = "-f lavfi -i color=black:s=160x120:r=4:d=1 -f lavfi -i color=white:s=160x120:r=4:d=1 -filter_complex [0][1]concat=n=2:v=1";
    for (name, encode) in [
        ("anim.gif", ""),
        ("anim.apng", "-plays 0 -f apng"),
        ("anim.webp", "-loop 0 -c:v libwebp_anim"),
    ] {
        let file = dir.path().join(name);
        ffmpeg(&format!("{frames} {encode} {}", file.display()));
        let v = probe(&file).await;
        assert_eq!(v["video"]["still_image"], false, "{name}: {v:#}");
        assert_eq!(v["duration_ms"], 2000, "{name}: {v:#}");

        let out = push_mp4(&file, &[]).await;
        let found = streams(&out);
        let video: Vec<_> = found.iter().filter(|s| s.0 == "video").collect();
        assert_eq!(video.len(), 1, "{name}: {found:?}");
        // Its own length, give or take two frames of the contract's 30 (the last picture is
        // shown for its whole delay, not dropped at the end).
        assert!((video[0].2 - 2.0).abs() < 0.07, "{name}: {found:?}");
        // It moves: black first, white later, as in the animation (pillarboxed in black).
        let (early, late) = (luma_at(&out, 0.5), luma_at(&out, 1.6));
        assert!(early < 40.0 && late > 150.0, "{name}: {early} then {late}");
    }

    // A picture with one frame stays a still.
    let still = dir.path().join("still.gif");
    ffmpeg(&format!(
        "-f lavfi -i color=white:s=160x120:d=1 -frames:v 1 {}",
        still.display()
    ));
    let v = probe(&still).await;
    assert_eq!(v["video"]["still_image"], true, "{v:#}");
}
