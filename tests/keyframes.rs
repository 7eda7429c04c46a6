//! The output's keyframes: exactly every GOP of the contract and nowhere else, whatever the
//! picture does — in a live stream as a reader receives it, and in an announcement MP4.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;
use callfeed::media::contract::{Contract, Profile};
use callfeed::media::input::InputSpec;
use callfeed::media::live::{LiveSettings, LiveStream};
use callfeed::media::topology::Topologies;

/// Black, bars, white: two hard cuts in the middle of a GOP (at 0.5 s and 1.7 s), where an
/// encoder's scene-cut detection would put keyframes of its own.
fn clip_with_hard_cuts(dir: &Path) -> PathBuf {
    let path = dir.join("cuts.mp4");
    ffmpeg(&format!(
        "-f lavfi -i color=c=black:s=640x360:r=30:d=0.5 -f lavfi -i smptebars=s=640x360:r=30:d=1.2 \
         -f lavfi -i color=c=white:s=640x360:r=30:d=1.3 -filter_complex [0][1][2]concat=n=3:v=1:a=0 \
         -pix_fmt yuv420p -c:v libx264 -bf 2 {}",
        path.display()
    ));
    path
}

/// The frame numbers of the keyframes among `frames` keyframe flags.
fn keyframe_numbers(frames: &[bool]) -> Vec<usize> {
    frames
        .iter()
        .enumerate()
        .filter_map(|(n, key)| key.then_some(n))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_stream_has_keyframes_every_gop_and_nowhere_else() {
    let dir = tempfile::tempdir().unwrap();
    let clip = clip_with_hard_cuts(dir.path());
    let mut settings = LiveSettings::new(Contract::new(Profile::P360));
    // The slate runs until the reader pulls, so it receives the slate → picture cut, both
    // cuts of the clip and the picture → slate cut at its end.
    settings.hold_until_pulled = true;
    let stream = LiveStream::start(
        InputSpec::parse(clip.to_str().unwrap()).unwrap(),
        settings,
        &Topologies::builtin().unwrap(),
    )
    .unwrap();
    let (_server, url) = serve_live(&stream).await;
    let tags = read_flv(&url, Duration::from_secs(5)).await;
    stream.stop().await.unwrap();

    let video: Vec<&FlvTag> = tags.iter().filter(|t| t.kind == 9 && !t.config).collect();
    assert!(video.len() >= 85, "{} video frames", video.len());
    assert!(video[0].keyframe, "the reader starts on a keyframe");
    let flags: Vec<bool> = video.iter().map(|t| t.keyframe).collect();
    let keys = keyframe_numbers(&flags);
    let gop = 30;
    assert!(
        keys.iter().all(|n| n % gop == 0),
        "keyframes only every {gop} frames, at frames {keys:?} (ms {:?})",
        keys.iter()
            .map(|&n| video[n].timestamp_ms)
            .collect::<Vec<_>>()
    );
    assert_eq!(
        keys.len(),
        video.len().div_ceil(gop),
        "one keyframe per GOP: {keys:?} over {} frames",
        video.len()
    );
}

/// The keyframe flags of a file's video packets, in decoding order.
fn packet_keyframes(file: &Path) -> Vec<bool> {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v", "-show_entries"])
        .args(["packet=flags", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.starts_with('K'))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announcement_has_keyframes_every_gop_and_nowhere_else() {
    let dir = tempfile::tempdir().unwrap();
    let clip = clip_with_hard_cuts(dir.path());
    let out = dir.path().join("announcement.mp4");
    let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_callfeed"))
        .env_remove("CALLFEED_CONFIG")
        .arg("push")
        .arg(&clip)
        .args(["--profile", "360p", "--mp4"])
        .arg(&out)
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let flags = packet_keyframes(&out);
    assert_eq!(flags.len(), 90, "3 s at 30 fps");
    assert_eq!(keyframe_numbers(&flags), vec![0, 30, 60]);
}
