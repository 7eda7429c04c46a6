//! The feed registry and its RTMP server in this process: a publisher's media reaches the
//! feed's stream, keys are checked, hostile publishers are dropped with a reason.

use std::time::{Duration, Instant};

use callfeed::feed::{FeedKind, FeedRequest, FeedSettings, FeedState, Feeds, PublishSettings};
use callfeed::media::topology::Topologies;

use super::publishers::{outcome, push_rtmp};
use crate::common::observe_while;

pub(crate) struct RtmpFeeds {
    pub(crate) feeds: Feeds,
    /// Listening while the test holds it.
    pub(crate) _server: callfeed::feed::rtmp::RtmpServer,
}

pub(crate) async fn rtmp_feeds(limits: callfeed::feed::rtmp::RtmpLimits) -> RtmpFeeds {
    let feeds = Feeds::new(FeedSettings {
        max_feeds: 8,
        topologies: Topologies::builtin().unwrap(),
        rtmp_base: None,
        srt: None,
        whip: None,
    });
    let server =
        callfeed::feed::rtmp::listen("127.0.0.1:0".parse().unwrap(), feeds.clone(), limits)
            .await
            .unwrap();
    feeds.set_rtmp_base(Some(format!("rtmp://{}/live", server.local_addr())));
    RtmpFeeds {
        feeds,
        _server: server,
    }
}

pub(crate) fn rtmp_url(view: &callfeed::feed::FeedView) -> String {
    match view.publish.as_ref().expect("publish settings") {
        PublishSettings::Rtmp { url, .. }
        | PublishSettings::Srt { url, .. }
        | PublishSettings::Whip { url, .. } => url.clone(),
    }
}

/// Waits for a feed's state, at most `within`.
pub(crate) async fn wait_state(feeds: &Feeds, id: &str, state: FeedState, within: Duration) {
    let until = Instant::now() + within;
    loop {
        let now = feeds.get(id, false).unwrap();
        if now.state == state {
            return;
        }
        assert!(Instant::now() < until, "feed never {state:?}: {now:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_s_picture_and_tone_come_out_of_the_feed_s_stream() {
    let t = rtmp_feeds(Default::default()).await;
    let view = t
        .feeds
        .create(
            FeedRequest {
                kind: Some(FeedKind::Rtmp),
                ..Default::default()
            },
            None,
        )
        .unwrap();
    assert_eq!(view.state, FeedState::Waiting);
    let _ffmpeg = push_rtmp(&rtmp_url(&view));
    wait_state(&t.feeds, &view.id, FeedState::Live, Duration::from_secs(15)).await;
    let server = callfeed::publish::StreamServer::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let lease = t.feeds.lease(&view.id, "s-1", false).unwrap();
    let url = server.publish_live(lease.hub(), None);
    let seen = observe_while(
        &url,
        callfeed::media::observer::Pace::Realtime,
        Duration::from_secs(20),
        |m| m.video_frames < 60 || m.audio_ms < 2000,
    )
    .await;
    assert_eq!((seen.width, seen.height), (1280, 720), "{seen:?}");
    let hz = seen.dominant_hz.unwrap_or_default();
    assert!((hz - 440.0).abs() < 15.0, "{seen:?}");
    let shown = t.feeds.get(&view.id, false).unwrap();
    assert_eq!(shown.sessions, ["s-1"]);
    let publisher = shown.publisher.expect("a publisher");
    assert_eq!((publisher.width, publisher.height), (Some(640), Some(360)));
    assert!(publisher.address.starts_with("127.0.0.1:"), "{publisher:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_refused_within_a_second_and_names_itself() {
    let t = rtmp_feeds(Default::default()).await;
    let view = t.feeds.create(FeedRequest::default(), None).unwrap();
    let url = rtmp_url(&view);
    let (base, _) = url.rsplit_once('/').unwrap();
    let started = Instant::now();
    let (ok, said) = outcome(push_rtmp(&format!(
        "{base}/0123456789abcdef0123456789abcdef"
    )))
    .await;
    assert!(!ok);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(said.contains("wrong stream key"), "{said}");
    let shown = t.feeds.get(&view.id, false).unwrap();
    assert_eq!(shown.state, FeedState::Waiting);
    assert!(shown.publisher.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_nobody_publishes_to_ends_after_its_idle_timeout() {
    let t = rtmp_feeds(Default::default()).await;
    let view = t
        .feeds
        .create(
            FeedRequest {
                idle_timeout_secs: Some(1),
                ..Default::default()
            },
            None,
        )
        .unwrap();
    wait_state(&t.feeds, &view.id, FeedState::Ended, Duration::from_secs(5)).await;
    let ended = t.feeds.get(&view.id, false).unwrap();
    assert!(
        ended
            .ended_reason
            .as_deref()
            .is_some_and(|r| r.contains("idle_timeout_secs")),
        "{ended:?}"
    );
    // Its key opens nothing any more.
    let (ok, said) = outcome(push_rtmp(&rtmp_url(&t.feeds.get(&view.id, true).unwrap()))).await;
    assert!(!ok && said.contains("wrong stream key"), "{said}");
}
