//! Feeds in a cluster: a feed lives on the node it was made on (its publisher pushes there),
//! and any node answers for it — a session asked of another node is made on the feed's node,
//! the feed is listed, shown and ended from anywhere.

use std::time::Duration;

use serde_json::json;

use super::{CALLFEED, get, in_call, node_with, post, until_calls};
use crate::common::processes::{Cloud, TOKEN};
use crate::common::serve::until_ended;
use crate::feeds::publishers::push_rtmp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_node_puts_a_feed_of_another_node_into_a_call_and_ends_it() {
    let cloud = Cloud::start(CALLFEED).await;
    let (store, endpoints) = (&cloud.store, &cloud.endpoints);
    let rtmp = ["--rtmp-listen", "127.0.0.1:0"];
    let (_a, api_a) = node_with(store, endpoints, &rtmp).await;
    let (_b, api_b) = node_with(store, endpoints, &rtmp).await;
    let feed: serde_json::Value = {
        let answer = reqwest::Client::new()
            .post(format!("{api_a}/v1/feeds"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(json!({"kind": "rtmp", "name": "lobby"}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 201);
        serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap()
    };
    let id = feed["id"].as_str().unwrap().to_owned();
    let _ffmpeg = push_rtmp(feed["publish"]["url"].as_str().unwrap());

    // Asked of B, made on A, where the feed is.
    let (code, created) = post(
        &api_b,
        json!({"to": ["jack"], "media": format!("feed:{id}"), "room": "cluster-feed",
               "ring": "when_live", "ingest_at": "ring", "media_type": "video"}),
    )
    .await;
    assert_eq!(code, 201, "{created}");
    let session = created["id"].as_str().unwrap().to_owned();
    until_calls(&cloud.control, Duration::from_secs(30), in_call).await;
    let listed = get(&api_b, "/v1/feeds").await;
    assert!(
        listed["feeds"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"] == id.as_str()),
        "{listed:#}"
    );
    let shown = get(&api_b, &format!("/v1/feeds/{id}")).await;
    assert_eq!(shown["state"], "live", "{shown:#}");
    assert_eq!(shown["sessions"], json!([session]), "{shown:#}");

    // Ended from B: the publisher dropped on A, the call ended feed_ended.
    let ended = reqwest::Client::new()
        .delete(format!("{api_b}/v1/feeds/{id}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status().as_u16(), 200);
    let report = until_ended(&api_b, TOKEN, &session, Duration::from_secs(20)).await;
    assert_eq!(report["report"]["result"], "feed_ended", "{report:#}");
    let gone = get(&api_b, &format!("/v1/feeds/{id}")).await;
    assert!(
        gone["error"]
            .as_str()
            .is_some_and(|e| e.contains("no feed")),
        "{gone:#}"
    );
}
