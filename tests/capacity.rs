//! A node admits what it can run in real time, and what it runs cannot take it down: live
//! 1080p encodes of a real-world clip (High profile, B-frames) against a real `callfeed
//! serve --emulator` process.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

const TOKEN: &str = "capacity-token";

/// A 1080p High-profile clip with B-frames and 44.1 kHz audio, as phones and editors write.
fn real_clip(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("clip-1080p-high.mp4");
    common::ffmpeg(&format!(
        "-f lavfi -i testsrc2=size=1920x1080:rate=30:duration=4 -f lavfi -i sine=f=440:d=4:sample_rate=44100 \
         -c:v libx264 -preset superfast -profile:v high -x264-params bframes=3 -pix_fmt yuv420p \
         -c:a aac -shortest {}",
        path.display()
    ));
    path
}

struct Node {
    child: tokio::process::Child,
    api: String,
    http: reqwest::Client,
}

impl Node {
    async fn start(media_root: &std::path::Path, extra: &[&str]) -> Self {
        let mut child = common::callfeed_cli("callfeed-capacity-state")
            .args([
                "serve",
                "--emulator",
                "--listen",
                "127.0.0.1:0",
                "--media-root",
            ])
            .arg(media_root)
            .args(extra)
            .env("CALLFEED_API_TOKEN", TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(Duration::from_secs(15), lines.next_line())
            .await
            .expect("ready within 30 s")
            .unwrap()
            .unwrap();
        let ready: Value = serde_json::from_str(&line).unwrap();
        Self {
            child,
            api: ready["api"].as_str().unwrap().to_owned(),
            http: reqwest::Client::new(),
        }
    }

    async fn post(&self, body: Value) -> (u16, Option<String>, Value) {
        let r = self
            .http
            .post(format!("{}/v1/sessions", self.api))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let retry = r
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap_or_default();
        (status, retry, body)
    }

    async fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.api))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        serde_json::from_slice(&r.bytes().await.unwrap()).unwrap()
    }

    /// The process's resident memory now, and its peak, in MB.
    fn memory_mb(&self) -> (u64, u64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.child.id().unwrap())).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
                .unwrap()
                / 1024
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Waits until every session in `ids` is ingesting.
    async fn all_ingesting(&self, ids: &[String]) {
        let deadline = Instant::now() + Duration::from_secs(60);
        for id in ids {
            loop {
                let v = self.get(&format!("/v1/sessions/{id}")).await;
                if v["status"]["phase"] == "ingesting" {
                    break;
                }
                assert!(v["report"].is_null(), "{id} ended early: {v:#}");
                assert!(Instant::now() < deadline, "{id} never bound: {v:#}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

fn live_1080p(clip: &std::path::Path, room: &str) -> Value {
    json!({"to": ["jack"], "media": clip.display().to_string(), "room": room,
        "media_type": "video", "profile": "1080p", "live": true, "loop_forever": true,
        "max_duration_secs": 60})
}

/// Each session's pictures, emitted and dropped, over the seconds it has streamed.
async fn pictures(node: &Node, ids: &[String]) -> Vec<(u64, u64)> {
    let mut all = Vec::new();
    for id in ids {
        let v = node.get(&format!("/v1/sessions/{id}")).await;
        let media = &v["status"]["media"];
        all.push((
            media["frames_out"].as_u64().unwrap_or(0),
            media["dropped_frames"].as_u64().unwrap_or(0),
        ));
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_default_node_admits_only_the_live_encodes_it_can_run_and_answers_429_for_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let clip = real_clip(dir.path());
    let node = Node::start(dir.path(), &[]).await;
    let cores = std::thread::available_parallelism().unwrap().get() as u64;
    // 20 units a core; a live 1080p encode costs 12.
    let fits = (cores * 20 / 12).min(6) as usize;
    let mut admitted = Vec::new();
    for i in 0..6 {
        let (status, retry, body) = node.post(live_1080p(&clip, &format!("room{i}"))).await;
        if i < fits {
            assert_eq!(status, 201, "session {i}: {body}");
            admitted.push(body["id"].as_str().unwrap().to_owned());
        } else {
            assert_eq!(
                status, 429,
                "session {i} is more than {cores} cores encode: {body}"
            );
            assert!(retry.is_some(), "a 429 says when to try again");
            let error = body["error"].as_str().unwrap();
            assert!(
                error.contains("costs 12") && error.contains("--max-sessions"),
                "{error}"
            );
        }
    }
    node.all_ingesting(&admitted).await;
    // An announcement of the same clip still fits beside them (it costs one unit).
    let (status, _, body) = node
        .post(
            json!({"to": ["jack"], "media": clip.display().to_string(), "room": "announce",
            "media_type": "video", "profile": "1080p"}),
        )
        .await;
    assert!(
        status == 201 || cores * 20 == fits as u64 * 12,
        "an announcement is refused though units are free: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_node_drops_and_counts_pictures_instead_of_queueing_them() {
    let dir = tempfile::tempdir().unwrap();
    let clip = real_clip(dir.path());
    // An operator who set the room far above what the machine encodes: six live 1080p
    // encodes on two cores are about twice what fits.
    let node = Node::start(dir.path(), &["--max-sessions", "1000"]).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        let (status, _, body) = node.post(live_1080p(&clip, &format!("over{i}"))).await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    node.all_ingesting(&ids).await;
    // Decoders, encoders and the room observer's pullers take their memory in the first
    // seconds; from then on it must stay flat.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (settled, _) = node.memory_mb();
    let before = pictures(&node, &ids).await;
    let started = Instant::now();
    let mut highest = settled;
    while started.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        highest = highest.max(node.memory_mb().0);
    }
    let secs = started.elapsed().as_secs_f64();
    let after = pictures(&node, &ids).await;
    let (_, peak) = node.memory_mb();
    eprintln!("RSS {settled} MB warmed up, highest {highest} MB over {secs:.0} s, peak {peak} MB");
    let mut dropped = 0;
    for ((out0, drop0), (out1, drop1)) in before.iter().zip(&after) {
        let emitted = (out1 - out0) + (drop1 - drop0);
        dropped += drop1 - drop0;
        eprintln!("  {} pictures out, {} dropped", out1 - out0, drop1 - drop0);
        // The timeline stays real-time: every tick's picture is sent or counted as dropped.
        assert!(
            emitted as f64 >= 0.9 * 30.0 * secs,
            "{emitted} pictures in {secs:.1} s: the stream fell behind real time"
        );
    }
    // Queued raw 1080p pictures would grow by tens of MB a second per session.
    assert!(
        highest <= settled + 100,
        "memory grew from {settled} to {highest} MB in {secs:.0} s"
    );
    // Six live 1080p encodes and the observer's six 1080p decodes (README, Limits).
    assert!(peak <= 1500, "peak {peak} MB");
    if dropped == 0 {
        eprintln!("this machine encoded all six in real time: nothing to drop");
    }
}

/// Sessions on `node` not ended yet.
async fn running(node: &Node) -> usize {
    let v = node.get("/v1/sessions").await;
    v["sessions"]
        .as_array()
        .map_or(0, |s| s.iter().filter(|s| s["report"].is_null()).count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_churning_live_video_sessions_goes_back_to_the_same_memory_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &["--keep-ended", "1"]).await;
    let mut idle = Vec::new();
    let mut n = 0;
    for _ in 0..4 {
        for _ in 0..16 {
            while running(&node).await >= 8 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let (status, _, body) = node
                .post(json!({"to": ["jack"], "media": "test:ball+tone=440", "room": format!("churn{n}"),
                    "media_type": "video", "profile": "360p", "max_duration_secs": 2}))
                .await;
            assert_eq!(status, 201, "{body}");
            n += 1;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while running(&node).await > 0 {
            assert!(Instant::now() < deadline, "sessions never ended");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        idle.push(node.memory_mb().0);
    }
    eprintln!("idle RSS after each 16 sessions: {idle:?} MB");
    // Pictures and codec state freed with each session go back to the system: churn does
    // not ratchet the resident size up (it did by ~5 MB every 16 sessions before).
    assert!(
        idle[3] <= idle[1] + 6,
        "idle memory grew with churn: {idle:?} MB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_larger_than_the_whole_node_is_refused_as_such_not_asked_to_wait() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &["--max-sessions", "10"]).await;
    let (status, retry, body) = node
        .post(
            json!({"to": ["jack"], "media": "test:ball+tone=440", "room": "huge",
            "media_type": "video", "profile": "1080p", "live": true}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(retry.is_none(), "no point retrying: {body}");
    assert_eq!(body["field"], "profile", "{body}");
    let (status, _, body) = node
        .post(
            json!({"to": ["jack"], "media": "test:ball+tone=440", "room": "fits",
            "media_type": "video", "profile": "720p", "live": true, "max_duration_secs": 1}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}
