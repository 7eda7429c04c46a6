//! A session that asked to stay on the slate outlives its feed: the call goes on showing the
//! slate, the feed's encode keeps its room until the last such call ends, and the sessions
//! that did not ask end `feed_ended` as before.

use std::time::{Duration, Instant};

use callfeed::emulator::Emulator;
use serde_json::{Value, json};

use super::sessions::{frames, rooms_until};
use crate::common::serve::*;
use crate::common::*;

async fn new_feed(api: &Api, body: Value) -> (u16, Value) {
    api.call(reqwest::Method::POST, "/v1/feeds", Some(body), Some(TOKEN))
        .await
}

async fn delete(api: &Api, path: &str) -> u16 {
    api.call(reqwest::Method::DELETE, path, None, Some(TOKEN))
        .await
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_stays_keeps_the_slate_after_its_feed_ends() {
    let emulator = Emulator::start(test_emulator_config(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Room for one 720p encode (5 units) and two byte copies.
    let (_service, api) = start_service(&emulator, &dir.path().join("j.sqlite"), |c| {
        c.max_sessions = 7;
    })
    .await;
    let encoded = json!({"kind": "pull", "url": "test:", "profile": "720p"});
    let (status, feed) = new_feed(&api, encoded.clone()).await;
    assert_eq!(status, 201, "{feed}");
    let id = feed["id"].as_str().unwrap().to_owned();

    // Asked where it cannot apply, `slate` is refused naming the field, before anything rings.
    for (media, on_end, why) in [
        ("test:", "slate", "only with a feed"),
        (format!("feed:{id}").as_str(), "linger", "end or slate"),
    ] {
        let (status, refused) = api
            .post(json!({"to": ["jack"], "media": media, "room": "nope", "on_feed_end": on_end}))
            .await;
        assert_eq!(status, 422, "{refused}");
        let error = refused["error"].as_str().unwrap();
        assert!(
            error.contains("on_feed_end") && error.contains(why),
            "{error}"
        );
    }
    assert!(emulator_list(&emulator, "calls").await.is_empty());

    let mut sessions = Vec::new();
    for (room, callee, on_end) in [("stays", "jack", "slate"), ("ends", "jill", "end")] {
        let (status, created) = api
            .post(
                json!({"to": [callee], "media": format!("feed:{id}"), "room": room,
                         "ring": "when_live", "ingest_at": "ring", "on_feed_end": on_end}),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        sessions.push(created["id"].as_str().unwrap().to_owned());
    }
    let rooms = ["stays", "ends"];
    rooms_until(&emulator, &rooms, Duration::from_secs(30), |t| {
        t.len() == 1 && frames(t) > 30
    })
    .await;

    assert_eq!(delete(&api, &format!("/v1/feeds/{id}")).await, 200);
    let ended = api.ended(&sessions[1], Duration::from_secs(15)).await;
    assert_eq!(ended["report"]["result"], "feed_ended", "{ended:#}");
    // The call that stays goes on, on the slate, in the same ingest task.
    let stays = &sessions[0];
    api.until(
        &format!("/v1/sessions/{stays}"),
        Duration::from_secs(5),
        |s| s["status"]["media"]["state"] == "on_slate",
    )
    .await;
    let before = rooms_until(&emulator, &["stays"], Duration::from_secs(5), |_| true).await;
    let task = before[0][0]["task_id"].clone();
    let after = rooms_until(&emulator, &["stays"], Duration::from_secs(15), |t| {
        t.len() == 1 && frames(t) > frames(&before[0]) + 60
    })
    .await;
    assert_eq!(after[0][0]["task_id"], task, "the same ingest task");
    let shown = api.get(&format!("/v1/sessions/{stays}")).await;
    assert_eq!(shown["status"]["phase"], "ingesting", "{shown:#}");

    // Its slate is still an encode: the node has no room for another until the call ends.
    let (status, refused) = new_feed(&api, encoded.clone()).await;
    assert_eq!(status, 429, "{refused}");
    assert_eq!(delete(&api, &format!("/v1/sessions/{stays}")).await, 202);
    api.ended(stays, Duration::from_secs(15)).await;
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = new_feed(&api, encoded.clone()).await;
        if status == 201 {
            break;
        }
        assert!(Instant::now() < until, "{status} {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
