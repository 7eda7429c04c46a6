//! Sessions end to end against the emulator: what arrived in each room, how calls end, what
//! the cloud is left with.

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use callfeed::cloud::call::MediaType;
use callfeed::cloud::http::HttpSettings;
use callfeed::cloud::{RoomRef, UserId};
use callfeed::emulator::{Behaviour, Emulator};
use callfeed::media::contract::Profile;
use callfeed::media::topology::Topologies;
use callfeed::session::driver::{self, DriverSettings, Report, Status};
use callfeed::session::state::{IngestAt, Outcome, Stage};
use callfeed::session::{CloudClients, CloudOps, SessionSpec};
use callfeed::store::{SessionStore, Store};
use serde_json::Value;

fn clients(emulator: &Emulator, app_key: &str) -> CloudClients {
    let base = format!("{}/", emulator.endpoints().im_endpoint);
    test_clients(
        &base,
        app_key,
        HttpSettings {
            max_attempts: 2,
            ..HttpSettings::default()
        },
    )
}

fn user(s: &str) -> UserId {
    UserId::new("test", s).unwrap()
}

fn spec(callee: &str, room: RoomRef, media: &str) -> SessionSpec {
    SessionSpec {
        callees: vec![user(callee)],
        robot: user("robot"),
        ingest_user: user("robot"),
        room,
        media: media.to_owned(),
        input: callfeed::media::input::InputSpec::parse(media).unwrap(),
        source_guard: None,
        media_type: MediaType::Video,
        profile: Profile::P360,
        ingest_at: IngestAt::Answer,
        repeat: Some(1),
        ring_timeout: Duration::from_secs(30),
        max_duration: None,
        live: false,
        audio_track: Default::default(),
        direct: Default::default(),
        relay: None,
        ring_when_live: None,
        stays_after_feed: false,
        start: None,
        monitor: None,
    }
}

async fn run<C: CloudOps>(spec: SessionSpec, cloud: &C, journal: Option<Arc<Store>>) -> Report {
    run_witnessed(spec, cloud, journal, None).await
}

