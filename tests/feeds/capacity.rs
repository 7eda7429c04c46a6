//! A feed's encode takes the node's room (`--max-sessions`, in cost units) as a live
//! session's does, until the feed ends.

use callfeed::emulator::Emulator;
use serde_json::json;

use crate::common::serve::*;
use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_holds_its_encode_s_room_until_it_ends() {
    let emulator = Emulator::start(test_emulator_config(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Room for one 720p encode (5 units) and a byte copy.
    let (_service, api) = start_service(&emulator, &dir.path().join("j.sqlite"), |c| {
        c.max_sessions = 6;
    })
    .await;
    let feed = json!({"kind": "pull", "url": "test:", "profile": "720p"});
    let (status, first) = api
        .call(
            reqwest::Method::POST,
            "/v1/feeds",
            Some(feed.clone()),
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, 201, "{first}");
    let (status, refused) = api
        .call(
            reqwest::Method::POST,
            "/v1/feeds",
            Some(feed.clone()),
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, 429, "{refused}");
    assert!(
        refused["error"].as_str().unwrap().contains("no room"),
        "{refused}"
    );
    let (status, _) = api
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/feeds/{}", first["id"].as_str().unwrap()),
            None,
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, 200);
    // The room comes back once the feed has ended (its release is a task of its own).
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (status, body) = api
            .call(
                reqwest::Method::POST,
                "/v1/feeds",
                Some(feed.clone()),
                Some(TOKEN),
            )
            .await;
        if status == 201 {
            break;
        }
        assert!(std::time::Instant::now() < until, "{status} {body}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
