//! Real publishers for the feed tests: ffmpeg pushing RTMP as OBS would.

use std::process::Stdio;

use tokio::process::{Child, Command};

/// ffmpeg pushing a 640x360 30 fps picture and a 440 Hz tone to `url` in real time, as OBS
/// with x264 (no B-frames, a keyframe a second) and AAC at 48 kHz would. (360p, so that the
/// feed tests running beside the rest of the suite on two cores leave it room: the feed
/// scales it to its 720p contract, which is what the rooms are checked for.)
pub(crate) fn push_rtmp(url: &str) -> Child {
    push(&["-f", "flv", url])
}

/// ffmpeg pushing the same media with `output` as its output arguments.
pub(crate) fn push(output: &[&str]) -> Child {
    Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
        ])
        .args(["-g", "30", "-bf", "0", "-pix_fmt", "yuv420p"])
        // OBS's default: 2500 kbit/s, constant.
        .args(["-b:v", "2500k", "-maxrate", "2500k", "-bufsize", "2500k"])
        .args(["-c:a", "aac", "-ar", "48000", "-b:a", "96k"])
        .args(output)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg must be installed: run `make setup`")
}

/// What an ffmpeg that ended said, and whether it succeeded.
pub(crate) async fn outcome(child: Child) -> (bool, String) {
    let out = child.wait_with_output().await.unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// ffmpeg calling an SRT listener at `url` with the same media in MPEG-TS, as OBS does.
pub(crate) fn push_srt(url: &str) -> Child {
    push(&["-f", "mpegts", url])
}
