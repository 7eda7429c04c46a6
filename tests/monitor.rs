//! The room monitor (`monitor: true | "mix"`): the cloud publishes what the room carries back
//! to callfeed's RTMP server (StartPublishCdnStream, here the emulator's relay to CDN, which
//! really encodes and pushes it), the monitor decodes it, its figures are in the status, the
//! events and the report, and a completed session is one whose room carried the media.
//! No room witness is given to these services: the verdict comes from the monitor alone, as
//! it would against Tencent's cloud.

use std::sync::Arc;
use std::time::Duration;

use crate::common::serve::*;
use crate::common::*;
use callfeed::emulator::Emulator;
use callfeed::media::policy::{InputPolicy, Restrictions};
use serde_json::{Value, json};

/// The emulator, a serve with an RTMP server for the room's publish (and API clients that may
/// read files under a media folder), and that folder with `seconds` of a 440 Hz tone.
struct Monitored {
    emulator: Arc<Emulator>,
    api: Api,
    _service: Arc<callfeed::serve::api::Service<callfeed::session::CloudClients>>,
    _rtmp: callfeed::feed::rtmp::RtmpServer,
    rtmp_base: String,
    tone: std::path::PathBuf,
    records: std::path::PathBuf,
    /// Where the node tells room alerts and finished recordings (signed with `HOOK_KEY`).
    hooks: ScriptedServer,
    _dir: tempfile::TempDir,
}

const HOOK_KEY: &str = "event-hook-key";

async fn monitored(seconds: u32) -> Monitored {
    let emulator = Emulator::start(test_emulator_config(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let emulator = Arc::new(emulator);
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    std::fs::create_dir(&media).unwrap();
    let tone = media.join("440.m4a");
    ffmpeg(&format!(
        "-f lavfi -i sine=frequency=440:duration={seconds} -ac 2 -ar 48000 -c:a aac {}",
        tone.display()
    ));
    let roots = [media.clone()];
    let records = dir.path().join("records");
    std::fs::create_dir(&records).unwrap();
    let hooks = ScriptedServer::start(Vec::new()).await;
    hooks.set_fallback(Answer::json("{}"));
    let hook_url = url::Url::parse(&hooks.url()).unwrap();
    let (service, api) = start_service(&emulator, &dir.path().join("j.sqlite"), |c| {
        c.policy = InputPolicy::Restricted(Restrictions::new(&roots, false, &[]).unwrap());
        c.driver.record = Some(callfeed::session::driver::RecordSettings {
            dir: records.clone(),
            segment: callfeed::session::driver::DEFAULT_RECORD_SEGMENT,
        });
        c.event_webhook = Some(callfeed::serve::outbound::EventWebhook {
            url: hook_url,
            key: Some(HOOK_KEY.into()),
        });
    })
    .await;
    let rtmp = rtmp_server_for(&service).await;
    Monitored {
        emulator,
        api,
        _service: service,
        rtmp_base: format!("rtmp://{}/live", rtmp.local_addr()),
        _rtmp: rtmp,
        tone,
        records,
        hooks,
        _dir: dir,
    }
}

impl Monitored {
    /// Waits for the node to tell `kind` about `session`; checks its signature.
    async fn told(&self, kind: &str, session: &str, within: Duration) -> Value {
        let received = self
            .hooks
            .wait_for(kind, within, |r| {
                r.iter()
                    .any(|r| r.json()["type"] == kind && r.json()["session_id"] == session)
            })
            .await;
        let hook = received.iter().find(|r| r.json()["type"] == kind).unwrap();
        let signature = hook.header("x-callfeed-signature").unwrap();
        let t: i64 = signature
            .strip_prefix("t=")
            .and_then(|s| s.split(',').next())
            .and_then(|t| t.parse().ok())
            .unwrap();
        let body = String::from_utf8(hook.body.clone()).unwrap();
        assert_eq!(
            signature,
            callfeed::serve::outbound::signature(HOOK_KEY, t, &body)
        );
        hook.json()
    }
}

/// A file's length in seconds, as ffprobe reads it.
fn probed_secs(path: &std::path::Path) -> f64 {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe: run `make setup`");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0.0)
}

/// How strong each tone is in a file's sound (Goertzel over the whole of it, decoded by
/// ffmpeg to 48 kHz mono).
fn tone_strengths(path: &std::path::Path, tones: &[f64]) -> Vec<f64> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "f32le", "-ac", "1", "-ar", "48000", "-"])
        .output()
        .expect("ffmpeg: run `make setup`");
    let samples: Vec<f64> = out
        .stdout
        .chunks_exact(4)
        .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
        .collect();
    tones
        .iter()
        .map(|hz| {
            let w = 2.0 * std::f64::consts::PI * hz / 48_000.0;
            let (mut s1, mut s2) = (0.0, 0.0);
            for x in &samples {
                let s0 = x + 2.0 * w.cos() * s1 - s2;
                s2 = s1;
                s1 = s0;
            }
            (s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2).sqrt() / samples.len().max(1) as f64
        })
        .collect()
}

