//! A passthrough feed: a conforming publisher (H.264 without B-frames, AAC 48 kHz, 720p) goes
//! to the rooms untouched — the encoder's own bits, not callfeed's — and one that does not
//! conform is refused with the reason.

use std::time::Duration;

use serde_json::json;

use super::publishers::{outcome, push};
use super::sessions::{rooms_until, served_feeds};
use crate::common::serve::*;
use crate::common::*;

/// Reads `url` for `limit`: the bytes it sent.
async fn bytes_of(url: &str, limit: Duration) -> Vec<u8> {
    let mut response = reqwest::get(url).await.unwrap();
    let mut data = Vec::new();
    let _ = tokio::time::timeout(limit, async {
        while let Ok(Some(chunk)) = response.chunk().await {
            data.extend_from_slice(&chunk);
        }
    })
    .await;
    data
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conforming_publisher_reaches_the_room_untouched_and_others_are_refused() {
    let (emulator, _dir, _feeds, api) = served_feeds().await;
    let (status, feed) = api
        .call(
            reqwest::Method::POST,
            "/v1/feeds",
            Some(json!({"kind": "rtmp", "mode": "passthrough"})),
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, 201, "{feed}");
    assert_eq!(feed["mode"], "passthrough");
    let id = feed["id"].as_str().unwrap().to_owned();
    let url = feed["publish"]["url"].as_str().unwrap().to_owned();
    // No slate to stay on: a session asking for it is refused before anything rings.
    let (status, refused) = api
        .post(
            json!({"to": ["jack"], "media": format!("feed:{id}"), "room": "passthrough-0",
                     "on_feed_end": "slate"}),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused["error"].as_str().unwrap().contains("no slate"),
        "{refused}"
    );

    // B-frames: refused with the reason, the feed still waiting.
    let (ok, _) = tokio::time::timeout(
        Duration::from_secs(15),
        outcome(push(&["-bf", "3", "-t", "10", "-f", "flv", &url])),
    )
    .await
    .expect("the publisher is dropped");
    assert!(!ok);
    let shown = api.get(&format!("/v1/feeds/{id}")).await;
    assert!(
        shown["last_refusal"]["reason"]
            .as_str()
            .unwrap()
            .contains("B-frames"),
        "{shown:#}"
    );

    // 640x360 in a 720p feed: encoded, the room would get 1280x720; passed through, it gets
    // the publisher's own picture.
    let _ffmpeg = push(&["-f", "flv", &url]);
    let (status, created) = api
        .post(
            json!({"to": ["jack"], "media": format!("feed:{id}"), "room": "passthrough-1",
                     "ring": "when_live", "ingest_at": "ring"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let seen = rooms_until(
        &emulator,
        &["passthrough-1"],
        Duration::from_secs(30),
        |t| {
            t.len() == 1
                && t[0]["video_frames"].as_u64() > Some(60)
                && t[0]["audio_ms"].as_u64() > Some(2000)
        },
    )
    .await;
    let t = &seen[0][0];
    assert_eq!(
        (t["width"].as_u64(), t["height"].as_u64()),
        (Some(640), Some(360)),
        "{t:#}"
    );
    assert!(
        (t["dominant_hz"].as_f64().unwrap() - 440.0).abs() < 15.0,
        "{t:#}"
    );
    // Untouched: no frame went through callfeed's encoder, and a reader of the feed gets
    // the publisher's keyframes.
    let (_, preview) = api
        .call(
            reqwest::Method::POST,
            &format!("/v1/feeds/{id}/preview"),
            None,
            Some(TOKEN),
        )
        .await;
    let data = bytes_of(preview["url"].as_str().unwrap(), Duration::from_secs(3)).await;
    assert!(
        parse_flv(&data).iter().any(|t| t.keyframe),
        "no keyframe read"
    );
    let shown = api.get(&format!("/v1/feeds/{id}")).await;
    assert_eq!(shown["state"], "live", "{shown:#}");
    assert_eq!(shown["figures"]["frames_out"], 0, "{shown:#}");
}
