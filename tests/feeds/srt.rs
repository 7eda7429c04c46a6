//! SRT feeds: an encoder calls the feed's own port with its streamid and passphrase; a wrong
//! passphrase or streamid is refused at once, and a second caller never takes a live feed.

use std::time::{Duration, Instant};

use callfeed::feed::{FeedKind, FeedRequest, FeedSettings, FeedState, Feeds, SrtEndpoint};
use callfeed::media::topology::Topologies;

use super::publishers::{outcome, push_srt};
use super::rtmp_server::{rtmp_url, wait_state};
use crate::common::observe_while;

fn srt_feeds() -> Feeds {
    Feeds::new(FeedSettings {
        max_feeds: 8,
        topologies: Topologies::builtin().unwrap(),
        rtmp_base: None,
        srt: Some(SrtEndpoint {
            bind: "127.0.0.1".parse().unwrap(),
            ports: 0..=0,
            public_host: "127.0.0.1".into(),
            latency_ms: 120,
        }),
        whip: None,
    })
}

/// `url` with `name`'s value replaced by `value`.
fn with(url: &str, name: &str, value: &str) -> String {
    let mut parsed = url::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| {
            (
                k.to_string(),
                if k == name {
                    value.to_owned()
                } else {
                    v.to_string()
                },
            )
        })
        .collect();
    parsed.query_pairs_mut().clear().extend_pairs(pairs);
    parsed.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_srt_caller_with_the_passphrase_is_the_feed_and_others_are_refused() {
    let feeds = srt_feeds();
    let view = feeds
        .create(
            FeedRequest {
                kind: Some(FeedKind::Srt),
                ..Default::default()
            },
            None,
        )
        .unwrap();
    let url = rtmp_url(&view);
    assert!(
        url.starts_with("srt://127.0.0.1:") && url.contains(&format!("streamid={}", view.id)),
        "{url}"
    );

    for (wrong, said) in [
        (
            with(&url, "passphrase", "not-the-passphrase-at-all"),
            "passphrase",
        ),
        (with(&url, "streamid", "f-000000000000"), "streamid"),
    ] {
        let started = Instant::now();
        let (ok, _) = outcome(push_srt(&wrong)).await;
        assert!(!ok, "a wrong {said} was taken");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{said}: {:?}",
            started.elapsed()
        );
    }
    let shown = feeds.get(&view.id, false).unwrap();
    assert_eq!(shown.state, FeedState::Waiting);
    assert!(shown.last_refusal.unwrap().reason.contains("streamid"));

    let _ffmpeg = push_srt(&url);
    wait_state(&feeds, &view.id, FeedState::Live, Duration::from_secs(15)).await;
    // A second caller while one publishes: refused, the first keeps the feed.
    let (ok, _) = tokio::time::timeout(Duration::from_secs(5), outcome(push_srt(&url)))
        .await
        .expect("a second caller is refused, not left sending into nothing");
    assert!(!ok);
    let server = callfeed::publish::StreamServer::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let lease = feeds.lease(&view.id, "s-1", false).unwrap();
    let seen = observe_while(
        &server.publish_live(lease.hub(), None),
        callfeed::media::observer::Pace::Realtime,
        Duration::from_secs(20),
        |m| m.video_frames < 60 || m.audio_ms < 2000,
    )
    .await;
    assert_eq!((seen.width, seen.height), (1280, 720), "{seen:?}");
    let hz = seen.dominant_hz.unwrap_or_default();
    assert!((hz - 440.0).abs() < 15.0, "{seen:?}");
    let shown = feeds.get(&view.id, false).unwrap();
    assert_eq!(shown.state, FeedState::Live);
    assert!(
        shown
            .publisher
            .as_ref()
            .unwrap()
            .address
            .starts_with("127.0.0.1:")
    );
    assert!(!format!("{shown:?}").contains(&url[url.find("passphrase=").unwrap() + 11..][..20]));
}