async fn run_witnessed<C: CloudOps>(
    spec: SessionSpec,
    cloud: &C,
    journal: Option<Arc<Store>>,
    room_witness: Option<driver::RoomWitness>,
) -> Report {
    let (status, _) = tokio::sync::watch::channel(Status::default());
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let server = callfeed::publish::StreamServer::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let settings = DriverSettings {
        cache_dir: std::env::temp_dir().join(format!("callfeed-test-cache-{}", std::process::id())),
        room_witness,
        ..DriverSettings::new(Arc::new(server))
    };
    tokio::time::timeout(
        Duration::from_secs(60),
        driver::run(
            uuid::Uuid::new_v4().to_string(),
            spec,
            cloud,
            journal,
            settings,
            Topologies::builtin().unwrap(),
            driver::Controls {
                status,
                stop: stop_rx,
                nudge: Arc::new(tokio::sync::Notify::new()),
                changes: None,
            },
        ),
    )
    .await
    .expect("the session ends")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sessions_each_reach_only_their_own_room() {
    let emulator = Emulator::start(test_emulator_config(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let cloud = clients(&emulator, APP_KEY);
    let rooms = [
        (RoomRef::string("r1").unwrap(), 440.0, "a"),
        (RoomRef::numeric(2002).unwrap(), 660.0, "b"),
        (RoomRef::string("2002").unwrap(), 880.0, "c"),
    ];
    let sessions = rooms.iter().map(|(room, hz, callee)| {
        let mut s = spec(callee, room.clone(), &format!("test:black+tone={hz}"));
        s.repeat = None;
        s.max_duration = Some(Duration::from_secs(4));
        let cloud = &cloud;
        async move { run(s, cloud, None).await }
    });
    let reports = futures::future::join_all(sessions).await;
    for ((room, hz, callee), report) in rooms.iter().zip(&reports) {
        assert_eq!(report.outcome, Outcome::Completed, "{report:?}");
        let view = emulator
            .call_view(report.call_id.as_deref().unwrap())
            .unwrap();
        assert_eq!(view["room_id"], room.id());
        assert_eq!(view["members"][0]["user_id"], *callee);
        let media = view["media"].as_array().unwrap();
        assert_eq!(media.len(), 1, "one stream in {room}: {view:#}");
        assert!(
            (media[0]["dominant_hz"].as_f64().unwrap() - hz).abs() < 5.0,
            "{room}: {view:#}"
        );
        assert_eq!(media[0]["status"], "NotExist", "the task was stopped");
        assert!(media[0]["video_frames"].as_u64().unwrap() > 30, "{view:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announcement_plays_through_in_a_numeric_room() {
    let dir = tempfile::tempdir().unwrap();
    // Larger than the profile's picture: transcoded to the contract, not passed through.
    let clip = Clip {
        seconds: 2,
        width: 1280,
        height: 720,
        fps: 25,
        tone_hz: 550,
    }
    .write(dir.path(), "a.mp4");
    let emulator = Emulator::start(test_emulator_config(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let cloud = clients(&emulator, APP_KEY);
    let report = run(
        spec(
            "jack",
            RoomRef::numeric(12345).unwrap(),
            clip.to_str().unwrap(),
        ),
        &cloud,
        None,
    )
    .await;
    assert_eq!(report.outcome, Outcome::Completed, "{report:?}");
    assert_eq!(report.mode, "announcement");
    // The report has the announcement's own figures.
    let figures = serde_json::to_value(&report.media).unwrap();
    assert_eq!(figures["kind"], "announcement", "{figures:#}");
    assert_eq!(figures["plays"], 1, "{figures:#}");
    let one_play = figures["duration_ms"].as_u64().unwrap();
    assert!((1900..2100).contains(&one_play), "{figures:#}");
    assert!(figures["bound_ms"].as_u64().unwrap() >= 1800, "{figures:#}");
    let view = emulator
        .call_view(report.call_id.as_deref().unwrap())
        .unwrap();
    let media = &view["media"][0];
    assert_eq!(
        (media["width"].as_u64(), media["height"].as_u64()),
        (Some(640), Some(360)),
        "{view:#}"
    );
    assert!(
        (media["audio_ms"].as_f64().unwrap() - 2000.0).abs() < 100.0,
        "{view:#}"
    );
    assert!(
        (media["dominant_hz"].as_f64().unwrap() - 550.0).abs() < 5.0,
        "{view:#}"
    );
    assert_eq!(view["room_kind"], "numeric");
    assert!(report.timings.answered_ms.unwrap() <= report.timings.ingest_started_ms.unwrap());

    // The same announcement, but the room's witness saw nothing arrive: not completed.
    let blind: driver::RoomWitness = Arc::new(|_: &str| Some(Default::default()));
    let report = run_witnessed(
        spec(
            "jack",
            RoomRef::numeric(12346).unwrap(),
            clip.to_str().unwrap(),
        ),
        &cloud,
        None,
        Some(blind),
    )
    .await;
    match &report.outcome {
        Outcome::Failed { stage, reason } => {
            assert_eq!(*stage, callfeed::session::state::Stage::Media, "{report:?}");
            assert!(reason.contains("nothing arrived in the room"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(report.room, Some(Default::default()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hang_up_mid_announcement_stops_the_task_at_once() {
    let mut config = test_emulator_config();
    config.behaviours.insert(
        "jack".into(),
        Behaviour::Answer {
            after_ms: 300,
            hangup_after_ms: Some(1500),
        },
    );
    let emulator = Emulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let cloud = clients(&emulator, APP_KEY);
    let mut s = spec("jack", RoomRef::string("r").unwrap(), "test:ball+tone=440");
    s.repeat = None;
    let report = run(s, &cloud, None).await;
    assert_eq!(report.outcome, Outcome::HungUp, "{report:?}");
    let hung_up_at = report.timings.answered_ms.unwrap() + 1500;
    let ended = report.timings.ended_ms.unwrap();
    assert!(
        ended < hung_up_at + 2000,
        "ended {} ms after the hang-up",
        ended.saturating_sub(hung_up_at)
    );
    let view = emulator
        .call_view(report.call_id.as_deref().unwrap())
        .unwrap();
    assert_eq!(view["media"][0]["status"], "NotExist", "{view:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_feed_bound_at_ring_is_there_when_the_callee_answers() {
    let mut config = test_emulator_config();
    config.behaviours.insert(
        "jack".into(),
        Behaviour::Answer {
            after_ms: 2500,
            hangup_after_ms: Some(1000),
        },
    );
    let emulator = Emulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let cloud = clients(&emulator, APP_KEY);
    let mut s = spec("jack", RoomRef::string("r").unwrap(), "test:bars+tone=440");
    s.ingest_at = IngestAt::Ring;
    s.repeat = None;
    let report = run(s, &cloud, None).await;
    assert_eq!(report.outcome, Outcome::HungUp);
    assert!(
        report.timings.ingest_started_ms.unwrap() < report.timings.answered_ms.unwrap(),
        "{report:?}"
    );
    let view = emulator
        .call_view(report.call_id.as_deref().unwrap())
        .unwrap();
    // Media was flowing before the answer, so the callee saw it from the first moment.
    assert!(
        view["media"][0]["first_media_ms"].as_u64().unwrap() < 2500,
        "{view:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callees_who_refuse_or_never_answer_end_the_session_so() {
    let mut config = test_emulator_config();
    config
        .behaviours
        .insert("rita".into(), Behaviour::Reject { after_ms: 300 });
    config
        .behaviours
        .insert("nora".into(), Behaviour::NeverAnswer);
    let emulator = Emulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let cloud = clients(&emulator, APP_KEY);
    let mut quiet = spec("nora", RoomRef::string("n").unwrap(), "test:");
    quiet.ring_timeout = Duration::from_secs(10);
    let (rejected, unanswered) = tokio::join!(
        run(
            spec("rita", RoomRef::string("r").unwrap(), "test:"),
            &cloud,
            None
        ),
        run(quiet, &cloud, None)
    );
    assert_eq!(rejected.outcome, Outcome::Rejected, "{rejected:?}");
    assert_eq!(unanswered.outcome, Outcome::NotAnswered, "{unanswered:?}");
    assert!(
        rejected.task_id.is_none() && unanswered.task_id.is_none(),
        "nothing was ingested"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_the_cloud_kills_is_started_again() {
    let emulator = Emulator::start(test_emulator_config(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let cloud = clients(&emulator, APP_KEY);
    let control = emulator.endpoints().control;
    let mut s = spec("jack", RoomRef::string("k").unwrap(), "test:ball+tone=440");
    s.repeat = None;
    s.max_duration = Some(Duration::from_secs(9));
    let session = run(s, &cloud, None);
    let killer = async {
        let http = reqwest::Client::new();
        // Wait for the first task to carry media, then end it as the cloud would.
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            assert!(std::time::Instant::now() < deadline, "no task");
            let tasks: Value = serde_json::from_slice(
                &http
                    .get(format!("{control}/tasks"))
                    .send()
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap(),
            )
            .unwrap();
            if let Some(t) = tasks["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["video_frames"].as_u64() > Some(20))
            {
                let id = t["task_id"].as_str().unwrap().replace('+', "%2B");
                let r = http
                    .post(format!("{control}/tasks/{id}/kill"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let (report, ()) = tokio::join!(session, killer);
    assert_eq!(report.outcome, Outcome::Completed, "{report:?}");
    assert_eq!(report.task_restarts, 1, "{report:?}");
    let view = emulator
        .call_view(report.call_id.as_deref().unwrap())
        .unwrap();
    let tasks = view["media"].as_array().unwrap();
    assert_eq!(
        tasks.len(),
        2,
        "the killed task and its replacement: {view:#}"
    );
    assert_eq!(tasks.iter().filter(|t| t["phase"] == "killed").count(), 1);
    assert!(
        tasks.iter().all(|t| t["video_frames"].as_u64() > Some(10)),
        "media observed again: {view:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_fails_clearly_and_places_no_call() {
    let emulator = Emulator::start(test_emulator_config(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let cloud = clients(&emulator, "not the app key");
    let report = run(
        spec("jack", RoomRef::string("w").unwrap(), "test:"),
        &cloud,
        None,
    )
    .await;
    match &report.outcome {
        Outcome::Failed {
            stage: Stage::Ring,
            reason,
        } => {
            assert!(
                reason.contains("70009") && reason.contains("CALLFEED_SDK_SECRET_KEY"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(report.call_id.is_none());
    let calls: Value = serde_json::from_slice(
        &reqwest::get(format!("{}/calls", emulator.endpoints().control))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        calls["calls"].as_array().unwrap().len(),
        0,
        "no phone rang: {calls}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_crashed_run_left_running_is_stopped_on_the_next_start() {
    let emulator = Emulator::start(test_emulator_config(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let cloud = clients(&emulator, APP_KEY);
    let dir = tempfile::tempdir().unwrap();
    let journal = Store::open(&dir.path().join("j.sqlite")).unwrap();
    // A session that got as far as a live call and a running task, then the process died.
    let call_id = cloud
        .start_call(&spec("jack", RoomRef::string("x").unwrap(), "test:").start_call_request())
        .await
        .unwrap();
    let mut ingest = callfeed::cloud::ingest::StartStreamIngest::new(
        RoomRef::string("x").unwrap(),
        user("robot"),
        "http://127.0.0.1:9/never.flv",
    );
    ingest.repeat_num = Some(-1);
    let task_id = cloud.start_ingest(&ingest).await.unwrap();
    journal.admit("crashed", "string:x", "robot").await.unwrap();
    journal.set_call("crashed", &call_id).await.unwrap();
    journal.set_task("crashed", &task_id).await.unwrap();
    assert!(cloud.task_alive(&task_id).await.unwrap());
    // Still this process's: recovery leaves a live run's session alone.
    let orphaned = callfeed::store::OpenSession::orphaned;
    let limit = Duration::from_secs(5);
    let left_alone = callfeed::session::teardown::recover(&journal, &cloud, limit, orphaned).await;
    assert!(left_alone.is_empty(), "{left_alone:?}");
    assert!(cloud.task_alive(&task_id).await.unwrap());
    // The process dies: its identity no longer names a living process.
    rusqlite::Connection::open(dir.path().join("j.sqlite"))
        .unwrap()
        .execute(
            "UPDATE sessions SET owner = '4194303:1' WHERE id = 'crashed'",
            [],
        )
        .unwrap();
    let recovered = callfeed::session::teardown::recover(&journal, &cloud, limit, orphaned).await;
    assert_eq!(recovered.len(), 1);
    let note = &recovered[0].as_ref().unwrap().note;
    assert!(
        note.contains("stopped task") && note.contains("ended call"),
        "{recovered:?}"
    );
    assert!(!cloud.task_alive(&task_id).await.unwrap());
    assert_eq!(
        cloud.call_status(&call_id, "robot").await.unwrap(),
        callfeed::session::CallStatus::Gone
    );
    assert_eq!(
        journal.result_of("crashed").await.unwrap().unwrap().0,
        "recovered"
    );
    assert!(journal.open_sessions().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_mid_call_goes_to_the_slate_without_a_cloud_restart() {
    use callfeed::media::contract::Contract;
    use callfeed::media::input::InputSpec;
    use callfeed::media::live::{LiveSettings, LiveStream};
    let upstream = LiveStream::start(
        InputSpec::parse("test:ball+tone=440").unwrap(),
        LiveSettings::new(Contract::new(Profile::P360)),
        &Topologies::builtin().unwrap(),
    )
    .unwrap();
    let valve = Valve::start(upstream.hub()).await;
    let emulator = Emulator::start(test_emulator_config(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let cloud = clients(&emulator, APP_KEY);
    let mut s = spec("jack", RoomRef::string("stall").unwrap(), &valve.url());
    // Restreamed, so callfeed's slate covers the stall (the cloud could pull it directly).
    s.direct = callfeed::media::plan::Direct::Never;
    s.repeat = None;
    s.max_duration = Some(Duration::from_secs(12));
    let session = run(s, &cloud, None);
    let flap = async {
        // Mid-call: once the room has heard a second of the stream (not a guessed moment).
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let calls = emulator_list(&emulator, "calls").await;
            let heard = |c: &Value| c["media"][0]["audio_ms"].as_u64() >= Some(1000);
            if calls.iter().any(heard) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{calls:#?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        valve.close();
        // The stall itself.
        tokio::time::sleep(Duration::from_secs(4)).await;
        valve.open();
    };
    let (report, ()) = tokio::join!(session, flap);
    assert_eq!(report.outcome, Outcome::Completed, "{report:?}");
    assert_eq!(report.task_restarts, 0, "the cloud task rode it out");
    let media = report.live().cloned().unwrap();
    assert!(media.slate_frames > 0, "{media:?}");
    let view = emulator
        .call_view(report.call_id.as_deref().unwrap())
        .unwrap();
    let tasks = view["media"].as_array().unwrap();
    assert_eq!(tasks.len(), 1, "{view:#}");
    assert_eq!(tasks[0]["size_changes"], 0, "{view:#}");
    assert_eq!(
        tasks[0]["gaps_over_500ms"], 0,
        "the callee saw no gap: {view:#}"
    );
    upstream.stop().await.unwrap();
}

/// The emulator's cloud, except that starting an ingest task panics (a bug in our code).
struct PanicsAtIngest(CloudClients);

impl CloudOps for PanicsAtIngest {
    async fn start_call(
        &self,
        req: &callfeed::cloud::call::StartCallByRobot,
    ) -> Result<String, callfeed::cloud::CloudError> {
        self.0.start_call(req).await
    }
    async fn call_status(
        &self,
        call_id: &str,
        robot: &str,
    ) -> Result<callfeed::session::CallStatus, callfeed::cloud::CloudError> {
        self.0.call_status(call_id, robot).await
    }
    async fn end_call(&self, call_id: &str) -> Result<(), callfeed::cloud::CloudError> {
        self.0.end_call(call_id).await
    }
    async fn start_ingest(
        &self,
        _: &callfeed::cloud::ingest::StartStreamIngest,
    ) -> Result<String, callfeed::cloud::CloudError> {
        panic!("a bug while starting the ingest task")
    }
    async fn task_alive(&self, task_id: &str) -> Result<bool, callfeed::cloud::CloudError> {
        self.0.task_alive(task_id).await
    }
    async fn stop_ingest(&self, task_id: &str) -> Result<(), callfeed::cloud::CloudError> {
        self.0.stop_ingest(task_id).await
    }
    async fn update_ingest(
        &self,
        req: &callfeed::cloud::ingest::UpdateStreamIngest,
    ) -> Result<bool, callfeed::cloud::CloudError> {
        self.0.update_ingest(req).await
    }
    async fn start_publish(
        &self,
        req: &callfeed::cloud::publish_cdn::StartPublishCdnStream,
    ) -> Result<String, callfeed::cloud::CloudError> {
        self.0.start_publish(req).await
    }
    async fn stop_publish(&self, task_id: &str) -> Result<(), callfeed::cloud::CloudError> {
        self.0.stop_publish(task_id).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_session_still_ends_its_call() {
    let emulator = Emulator::start(test_emulator_config(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let cloud = PanicsAtIngest(clients(&emulator, APP_KEY));
    let dir = tempfile::tempdir().unwrap();
    let journal = Arc::new(Store::open(&dir.path().join("j.sqlite")).unwrap());
    let report = run(
        spec("jack", RoomRef::string("panic").unwrap(), "test:"),
        &cloud,
        Some(journal.clone()),
    )
    .await;
    let Outcome::Failed { stage, reason } = &report.outcome else {
        panic!("{report:?}");
    };
    assert_eq!(*stage, callfeed::session::state::Stage::Teardown);
    assert!(reason.contains("a bug while starting"), "{reason}");
    let call_id = report.call_id.clone().expect("the journal had the call");
    assert_eq!(emulator.call_view(&call_id).unwrap()["state"], "ended");
    assert!(journal.open_sessions().await.unwrap().is_empty());
    assert_eq!(
        journal
            .result_of(&report.session_id)
            .await
            .unwrap()
            .unwrap()
            .0,
        "failed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_streamed_live_is_heard_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let clip = Clip {
        seconds: 3,
        width: 320,
        height: 240,
        fps: 25,
        tone_hz: 660,
    }
    .write(dir.path(), "live.mp4");
    // The phone rings two seconds before anyone can hear anything.
    let config = callfeed::emulator::EmulatorConfig {
        default_behaviour: Behaviour::Answer {
            after_ms: 2000,
            hangup_after_ms: None,
        },
        ..test_emulator_config()
    };
    let emulator = Emulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let cloud = clients(&emulator, APP_KEY);
    let mut live = spec(
        "jack",
        RoomRef::string("live-file").unwrap(),
        clip.to_str().unwrap(),
    );
    live.live = true;
    live.profile = Profile::Audio;
    let report = run(live, &cloud, None).await;
    assert_eq!(report.outcome, Outcome::Completed, "{report:?}");
    assert_ne!(report.mode, "announcement");
    let view = emulator
        .call_view(report.call_id.as_deref().unwrap())
        .unwrap();
    let media = &view["media"][0];
    let heard = media["audio_ms"].as_f64().unwrap();
    assert!(heard >= 0.95 * 3000.0, "heard {heard} ms of 3000: {view:#}");
    assert!(
        (media["dominant_hz"].as_f64().unwrap() - 660.0).abs() < 5.0,
        "{view:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announcement_shows_its_transcode_and_its_position_as_it_goes() {
    let dir = tempfile::tempdir().unwrap();
    let clip = Clip {
        seconds: 3,
        width: 1280,
        height: 720,
        fps: 25,
        tone_hz: 660,
    }
    .write(dir.path(), "progress.mp4");
    // (Larger than the profile's picture, so it is transcoded.)
    let emulator = Emulator::start(test_emulator_config(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let cloud = clients(&emulator, APP_KEY);
    let server = callfeed::publish::StreamServer::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    // A cache of its own, so the clip is transcoded here (not found done).
    let settings = DriverSettings {
        cache_dir: dir.path().join("cache"),
        ..DriverSettings::new(Arc::new(server))
    };
    let (status, mut seen) = tokio::sync::watch::channel(Status::default());
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let session = driver::run(
        uuid::Uuid::new_v4().to_string(),
        spec(
            "jack",
            RoomRef::string("progress").unwrap(),
            clip.to_str().unwrap(),
        ),
        &cloud,
        None,
        settings,
        Topologies::builtin().unwrap(),
        driver::Controls {
            status,
            stop: stop_rx,
            nudge: Arc::new(tokio::sync::Notify::new()),
            changes: None,
        },
    );
    let watch = async {
        let (mut transcoded, mut positions) = (None::<f64>, Vec::new());
        while seen.changed().await.is_ok() {
            let s = seen.borrow_and_update().clone();
            // Kept in the status once done, whatever phase the watcher first sees.
            transcoded = s.prepared.or(transcoded);
            if s.phase == "ingesting" && positions.last() != Some(&s.position_ms) {
                positions.push(s.position_ms);
            }
        }
        (transcoded, positions)
    };
    let (report, (transcoded, positions)) = tokio::time::timeout(Duration::from_secs(60), async {
        tokio::join!(session, watch)
    })
    .await
    .unwrap();
    assert_eq!(report.outcome, Outcome::Completed, "{report:?}");
    assert_eq!(
        transcoded,
        Some(1.0),
        "the transcode's progress reached the status"
    );
    // The position moves while the cloud plays it, not stuck at 0.
    assert!(
        positions.len() >= 3 && positions.iter().any(|&p| p >= 1000),
        "{positions:?}"
    );
}
