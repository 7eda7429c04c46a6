//! Files that lie about themselves, as users bring them: a header promising more than the
//! file holds (an interrupted copy), nothing playable behind a whole header, a late first
//! timestamp, tracks nobody decodes, a conforming file written as MP4, a rotated clip by
//! URL, subtitles that would stall a probe. What a user observes: the exit code, what the
//! room heard and for how long, the output's length and bytes, what `probe` says.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::Value;

fn callfeed() -> tokio::process::Command {
    callfeed_cli("callfeed-lying-files-state")
}

/// `ffmpeg` writing `dir/name`.
fn make(dir: &Path, name: &str, args: &str) -> PathBuf {
    let path = dir.join(name);
    ffmpeg(&format!("{args} {}", path.display()));
    path
}

/// The first `bytes` of `from`, as an interrupted copy leaves it.
fn cut(from: &Path, to: &Path, bytes: usize) -> PathBuf {
    let data = std::fs::read(from).unwrap();
    std::fs::write(to, &data[..bytes.min(data.len())]).unwrap();
    to.to_path_buf()
}

/// A file's length as ffprobe reads it, in seconds.
fn ffprobe_seconds(path: &Path) -> f64 {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("ffprobe {path:?}: {out:?}"))
}

async fn probe_json(input: &str) -> (Option<i32>, Value, String) {
    let out = callfeed()
        .args(["probe", input, "--json"])
        .output()
        .await
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_default();
    (
        out.status.code(),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `callfeed push INPUT --profile 360p --mp4 OUT`, its output.
async fn push_mp4(input: &Path, out: &Path) -> std::process::Output {
    callfeed()
        .arg("push")
        .arg(input)
        .args(["--profile", "360p", "--mp4"])
        .arg(out)
        .output()
        .await
        .unwrap()
}

/// `callfeed call --emulator` of `media` at 360p: the exit code, the JSON report, stderr.
async fn call(
    media: impl AsRef<std::ffi::OsStr>,
    media_type: &str,
) -> (Option<i32>, Value, String) {
    let out = callfeed()
        .args(["call", "--emulator", "--to", "jack", "--room", "lying"])
        .arg("--media")
        .arg(media)
        .args(["--media-type", media_type, "--profile", "360p"])
        .args(["--callee-answers-after", "200", "--json"])
        .output()
        .await
        .unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or_default();
    (
        out.status.code(),
        report,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_that_promises_more_is_heard_once_and_the_call_completes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A FLAC whose STREAMINFO says 20 s, cut after about 4 s of frames.
    let whole = make(d, "whole.flac", "-f lavfi -i sine=f=440:d=20 -c:a flac");
    let flac = cut(&whole, &d.join("interrupted.flac"), 60_000);
    // A Matroska file that says 8 s and stops near 3 s.
    let mkv_whole = make(
        d,
        "whole.mkv",
        "-f lavfi -i sine=f=440:d=8 -c:a libopus -b:a 64k",
    );
    let mkv_len = std::fs::metadata(&mkv_whole).unwrap().len() as usize;
    let mkv = cut(&mkv_whole, &d.join("interrupted.mkv"), mkv_len * 3 / 8);

    // The same FLAC (about 4.3 s) with an absurd length in its STREAMINFO (2^36 - 1
    // samples: 18 days), and with none (0: unknown).
    let streaminfo = |name: &str, total: [u8; 5]| {
        let mut data = std::fs::read(&flac).unwrap();
        // After "fLaC", the block header and 10 bytes of sizes: rate (20 bits), channels (3),
        // bits per sample (5), then the total samples (36 bits) from byte 21's low nibble.
        data[21] = (data[21] & 0xf0) | (total[0] & 0x0f);
        data[22..26].copy_from_slice(&total[1..]);
        let path = d.join(name);
        std::fs::write(&path, data).unwrap();
        path
    };
    let absurd = streaminfo("absurd.flac", [0x0f, 0xff, 0xff, 0xff, 0xff]);
    let unknown = streaminfo("unknown.flac", [0; 5]);
    // And one that says less than it holds: 1 s (44,100 samples).
    let shorter = streaminfo("shorter.flac", [0, 0, 0, 0xac, 0x44]);
    let (code, probed, err) = probe_json(unknown.to_str().unwrap()).await;
    assert_eq!(code, Some(0), "{err}");
    let measured = probed["duration_ms"].as_f64().unwrap_or(0.0);
    assert!(measured > 3000.0 && measured < 5000.0, "{probed:#}");

    for (file, declared) in [
        (&flac, 20.0),
        (&mkv, 8.0),
        (&absurd, 1_558_264.8),
        (&shorter, 1.0),
    ] {
        let (code, probed, err) = probe_json(file.to_str().unwrap()).await;
        assert_eq!(code, Some(0), "{file:?}: {err}");
        let measured = probed["duration_ms"].as_f64().unwrap() / 1000.0;
        let claimed = probed["declared_duration_ms"].as_f64().unwrap_or(0.0) / 1000.0;
        assert!(
            measured > 1.5 && measured < 5.0,
            "{file:?} measured {measured} s: {probed:#}"
        );
        assert!(
            (claimed - declared).abs() < 1.0,
            "{file:?}: the header's figure is shown too: {probed:#}"
        );

        // Heard once, from its first moment, and the call completes.
        let (code, report, err) = call(file, "audio").await;
        assert_eq!(code, Some(0), "{file:?}: {err}\n{report:#}");
        assert_eq!(report["result"], "completed", "{file:?}: {report:#}");
        assert_eq!(
            report["task_restarts"].as_u64().unwrap_or(0),
            0,
            "{report:#}"
        );
        let heard_s = report["room"]["audio_ms"].as_f64().unwrap_or(0.0) / 1000.0;
        assert!(
            heard_s > measured * 0.7 && heard_s < measured * 1.5 + 1.0,
            "{file:?}: the room heard {heard_s} s of a {measured} s file: {report:#}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_with_nothing_playable_is_refused_before_anything_rings() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // An audiobook cut off right after its header: the `moov` says 30 s of AAC, no sample
    // follows.
    let book = make(
        d,
        "book.m4a",
        "-f lavfi -i sine=d=30 -c:a aac -movflags +faststart",
    );
    let data = std::fs::read(&book).unwrap();
    let mdat = data.windows(4).position(|w| w == b"mdat").unwrap();
    let empty = cut(&book, &d.join("empty.m4b"), mdat + 12);
    // A video whose sample table points past the end of the file.
    let clip = make(
        d,
        "clip.mp4",
        "-f lavfi -i testsrc=s=320x240:r=30:d=6 -f lavfi -i sine=d=6 -pix_fmt yuv420p \
         -c:v libx264 -c:a aac -movflags +faststart",
    );
    let len = std::fs::metadata(&clip).unwrap().len() as usize;
    let truncated = cut(&clip, &d.join("truncated.mp4"), len / 2);

    for (file, named) in [(&empty, "none of it present"), (&truncated, "truncated")] {
        let (code, _, err) = probe_json(file.to_str().unwrap()).await;
        assert_eq!(code, Some(2), "{file:?}: {err}");
        assert!(err.contains(named), "{file:?}: {err}");
        // Never an MP4 that nothing opens.
        let out_path = d.join("out.mp4");
        let out = push_mp4(file, &out_path).await;
        assert_eq!(out.status.code(), Some(2), "{file:?}: {out:?}");
        assert!(!out_path.exists(), "{file:?} left an output");
        // A call refuses it before the phone rings: exit 2, and no call was placed.
        let (code, report, err) = call(file, "audio").await;
        assert_eq!(code, Some(2), "{file:?}: {err}\n{report:#}");
        assert!(err.contains(named), "{file:?}: {err}");
        assert!(report["call_id"].is_null(), "a call was placed: {report:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_first_timestamp_plays_from_the_first_sample() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let late = make(
        d,
        "late.mp4",
        "-f lavfi -i testsrc=s=320x240:r=30:d=4 -f lavfi -i sine=f=440:d=4:sample_rate=48000 \
         -pix_fmt yuv420p -c:v libx264 -c:a aac -output_ts_offset 10",
    );
    let (code, probed, err) = probe_json(late.to_str().unwrap()).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        (probed["start_ms"].as_f64().unwrap_or(0.0) - 10_000.0).abs() < 100.0,
        "{probed:#}"
    );
    let out = d.join("out.mp4");
    let status = push_mp4(&late, &out).await.status;
    assert!(status.success());
    let length = ffprobe_seconds(&out);
    assert!(
        (length - 4.0).abs() < 0.3,
        "the announcement is {length} s long: the input's media lasts 4 s"
    );
    // Its first second is the tone, not silence.
    let level = first_second_level_db(&out);
    assert!(level > -30.0, "the first second is at {level} dB");

    // An empty edit on one track (audio starting 1 s after the video) is kept as the file
    // asks: only what all played tracks share is skipped.
    let delayed = make(
        d,
        "delayed.mp4",
        "-f lavfi -i testsrc=s=320x240:r=30:d=4 -itsoffset 1 -f lavfi -i sine=f=440:d=3:sample_rate=48000 \
         -pix_fmt yuv420p -c:v libx264 -c:a aac",
    );
    let out = d.join("delayed-out.mp4");
    let status = push_mp4(&delayed, &out).await.status;
    assert!(status.success());
    let (video, audio) = (stream_start(&out, "v"), stream_start(&out, "a"));
    assert!(
        video < 0.05 && (audio - 1.0).abs() < 0.1,
        "video starts at {video} s, audio at {audio} s"
    );
}

/// Where `path`'s first stream of `kind` (`v`, `a`) starts, in seconds, by ffprobe.
fn stream_start(path: &Path, kind: &str) -> f64 {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", kind])
        .args(["-show_entries", "stream=start_time", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(f64::NAN)
}

/// The mean volume of `path`'s first second of audio, by ffmpeg.
fn first_second_level_db(path: &Path) -> f64 {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "info", "-t", "1", "-i"])
        .arg(path)
        .args(["-af", "volumedetect", "-f", "null", "-"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    text.lines()
        .find_map(|l| l.split("mean_volume:").nth(1))
        .and_then(|v| v.trim().trim_end_matches("dB").trim().parse().ok())
        .unwrap_or(f64::NEG_INFINITY)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracks_nobody_decodes_are_ignored_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("words.srt"),
        "1\n00:00:00,500 --> 00:00:01,500\nhello\n\n",
    )
    .unwrap();
    // WebVTT subtitles, which no GStreamer plugin decodes, beside decodable audio and video.
    let file = make(
        d,
        "subtitled.mkv",
        &format!(
            "-f lavfi -i testsrc=s=320x240:r=30:d=2 -f lavfi -i sine=d=2 -i {} -map 0 -map 1 -map 2 \
             -pix_fmt yuv420p -c:v libx264 -c:a libopus -c:s webvtt",
            d.join("words.srt").display()
        ),
    );
    let out = callfeed().arg("probe").arg(&file).output().await.unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        said.lines()
            .any(|l| l.starts_with("track       subtitle") && l.contains("ignored")),
        "{said}"
    );
    let written = d.join("out.mp4");
    let status = push_mp4(&file, &written).await.status;
    assert!(status.success());
    assert!((ffprobe_seconds(&written) - 2.0).abs() < 0.3);

    // An iPhone's timed-metadata track: a `meta` handler with `mebx` samples, made from a
    // text track whose names are changed.
    let texted = make(
        d,
        "texted.mp4",
        &format!(
            "-f lavfi -i testsrc=s=320x240:r=30:d=2 -f lavfi -i sine=d=2 -i {} -map 0 -map 1 -map 2 \
             -pix_fmt yuv420p -c:v libx264 -c:a aac -c:s mov_text",
            d.join("words.srt").display()
        ),
    );
    let mut data = std::fs::read(&texted).unwrap();
    for (from, to) in [(b"tx3g", b"mebx"), (b"sbtl", b"meta")] {
        let at = data.windows(4).position(|w| w == from).unwrap();
        data[at..at + 4].copy_from_slice(to);
    }
    let phone = d.join("phone.mov");
    std::fs::write(&phone, data).unwrap();
    let written = d.join("phone-out.mp4");
    let out = push_mp4(&phone, &written).await;
    assert!(out.status.success(), "{out:?}");
    assert!((ffprobe_seconds(&written) - 2.0).abs() < 0.3);
}

/// Each H.264 packet's hash, in order (ffmpeg's `framemd5` of the stream copied).
fn h264_packet_hashes(path: &Path) -> Vec<String> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:v", "-c", "copy", "-f", "framemd5", "-"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit(',').next().map(|h| h.trim().to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conforming_file_written_as_mp4_is_remuxed_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let conforming = make(
        d,
        "conforming.mp4",
        "-f lavfi -i testsrc=s=640x360:r=30:d=3 -f lavfi -i sine=d=3:sample_rate=48000 \
         -pix_fmt yuv420p -c:v libx264 -profile:v main -bf 0 -g 30 -b:v 500k -c:a aac \
         -movflags +faststart",
    );
    let (_, probed, _) = probe_json(conforming.to_str().unwrap()).await;
    assert_eq!(probed["passthrough"], true, "{probed:#}");
    let written = d.join("out.mp4");
    let out = push_mp4(&conforming, &written).await;
    assert!(out.status.success(), "{out:?}");
    let (input, output) = (
        h264_packet_hashes(&conforming),
        h264_packet_hashes(&written),
    );
    assert_eq!(input.len(), 90);
    assert_eq!(input, output, "the H.264 packets changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_clip_by_url_is_not_handed_to_the_cloud() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let upright = make(
        d,
        "upright.mp4",
        "-f lavfi -i testsrc=s=640x360:r=30:d=3 -f lavfi -i sine=d=3:sample_rate=48000 \
         -pix_fmt yuv420p -c:v libx264 -profile:v main -bf 0 -g 30 -b:v 500k -c:a aac \
         -movflags +faststart",
    );
    make(
        d,
        "phone.mp4",
        &format!("-i {} -c copy -metadata:s:v:0 rotate=90", upright.display()),
    );
    let site = serve_dir(d).await;
    let (code, probed, err) = probe_json(&format!("{site}upright.mp4")).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(probed["plan"]["mode"], "direct", "{probed:#}");
    let (code, probed, err) = probe_json(&format!("{site}phone.mp4")).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(probed["direct"][0], false, "{probed:#}");
    assert_eq!(probed["plan"]["mode"], "live", "{probed:#}");
    assert!(
        probed["plan"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("upright")),
        "{probed:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_does_not_wait_on_subtitles() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("late.srt"),
        "1\n00:00:25,000 --> 00:00:26,000\nlate\n\n",
    )
    .unwrap();
    let plain = make(
        d,
        "plain.mkv",
        "-f lavfi -i testsrc=s=320x240:r=30:d=30 -f lavfi -i sine=d=30 -pix_fmt yuv420p \
         -c:v libx264 -preset ultrafast -c:a aac",
    );
    let subtitled = make(
        d,
        "subtitled.mkv",
        &format!(
            "-i {} -i {} -map 0 -map 1 -c:v copy -c:a copy -c:s srt",
            plain.display(),
            d.join("late.srt").display()
        ),
    );
    let mut took = Vec::new();
    for file in [&plain, &subtitled] {
        let started = Instant::now();
        let (code, _, err) = probe_json(file.to_str().unwrap()).await;
        assert_eq!(code, Some(0), "{file:?}: {err}");
        took.push(started.elapsed());
    }
    // Today's figure is within 0.3 s; a loaded CI machine gets a second.
    assert!(
        took[1] < took[0] + Duration::from_secs(1),
        "the subtitled file took {:?}, the plain one {:?}",
        took[1],
        took[0]
    );
}

#[tokio::test]
async fn writing_an_mp4_of_a_still_or_a_url_says_it_is_streamed_live() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let still = make(
        d,
        "still.png",
        "-f lavfi -i color=c=red:s=64x64 -frames:v 1",
    );
    let out = push_mp4(&still, &d.join("out.mp4")).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("a local audio or video file") && err.contains("streamed live"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_whose_header_promises_more_is_played_once_by_the_cloud() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // What the cloud takes as it is (H.264 without B-frames, AAC at 48 kHz), in a Matroska
    // file that says 8 s and stops near 3 s: an interrupted upload.
    let whole = make(
        d,
        "whole.mkv",
        "-f lavfi -i testsrc=s=640x360:r=30:d=8 -f lavfi -i sine=f=440:d=8:sample_rate=48000 \
         -pix_fmt yuv420p -c:v libx264 -profile:v main -bf 0 -g 30 -b:v 400k -c:a aac",
    );
    let len = std::fs::metadata(&whole).unwrap().len() as usize;
    cut(&whole, &d.join("upload.mkv"), len * 3 / 8);
    let site = serve_dir(d).await;
    let (code, report, err) = call(format!("{site}upload.mkv"), "video").await;
    assert_eq!(report["mode"], "direct", "{err}\n{report:#}");
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(
        report["task_restarts"], 0,
        "it was started again: {report:#}"
    );
    let heard_s = report["room"]["audio_ms"].as_f64().unwrap_or(0.0) / 1000.0;
    assert!(
        heard_s > 1.5 && heard_s < 5.0,
        "the room heard {heard_s} s of a file holding about 3 s: {report:#}"
    );
}
