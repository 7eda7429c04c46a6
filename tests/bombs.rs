//! Pictures and inputs too large to decode (issue 23, items 2 and 7), against a real
//! `callfeed serve` process and the emulator: files of a few bytes that claim a picture of
//! gigabytes, an animation of thousands of frames, an 8192x8192 clip and a cover art bomb,
//! put under the node's media root. Each is refused before any call rings, naming its
//! size; the largest input that is accepted is decoded within the bound the README states;
//! the process stays alive, answering, and under that bound all along.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common;
use crate::common::serve::{Api, TOKEN};
use crate::common::{callfeed_cli, ffmpeg};
use serde_json::{Value, json};

/// The README's bound on a node's memory while one input is decoded (`### callfeed serve`,
/// "Limits"): the whole process's peak resident set.
const NODE_BOUND_KB: u64 = 512 * 1024;

/// A GIF of `frames` 1x1 frames on a `width`x`height` screen: a few bytes a frame,
/// whatever the screen claims.
fn gif(width: u16, height: u16, frames: usize) -> Vec<u8> {
    let mut gif = b"GIF89a".to_vec();
    gif.extend(width.to_le_bytes());
    gif.extend(height.to_le_bytes());
    gif.extend([0x80, 0, 0, 0, 0, 0, 255, 255, 255]);
    for _ in 0..frames {
        // 100 ms each, then a 1x1 frame of colour 0 (clear, 0, end in 3-bit LZW codes).
        gif.extend([0x21, 0xF9, 4, 0, 10, 0, 0, 0]);
        gif.extend([0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 0x44, 0x01, 0]);
    }
    gif.push(0x3B);
    gif
}

/// A PNG chunk with its CRC (a decoder checks it).
fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut c = (data.len() as u32).to_be_bytes().to_vec();
    c.extend(kind);
    c.extend(data);
    let mut crc = !0u32;
    for &byte in kind.iter().chain(data) {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    c.extend((!crc).to_be_bytes());
    c
}

/// An APNG of two frames on a `size`x`size` canvas, its image data a few bytes of zlib that
/// end early: a decoder that trusts the header allocates the canvas first.
fn apng(size: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = size.to_be_bytes().to_vec();
    ihdr.extend(size.to_be_bytes());
    ihdr.extend([8, 6, 0, 0, 0]);
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(b"acTL", &[0, 0, 0, 2, 0, 0, 0, 0]));
    // Sequence numbers: fcTL 0, (IDAT), fcTL 1, fdAT 2.
    for (n, data) in [(0u32, &b"IDAT"[..]), (1, &b"fdAT"[..])] {
        let mut fctl = n.to_be_bytes().to_vec();
        fctl.extend(size.to_be_bytes());
        fctl.extend(size.to_be_bytes());
        fctl.extend([0; 8]);
        fctl.extend([0, 1, 0, 10, 0, 0]);
        png.extend(chunk(b"fcTL", &fctl));
        let mut body = if n == 0 {
            Vec::new()
        } else {
            (n + 1).to_be_bytes().to_vec()
        };
        body.extend([0x78, 0x01, 0x01, 0x00, 0x00]);
        png.extend(chunk(data.try_into().unwrap(), &body));
    }
    png.extend(chunk(b"IEND", &[]));
    png
}

/// An MP3 whose cover art is a JPEG claiming 65535x65535 (its frame header patched).
fn cover_bomb(dir: &Path) -> std::path::PathBuf {
    let (jpeg, mp3) = (dir.join("cover.jpg"), dir.join("cover-bomb.mp3"));
    ffmpeg(&format!(
        "-f lavfi -i color=c=red:s=64x64 -frames:v 1 {}",
        jpeg.display()
    ));
    ffmpeg(&format!(
        "-f lavfi -i sine=d=1 -i {} -map 0 -map 1 -c:a libmp3lame -c:v copy -id3v2_version 3 -disposition:v attached_pic {}",
        jpeg.display(),
        mp3.display()
    ));
    let mut bytes = std::fs::read(&mp3).unwrap();
    let sof = bytes.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    bytes[sof + 5..sof + 9].copy_from_slice(&[0xFF; 4]);
    std::fs::write(&mp3, bytes).unwrap();
    std::fs::remove_file(jpeg).unwrap();
    mp3
}

