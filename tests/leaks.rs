//! Tests that measure the whole process, in a binary of their own so that no other test's
//! pipelines, threads or memory are counted, and one at a time (each holds [`ALONE`]):
//! teardown leaves nothing behind (every pipeline a stream, its outputs and an observer made
//! is freed once they are stopped), and two hundred sessions leave no threads or memory.

// The harness serves the main test binary; these tests use a few of its helpers.
#[allow(dead_code)]
mod common;

use std::time::{Duration, Instant};

use callfeed::emulator::Emulator;
use callfeed::media::contract::{Contract, Profile};
use callfeed::media::input::InputSpec;
use callfeed::media::live::{LiveSettings, LiveStream};
use callfeed::media::observer::{MediaTally, ObserveSpec, Observer, Pace};
use callfeed::media::policy::{InputPolicy, Restrictions};
use callfeed::media::rtmp::RtmpOutput;
use callfeed::media::topology::Topologies;
use common::serve::*;
use common::*;
use serde_json::json;

/// Held by each test for as long as it runs, so the process runs one test at a time.
static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_frees_every_pipeline() {
    let _alone = ALONE.lock().await;
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

fn proc_status(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_sessions_come_and_go_without_leaving_anything() {
    let _alone = ALONE.lock().await;
    const SESSIONS: usize = 200;
    let emulator = Emulator::start(test_emulator_config(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    std::fs::create_dir(&media).unwrap();
    let clip = media.join("tone.ogg");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/media-samples/tone-440hz-2s.ogg"
        ),
        &clip,
    )
    .unwrap();
    let root = media.clone();
    let cache = dir.path().join("cache");
    let (service, api) = start_service(&emulator, &dir.path().join("j.sqlite"), move |c| {
        c.policy = InputPolicy::Restricted(Restrictions::new(&[root], false, &[]).unwrap());
        c.max_sessions = 256;
        c.keep_ended = Duration::ZERO;
        c.driver.cache_dir = cache;
    })
    .await;
    let api = std::sync::Arc::new(api);
    // One session first, so the process has loaded what every session uses.
    let warm = json!({"to":["jack"],"media":clip.display().to_string(),"room":"warm","media_type":"audio","max_duration_secs":1});
    let (_, w) = api.post(warm).await;
    let warm_id = w["id"].as_str().unwrap().to_owned();
    api.ended(&warm_id, Duration::from_secs(30)).await;
    let (threads0, rss0) = (proc_status("Threads:"), proc_status("VmRSS:"));
    let started = Instant::now();
    let ids: Vec<String> = futures::future::join_all((0..SESSIONS).map(|i| {
        let api = api.clone();
        let clip = clip.display().to_string();
        async move {
            let (status, body) = api
                .post(json!({"to":[format!("c{i}")],"media":clip,"room":format!("many-{i}"),"media_type":"audio","ingest_at":"ring","repeat":5}))
                .await;
            assert_eq!(status, 201, "{body}");
            body["id"].as_str().unwrap().to_owned()
        }
    }))
    .await;
    // Every one rings before it is stopped, so each has a call to end.
    for id in &ids {
        api.until(
            &format!("/v1/sessions/{id}"),
            Duration::from_secs(60),
            |v| !v["status"]["call_id"].is_null() || !v["report"].is_null(),
        )
        .await;
    }
    for id in &ids {
        api.call(
            reqwest::Method::DELETE,
            &format!("/v1/sessions/{id}"),
            None,
            Some(TOKEN),
        )
        .await;
    }
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let listed = api.get("/v1/sessions").await;
        if listed["sessions"].as_array().is_some_and(|s| s.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "sessions never ended");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let calls = emulator_list(&emulator, "calls").await;
    assert_eq!(calls.len(), SESSIONS + 1, "every session rang");
    assert!(
        calls.iter().all(|c| c["state"] == "ended"),
        "a call left connected"
    );
    let tasks = emulator_list(&emulator, "tasks").await;
    assert!(!tasks.is_empty(), "tasks were bound at ring");
    assert!(
        tasks.iter().all(|t| t["status"] == "NotExist"),
        "a task left running"
    );
    // Idle blocking-pool workers leave after ten seconds.
    let deadline = Instant::now() + Duration::from_secs(30);
    while proc_status("Threads:") > threads0 + 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (threads1, rss1) = (proc_status("Threads:"), proc_status("VmRSS:"));
    eprintln!(
        "200 sessions in {:?}: threads {threads0} -> {threads1}, RSS {rss0} -> {rss1} kB",
        started.elapsed()
    );
    assert!(threads1 <= threads0 + 4, "threads {threads0} -> {threads1}");
    assert!(rss1 <= rss0 + 150_000, "RSS {rss0} -> {rss1} kB");
    drop(service);
}

/// A WHIP publisher that comes, is refused in every way, publishes, and goes: once it and
/// its feed are gone, so is every pipeline the node made for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_feed_and_its_publishers_leave_no_pipeline() {
    let _alone = ALONE.lock().await;
    let emulator = Emulator::start(test_emulator_config(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let feeds = callfeed::feed::Feeds::new(callfeed::feed::FeedSettings {
        max_feeds: 4,
        topologies: Topologies::builtin().unwrap(),
        rtmp_base: None,
        srt: None,
        whip: None,
    });
    let registry = feeds.clone();
    let (_service, api) = start_service(&emulator, &dir.path().join("j.sqlite"), move |c| {
        c.driver.feeds = Some(registry);
    })
    .await;
    feeds.set_whip(Some(callfeed::feed::WhipEndpoint {
        base: api.base.trim_end_matches('/').to_owned(),
        webrtc: callfeed::media::whip::WebRtcSettings {
            bind: vec!["127.0.0.1".parse().unwrap()],
            ..Default::default()
        },
    }));
    let (status, feed) = api
        .call(
            reqwest::Method::POST,
            "/v1/feeds",
            Some(json!({"kind": "whip", "profile": "360p"})),
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, 201, "{feed}");
    let id = feed["id"].as_str().unwrap().to_owned();
    let url = feed["publish"]["url"].as_str().unwrap().to_owned();
    let bearer = feed["publish"]["bearer"].as_str().unwrap().to_owned();
    let udp_before = udp_sockets();
    let offer = common::whip::an_offer(common::whip::Video::H264).await;
    for (key, body, expected) in [
        ("f".repeat(32), offer.clone(), 401),
        (
            bearer.clone(),
            offer.replace("H264/90000", "H265/90000"),
            406,
        ),
        (bearer.clone(), "v=0\r\nnonsense".to_owned(), 406),
    ] {
        let answered = common::whip::post_offer(&url, &key, &body).await;
        assert_eq!(answered.status, expected, "{}", answered.body);
    }
    let publisher = common::whip::publish(&url, &bearer, common::whip::Video::H264)
        .await
        .ok()
        .expect("taken");
    api.until(&format!("/v1/feeds/{id}"), Duration::from_secs(20), |f| {
        f["state"] == "live"
    })
    .await;
    assert!(
        callfeed::media::pipelines_alive() >= 3,
        "the WHIP session's, the feed's input and its encoder"
    );
    // The publisher's and the node's: both ends of the session live in this process.
    assert!(
        udp_sockets() >= udp_before + 2,
        "{udp_before} -> {}",
        udp_sockets()
    );
    drop(publisher);
    let (status, _) = api
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/feeds/{id}"),
            None,
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while callfeed::media::pipelines_alive() > 0 || udp_sockets() > udp_before {
        assert!(
            Instant::now() < deadline,
            "{} pipelines still alive, {} UDP sockets open (before: {udp_before})",
            callfeed::media::pipelines_alive(),
            udp_sockets()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How many UDP sockets this process holds: its descriptors that are sockets named in the
/// kernel's UDP tables.
fn udp_sockets() -> usize {
    let mut udp = std::collections::HashSet::new();
    for table in ["/proc/self/net/udp", "/proc/self/net/udp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        // Columns: sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
        udp.extend(
            text.lines()
                .skip(1)
                .filter_map(|l| l.split_whitespace().nth(9).map(str::to_owned)),
        );
    }
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_owned(),
            )
        })
        .filter(|inode| udp.contains(inode))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitored_and_recorded_session_leaves_no_pipeline() {
    let _alone = ALONE.lock().await;
    let emulator = Emulator::start(test_emulator_config(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let records = dir.path().join("records");
    std::fs::create_dir(&records).unwrap();
    let (service, api) = start_service(&emulator, &dir.path().join("j.sqlite"), |c| {
        c.driver.record = Some(callfeed::session::driver::RecordSettings {
            dir: records.clone(),
            segment: callfeed::session::driver::DEFAULT_RECORD_SEGMENT,
        });
    })
    .await;
    let _rtmp = rtmp_server_for(&service).await;
    let (status, created) = api
        .post(
            json!({"to": ["jack"], "media": "test:ball+tone=440", "room": "leak-monitor",
            "profile": "360p", "max_duration_secs": 3, "monitor": "mix", "record": true}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let ended = api.ended(id, Duration::from_secs(30)).await;
    assert!(
        ended["report"]["monitor"]["recording"]["files"][0].is_string(),
        "{ended:#}"
    );
    // The emulator's tasks and publishes stop with it; then nothing of the session is left.
    emulator.shutdown().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while callfeed::media::pipelines_alive() > 0 {
        assert!(
            Instant::now() < deadline,
            "{} pipelines still alive",
            callfeed::media::pipelines_alive()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
