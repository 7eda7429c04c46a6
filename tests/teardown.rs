//! Teardown leaves nothing behind: every pipeline a stream, its outputs and an observer made
//! is freed (its weak reference dead) once they are stopped. One test in its own binary, so
//! no other test's pipelines are counted.

mod common;

use std::time::{Duration, Instant};

use callfeed::media::contract::{Contract, Profile};
use callfeed::media::input::InputSpec;
use callfeed::media::live::{LiveSettings, LiveStream};
use callfeed::media::observer::{MediaTally, ObserveSpec, Observer, Pace};
use callfeed::media::rtmp::RtmpOutput;
use callfeed::media::topology::Topologies;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_frees_every_pipeline() {
    let nginx = Nginx::start();
    let stream = LiveStream::start(
        InputSpec::parse("test:").unwrap(),
        LiveSettings::new(Contract::new(Profile::P360)),
        &Topologies::builtin().unwrap(),
    )
    .unwrap();
    let (server, url) = serve_live(&stream).await;
    let rtmp = RtmpOutput::start(stream.hub(), nginx.url("t")).unwrap();
    let tally = MediaTally::new(Instant::now());
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let observer = Observer::start(
        ObserveSpec::new(url, Pace::Realtime, None),
        tally.clone(),
        tx,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while tally.snapshot().video_frames < 15 {
        assert!(Instant::now() < deadline, "{:?}", tally.snapshot());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        callfeed::media::pipelines_alive() >= 4,
        "input, encoder, RTMP, observer"
    );
    observer.stop().await;
    rtmp.stop().await;
    stream.stop().await.unwrap();
    drop(server);
    // Freeing happens on GStreamer's threads; wait for it, with a deadline.
    let deadline = Instant::now() + Duration::from_secs(5);
    while callfeed::media::pipelines_alive() > 0 {
        assert!(
            Instant::now() < deadline,
            "{} pipelines still alive",
            callfeed::media::pipelines_alive()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