impl Monitored {
    /// A fault: the emulator's string room `room` carries nothing of its ingest tasks.
    async fn mute(&self, room: &str) {
        let muted = reqwest::Client::new()
            .post(format!(
                "{}/rooms/string/{room}/mute",
                self.emulator.endpoints().control
            ))
            .body(r#"{"muted": true}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(muted.status(), 200);
    }

    async fn start(&self, body: Value) -> String {
        let (status, created) = self.api.post(body).await;
        assert_eq!(status, 201, "{created}");
        created["id"].as_str().unwrap().to_owned()
    }

    async fn publishes(&self) -> Vec<Value> {
        emulator_list(&self.emulator, "publishes").await
    }
}

fn near(hz: &Value, expected: f64) -> bool {
    hz.as_f64()
        .is_some_and(|hz| (hz - expected).abs() < expected * 0.03)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_room_with_a_speaking_callee_is_measured_while_it_runs_and_in_the_report() {
    let m = monitored(8).await;
    m.emulator.set_voice("jack", Some(660.0));
    let id = m
        .start(
            json!({"to": ["jack"], "media": m.tone, "room": "monitored-mix",
            "media_type": "audio", "monitor": "mix", "record": true}),
        )
        .await;
    // While it runs: the monitor's figures, with the emulator room view's names.
    let running = m
        .api
        .until(
            &format!("/v1/sessions/{id}"),
            Duration::from_secs(20),
            |v| v["status"]["monitor"]["audio_ms"].as_u64() > Some(1500),
        )
        .await;
    let monitor = &running["status"]["monitor"];
    assert_eq!(monitor["state"], "receiving", "{running:#}");
    assert_eq!(monitor["source"], "mix");
    assert!(
        monitor["audio_level_db"]
            .as_f64()
            .is_some_and(|db| db > -40.0),
        "{monitor:#}"
    );
    assert!(
        near(&monitor["dominant_hz"], 440.0) || near(&monitor["dominant_hz"], 660.0),
        "the robot's 440 Hz or the callee's 660 Hz: {monitor:#}"
    );
    let publishes = m.publishes().await;
    assert_eq!(publishes.len(), 1, "{publishes:?}");
    assert_eq!(publishes[0]["from"]["kind"], "mix");
    assert_eq!(publishes[0]["room_kind"], "string");
    let events = events_until_report(&m.api.base, &id).await;
    assert!(events.contains("event: monitor"), "{events}");
    let report = until_ended(&m.api.base, TOKEN, &id, Duration::from_secs(30)).await;
    assert_eq!(report["report"]["result"], "completed", "{report:#}");
    let seen = &report["report"]["monitor"];
    assert!(seen["audio_ms"].as_u64() > Some(5000), "{seen:#}");
    assert_eq!(seen["gaps_over_500ms"], 0, "{seen:#}");
    // No publish task is left once the session ended.
    let publishes = m.publishes().await;
    assert_eq!(publishes[0]["state"], "stopped", "{publishes:?}");
    // The recording: one finished M4A, as long as what the monitor received, both voices in it.
    let files = seen["recording"]["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{seen:#}");
    let path = m.records.join(&id).join(files[0].as_str().unwrap());
    let received = (seen["last_media_ms"].as_f64().unwrap()
        - seen["first_media_ms"].as_f64().unwrap())
        / 1000.0;
    let recorded = probed_secs(&path);
    assert!(
        (recorded - received).abs() <= received * 0.02,
        "recorded {recorded} s of the {received} s received"
    );
    let t = &report["report"]["timings"];
    let bound =
        (t["ended_ms"].as_f64().unwrap() - t["ingest_started_ms"].as_f64().unwrap()) / 1000.0;
    assert!(
        recorded >= bound * 0.9,
        "recorded {recorded} s of a call bound {bound} s"
    );
    let [robot, callee, neither] = tone_strengths(&path, &[440.0, 660.0, 1000.0])[..] else {
        unreachable!()
    };
    assert!(
        robot > neither * 10.0 && callee > neither * 10.0,
        "440 Hz {robot}, 660 Hz {callee}, 1000 Hz {neither}"
    );
    // Served under the API's auth, as the file it is.
    let url = format!("{}/v1/sessions/{id}/recording", m.api.base);
    let http = reqwest::Client::new();
    assert_eq!(http.get(&url).send().await.unwrap().status(), 401);
    let served = http.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.headers()["content-type"], "audio/mp4");
    assert_eq!(served.bytes().await.unwrap(), std::fs::read(&path).unwrap());
    let told = m.told("recording_ready", &id, Duration::from_secs(5)).await;
    assert_eq!(told["data"]["files"], seen["recording"]["files"], "{told}");
    assert_eq!(told["data"]["url"], format!("/v1/sessions/{id}/recording"));
    let elsewhere = format!("{}/v1/sessions/..%2F..%2Fetc/recording", m.api.base);
    let refused = http
        .get(&elsewhere)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_numeric_room_is_published_with_its_own_room_id_type_and_carries_the_robot() {
    let m = monitored(5).await;
    let id = m
        .start(
            json!({"to": ["jack"], "media": m.tone, "room": "4711", "room_type": "numeric",
            "media_type": "audio", "monitor": true}),
        )
        .await;
    let report = until_ended(&m.api.base, TOKEN, &id, Duration::from_secs(30)).await;
    // Published as a string room (RoomIdType 1 read the other way round), the publish would
    // look for the robot in another room and carry nothing: the verdict would fail.
    assert_eq!(report["report"]["result"], "completed", "{report:#}");
    let seen = &report["report"]["monitor"];
    assert!(near(&seen["dominant_hz"], 440.0), "{seen:#}");
    assert!(seen["audio_ms"].as_u64() > Some(3000), "{seen:#}");
    let publishes = m.publishes().await;
    assert_eq!(publishes[0]["room_kind"], "numeric", "{publishes:?}");
    assert_eq!(publishes[0]["from"]["user_id"], "robot", "{publishes:?}");
    assert_eq!(publishes[0]["state"], "stopped", "{publishes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_that_carries_nothing_fails_at_the_room_stage() {
    let m = monitored(4).await;
    m.mute("silent-room").await;
    let id = m
        .start(
            json!({"to": ["jack"], "media": m.tone, "room": "silent-room",
            "media_type": "audio", "monitor": true}),
        )
        .await;
    let report = until_ended(&m.api.base, TOKEN, &id, Duration::from_secs(30)).await;
    // Without the monitor this session says `completed`: the cloud took the task and played
    // the file through.
    assert_eq!(report["report"]["result"], "failed", "{report:#}");
    assert_eq!(report["report"]["stage"], "room", "{report:#}");
    let reason = report["report"]["reason"].as_str().unwrap();
    assert!(reason.contains("received 0 ms of audio"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cloud_giving_up_its_publish_mid_call_is_said_and_the_session_is_not_completed() {
    let m = monitored(20).await;
    let id = m
        .start(json!({"to": ["jack"], "media": m.tone, "room": "lost-room",
            "media_type": "audio", "monitor": true, "max_duration_secs": 10}))
        .await;
    m.api
        .until(
            &format!("/v1/sessions/{id}"),
            Duration::from_secs(20),
            |v| v["status"]["monitor"]["audio_ms"].as_u64() > Some(1000),
        )
        .await;
    let publish = m.publishes().await[0]["task_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let killed = reqwest::Client::new()
        .post(format!(
            "{}/publishes/{}/kill",
            m.emulator.endpoints().control,
            publish.replace('+', "%2B")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(killed.status(), 200);
    let lost = m
        .api
        .until(&format!("/v1/sessions/{id}"), Duration::from_secs(5), |v| {
            v["status"]["monitor"]["state"] == "lost"
        })
        .await;
    let alerts = &lost["status"]["monitor"]["alerts"];
    assert_eq!(alerts[0]["kind"], "room_lost", "{lost:#}");
    let events = events_until_report(&m.api.base, &id).await;
    assert!(events.contains("event: room_lost"), "{events}");
    let report = until_ended(&m.api.base, TOKEN, &id, Duration::from_secs(30)).await;
    assert_eq!(report["report"]["stage"], "room", "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_needs_an_rtmp_server_and_is_refused_before_anything_rings() {
    let emulator = Emulator::start(test_emulator_config(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_service, api) = start_service(&emulator, &dir.path().join("j.sqlite"), |_| {}).await;
    let (status, body) = api
        .post(
            json!({"to": ["jack"], "media": "test:black+tone=440", "room": "r",
            "media_type": "audio", "monitor": true}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "monitor", "{body}");
    let (status, body) = api
        .post(
            json!({"to": ["jack"], "media": "test:black+tone=440", "room": "r",
            "monitor": "everyone"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "monitor", "{body}");
    assert!(emulator_list(&emulator, "calls").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_leaves_no_publish_behind_after_its_restart() {
    let (_emulator, control, env) = emulator_process().await;
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.sqlite").display().to_string();
    let args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--rtmp-listen",
        "127.0.0.1:0",
        "--journal",
        journal.as_str(),
    ];
    let (mut serve, line) = spawn_line(&args, &env).await;
    let api = Api::from_line(&line);
    let (status, created) = api
        .post(
            json!({"to": ["jack"], "media": "test:black+tone=440", "room": "killed",
            "media_type": "audio", "loop_forever": true, "monitor": true}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    api.until(
        &format!("/v1/sessions/{id}"),
        Duration::from_secs(20),
        |v| v["status"]["monitor"]["audio_ms"].as_u64() > Some(500),
    )
    .await;
    // kill -9: no teardown runs, the cloud goes on publishing the room.
    serve.start_kill().unwrap();
    let _ = serve.wait().await;
    let publishes = emulator_list_at(&control, "publishes").await;
    assert_ne!(publishes[0]["state"], "stopped", "{publishes:?}");
    let (_serve, _) = spawn_line(&args, &env).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let publishes = emulator_list_at(&control, "publishes").await;
        if publishes[0]["state"] == "stopped" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the publish was not stopped: {publishes:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let store = callfeed::store::Store::open(std::path::Path::new(&journal)).unwrap();
    let (result, note) = callfeed::store::SessionStore::result_of(&store, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(result, "recovered");
    assert!(note.contains("stopped publish task"), "{note}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_gone_silent_and_still_is_said_within_five_seconds() {
    let m = monitored(1).await;
    let id = m
        .start(
            json!({"to": ["jack"], "media": "test:ball+tone=440", "room": "going-quiet",
            "profile": "360p", "loop_forever": true, "monitor": true}),
        )
        .await;
    m.api
        .until(
            &format!("/v1/sessions/{id}"),
            Duration::from_secs(20),
            |v| v["status"]["monitor"]["video_frames"].as_u64() > Some(20),
        )
        .await;
    let muted_at = std::time::Instant::now();
    m.mute("going-quiet").await;
    let quiet = m
        .api
        .until(&format!("/v1/sessions/{id}"), Duration::from_secs(5), |v| {
            let alerts = v["status"]["monitor"]["alerts"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            ["room_silent", "room_frozen"]
                .iter()
                .all(|kind| alerts.iter().any(|a| a["kind"] == *kind))
        })
        .await;
    assert!(muted_at.elapsed() < Duration::from_secs(5), "{quiet:#}");
    let stopped = m
        .api
        .http
        .delete(format!("{}/v1/sessions/{id}", m.api.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert!(stopped.status().is_success());
    let events = events_until_report(&m.api.base, &id).await;
    assert!(events.contains("event: room_silent"), "{events}");
    assert!(events.contains("event: room_frozen"), "{events}");
    let told = m.told("room_frozen", &id, Duration::from_secs(5)).await;
    assert!(
        told["data"]["detail"].as_str().unwrap().contains("picture"),
        "{told}"
    );
    m.told("room_silent", &id, Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_recording_with_its_reason_and_the_monitor_goes_on() {
    use callfeed::media::inlet::{Container, Inlet};
    use callfeed::media::monitor::RoomMonitor;
    use callfeed::media::recording::{RecordSpec, Recording};
    let dir = tempfile::tempdir().unwrap();
    let clip = Clip {
        seconds: 2,
        width: 160,
        height: 120,
        fps: 15,
        tone_hz: 440,
    }
    .write(dir.path(), "c.flv");
    let folder = dir.path().join("session");
    std::fs::create_dir(&folder).unwrap();
    // The first segment's file leads to a device that is always full.
    std::os::unix::fs::symlink("/dev/full", folder.join("part-001-000.mp4.part")).unwrap();
    let recording = Recording::new(RecordSpec {
        dir: folder.clone(),
        audio_only: false,
        segment: Duration::from_secs(3600),
    });
    let inlet = Inlet::new();
    let monitor = RoomMonitor::start(inlet.clone(), Some(recording.clone())).unwrap();
    let mut writer = inlet.connect(Container::Flv).unwrap();
    let data = std::fs::read(&clip).unwrap();
    for tag in callfeed::media::flv::split_tags(&data) {
        let ts = callfeed::media::flv::tag_timestamp(tag).unwrap_or_default();
        writer.send(tag[0] & 0x1f, ts, &tag[11..]).unwrap();
    }
    drop(writer);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while recording.view().stopped.is_none() || monitor.figures().audio_ms < 1500 {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?} {:?}",
            recording.view(),
            monitor.figures()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let why = recording.view().stopped.unwrap();
    assert!(why.contains("could not be written"), "{why}");
    assert!(recording.view().files.is_empty());
    let seen = monitor.stop().await;
    assert!(seen.audio_ms >= 1500 && seen.video_frames >= 20, "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_dir_that_is_not_there_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j.sqlite").display().to_string();
    let missing = dir.path().join("no-such-folder").display().to_string();
    let (code, said) = serve_exits(
        &[
            "--listen",
            "127.0.0.1:0",
            "--journal",
            &journal,
            "--record-dir",
            &missing,
        ],
        &[],
    )
    .await;
    assert_ne!(code, Some(0));
    assert!(
        said.contains("--record-dir") && said.contains("make it first"),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_push_with_a_key_no_session_opened_is_refused() {
    use crate::feeds::publishers::{outcome, push_rtmp};
    let m = monitored(1).await;
    let (ok, said) = outcome(push_rtmp(&format!(
        "{}/mon-0123456789abcdef0123456789abcdef",
        m.rtmp_base
    )))
    .await;
    assert!(!ok);
    assert!(said.contains("wrong stream key"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_monitor_for_every_session_needs_an_rtmp_server_and_then_monitors_each() {
    let emulator = Emulator::start(test_emulator_config(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("callfeed.toml");
    std::fs::write(&config, "[monitor]\nsource = \"mix\"\n").unwrap();
    let config = config.display().to_string();
    let journal = dir.path().join("j.sqlite").display().to_string();
    let mut env = cloud_env(&emulator);
    env.push(("CALLFEED_CONFIG", config));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (code, said) = serve_exits(&["--listen", "127.0.0.1:0", "--journal", &journal], &env).await;
    assert_ne!(code, Some(0));
    assert!(
        said.contains("[monitor]") && said.contains("--rtmp-listen"),
        "{said}"
    );
    let (_serve, base) = serve_binary(
        &[
            "--listen",
            "127.0.0.1:0",
            "--journal",
            &journal,
            "--rtmp-listen",
            "127.0.0.1:0",
        ],
        &env,
    )
    .await;
    let api = Api {
        base,
        http: reqwest::Client::new(),
    };
    let (status, created) = api
        .post(
            json!({"to": ["jack"], "media": "test:black+tone=440", "room": "every",
            "media_type": "audio", "max_duration_secs": 3}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let ended = api.ended(id, Duration::from_secs(20)).await;
    assert_eq!(ended["report"]["monitor"]["source"], "mix", "{ended:#}");
    assert_eq!(ended["report"]["result"], "completed", "{ended:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_the_cloud_refuses_is_said_and_the_session_is_not_completed() {
    let m = monitored(3).await;
    m.emulator.add_fault(callfeed::emulator::Fault {
        target: "StartPublishCdnStream".into(),
        count: 1,
        error: Some(json!("FailedOperation.NotAllowed")),
        message: Some("the relay to CDN is not enabled for this application".into()),
        http_status: None,
        delay_ms: 0,
        drop: false,
        effect_then_drop: false,
    });
    let id = m
        .start(
            json!({"to": ["jack"], "media": m.tone, "room": "refused-room",
            "media_type": "audio", "monitor": true}),
        )
        .await;
    let report = until_ended(&m.api.base, TOKEN, &id, Duration::from_secs(30)).await;
    assert_eq!(
        report["report"]["monitor"]["state"], "refused",
        "{report:#}"
    );
    assert_eq!(report["report"]["stage"], "room", "{report:#}");
    let reason = report["report"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("could not be monitored") && reason.contains("FailedOperation.NotAllowed"),
        "{reason}"
    );
    assert!(m.publishes().await.is_empty());
}
