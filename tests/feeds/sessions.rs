//! Sessions on feeds through `callfeed serve`'s API, against the emulator: an encoder's push
//! reaches every room that carries its feed, survives the publisher going away and coming
//! back in the same calls, and a deleted feed ends its calls and refuses its key.

use std::time::{Duration, Instant};

use callfeed::emulator::Emulator;
use serde_json::{Value, json};

use super::publishers::{outcome, push_rtmp, push_srt};
use super::rtmp_server::{RtmpFeeds, rtmp_feeds};
use crate::common::serve::*;
use crate::common::*;

/// The emulator's ingest tasks in `room`.
async fn tasks_in(emulator: &Emulator, room: &str) -> Vec<Value> {
    emulator_list(emulator, "tasks")
        .await
        .into_iter()
        .filter(|t| t["room_id"] == room)
        .collect()
}

/// Waits until `done` holds for the tasks of every room, at most `within`.
pub(super) async fn rooms_until(
    emulator: &Emulator,
    rooms: &[&str],
    within: Duration,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Vec<Value>> {
    let until = Instant::now() + within;
    loop {
        let mut seen = Vec::new();
        for room in rooms {
            seen.push(tasks_in(emulator, room).await);
        }
        if seen.iter().all(|t| done(t)) {
            return seen;
        }
        assert!(Instant::now() < until, "rooms never got there: {seen:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The emulator, and a serve in this process whose feeds take RTMP and SRT publishers.
pub(super) async fn served_feeds() -> (Emulator, tempfile::TempDir, RtmpFeeds, Api) {
    let emulator = Emulator::start(test_emulator_config(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let feeds = rtmp_feeds(Default::default()).await;
    let registry = feeds.feeds.clone();
    registry.set_srt(Some(callfeed::feed::SrtEndpoint {
        bind: "127.0.0.1".parse().unwrap(),
        ports: 0..=0,
        public_host: "127.0.0.1".into(),
        latency_ms: 120,
    }));
    let (_service, api) = start_service(&emulator, &dir.path().join("j.sqlite"), |c| {
        c.driver.feeds = Some(registry);
    })
    .await;
    (emulator, dir, feeds, api)
}

/// A new `kind` feed made through the API: its id and the URL its publisher pushes to.
async fn new_feed(api: &Api, kind: &str) -> (String, String) {
    let (status, feed) = api
        .call(
            reqwest::Method::POST,
            "/v1/feeds",
            Some(json!({"kind": kind, "name": "town hall"})),
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, 201, "{feed}");
    let url = feed["publish"]["url"].as_str().unwrap().to_owned();
    if kind == "rtmp" {
        let server = feed["publish"]["server"].as_str().unwrap();
        let key = feed["publish"]["stream_key"].as_str().unwrap();
        assert_eq!(format!("{server}/{key}"), url);
    }
    assert_eq!(feed["state"], "waiting");
    (feed["id"].as_str().unwrap().to_owned(), url)
}

/// Each room's one task got the publisher's 720p30 picture and 440 Hz tone.
fn assert_720p30_at_440hz(rooms: &[Vec<Value>]) {
    for tasks in rooms {
        let t = &tasks[0];
        assert_eq!(
            (t["width"].as_u64(), t["height"].as_u64()),
            (Some(1280), Some(720)),
            "{t:#}"
        );
        let fps = t["fps"].as_f64().unwrap();
        assert!((fps - 30.0).abs() < 2.0, "{t:#}");
        let hz = t["dominant_hz"].as_f64().unwrap();
        assert!((hz - 440.0).abs() < 15.0, "{t:#}");
    }
}

/// Starts the publisher again each time it gives up, until the feed is live (at most 15 s).
async fn publish_until_live(
    api: &Api,
    id: &str,
    start: impl Fn() -> tokio::process::Child,
) -> tokio::process::Child {
    let until = Instant::now() + Duration::from_secs(15);
    let mut publisher = start();
    loop {
        let feed = api.get(&format!("/v1/feeds/{id}")).await;
        if feed["state"] == "live" {
            return publisher;
        }
        assert!(Instant::now() < until, "never live again: {feed:#}");
        if publisher.try_wait().unwrap().is_some() {
            publisher = start();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The video frames a room's tasks got, all told.
pub(super) fn frames(tasks: &[Value]) -> u64 {
    tasks
        .iter()
        .map(|t| t["video_frames"].as_u64().unwrap_or(0))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_rtmp_feed_reaches_two_rooms_and_survives_its_publisher_coming_back() {
    two_rooms_on_one_feed("rtmp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_srt_feed_reaches_two_rooms_and_survives_its_publisher_coming_back() {
    two_rooms_on_one_feed("srt").await;
}

/// An encoder pushing over `kind` (rtmp, srt) to a feed two sessions carry.
async fn two_rooms_on_one_feed(kind: &str) {
    let push = |url: &str| match kind {
        "srt" => push_srt(url),
        _ => push_rtmp(url),
    };
    let (emulator, _dir, _feeds, api) = served_feeds().await;
    let (id, url) = new_feed(&api, kind).await;

    // Both sessions ring only once the feed is live: nothing rings before ffmpeg starts.
    let mut sessions = Vec::new();
    for (room, callee) in [("feed-a", "jack"), ("feed-b", "jill")] {
        let (status, created) = api
            .post(
                json!({"to": [callee], "media": format!("feed:{id}"), "room": room,
                         "ring": "when_live", "feed_wait_secs": 30, "ingest_at": "ring"}),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        sessions.push(created["id"].as_str().unwrap().to_owned());
    }
    assert!(
        emulator_list(&emulator, "calls").await.is_empty(),
        "rang before the feed was live"
    );
    let mut ffmpeg = push(&url);
    let rooms = ["feed-a", "feed-b"];
    let seen = rooms_until(&emulator, &rooms, Duration::from_secs(30), |t| {
        t.len() == 1
            && t[0]["video_frames"].as_u64() > Some(60)
            && t[0]["audio_ms"].as_u64() > Some(2000)
    })
    .await;
    assert_720p30_at_440hz(&seen);
    let task_ids: Vec<Value> = seen.iter().map(|t| t[0]["task_id"].clone()).collect();
    let shown = api.get(&format!("/v1/feeds/{id}")).await;
    assert_eq!(shown["state"], "live", "{shown:#}");
    let exposed = metrics(&api.base).await;
    assert!(
        exposed.contains(&format!(
            "callfeed_feeds{{kind=\"{kind}\",state=\"live\"}} 1"
        )),
        "{exposed}"
    );
    let mut on_feed: Vec<String> = shown["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    on_feed.sort();
    let mut expected = sessions.clone();
    expected.sort();
    assert_eq!(on_feed, expected);

    // The publisher goes away: the feed is lost and both calls show the slate, within 3 s.
    ffmpeg.kill().await.unwrap();
    let lost_at = Instant::now();
    api.until(&format!("/v1/feeds/{id}"), Duration::from_secs(3), |f| {
        f["state"] == "lost"
    })
    .await;
    for session in &sessions {
        api.until(
            &format!("/v1/sessions/{session}"),
            Duration::from_secs(3),
            |s| s["status"]["media"]["state"] == "on_slate",
        )
        .await;
    }
    assert!(lost_at.elapsed() < Duration::from_secs(3));
    let before = rooms_until(&emulator, &rooms, Duration::from_secs(5), |_| true).await;

    // It comes back: the same calls and the same ingest tasks carry it again.
    // As OBS does, the encoder tries again until it is taken: an SRT listener still holds
    // a killed caller until the feed lets it go.
    let ffmpeg = publish_until_live(&api, &id, || push(&url)).await;
    let after = rooms_until(&emulator, &rooms, Duration::from_secs(15), |t| {
        t.len() == 1
            && t[0]["video_frames"].as_u64()
                > before.iter().map(|b| frames(b)).max().map(|m| m + 60)
    })
    .await;
    let again: Vec<Value> = after.iter().map(|t| t[0]["task_id"].clone()).collect();
    assert_eq!(again, task_ids, "the same ingest tasks");
    for session in &sessions {
        let s = api.get(&format!("/v1/sessions/{session}")).await;
        assert_eq!(s["status"]["phase"], "ingesting", "{s:#}");
    }
    let shown = api.get(&format!("/v1/feeds/{id}")).await;
    assert_eq!(shown["figures"]["reconnects"], 1, "{shown:#}");

    // Deleting the feed drops its publisher and ends its calls; its key is refused after.
    let (status, _) = api
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/feeds/{id}"),
            None,
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, 200);
    let (ok, _) = tokio::time::timeout(Duration::from_secs(5), outcome(ffmpeg))
        .await
        .expect("the publisher is dropped");
    assert!(!ok);
    for session in &sessions {
        let ended = api.ended(session, Duration::from_secs(15)).await;
        assert_eq!(ended["report"]["result"], "feed_ended", "{ended:#}");
    }
    let (ok, said) = outcome(push(&url)).await;
    assert!(!ok, "the deleted feed's key was taken");
    if kind == "rtmp" {
        assert!(said.contains("wrong stream key"), "{said}");
    }
    let (status, _) = api
        .call(
            reqwest::Method::GET,
            &format!("/v1/feeds/{id}"),
            None,
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, 404);
}
