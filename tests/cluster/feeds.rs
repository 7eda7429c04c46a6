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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_feed_ends_with_it_and_its_calls_end_node_lost() {
    let cloud = Cloud::start(CALLFEED).await;
    let (store, endpoints) = (&cloud.store, &cloud.endpoints);
    let rtmp = ["--rtmp-listen", "127.0.0.1:0"];
    let (mut a, api_a) = node_with(store, endpoints, &rtmp).await;
    let (_b, api_b) = node_with(store, endpoints, &rtmp).await;
    let feed: serde_json::Value = {
        let answer = reqwest::Client::new()
            .post(format!("{api_a}/v1/feeds"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(json!({"kind": "rtmp"}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 201);
        serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap()
    };
    let id = feed["id"].as_str().unwrap().to_owned();
    let _ffmpeg = push_rtmp(feed["publish"]["url"].as_str().unwrap());
    let (code, created) = post(
        &api_a,
        json!({"to": ["jack"], "media": format!("feed:{id}"), "room": "feed-node-dies",
               "ring": "when_live", "ingest_at": "ring", "media_type": "video"}),
    )
    .await;
    assert_eq!(code, 201, "{created}");
    let session = created["id"].as_str().unwrap().to_owned();
    until_calls(&cloud.control, Duration::from_secs(30), in_call).await;

    // The feed's node dies: another node stops its call and ingest task, and records why.
    a.start_kill().unwrap();
    a.wait().await.unwrap();
    let stopped = |c: &[serde_json::Value]| {
        c[0]["state"] == "ended" && c[0]["media"][0]["status"] == "NotExist"
    };
    until_calls(&cloud.control, Duration::from_secs(15), stopped).await;
    let report = until_ended(&api_b, TOKEN, &session, Duration::from_secs(15)).await;
    assert_eq!(report["report"]["result"], "node_lost", "{report:#}");
    // The feed lived only there: no node lists it or answers for it any more.
    let listed = get(&api_b, "/v1/feeds").await;
    assert_eq!(listed["feeds"], json!([]), "{listed:#}");
    let gone = get(&api_b, &format!("/v1/feeds/{id}")).await;
    assert!(
        gone["error"]
            .as_str()
            .is_some_and(|e| e.contains("no feed")),
        "{gone:#}"
    );
}

/// The feeds a node runs itself (asked as another node would, so it asks no further).
async fn own_feeds(api: &str) -> Vec<String> {
    let answer = reqwest::Client::new()
        .get(format!("{api}/v1/feeds"))
        .bearer_auth(TOKEN)
        .header("x-callfeed-forwarded", "1")
        .send()
        .await
        .unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap();
    listed["feeds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_an_rtmp_listener_places_an_rtmp_feed_on_one_with_it() {
    let cloud = Cloud::start(CALLFEED).await;
    let (store, endpoints) = (&cloud.store, &cloud.endpoints);
    let (_a, api_a) = node_with(store, endpoints, &[]).await;
    let (_b, api_b) = node_with(store, endpoints, &["--rtmp-listen", "127.0.0.1:0"]).await;
    let answer = reqwest::Client::new()
        .post(format!("{api_a}/v1/feeds"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(json!({"kind": "rtmp", "name": "placed"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 201);
    let feed: serde_json::Value = serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap();
    let id = feed["id"].as_str().unwrap().to_owned();
    assert_eq!(own_feeds(&api_a).await, Vec::<String>::new());
    assert_eq!(own_feeds(&api_b).await, vec![id.clone()]);

    // Its publish settings are B's: an encoder pushing there makes it live.
    let _ffmpeg = push_rtmp(feed["publish"]["url"].as_str().unwrap());
    let until = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let shown = get(&api_a, &format!("/v1/feeds/{id}")).await;
        if shown["state"] == "live" {
            break;
        }
        assert!(std::time::Instant::now() < until, "{shown:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
