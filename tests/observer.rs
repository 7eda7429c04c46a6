//! The room observer measured against streams whose content is known.

use std::time::{Duration, Instant};

use crate::common::*;
use callfeed::media::observer::{
    MediaTally, ObserveSpec, Observer, ObserverEvent, ObserverExit, Pace,
};

fn within(actual: f64, expected: f64, tolerance: f64) -> bool {
    (actual - expected).abs() <= expected * tolerance
}

async fn observe(
    url: String,
    pace: Pace,
    plays: Option<u64>,
) -> (
    ObserverExit,
    callfeed::media::observer::ObservedMedia,
    Vec<ObserverEvent>,
) {
    let tally = MediaTally::new(Instant::now());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let observer = Observer::start(ObserveSpec::new(url, pace, plays), tally.clone(), tx).unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(30), observer.finished())
        .await
        .expect("the observer ends by itself");
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    (exit, tally.snapshot(), events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn figures_match_a_known_clip() {
    let dir = tempfile::tempdir().unwrap();
    let clip = Clip {
        seconds: 2,
        width: 320,
        height: 240,
        fps: 25,
        tone_hz: 440,
    };
    clip.write(dir.path(), "a440.mp4");
    let other = Clip {
        seconds: 2,
        width: 640,
        height: 360,
        fps: 30,
        tone_hz: 880,
    };
    other.write(dir.path(), "a880.flv");
    let base = serve_dir(dir.path()).await;

    let (exit, media, events) = observe(format!("{base}a440.mp4"), Pace::Fast, Some(1)).await;
    assert_eq!(exit, ObserverExit::Completed, "{media:?}");
    assert!(within(media.video_frames as f64, 50.0, 0.05), "{media:?}");
    assert_eq!((media.width, media.height), (320, 240));
    assert!(within(media.fps, 25.0, 0.05), "{media:?}");
    assert!(within(media.audio_ms as f64, 2000.0, 0.1), "{media:?}");
    assert!(
        (media.dominant_hz.unwrap() - 440.0).abs() < 5.0,
        "{media:?}"
    );
    assert!(media.audio_level_db.unwrap() > -20.0, "{media:?}");
    assert!(media.first_media_ms.is_some());
    assert_eq!(events.first(), Some(&ObserverEvent::FirstMedia));

    let (exit, media, _) = observe(format!("{base}a880.flv"), Pace::Fast, Some(2)).await;
    assert_eq!(exit, ObserverExit::Completed, "{media:?}");
    assert!(
        within(media.video_frames as f64, 120.0, 0.05),
        "two plays: {media:?}"
    );
    assert_eq!((media.width, media.height), (640, 360));
    assert!(
        (media.dominant_hz.unwrap() - 880.0).abs() < 5.0,
        "{media:?}"
    );
    assert_eq!(media.plays_completed, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_pace_takes_media_time() {
    let dir = tempfile::tempdir().unwrap();
    Clip {
        seconds: 1,
        width: 160,
        height: 120,
        fps: 25,
        tone_hz: 440,
    }
    .write(dir.path(), "c.mp4");
    let base = serve_dir(dir.path()).await;
    let started = Instant::now();
    let (exit, media, _) = observe(format!("{base}c.mp4"), Pace::Realtime, Some(1)).await;
    assert_eq!(exit, ObserverExit::Completed);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(media.gaps_over_500ms, 0, "{media:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_sources_fail_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("page.html"), "<html>not media</html>").unwrap();
    let base = serve_dir(dir.path()).await;
    for url in [
        format!("{base}missing.mp4"),
        format!("{base}page.html"),
        format!("http://127.0.0.1:{}/x.flv", closed_port()),
    ] {
        let (exit, media, _) = observe(url.clone(), Pace::Fast, Some(1)).await;
        match exit {
            ObserverExit::Failed {
                after_media,
                message,
            } => {
                assert!(!after_media, "{url}");
                assert!(!message.is_empty());
            }
            other => panic!("{url}: {other:?}"),
        }
        assert_eq!(media.video_frames, 0);
        assert_eq!(media.errors.len(), 1, "{url}: {media:?}");
    }
}

/// A server that takes the first connection and never answers it (an HTTP source can wait on
/// such a request forever), then passes later connections to `upstream`.
async fn silent_first_connection(upstream: std::net::SocketAddr) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut client, _)) = listener.accept().await {
            if held.is_empty() {
                held.push(client);
                continue;
            }
            tokio::spawn(async move {
                let mut server = tokio::net::TcpStream::connect(upstream).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_answers_is_tried_again_within_the_first_media_window() {
    let dir = tempfile::tempdir().unwrap();
    Clip {
        seconds: 1,
        width: 160,
        height: 120,
        fps: 25,
        tone_hz: 440,
    }
    .write(dir.path(), "c.mp4");
    let base = serve_dir(dir.path()).await;
    let upstream = base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let front = silent_first_connection(upstream).await;
    let mut spec = ObserveSpec::new(format!("http://{front}/c.mp4"), Pace::Fast, Some(1));
    spec.first_media_timeout = Duration::from_secs(6);
    let tally = MediaTally::new(Instant::now());
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let observer = Observer::start(spec, tally.clone(), tx).unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(30), observer.finished())
        .await
        .expect("the observer ends by itself");
    let media = tally.snapshot();
    assert_eq!(exit, ObserverExit::Completed, "{media:?}");
    assert!(within(media.video_frames as f64, 25.0, 0.1), "{media:?}");
    assert!(media.errors.is_empty(), "{media:?}");
}