/// A clip of a flat colour: `frames` frames of `size` H.264 in MP4.
fn clip(path: &Path, size: &str, frames: u32) {
    ffmpeg(&format!(
        "-f lavfi -i color=c=blue:s={size}:r=10,format=yuv420p -frames:v {frames} -c:v libx264 -preset ultrafast -tune zerolatency -threads 1 {}",
        path.display()
    ));
}

/// A field of `/proc/PID/status`, in kB.
fn proc_status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{field} in {status}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bombs_under_the_media_root_are_refused_and_the_node_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    std::fs::create_dir(&media).unwrap();
    let put = |name: &str, bytes: Vec<u8>| {
        let path = media.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    // Each bomb and the size (or count) its refusal must name.
    let mut bombs = vec![
        (put("screen-65535.gif", gif(65535, 65535, 1)), "65535x65535"),
        (put("screen-16384.gif", gif(16384, 16384, 2)), "16384x16384"),
        (put("canvas-16384.png", apng(16384)), "16384x16384"),
        (
            put("frames-3000.gif", gif(64, 48, 3000)),
            "more than 1800 frames",
        ),
    ];
    let big = media.join("clip-8192.mp4");
    clip(&big, "8192x8192", 1);
    bombs.push((big, "8192x8192"));
    bombs.push((cover_bomb(&media), "cover art is 65535x65535"));
    assert!(std::fs::metadata(&bombs[0].0).unwrap().len() < 100);
    // The largest inputs that are decoded: a 3840x2160 clip and animation.
    let uhd = media.join("clip-3840x2160.mp4");
    clip(&uhd, "3840x2160", 10);
    let largest = [uhd, put("anim-3840x2160.gif", gif(3840, 2160, 2))];

    let bin = env!("CARGO_BIN_EXE_callfeed");
    let (_emulator, endpoints) =
        common::processes::start(bin, &["emulator", "--listen", "127.0.0.1:0"], &[]).await;
    let journal = dir.path().join("journal.sqlite");
    // A cache of its own: the largest inputs are transcoded by this node, not found ready.
    let cache = dir.path().join("cache");
    let (mut serve, ready) = common::processes::start(
        bin,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--journal",
            journal.to_str().unwrap(),
            "--media-root",
            media.to_str().unwrap(),
            "--allow-url-host",
            "127.0.0.1",
        ],
        &[
            (
                "CALLFEED_IM_ENDPOINT",
                endpoints["im_endpoint"].as_str().unwrap(),
            ),
            (
                "CALLFEED_TRTC_ENDPOINT",
                endpoints["trtc_endpoint"].as_str().unwrap(),
            ),
            ("CALLFEED_API_TOKEN", TOKEN),
            ("XDG_CACHE_HOME", cache.to_str().unwrap()),
        ],
    )
    .await;
    let pid = serve.id().unwrap();
    let api = Api {
        base: ready["api"].as_str().unwrap().to_owned(),
        http: reqwest::Client::new(),
    };
    let started_kb = proc_status_kb(pid, "VmRSS:");

    for (i, (bomb, named)) in bombs.iter().enumerate() {
        let asked = Instant::now();
        let (status, body) = api
            .post(
                json!({"to":["jack"],"media":bomb,"room":format!("bomb-{i}"),"media_type":"video"}),
            )
            .await;
        let took = asked.elapsed();
        assert_eq!(status, 422, "{bomb:?}: {body}");
        assert_eq!(body["field"], "media", "{body}");
        let reason = body["error"].as_str().unwrap();
        assert!(reason.contains(named), "{bomb:?}: {reason}");
        // The 3,000-frame GIF is counted, not decoded: refused at once.
        assert!(took < Duration::from_secs(10), "{bomb:?} took {took:?}");
        assert!(
            serve.try_wait().unwrap().is_none(),
            "the node died on {bomb:?}"
        );
    }
    // No call rang for any of them.
    let calls = reqwest::get(format!("{}/calls", endpoints["control"].as_str().unwrap()))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let calls: Value = serde_json::from_slice(&calls).unwrap();
    assert_eq!(calls["calls"].as_array().map(Vec::len), Some(0), "{calls}");

    // The same pictures from a URL: nothing reads their headers first, so the decoder's own
    // output caps are where the size shows; it is held there, before it allocates.
    let site = common::serve_dir(&media).await;
    // A GIF from a URL is not decoded at all (libav's GIF demuxer spins on some: only the
    // `image` crate plays GIFs, from files); an APNG's canvas is caught by its size.
    let from_urls = [
        ("screen-65535.gif", "from a file only"),
        ("screen-16384.gif", "from a file only"),
        ("canvas-16384.png", "16384x16384"),
    ];
    for (i, (name, named)) in from_urls.iter().enumerate() {
        let url = format!("{site}{name}");
        let (status, created) = api
            .post(json!({"to":["jack"],"media":url,"room":format!("url-bomb-{i}"),"media_type":"video","live":true,"direct":"never"}))
            .await;
        let said = if status == 201 {
            let id = created["id"].as_str().unwrap();
            let ended = api.ended(id, Duration::from_secs(60)).await;
            assert_eq!(ended["report"]["result"], "failed", "{url}: {ended:#}");
            ended["report"]["reason"].to_string()
        } else {
            assert_eq!(status, 422, "{url}: {created}");
            created["error"].to_string()
        };
        assert!(said.contains(named), "{url}: {said}");
        assert!(
            serve.try_wait().unwrap().is_none(),
            "the node died on {url}"
        );
    }

    // The largest inputs accepted are decoded (transcoded once) and played.
    for (i, input) in largest.iter().enumerate() {
        let (status, created) = api
            .post(json!({"to":["jack"],"media":input,"room":format!("largest-{i}"),"media_type":"video","profile":"1080p","max_duration_secs":1}))
            .await;
        assert_eq!(status, 201, "{input:?}: {created}");
        let id = created["id"].as_str().unwrap();
        let ended = api.ended(id, Duration::from_secs(180)).await;
        assert_eq!(
            ended["report"]["result"], "completed",
            "{input:?}: {ended:#}"
        );
    }

    let (status, _) = api.call(reqwest::Method::GET, "/healthz", None, None).await;
    assert_eq!(status, 200);
    assert!(serve.try_wait().unwrap().is_none(), "the node is alive");
    let peak_kb = proc_status_kb(pid, "VmHWM:");
    eprintln!(
        "serve: {} MB at start, peak {} MB (bound {} MB)",
        started_kb / 1024,
        peak_kb / 1024,
        NODE_BOUND_KB / 1024
    );
    assert!(peak_kb < NODE_BOUND_KB, "peak {peak_kb} kB");
}

#[tokio::test]
async fn probing_an_8192_clip_exits_2_naming_its_size_and_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("clip-8192.mp4");
    clip(&big, "8192x8192", 1);
    let probe = |scale: &'static str| {
        let mut cmd = callfeed_cli("callfeed-bombs");
        cmd.arg("probe")
            .arg(&big)
            .args(["--max-input-scale", scale])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.output()
    };
    let out = probe("2").await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("the video is 8192x8192")
            && stderr.contains("inputs up to 3840x2160 are decoded")
            && stderr.contains("scale it down"),
        "{stderr}"
    );
    // The limit is a setting: four times 1080p is still smaller than this clip.
    let out = probe("4").await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("inputs up to 7680x4320"), "{stderr}");
}
