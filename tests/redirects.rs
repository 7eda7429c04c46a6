//! An API client's input leads nowhere its policy refuses, even after it was admitted: a URL
//! may redirect, and the places it redirects to are judged like the URL itself — a host the
//! policy refuses gets no request from the node (not from the admission check, the probe, the
//! direct verdict or the pipeline) and is not handed to the cloud either; a folder of the
//! media root swapped for a link later plays nothing outside and names no outside path.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::serve::*;
use crate::common::*;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use callfeed::emulator::Emulator;
use callfeed::media::policy::{InputPolicy, Restrictions};
use serde_json::{Value, json};

/// A host the policy does not list: any connection to it is counted.
struct Forbidden {
    base: String,
    hits: Arc<AtomicUsize>,
}

impl Forbidden {
    async fn start() -> Self {
        // 127.0.0.2 is loopback too, but only 127.0.0.1 is listed.
        let listener = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                // Answered like an admin page would be, to show what would leak.
                tokio::spawn(async move {
                    use tokio::io::AsyncWriteExt;
                    let _ = socket
                        .write_all(b"HTTP/1.1 418 I'm a teapot\r\ncontent-length: 0\r\n\r\n")
                        .await;
                });
            }
        });
        Self { base, hits }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
struct Site {
    dir: std::path::PathBuf,
    forbidden: String,
    base: Arc<std::sync::OnceLock<String>>,
    /// Segments served: what the pipeline fetched before it came to the forbidden one.
    segments: Arc<AtomicUsize>,
}

fn is_gstreamer(headers: &HeaderMap) -> bool {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ua| ua.contains("GStreamer"))
}

fn redirect(to: String) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
}

/// The listed host: files, and redirects of every kind.
async fn route(State(site): State<Site>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    let base = site.base.get().unwrap();
    match name.as_str() {
        "to-forbidden.flv" => redirect(format!("{}/admin/x.flv", site.forbidden)),
        "hop.flv" => redirect(format!("{base}/to-forbidden.flv")),
        "to-clip.flv" => redirect(format!("{base}/clip.flv")),
        // What an attacker's host does when it tells the checker one thing and the media
        // engine another.
        "two-faced.flv" if is_gstreamer(&headers) => {
            redirect(format!("{}/admin/x.flv", site.forbidden))
        }
        "two-faced.flv" => file(&site.dir.join("clip.flv")),
        "redirected-segment.ts" => redirect(format!("{}/admin/seg.ts", site.forbidden)),
        other => {
            if other.ends_with(".ts") {
                site.segments.fetch_add(1, Ordering::SeqCst);
            }
            file(&site.dir.join(other))
        }
    }
}

