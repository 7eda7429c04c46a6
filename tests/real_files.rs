//! Files users really have, made small by ffmpeg: animated pictures, several audio tracks,
//! cover art. Each comes out as the user meant: moving, the chosen track, no extra stream.

use crate::common;
use crate::common::ffmpeg;

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

/// What a player hears in `file`, played once as fast as it decodes.
async fn heard(file: &Path) -> callfeed::media::observer::ObservedMedia {
    let uri = url::Url::from_file_path(file).unwrap().to_string();
    let pace = callfeed::media::observer::Pace::Fast;
    common::observe_while(&uri, pace, Duration::from_secs(30), |m| {
        m.plays_completed == 0
    })
    .await
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_audio_track_is_played_the_first_or_the_one_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let mkv = dir.path().join("two.mkv");
    ffmpeg(&format!(
        "-f lavfi -i sine=f=440:d=2 -f lavfi -i sine=f=880:d=2 -f lavfi -i testsrc=s=160x120:r=10:d=2 \
         -map 2 -map 0 -map 1 -c:v libx264 -c:a libopus -metadata:s:a:0 language=eng -metadata:s:a:1 language=fre {}",
        mkv.display()
    ));
    // probe lists every track with its language, and which one plays.
    let v = probe(&mkv).await;
    let tracks: Vec<_> = v["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["kind"].as_str().unwrap().to_owned(),
                t["index"].as_u64().unwrap(),
                t["language"].as_str().map(str::to_owned),
                t["chosen"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        tracks,
        [
            ("video".into(), 0, None, true),
            ("audio".into(), 0, Some("en".into()), true),
            ("audio".into(), 1, Some("fr".into()), false),
        ],
        "{v:#}"
    );

    for (pick, hz) in [
        (None, 440.0),
        (Some("1"), 880.0),
        (Some("fra"), 880.0),
        (Some("en"), 440.0),
    ] {
        let extra: Vec<&str> = pick.map(|p| vec!["--audio-track", p]).unwrap_or_default();
        let copy = dir
            .path()
            .join(format!("pick-{}.mkv", pick.unwrap_or("none")));
        std::fs::copy(&mkv, &copy).unwrap();
        let out = push_mp4(&copy, &extra).await;
        let found = streams(&out);
        assert_eq!(
            found.iter().filter(|s| s.0 == "audio").count(),
            1,
            "{pick:?}: {found:?}"
        );
        let seen = heard(&out).await;
        assert!(
            (seen.dominant_hz.unwrap_or(0.0) - hz).abs() < 10.0,
            "{pick:?}: {seen:?}"
        );
    }

    // Streamed live, the chosen track is the one heard.
    {
        use callfeed::media::contract::{Contract, Profile};
        use callfeed::media::input::InputSpec;
        use callfeed::media::live::{LiveSettings, LiveStream, Loops};
        let spec = InputSpec::parse(mkv.to_str().unwrap()).unwrap();
        let contract = Contract::new(Profile::Audio);
        let options = callfeed::media::inspect::ProbeOptions {
            audio_track: "fre".parse().unwrap(),
            ..Default::default()
        };
        let report = callfeed::media::inspect::probe_with(&spec, contract, &options).unwrap();
        assert_eq!(report.audio_track, Some(1));
        let mut settings = LiveSettings::new(contract);
        settings.loops = Loops::Forever;
        settings.follow(Some(&report), None);
        let topologies = callfeed::media::topology::Topologies::builtin().unwrap();
        let stream = LiveStream::start(spec, settings, &topologies).unwrap();
        let (_server, url) = common::serve_live(&stream).await;
        let seen = common::observe_audio_until(&url, 1500, Duration::from_secs(20)).await;
        assert!(
            (seen.dominant_hz.unwrap_or(0.0) - 880.0).abs() < 10.0,
            "live: {seen:?}"
        );
        stream.stop().await.unwrap();
    }

    // Each track makes an announcement of its own in the cache, not the first one's again.
    let cache = dir.path().join("cache");
    let mut made = Vec::new();
    for pick in ["0", "1"] {
        let out = callfeed()
            .arg("announce")
            .arg(&mkv)
            .args(["--profile", "audio", "--audio-track", pick])
            .env("XDG_CACHE_HOME", &cache)
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        made.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    }
    assert_ne!(made[0], made[1]);
    for (file, hz) in made.iter().zip([440.0, 880.0]) {
        let seen = heard(file).await;
        assert!(
            (seen.dominant_hz.unwrap_or(0.0) - hz).abs() < 10.0,
            "{file:?}: {seen:?}"
        );
    }

    // A track that is not there is named with the ones that are, before anything starts.
    let out = callfeed()
        .arg("push")
        .arg(&mkv)
        .args(["--mp4", "never.mp4", "--audio-track", "de"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("no audio track is in `de`") && err.contains("0 (en), 1 (fr)"),
        "{err}"
    );
    assert!(!Path::new("never.mp4").exists());
}

#[tokio::test]
async fn cover_art_is_the_picture_never_a_stream() {
    let dir = tempfile::tempdir().unwrap();
    let cover = dir.path().join("cover.png");
    ffmpeg(&format!(
        "-f lavfi -i color=white:s=64x64:d=1 -frames:v 1 {}",
        cover.display()
    ));
    let slate = dir.path().join("slate.png");
    ffmpeg(&format!(
        "-f lavfi -i color=black:s=64x64:d=1 -frames:v 1 {}",
        slate.display()
    ));
    for name in ["song.mp3", "song.flac"] {
        let song = dir.path().join(name);
        ffmpeg(&format!(
            "-f lavfi -i sine=f=440:d=2 -i {} -map 0 -map 1 -c:v copy -disposition:v attached_pic -id3v2_version 3 {}",
            cover.display(),
            song.display()
        ));
        let v = probe(&song).await;
        assert_eq!(v["cover_art"]["format"], "image/png", "{name}: {v:#}");
        assert!(v["video"].is_null(), "{name}: {v:#}");

        let out = push_mp4(&song, &[]).await;
        let found = streams(&out);
        let kinds: Vec<_> = found.iter().map(|s| (s.0.as_str(), s.1.as_str())).collect();
        assert_eq!(
            kinds,
            [("video", "h264"), ("audio", "aac")],
            "{name}: {found:?}"
        );
        // The white cover, square in the middle of a 16:9 frame: bright, not black.
        let shown = luma_at(&out, 1.0);
        assert!(
            shown > 100.0,
            "{name}: the cover was not shown: luma {shown}"
        );

        if name == "song.mp3" {
            // The same file with its audio lost: only the tag with the cover is left.
            let bytes = std::fs::read(&song).unwrap();
            let size = bytes[6..10]
                .iter()
                .fold(0usize, |n, b| (n << 7) | usize::from(b & 0x7f));
            let cover_only = dir.path().join("cover-only.mp3");
            std::fs::write(&cover_only, &bytes[..10 + size]).unwrap();
            let out = callfeed()
                .arg("probe")
                .arg(&cover_only)
                .output()
                .await
                .unwrap();
            assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
            let err = stderr(&out);
            assert!(
                err.contains("cover-only.mp3") && err.contains("only tags (such as cover art)"),
                "{err}"
            );
        }

        // --slate wins over the cover.
        let with_slate = dir.path().join(format!("slate-{name}"));
        std::fs::copy(&song, &with_slate).unwrap();
        let out = push_mp4(&with_slate, &["--slate", slate.to_str().unwrap()]).await;
        let shown = luma_at(&out, 1.0);
        assert!(
            shown < 40.0,
            "{name}: the slate was not shown: luma {shown}"
        );
    }
}
