//! `callfeed probe` and `callfeed push` as a user meets them: what an input is, whether it
//! passes through, and bad inputs refused with their name before anything starts.

use std::process::Output;
use std::time::Duration;

use crate::common::*;
use tokio::process::Command;

fn callfeed() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_callfeed"));
    cmd.env_remove("CALLFEED_CONFIG").kill_on_drop(true);
    cmd
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn probe(input: &str, profile: &str) -> (Output, serde_json::Value) {
    let out = callfeed()
        .args(["probe", input, "--json", "--profile", profile])
        .output()
        .await
        .unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or_default();
    (out, v)
}

fn gst(pipeline: &str) {
    let ok = std::process::Command::new("gst-launch-1.0")
        .arg("-q")
        .args(pipeline.split_whitespace())
        .status()
        .unwrap()
        .success();
    assert!(ok, "{pipeline}");
}

#[tokio::test]
async fn probe_says_when_passthrough_applies_and_why_not() {
    let dir = tempfile::tempdir().unwrap();
    let hd = Clip {
        seconds: 1,
        width: 1280,
        height: 720,
        fps: 30,
        tone_hz: 440,
    }
    .write(dir.path(), "hd.mp4");
    let (out, v) = probe(hd.to_str().unwrap(), "720p").await;
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(v["passthrough"], true, "{v:#}");
    assert_eq!(v["video"]["width"], 1280);
    assert_eq!(v["audio"]["codec"], "aac");
    let (_, v) = probe(hd.to_str().unwrap(), "360p").await;
    assert_eq!(v["passthrough"], false);
    assert!(v["reason"].as_str().unwrap().contains("1280x720"), "{v:#}");

    let mp3 = dir.path().join("mono.mp3");
    gst(&format!(
        "audiotestsrc num-buffers=40 ! audio/x-raw,rate=44100,channels=1 ! lamemp3enc ! filesink location={}",
        mp3.display()
    ));
    let (out, v) = probe(mp3.to_str().unwrap(), "720p").await;
    assert!(out.status.success());
    assert_eq!(v["passthrough"], false);
    assert_eq!(v["audio"]["rate"], 44100);
    assert_eq!(v["audio"]["channels"], 1);
    // The container by the name people know, in the reason; its caps name in the JSON.
    assert_eq!(v["container"], "audio/mpeg", "{v:#}");
    assert!(
        v["reason"].as_str().unwrap().contains("MPEG audio"),
        "{v:#}"
    );
}