fn file(path: &std::path::Path) -> Response {
    match std::fs::read(path) {
        Ok(bytes) => bytes.into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Serves the listed host on 127.0.0.1; its base URL.
async fn listed_site(dir: &std::path::Path, forbidden: &Forbidden) -> String {
    listed_site_counting(dir, forbidden).await.0
}

/// [`listed_site`], and how many segments it served.
async fn listed_site_counting(
    dir: &std::path::Path,
    forbidden: &Forbidden,
) -> (String, Arc<AtomicUsize>) {
    let segments = Arc::new(AtomicUsize::new(0));
    let site = Site {
        dir: dir.to_owned(),
        forbidden: forbidden.base.clone(),
        base: Arc::default(),
        segments: segments.clone(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    site.base.set(base.clone()).unwrap();
    let app = axum::Router::new()
        .route("/{name}", axum::routing::get(route))
        .with_state(site);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, segments)
}

async fn emulator() -> Emulator {
    Emulator::start(test_emulator_config(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

async fn emulator_list(emulator: &Emulator, what: &str) -> Vec<Value> {
    let url = format!("{}/{what}", emulator.endpoints().control);
    let body = reqwest::get(url).await.unwrap().bytes().await.unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap();
    v[what].as_array().cloned().unwrap_or_default()
}

/// An API client's view of a node that lists 127.0.0.1 only.
async fn restricted_node(
    emulator: &Emulator,
    dir: &std::path::Path,
) -> (
    Arc<callfeed::serve::api::Service<callfeed::session::CloudClients>>,
    Api,
) {
    start_service(emulator, &dir.join("journal.sqlite"), |c| {
        c.policy = InputPolicy::Restricted(
            Restrictions::new(&[], false, &["127.0.0.1".to_owned()]).unwrap(),
        );
    })
    .await
}

fn clip(dir: &std::path::Path) {
    Clip {
        seconds: 2,
        width: 320,
        height: 240,
        fps: 15,
        tone_hz: 440,
    }
    .write(dir, "clip.flv");
}

/// A finished HLS playlist of the given one-second segments.
fn playlist(segments: &[String]) -> String {
    let mut text =
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n".to_owned();
    for segment in segments {
        text.push_str(&format!("#EXTINF:1.0,\n{segment}\n"));
    }
    text + "#EXT-X-ENDLIST\n"
}

fn ts_segment(path: &std::path::Path) {
    ffmpeg(&format!(
        "-f lavfi -i testsrc=size=320x240:rate=15:duration=1 -f lavfi -i sine=f=440:d=1 -c:v libx264 -bf 0 -c:a aac -f mpegts {}",
        path.display()
    ));
}

/// Waits for the session's report; its result and failure reason.
async fn ended(api: &Api, created: &Value) -> Value {
    api.ended(created["id"].as_str().unwrap(), Duration::from_secs(40))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_an_unlisted_host_is_refused_whatever_the_direct_mode() {
    let dir = tempfile::tempdir().unwrap();
    clip(dir.path());
    let forbidden = Forbidden::start().await;
    let site = listed_site(dir.path(), &forbidden).await;
    let emulator = emulator().await;
    let (_service, api) = restricted_node(&emulator, dir.path()).await;
    let mut refusal = None;
    for (i, url) in ["to-forbidden.flv", "hop.flv"].iter().enumerate() {
        for direct in ["never", "auto", "always"] {
            let (status, body) = api
                .post(json!({"to":["jack"],"media":format!("{site}/{url}"),"room":format!("r{i}{direct}"),
                    "media_type":"audio","live":true,"direct":direct}))
                .await;
            assert_eq!(status, 422, "{url} with direct {direct}: {body}");
            assert_eq!(body["field"], "media", "{body}");
            // The one refusal every forbidden input gets: nothing of the other host in it.
            let text = body["error"].as_str().unwrap().to_owned();
            assert!(
                !text.contains("418") && !text.contains("127.0.0.2"),
                "{text}"
            );
            assert_eq!(refusal.get_or_insert(text.clone()), &text);
        }
    }
    assert_eq!(forbidden.hits(), 0, "the unlisted host was reached");
    assert!(emulator_list(&emulator, "calls").await.is_empty());
    assert!(emulator_list(&emulator, "tasks").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_on_the_listed_host_is_followed_and_the_cloud_gets_where_it_leads() {
    let dir = tempfile::tempdir().unwrap();
    clip(dir.path());
    let forbidden = Forbidden::start().await;
    let site = listed_site(dir.path(), &forbidden).await;
    let emulator = emulator().await;
    let (_service, api) = restricted_node(&emulator, dir.path()).await;
    let (status, created) = api
        .post(
            json!({"to":["jack"],"media":format!("{site}/to-clip.flv"),"room":"follow",
            "media_type":"audio","direct":"always"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let report = ended(&api, &created).await;
    assert_eq!(report["report"]["result"], "completed", "{report:#}");
    let tasks = emulator_list(&emulator, "tasks").await;
    assert_eq!(
        tasks[0]["stream_url"].as_str(),
        Some(format!("{site}/clip.flv").as_str()),
        "the cloud pulls where the redirect led: {tasks:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_redirects_only_the_media_engine_gets_nothing_followed() {
    let dir = tempfile::tempdir().unwrap();
    clip(dir.path());
    let forbidden = Forbidden::start().await;
    let site = listed_site(dir.path(), &forbidden).await;
    let emulator = emulator().await;
    let (_service, api) = restricted_node(&emulator, dir.path()).await;
    for direct in ["never", "auto"] {
        let (status, created) = api
            .post(json!({"to":["jack"],"media":format!("{site}/two-faced.flv"),"room":format!("two-{direct}"),
                "media_type":"audio","live":true,"direct":direct}))
            .await;
        let reason = if status == 201 {
            let report = ended(&api, &created).await;
            assert_eq!(report["report"]["result"], "failed", "{report:#}");
            report["report"].to_string()
        } else {
            assert_eq!(status, 422, "{created}");
            created.to_string()
        };
        assert!(
            !reason.contains("418") && !reason.contains("127.0.0.2"),
            "the other host shows in the answer: {reason}"
        );
    }
    assert_eq!(
        forbidden.hits(),
        0,
        "the probe or the pipeline followed a redirect"
    );
    assert!(emulator_list(&emulator, "calls").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_playlist_cannot_lead_its_later_segments_to_an_unlisted_host() {
    let dir = tempfile::tempdir().unwrap();
    ts_segment(&dir.path().join("seg0.ts"));
    let forbidden = Forbidden::start().await;
    let (site, segments) = listed_site_counting(dir.path(), &forbidden).await;
    // The first segment is fine; the second is on the other host, directly or redirected.
    std::fs::write(
        dir.path().join("direct.m3u8"),
        playlist(&[
            format!("{site}/seg0.ts"),
            format!("{site}/seg0.ts"),
            format!("{}/admin/seg.ts", forbidden.base),
        ]),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("redirected.m3u8"),
        playlist(&[
            format!("{site}/seg0.ts"),
            format!("{site}/seg0.ts"),
            format!("{site}/redirected-segment.ts"),
        ]),
    )
    .unwrap();
    let emulator = emulator().await;
    let (_service, api) = restricted_node(&emulator, dir.path()).await;
    for name in ["direct.m3u8", "redirected.m3u8"] {
        let (status, created) = api
            .post(json!({"to":["jack"],"media":format!("{site}/{name}"),"room":name,
                "media_type":"video","profile":"360p","live":true,"direct":"never","max_duration_secs":6}))
            .await;
        assert_eq!(status, 201, "{name}: {created}");
        let served = segments.load(Ordering::SeqCst);
        let report = ended(&api, &created).await;
        // The pipeline played on to the third segment: the first two came from the listed
        // host (so the guard, not an early end, is what kept the third from the other).
        assert!(
            segments.load(Ordering::SeqCst) >= served + 2,
            "{name}: the segments before were never fetched: {report:#}"
        );
    }
    assert_eq!(
        forbidden.hits(),
        0,
        "a later segment reached the unlisted host"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_swapped_in_after_admission_plays_nothing_outside_and_names_no_outside_path() {
    let emulator = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let sample = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/media-samples/tone-440hz-2s.ogg"
    );
    let media = dir.path().join("media");
    std::fs::create_dir_all(media.join("today")).unwrap();
    std::fs::copy(sample, media.join("today/tone.ogg")).unwrap();
    // Outside the media root, the same name with another tone: what the room hears tells
    // which file played.
    let outside = dir.path().join("private-outside");
    std::fs::create_dir(&outside).unwrap();
    let status = std::process::Command::new("gst-launch-1.0")
        .args([
            "-q",
            "audiotestsrc",
            "num-buffers=100",
            "freq=880",
            "!",
            "audioconvert",
            "!",
        ])
        .args(["vorbisenc", "!", "oggmux", "!", "filesink"])
        .arg(format!("location={}", outside.join("tone.ogg").display()))
        .status()
        .unwrap();
    assert!(status.success());
    let root = media.clone();
    let (_service, api) = start_service(&emulator, &dir.path().join("j.sqlite"), move |c| {
        c.policy = InputPolicy::Restricted(Restrictions::new(&[root], false, &[]).unwrap());
    })
    .await;
    let (status, created) = api
        .post(json!({"to":["jack"],"media":media.join("today/tone.ogg").display().to_string(),
            "room":"swap","media_type":"audio","live":true,"loop_forever":true,"max_duration_secs":10}))
        .await;
    assert_eq!(status, 201, "{created}");
    let path = format!("/v1/sessions/{}", created["id"].as_str().unwrap());
    api.until(&path, Duration::from_secs(30), |v| {
        v["status"]["phase"] == "ingesting"
    })
    .await;
    // The folder the admitted file is in becomes a link to a place outside the media root:
    // the next loop opens the same path.
    std::fs::rename(media.join("today"), media.join("yesterday")).unwrap();
    std::os::unix::fs::symlink(&outside, media.join("today")).unwrap();
    // It plays on (the file it opened) or stops at the next loop (the path now leads out);
    // either way it ends, and the room never hears the outside file.
    let ended = api
        .until(&path, Duration::from_secs(30), |v| !v["report"].is_null())
        .await;
    let tasks = {
        let url = format!("{}/tasks", emulator.endpoints().control);
        let body = reqwest::get(url).await.unwrap().bytes().await.unwrap();
        serde_json::from_slice::<Value>(&body).unwrap()["tasks"].clone()
    };
    let heard = tasks
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["room_id"] == "swap")
        .and_then(|t| t["dominant_hz"].as_f64());
    assert!(
        heard.is_some_and(|hz| (hz - 440.0).abs() < 30.0),
        "the room heard {heard:?} Hz (880 is the outside file): {ended:#}"
    );
    let (_, events) = api
        .call(
            reqwest::Method::GET,
            &format!("{path}/events"),
            None,
            Some(TOKEN),
        )
        .await;
    for said in [ended.to_string(), events.to_string()] {
        assert!(
            !said.contains("private-outside"),
            "the outside target shows: {said}"
        );
    }
}
