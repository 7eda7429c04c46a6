//! A URL the cloud can pull itself is handed to it unchanged (`--direct auto|always|never`):
//! the emulator's room hears it with no pipeline running in callfeed; a URL the cloud could
//! not take as it is is restreamed; only URLs can be handed over.

mod common;

use common::*;
use tokio::process::Command;

fn callfeed() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_callfeed"));
    for var in [
        "CALLFEED_CONFIG",
        "CALLFEED_SDKAPPID",
        "CALLFEED_SDK_SECRET_KEY",
        "TENCENTCLOUD_SECRET_ID",
        "TENCENTCLOUD_SECRET_KEY",
    ] {
        cmd.env_remove(var);
    }
    cmd.env(
        "XDG_STATE_HOME",
        std::env::temp_dir().join("callfeed-direct-state"),
    );
    cmd.kill_on_drop(true);
    cmd
}

/// `callfeed call --emulator` of `media` as video at 360p, with `extra` flags; the exit code
/// and the JSON report.
async fn call(media: &str, extra: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let out = callfeed()
        .args([
            "call",
            "--emulator",
            "--to",
            "jack",
            "--room",
            "direct-room",
        ])
        .args([
            "--media",
            media,
            "--media-type",
            "video",
            "--profile",
            "360p",
        ])
        .args(["--callee-answers-after", "200", "--json"])
        .args(extra)
        .output()
        .await
        .unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), report, err)
}

fn clip(dir: &std::path::Path, name: &str, video: &str) {
    ffmpeg(&format!(
        "-f lavfi -i testsrc=s=640x360:r=30:d=3 -f lavfi -i sine=f=440:d=3:sample_rate=48000 \
         -pix_fmt yuv420p -c:v libx264 {video} -g 30 -b:v 600k -c:a aac -movflags +faststart {}",
        dir.join(name).display()
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_the_cloud_can_take_is_handed_over_and_others_are_restreamed() {
    let dir = tempfile::tempdir().unwrap();
    clip(dir.path(), "plain.mp4", "-profile:v main -bf 0");
    clip(dir.path(), "bframes.mp4", "-profile:v high -bf 2");
    let base = serve_dir(dir.path()).await;

    // H.264 without B-frames and AAC: the cloud pulls the URL itself.
    let (code, report, err) = call(&format!("{base}plain.mp4"), &[]).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(report["mode"], "direct", "{report:#}");
    let reason = report["mode_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("without B-frames"), "{report:#}");
    assert_eq!(
        report["media"]["kind"], "direct",
        "no pipeline ran: {report:#}"
    );
    let heard = &report["observed"]["media"][0];
    assert!(
        (heard["dominant_hz"].as_f64().unwrap_or(0.0) - 440.0).abs() < 5.0,
        "{report:#}"
    );
    assert_eq!(heard["width"], 640, "{report:#}");
    // The ingest task pulled the URL itself, not one of callfeed's.
    assert_eq!(
        heard["stream_url"],
        format!("{base}plain.mp4"),
        "{report:#}"
    );

    // B-frames: restreamed by callfeed, and the room still gets it.
    let (code, report, err) = call(&format!("{base}bframes.mp4"), &["--max-duration", "2"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(report["mode"], "live", "{report:#}");
    let reason = report["mode_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("has B-frames"), "{report:#}");

    // Told never to, callfeed restreams even a URL the cloud could take.
    let (code, report, err) = call(
        &format!("{base}plain.mp4"),
        &["--direct", "never", "--max-duration", "2"],
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    assert_ne!(report["mode"], "direct", "{report:#}");
}

#[tokio::test]
async fn only_a_url_can_be_handed_over() {
    let sample = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/media-samples/tone-440hz-2s.ogg"
    );
    let (code, _, err) = call(sample, &["--direct", "always"]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("direct") && err.contains("a URL the cloud can pull"),
        "{err}"
    );
    let (code, _, err) = call(sample, &["--direct", "sometimes"]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("auto, always or never"), "{err}");
}