#[tokio::test]
async fn bad_inputs_are_named_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("page.html");
    std::fs::write(&html, "<html><body>not media</body></html>".repeat(50)).unwrap();
    let corrupt = dir.path().join("corrupt.mp4");
    std::fs::write(
        &corrupt,
        (0..20_000u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let good = Clip {
        seconds: 1,
        width: 320,
        height: 240,
        fps: 30,
        tone_hz: 440,
    }
    .write(dir.path(), "good.mp4");
    let whole = std::fs::read(&good).unwrap();
    let truncated = dir.path().join("truncated.mp4");
    // Without its index (written first by faststart) the file cannot be played.
    std::fs::write(&truncated, &whole[whole.len() / 2..]).unwrap();
    let missing = dir.path().join("missing.mp4");
    for (input, needle) in [
        (missing.display().to_string(), "does not exist"),
        (html.display().to_string(), "page.html"),
        (corrupt.display().to_string(), "corrupt.mp4"),
        (truncated.display().to_string(), "truncated.mp4"),
        ("v4l2:/dev/video77".to_owned(), "/dev/video77"),
        ("test:stripes".to_owned(), "stripes"),
        ("custom:mycam".to_owned(), "add `mycam_video`"),
    ] {
        for args in [
            vec!["probe", input.as_str()],
            vec!["push", input.as_str(), "--serve"],
        ] {
            let out =
                tokio::time::timeout(Duration::from_secs(30), callfeed().args(&args).output())
                    .await
                    .expect("refused quickly")
                    .unwrap();
            let (stdout, stderr) = text(&out);
            assert!(!out.status.success(), "{args:?} succeeded");
            assert!(
                stderr.contains(needle),
                "{args:?}: `{needle}` not in {stderr}"
            );
            assert!(stdout.is_empty(), "{args:?} printed a URL: {stdout}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_serve_prints_a_url_a_player_can_read() {
    use tokio::io::AsyncBufReadExt;
    let mut child = callfeed()
        .args([
            "push",
            "test:bars+tone=440",
            "--serve",
            "--profile",
            "360p",
            "--stats",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let url = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with(".flv"),
        "{url}"
    );
    let tags = read_flv(&url, Duration::from_secs(2)).await;
    assert!(
        tags.iter().filter(|t| t.kind == 9 && !t.config).count() > 20,
        "{tags:?}"
    );
    let unknown = url.rsplit_once('/').unwrap().0.to_owned() + "/0123456789abcdef.flv";
    assert_eq!(reqwest::get(&unknown).await.unwrap().status(), 404);
    // --stats: one JSON line of counters a second, for scripts.
    let mut live = Vec::new();
    while live.len() < 2 {
        let line = tokio::time::timeout(Duration::from_secs(5), lines.next_line())
            .await
            .expect("a stats line a second")
            .unwrap()
            .unwrap();
        let stats: serde_json::Value = serde_json::from_str(&line).unwrap();
        if stats["state"] == "live" {
            live.push(stats);
        }
    }
    let frames = |s: &serde_json::Value| s["frames_out"].as_u64().unwrap();
    assert!(frames(&live[1]) > frames(&live[0]), "{live:?}");
    assert!(live[1]["repeated_frames"].is_u64(), "{live:?}");
    std::process::Command::new("kill")
        .arg(child.id().unwrap().to_string())
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announcement_is_transcoded_once_and_served_with_range() {
    use callfeed::media::observer::{MediaTally, ObserveSpec, Observer, Pace};
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mp3 = dir.path().join("announcement.mp3");
    gst(&format!(
        "audiotestsrc num-buffers=86 samplesperbuffer=1024 freq=550 ! audio/x-raw,rate=44100,channels=1 ! lamemp3enc ! filesink location={}",
        mp3.display()
    ));
    let serve = |cache: &std::path::Path| {
        let mut child = callfeed()
            .env("XDG_CACHE_HOME", cache)
            .args([
                "push",
                mp3.to_str().unwrap(),
                "--serve",
                "--profile",
                "360p",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        (child, tokio::io::BufReader::new(stdout).lines())
    };
    let (mut child, mut lines) = serve(cache.path());
    let url = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(url.ends_with(".mp4"), "{url}");
    let ranged = reqwest::Client::new()
        .get(&url)
        .header("Range", "bytes=0-99")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.bytes().await.unwrap().len(), 100);
    // What a puller gets: the contract's picture (a slate: the input has none) and the tone.
    let tally = MediaTally::new(std::time::Instant::now());
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let exit = Observer::start(
        ObserveSpec::new(url.clone(), Pace::Fast, Some(1)),
        tally.clone(),
        tx,
    )
    .unwrap()
    .finished()
    .await;
    let seen = tally.snapshot();
    assert_eq!(
        exit,
        callfeed::media::observer::ObserverExit::Completed,
        "{seen:?}"
    );
    assert_eq!((seen.width, seen.height), (640, 360), "{seen:?}");
    let expected_ms = 86.0 * 1024.0 / 44.1;
    assert!(
        (seen.audio_ms as f64 - expected_ms).abs() <= expected_ms * 0.02,
        "{seen:?}"
    );
    assert!((seen.dominant_hz.unwrap() - 550.0).abs() < 5.0, "{seen:?}");
    let _ = child.kill().await;
    let cached: Vec<_> = std::fs::read_dir(cache.path().join("callfeed/announcements"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    assert!(cached[0].ends_with("-360p-v2.mp4"), "{cached:?}");
    let modified = std::fs::metadata(cache.path().join("callfeed/announcements").join(&cached[0]))
        .unwrap()
        .modified()
        .unwrap();
    // Again: served from the cache, not transcoded again.
    let (mut child, mut lines) = serve(cache.path());
    let again = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_ne!(again, url, "a new token per publication");
    let _ = child.kill().await;
    let still = std::fs::metadata(cache.path().join("callfeed/announcements").join(&cached[0]))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(modified, still);

    // --mp4 writes the same kind of file where asked.
    let out = dir.path().join("out.mp4");
    let status = callfeed()
        .args([
            "push",
            mp3.to_str().unwrap(),
            "--mp4",
            out.to_str().unwrap(),
            "--profile",
            "audio",
        ])
        .output()
        .await
        .unwrap();
    assert!(status.status.success(), "{}", text(&status).1);
    let (_, v) = probe(out.to_str().unwrap(), "audio").await;
    assert_eq!(v["audio"]["codec"], "aac");
    assert_eq!(v["audio"]["rate"], 48000);
    assert!(
        v["video"].is_null(),
        "the audio profile has no video: {v:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_served_url_expires() {
    use tokio::io::AsyncBufReadExt;
    let mut child = callfeed()
        .args([
            "push",
            "test:",
            "--serve",
            "--profile",
            "360p",
            "--expire",
            "1",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let url = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let first = reqwest::get(&url).await.unwrap();
    assert_eq!(first.status(), 200);
    drop(first);
    // An expiry is a point in time: after it, the same URL is refused.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let status = reqwest::get(&url).await.unwrap().status();
        if status == 404 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {status} after the expiry"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = child.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_css_push_is_signed_and_prints_the_matching_play_url() {
    use tokio::io::AsyncBufReadExt;
    // A local nginx-rtmp stands in for the CSS push domain (it ignores the query string).
    let nginx = Nginx::start();
    let push_domain = format!("127.0.0.1:{}", nginx.port);
    let mut child = callfeed()
        .env("CALLFEED_CSS_PUSH_KEY", "pushkey123")
        .args([
            "push",
            "test:ball+tone=440",
            "--profile",
            "360p",
            "--css-push-domain",
            &push_domain,
            "--css-play-domain",
            "play.example.com",
            "--css-stream",
            "cam1",
            "--css-play-key",
            "playkey9",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let play = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let url = url::Url::parse(&play).unwrap();
    assert_eq!(url.host_str(), Some("play.example.com"));
    assert_eq!(url.path(), "/live/cam1.flv");
    let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(
        q["txSecret"],
        callfeed::cloud::css::tx_secret("playkey9", "cam1", &q["txTime"]),
        "the play URL is signed with the play key over its own txTime"
    );
    assert!(!play.contains("pushkey123"));
    // The push really arrived at the push domain.
    observe_until(&nginx.url("cam1"), 20, Duration::from_secs(15)).await;
    let _ = child.kill().await;
}

#[tokio::test]
async fn an_unreachable_or_refusing_url_is_named_with_its_cause() {
    let port = closed_port();
    let (out, _) = probe(&format!("http://127.0.0.1:{port}/x.mp4"), "audio").await;
    assert_eq!(out.status.code(), Some(2));
    let (_, err) = text(&out);
    assert!(
        err.contains(&format!("cannot connect to 127.0.0.1:{port}")) && err.contains("refused"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let base = serve_dir(dir.path()).await;
    let (out, _) = probe(&format!("{base}missing.mp4"), "audio").await;
    assert_eq!(out.status.code(), Some(2));
    let (_, err) = text(&out);
    assert!(err.contains("answered HTTP 404"), "{err}");
}

/// One decoded picture of `video` as 8-bit luma (limited range: black 16, white 235).
fn luma_frame(video: &std::path::Path, width: usize, height: usize) -> Vec<u8> {
    let frames = tempfile::tempdir().unwrap();
    gst(&format!(
        "filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=GRAY8 ! multifilesink max-files=1 location={}/%d.gray",
        video.display(),
        frames.path().display()
    ));
    let frame = std::fs::read_dir(frames.path())
        .unwrap()
        .next()
        .expect("a decoded picture")
        .unwrap()
        .path();
    let luma = std::fs::read(frame).unwrap();
    assert_eq!(luma.len(), width * height, "not a {width}x{height} picture");
    luma
}

#[tokio::test]
async fn a_phone_clip_comes_out_upright() {
    let dir = tempfile::tempdir().unwrap();
    // Landscape as stored, black on the left; the display matrix says to turn it 90° clockwise
    // (ffmpeg's `rotate=270` is counter-clockwise), so upright the black half is on top.
    let stored = dir.path().join("stored.mp4");
    ffmpeg(&format!(
        "-f lavfi -i color=white:s=320x240:r=30:d=1,drawbox=x=0:y=0:w=160:h=240:color=black:t=fill -c:v libx264 -pix_fmt yuv420p {}",
        stored.display()
    ));
    let phone = dir.path().join("phone.mp4");
    ffmpeg(&format!(
        "-i {} -c copy -metadata:s:v:0 rotate=270 {}",
        stored.display(),
        phone.display()
    ));
    let out = dir.path().join("out.mp4");
    let pushed = callfeed()
        .args(["push", phone.to_str().unwrap(), "--mp4"])
        .arg(&out)
        .args(["--profile", "360p"])
        .output()
        .await
        .unwrap();
    assert!(pushed.status.success(), "{}", text(&pushed).1);
    // The announcement made of it (a transcode, not the live path) too.
    let announced = callfeed()
        .env("XDG_CACHE_HOME", dir.path().join("cache"))
        .args(["announce", phone.to_str().unwrap(), "--profile", "360p"])
        .output()
        .await
        .unwrap();
    assert!(announced.status.success(), "{}", text(&announced).1);
    let announcement = std::path::PathBuf::from(text(&announced).0.trim());
    for made in [out.clone(), announcement] {
        assert_upright_phone_picture(&luma_frame(&made, 640, 360));
    }
    // The output is upright itself: it carries no rotation for a player to apply again.
    let (_, v) = probe(out.to_str().unwrap(), "360p").await;
    assert!(v["video"]["orientation"].is_null(), "{v:#}");

    // probe names the rotation (JSON and text).
    let (probed, v) = probe(phone.to_str().unwrap(), "360p").await;
    assert!(probed.status.success(), "{}", text(&probed).1);
    assert_eq!(v["video"]["orientation"], "rotate-90", "{v:#}");
    assert_eq!(
        (&v["video"]["width"], &v["video"]["height"]),
        (&320.into(), &240.into())
    );
    let probed = callfeed()
        .args(["probe", phone.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert!(text(&probed).0.contains("rotate-90"), "{}", text(&probed).0);

    // A clip that would otherwise be remuxed untouched is decoded to be turned upright.
    let conforming = Clip {
        seconds: 1,
        width: 640,
        height: 360,
        fps: 30,
        tone_hz: 440,
    }
    .write(dir.path(), "conforming.mp4");
    let (_, v) = probe(conforming.to_str().unwrap(), "360p").await;
    assert_eq!(v["passthrough"], true, "{v:#}");
    let turned = dir.path().join("turned.mp4");
    ffmpeg(&format!(
        "-i {} -c copy -metadata:s:v:0 rotate=180 {}",
        conforming.display(),
        turned.display()
    ));
    let (_, v) = probe(turned.to_str().unwrap(), "360p").await;
    assert_eq!(v["video"]["orientation"], "rotate-180", "{v:#}");
    assert_eq!(v["passthrough"], false, "{v:#}");
    assert!(
        v["reason"].as_str().unwrap().contains("rotate-180"),
        "{v:#}"
    );
}

#[tokio::test]
async fn gstreamer_chatter_goes_to_the_log_not_the_terminal() {
    let sample = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/media-samples/tone-440hz-2s.ogg"
    );
    // With GStreamer's warnings asked for (GST_DEBUG=3), stderr still stays the user's.
    let out = callfeed()
        .env("GST_DEBUG", "3")
        .args(["probe", sample])
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let (_, err) = text(&out);
    assert!(err.is_empty(), "GStreamer printed on stderr: {err}");
    // Asked for, it is in the log.
    let out = callfeed()
        .env("GST_DEBUG", "3")
        .args(["--log", "gstreamer=debug", "probe", sample])
        .output()
        .await
        .unwrap();
    let (_, err) = text(&out);
    assert!(err.contains("gstreamer:"), "{err}");
}

#[tokio::test]
async fn passthrough_is_decided_on_the_bitstream_not_the_profile_name() {
    let dir = tempfile::tempdir().unwrap();
    let make = |name: &str, source: &str, video: &str, seconds: u32| {
        let path = dir.path().join(name);
        ffmpeg(&format!(
            "-f lavfi -i {source}=s=640x360:r=30:d={seconds} -f lavfi -i sine=d={seconds}:sample_rate=48000 \
             -pix_fmt yuv420p -c:v libx264 {video} -c:a aac -ar 48000 -movflags +faststart {}",
            path.display()
        ));
        path
    };
    let cases = [
        (
            make(
                "main.mp4",
                "testsrc",
                "-profile:v main -bf 0 -g 30 -b:v 600k",
                3,
            ),
            None,
        ),
        (
            make(
                "high.mp4",
                "testsrc",
                "-profile:v high -bf 0 -g 30 -b:v 600k",
                3,
            ),
            None,
        ),
        (
            make(
                "small.mp4",
                "testsrc",
                "-profile:v high -bf 0 -g 30 -s 320x180 -b:v 300k",
                3,
            ),
            None,
        ),
        (
            make(
                "bframes.mp4",
                "testsrc",
                "-profile:v high -bf 2 -g 30 -b:v 600k",
                3,
            ),
            Some("B-frames"),
        ),
        (
            make(
                "longgop.mp4",
                "testsrc",
                "-profile:v baseline -g 300 -b:v 600k",
                5,
            ),
            Some("keyframes up to 5.0 s apart"),
        ),
        (
            make(
                "highrate.mp4",
                "testsrc2",
                "-profile:v high -bf 0 -g 30 -qp 4",
                3,
            ),
            Some("at most 1200 kb/s"),
        ),
    ];
    for (file, refused) in cases {
        let (out, v) = probe(file.to_str().unwrap(), "360p").await;
        assert!(out.status.success(), "{}", text(&out).1);
        match refused {
            None => assert_eq!(v["passthrough"], true, "{file:?}: {v:#}"),
            Some(criterion) => {
                assert_eq!(v["passthrough"], false, "{file:?}: {v:#}");
                let reason = v["reason"].as_str().unwrap();
                assert!(reason.contains(criterion), "{file:?}: {reason}");
            }
        }
        // Every criterion checked is stated with what was measured.
        let checks = v["checks"].as_array().unwrap();
        assert!(checks.iter().all(|c| c["measured"].is_string()), "{v:#}");
    }
}

/// A 640x360 picture of the phone clip turned upright: the black half on top, pillarboxed.
fn assert_upright_phone_picture(luma: &[u8]) {
    let at = |x: usize, y: usize| luma[y * 640 + x];
    let (dark, bright) = (|l: u8| l < 60, |l: u8| l > 180);
    // Upright, the picture is 270x360 in the middle of the frame (x 185..455), pillarboxed.
    for (x, y, want_dark, what) in [
        (260, 60, true, "the black half on top"),
        (380, 60, true, "the black half on top"),
        (260, 300, false, "the white half below"),
        (380, 300, false, "the white half below"),
        (200, 300, false, "the portrait picture's left edge"),
        (440, 300, false, "the portrait picture's right edge"),
        (100, 300, true, "a border on the left"),
        (540, 300, true, "a border on the right"),
    ] {
        let l = at(x, y);
        assert!(
            if want_dark { dark(l) } else { bright(l) },
            "{what}: luma {l} at ({x}, {y})"
        );
    }
}
