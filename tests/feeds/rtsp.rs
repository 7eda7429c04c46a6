//! IP cameras over RTSP, pulled from GStreamer's own RTSP server: as a session's input over
//! UDP and over TCP (`?transport=tcp`), as a feed, and a wrong password named before anything
//! rings.

use std::time::Duration;

use callfeed::emulator::Emulator;
use callfeed::media::policy::{InputPolicy, Restrictions};
use serde_json::json;

use super::sessions::rooms_until;
use crate::common::rtsp::{Camera, PASSWORD, USER};
use crate::common::serve::*;
use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_reaches_rooms_over_udp_and_tcp_and_a_wrong_password_rings_nothing() {
    let emulator = Emulator::start(test_emulator_config(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_service, api) = start_service(&emulator, &dir.path().join("j.sqlite"), |c| {
        let loopback = ["127.0.0.1".to_owned()];
        c.policy = InputPolicy::Restricted(Restrictions::new(&[], false, &loopback).unwrap());
    })
    .await;
    let camera = Camera::start(true);
    let url = camera.url(USER, PASSWORD);
    for (room, media) in [
        ("rtsp-udp", url.clone()),
        ("rtsp-tcp", format!("{url}?transport=tcp")),
    ] {
        let (status, created) = api
            .post(json!({"to": ["jack"], "media": media, "room": room, "max_duration_secs": 15}))
            .await;
        assert_eq!(status, 201, "{created}");
        // Bound into its room, or ended saying why not.
        let path = format!("/v1/sessions/{}", created["id"].as_str().unwrap());
        let now = api
            .until(&path, Duration::from_secs(40), |s| {
                s["status"]["phase"] == "ingesting" || !s["report"].is_null()
            })
            .await;
        assert_eq!(now["status"]["phase"], "ingesting", "{now:#}");
    }
    let seen = rooms_until(
        &emulator,
        &["rtsp-udp", "rtsp-tcp"],
        Duration::from_secs(30),
        |t| {
            t.len() == 1
                && t[0]["video_frames"].as_u64() > Some(60)
                && t[0]["audio_ms"].as_u64() > Some(2000)
        },
    )
    .await;
    for tasks in &seen {
        let t = &tasks[0];
        assert_eq!(t["width"], 1280, "{t:#}");
        let hz = t["dominant_hz"].as_f64().unwrap();
        assert!((hz - 440.0).abs() < 15.0, "{t:#}");
    }

    let (status, created) = api
        .post(json!({"to": ["jack"], "media": camera.url(USER, "wrong"), "room": "rtsp-wrong"}))
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let ended = api.ended(id, Duration::from_secs(20)).await;
    let report = &ended["report"];
    assert_eq!(report["result"], "failed", "{ended:#}");
    assert_eq!(report["stage"], "prepare", "{ended:#}");
    assert!(
        report["reason"].as_str().unwrap().contains("Unauthorized"),
        "{ended:#}"
    );
    assert!(report["call_id"].is_null(), "nothing rang: {ended:#}");
    let shown = serde_json::to_string(&ended).unwrap();
    assert!(
        !shown.contains("wrong@"),
        "a camera's password is never shown: {shown}"
    );

    // As a feed: live once created; a wrong password is refused when it is made.
    let (status, feed) = api
        .call(
            reqwest::Method::POST,
            "/v1/feeds",
            Some(json!({"kind": "rtsp", "url": url})),
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, 201, "{feed}");
    assert!(!feed.to_string().contains(PASSWORD), "{feed}");
    let path = format!("/v1/feeds/{}", feed["id"].as_str().unwrap());
    api.until(&path, Duration::from_secs(15), |f| f["state"] == "live")
        .await;
    let (status, refused) = api
        .call(
            reqwest::Method::POST,
            "/v1/feeds",
            Some(json!({"kind": "rtsp", "url": camera.url(USER, "wrong")})),
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused["error"].as_str().unwrap().contains("Unauthorized"),
        "{refused}"
    );
}

/// A fake camera on loopback: answers every request with `answer` (formatted with the
/// request's CSeq), or never when `None`.
async fn fake_camera(answer: Option<&'static str>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    let request = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let cseq = request
                        .lines()
                        .find_map(|l| l.strip_prefix("CSeq:"))
                        .unwrap_or("1")
                        .trim()
                        .to_owned();
                    if let Some(answer) = answer {
                        let reply = answer.replace("{cseq}", &cseq);
                        let _ = socket.write_all(reply.as_bytes()).await;
                    }
                }
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_that_redirects_elsewhere_or_never_answers_is_named() {
    let emulator = Emulator::start(test_emulator_config(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_service, api) = start_service(&emulator, &dir.path().join("j.sqlite"), |c| {
        let loopback = ["127.0.0.1".to_owned()];
        c.policy = InputPolicy::Restricted(Restrictions::new(&[], false, &loopback).unwrap());
    })
    .await;
    let redirecting = fake_camera(Some(
        "RTSP/1.0 302 Found\r\nCSeq: {cseq}\r\nLocation: rtsp://10.20.30.40/inside\r\n\r\n",
    ))
    .await;
    let (status, refused) = api
        .post(json!({"to": ["jack"], "media": format!("rtsp://127.0.0.1:{redirecting}/cam"), "room": "rtsp-302"}))
        .await;
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("not allowed for API clients"),
        "{refused}"
    );

    let silent = fake_camera(None).await;
    let started = std::time::Instant::now();
    let (status, created) = api
        .post(json!({"to": ["jack"], "media": format!("rtsp://127.0.0.1:{silent}/cam"), "room": "rtsp-silent"}))
        .await;
    assert_eq!(status, 201, "{created}");
    let ended = api
        .ended(created["id"].as_str().unwrap(), Duration::from_secs(30))
        .await;
    let report = &ended["report"];
    assert_eq!(report["stage"], "prepare", "{ended:#}");
    assert!(report["call_id"].is_null(), "nothing rang: {ended:#}");
    eprintln!(
        "silent camera: {} after {:?}",
        report["reason"],
        started.elapsed()
    );
}
