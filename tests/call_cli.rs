//! `callfeed call` as a user runs it: exit codes by result, the JSON report, every option
//! checked before the phone rings, and a URL the cloud can pull itself handed to it
//! unchanged (`--direct auto|always|never`).

use std::process::Output;

use crate::common::*;
use tokio::process::Command;

fn callfeed() -> Command {
    callfeed_cli("callfeed-call-cli-state")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn results_have_their_exit_codes_and_a_json_report() {
    let out = callfeed()
        .args([
            "call",
            "--emulator",
            "--to",
            "jack",
            "--room",
            "cli-room",
            "--media",
            "test:black+tone=440",
            "--media-type",
            "audio",
            "--max-duration",
            "3",
            "--callee-answers-after",
            "500",
            "--json",
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["result"], "completed");
    assert!(report["call_id"].as_str().is_some_and(|c| c.len() == 36));
    assert!(report["task_id"].as_str().is_some());
    assert!(report["timings"]["answered_ms"].as_u64().unwrap() >= 500);
    let media = &report["observed"]["media"][0];
    assert!(
        (media["dominant_hz"].as_f64().unwrap() - 440.0).abs() < 5.0,
        "{report:#}"
    );
    assert_eq!(report["observed"]["members"][0]["user_id"], "jack");
    // Jack was in the call while the media flowed: the room says he saw it, after the end too.
    assert_eq!(
        report["observed"]["members"][0]["sees_media"], true,
        "{report:#}"
    );
    // The outcome was checked against what the room received.
    assert!(
        report["room"]["audio_ms"].as_u64().unwrap() > 2000,
        "{report:#}"
    );

    let out = callfeed()
        .args([
            "call",
            "--emulator",
            "--to",
            "rita",
            "--room",
            "r2",
            "--media",
            "test:",
            "--callee-rejects",
            "--json",
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "rejected: {}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["result"], "rejected");
    assert!(
        report["task_id"].is_null(),
        "nothing was ingested for a refused call"
    );
}

#[tokio::test]
async fn options_are_checked_before_the_phone_rings() {
    let cases: [(&[&str], &str); 6] = [
        (
            &["--room", "0", "--room-type", "numeric"],
            "1 to 4294967294",
        ),
        (&["--room", "r", "--ring-timeout", "5"], "10 to 600 seconds"),
        (
            &["--room", "r", "--media", "/no/such/file.mp3"],
            "/no/such/file.mp3",
        ),
        (&["--room", "r", "--to", "bad callee"], "bad callee"),
        (&["--room", "r", "--robot", &"r".repeat(40)], "40 bytes"),
        (&["--room", "r", "--media", "test:plaid"], "plaid"),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["call", "--emulator", "--to", "jack"];
        if !extra.contains(&"--media") {
            args.extend_from_slice(&["--media", "test:"]);
        }
        args.extend_from_slice(extra);
        let out = callfeed().args(&args).output().await.unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: `{needle}` not in {err}");
    }
    // Against the cloud without credentials: named, and nothing rings.
    let out = callfeed()
        .args(["call", "--to", "jack", "--room", "r", "--media", "test:"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("CALLFEED_SDKAPPID"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn an_unreachable_cloud_fails_with_the_endpoint_named() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let state = tempfile::tempdir().unwrap();
    let out = callfeed()
        .env("XDG_STATE_HOME", state.path())
        .env("CALLFEED_SDKAPPID", "1400000000")
        .env("CALLFEED_SDK_SECRET_KEY", "k")
        .env("TENCENTCLOUD_SECRET_ID", "AKIDx")
        .env("TENCENTCLOUD_SECRET_KEY", "s")
        .env("CALLFEED_IM_ENDPOINT", format!("http://127.0.0.1:{port}/"))
        .env(
            "CALLFEED_TRTC_ENDPOINT",
            format!("http://127.0.0.1:{port}/"),
        )
        .env("CALLFEED_HTTP_MAX_ATTEMPTS", "1")
        .args(["call", "--to", "jack", "--room", "r", "--media", "test:"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("failed at the ring stage")
            && stdout.contains(&format!("127.0.0.1:{port}")),
        "{stdout}"
    );
}

#[tokio::test]
async fn a_load_smoke_run_of_five_calls() {
    let out = callfeed()
        .args([
            "load",
            "--calls",
            "5",
            "--rate",
            "5",
            "--media",
            "test:black+tone=440",
            "--duration",
            "2",
            "--emulator",
            "--callee-answers-after",
            "300",
            "--json",
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(report["succeeded"], 5, "{report:#}");
    assert_eq!(report["failed"], 0);
    assert_eq!(report["answer_ms"]["count"], 5);
    // Every result counted, completed too.
    assert_eq!(report["results"]["completed"], 5, "{report:#}");
    // The answer is noticed when it happens, not at the next slow poll.
    let answer = report["answer_ms"]["p50"].as_u64().unwrap();
    assert!(
        (300..350).contains(&answer),
        "answer p50 {answer} ms: {report:#}"
    );
    let first_media = &report["answer_to_first_media_ms"];
    assert_eq!(first_media["count"], 5, "{report:#}");
    assert!(first_media["p95"].as_u64().unwrap() < 3000, "{report:#}");
    // Each session played its two seconds of media after the answer.
    assert!(
        report["session_ms"]["p50"].as_u64().unwrap() >= 2000,
        "{report:#}"
    );
}

#[tokio::test]
async fn logs_are_plain_text_off_a_terminal_or_json_lines() {
    let session = [
        "call",
        "--emulator",
        "--to",
        "jack",
        "--room",
        "log-room",
        "--media",
        "test:silence",
        "--media-type",
        "audio",
        "--max-duration",
        "1",
        "--callee-answers-after",
        "200",
        "--json",
    ];
    // Text: no colour codes when stderr is not a terminal, one line per phase.
    let out = callfeed()
        .env_remove("NO_COLOR")
        .env_remove("CALLFEED_LOG_FORMAT")
        .args(["--log", "info"])
        .args(session)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(
        !text.contains('\u{1b}'),
        "escape codes in a log file: {text}"
    );
    for phase in ["ringing", "ingesting"] {
        assert!(
            text.lines()
                .any(|l| l.contains("session phase") && l.contains(&format!("phase=\"{phase}\""))),
            "{phase}: {text}"
        );
    }
    assert!(text.contains("session ended"), "{text}");

    // JSON: every log line is one object with its fields.
    let out = callfeed()
        .args(["--log", "info", "--log-format", "json"])
        .args(session)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stderr(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let ended = lines
        .iter()
        .find(|l| l["message"] == "session ended")
        .expect("a session ended line");
    assert_eq!(ended["outcome"], "completed", "{ended}");
    assert_eq!(ended["level"], "INFO");
}

/// `callfeed call --emulator` of `media` as video at 360p, with `extra` flags; the exit code
/// and the JSON report.
async fn call_video(media: &str, extra: &[&str]) -> (Option<i32>, serde_json::Value, String) {
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
    let (code, report, err) = call_video(&format!("{base}plain.mp4"), &[]).await;
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
    let (code, report, err) =
        call_video(&format!("{base}bframes.mp4"), &["--max-duration", "2"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(report["mode"], "live", "{report:#}");
    let reason = report["mode_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("has B-frames"), "{report:#}");

    // Told never to, callfeed restreams even a URL the cloud could take.
    let (code, report, err) = call_video(
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
    let (code, _, err) = call_video(sample, &["--direct", "always"]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("direct") && err.contains("a URL the cloud can pull"),
        "{err}"
    );
    let (code, _, err) = call_video(sample, &["--direct", "sometimes"]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("auto, always or never"), "{err}");
}

#[tokio::test]
async fn a_monitored_call_reports_what_the_room_carried_and_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = callfeed()
        .args([
            "call",
            "--emulator",
            "--to",
            "jack",
            "--room",
            "cli-monitored",
            "--media",
            "test:black+tone=440",
            "--media-type",
            "audio",
            "--max-duration",
            "3",
            "--callee-answers-after",
            "300",
            "--monitor",
            "--rtmp-listen",
            "127.0.0.1:0",
            "--record",
        ])
        .arg(dir.path())
        .arg("--json")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let monitor = &report["monitor"];
    assert_eq!(monitor["source"], "robot", "{report:#}");
    assert!(monitor["audio_ms"].as_u64() > Some(2000), "{report:#}");
    assert!(
        (monitor["dominant_hz"].as_f64().unwrap() - 440.0).abs() < 10.0,
        "{report:#}"
    );
    let file = monitor["recording"]["files"][0].as_str().unwrap();
    let session = report["session_id"].as_str().unwrap();
    let path = dir.path().join(session).join(file);
    assert!(std::fs::metadata(&path).unwrap().len() > 1000, "{path:?}");
}
