//! The emulator as a cloud: callfeed's own client against it for every command and action,
//! the documented error paths, webhooks, callee scripts, fault injection, and what the room
//! observer saw in each room.

use std::time::Duration;

use crate::common::*;
use callfeed::cloud::call::{
    CallClient, GetRecordByFilter, MediaType, SetCallback, StartCallByRobot,
};
use callfeed::cloud::http::{CloudError, HttpSettings};
use callfeed::cloud::ingest::{IngestClient, IngestStatus, StartStreamIngest, UpdateStreamIngest};
use callfeed::cloud::webhook::{
    CallWebhook, IngestEvent, MemberAction, TrtcWebhook, verify_trtc_sign,
};
use callfeed::cloud::{RoomRef, UserId};
use callfeed::emulator::{Behaviour, Emulator, EmulatorConfig, Pace, TrtcCallback};
use serde_json::{Value, json};

const CALLBACK_KEY: &str = "123654";

fn emulator_config() -> EmulatorConfig {
    EmulatorConfig {
        pace: Pace::Fast,
        default_behaviour: Behaviour::Answer {
            after_ms: 100,
            hangup_after_ms: None,
        },
        record_delay: Duration::from_millis(300),
        ..test_emulator_config()
    }
}

struct Cloud {
    emulator: Emulator,
    calls: CallClient,
    ingest: IngestClient,
    control: String,
    http: reqwest::Client,
}

fn settings() -> HttpSettings {
    HttpSettings {
        timeout: Duration::from_secs(5),
        max_attempts: 3,
        backoff_min: Duration::from_millis(5),
        backoff_max: Duration::from_millis(20),
        rate_limits: true,
    }
}

async fn cloud_with(config: EmulatorConfig, http: HttpSettings) -> Cloud {
    let emulator = Emulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let base = format!("{}/", emulator.endpoints().im_endpoint);
    let callfeed::session::CloudClients { calls, ingest } = test_clients(&base, APP_KEY, http);
    let control = emulator.endpoints().control;
    Cloud {
        emulator,
        calls,
        ingest,
        control,
        http: reqwest::Client::new(),
    }
}

async fn cloud() -> Cloud {
    cloud_with(emulator_config(), settings()).await
}

impl Cloud {
    async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.control))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .map(|b| serde_json::from_slice(&b).unwrap())
            .unwrap()
    }

    async fn post(&self, path: &str, body: Value) -> reqwest::StatusCode {
        self.http
            .post(format!("{}{path}", self.control))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
            .status()
    }

    /// Polls the control API until `done` holds, or panics at the deadline.
    async fn until(
        &self,
        path: &str,
        what: &str,
        deadline: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let started = std::time::Instant::now();
        loop {
            let v = self.get(path).await;
            if done(&v) {
                return v;
            }
            assert!(
                started.elapsed() < deadline,
                "timed out waiting for {what}: {v:#}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn user(s: &str) -> UserId {
    UserId::new("test", s).unwrap()
}

fn start_call(to: &str, room: RoomRef) -> StartCallByRobot {
    StartCallByRobot {
        robot: user("robot"),
        callees: vec![user(to)],
        timeout_ms: 10_000,
        media_type: MediaType::Video,
        room: Some(room),
        user_data: None,
        offline_push: None,
    }
}

fn task_path(task_id: &str) -> String {
    format!("/tasks/{}", task_id.replace('+', "%2B"))
}

fn within(actual: f64, expected: f64, tolerance: f64) -> bool {
    (actual - expected).abs() <= expected * tolerance
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_and_an_ingest_task_end_to_end() {
    let media = tempfile::tempdir().unwrap();
    Clip {
        seconds: 2,
        width: 320,
        height: 240,
        fps: 25,
        tone_hz: 440,
    }
    .write(media.path(), "a440.mp4");
    Clip {
        seconds: 2,
        width: 320,
        height: 240,
        fps: 25,
        tone_hz: 880,
    }
    .write(media.path(), "a880.mp4");
    let files = serve_dir(media.path()).await;
    let hooks = ScriptedServer::start(vec![]).await;
    hooks.set_fallback(Answer::json(
        "{\"ActionStatus\":\"OK\",\"ErrorCode\":0,\"ErrorInfo\":\"\"}",
    ));
    let cloud = cloud().await;
    cloud.emulator.set_trtc_callback(Some(TrtcCallback {
        url: format!("{}trtc", hooks.url()),
        key: CALLBACK_KEY.into(),
    }));

    // Webhook configuration round trip.
    assert!(matches!(
        cloud.calls.get_callback().await.unwrap_err(),
        CloudError::Im { code: 100301, .. }
    ));
    cloud
        .calls
        .set_callback(&SetCallback {
            url: format!("{}call", hooks.url()),
            commands: CallWebhook::ALL_COMMANDS.map(str::to_owned).to_vec(),
        })
        .await
        .unwrap();
    let config = cloud.calls.get_callback().await.unwrap().response;
    assert_eq!(config.commands.len(), 3);

    // Ring jack; he answers after 100 ms.
    let room = RoomRef::string("roomid-test").unwrap();
    let started = cloud
        .calls
        .start_call_by_robot(&start_call("jack", room.clone()))
        .await
        .unwrap();
    let call_id = started.response.call_id.clone();
    assert_eq!(call_id.len(), 36, "a UUID: {call_id}");
    assert!(started.request_id.starts_with("Id-"));
    assert_eq!(started.response.call_result[0].callee, "jack");
    cloud
        .until(
            &format!("/calls/{call_id}"),
            "jack to answer",
            Duration::from_secs(5),
            |v| v["state"] == "connected",
        )
        .await;
    let info = cloud.calls.get_call_info(&call_id).await.unwrap().response;
    assert_eq!(info.answered("robot").collect::<Vec<_>>(), ["jack"]);
    assert_eq!(
        (info.call_info.room_id.as_str(), info.call_info.room_id_type),
        ("roomid-test", 2)
    );

    // Pull the 440 Hz clip into the same room, looping until stopped.
    let mut ingest =
        StartStreamIngest::new(room.clone(), user("robot"), format!("{files}a440.mp4"));
    ingest.repeat_num = Some(-1);
    let task = cloud.ingest.start(&ingest).await.unwrap().response.task_id;
    assert!(task.len() > 60 && task.contains('.'), "{task}");
    let seen = cloud
        .until(
            &format!("/calls/{call_id}"),
            "media in jack's room",
            Duration::from_secs(10),
            |v| {
                v["members"][0]["sees_media"] == true
                    && v["media"][0]["video_frames"].as_u64() > Some(60)
            },
        )
        .await;
    let m = &seen["media"][0];
    assert_eq!(
        (m["width"].as_u64(), m["height"].as_u64()),
        (Some(320), Some(240))
    );
    assert!(
        (m["dominant_hz"].as_f64().unwrap() - 440.0).abs() < 5.0,
        "{m}"
    );
    let room_view = cloud.get("/rooms/string/roomid-test").await;
    let members: Vec<(&str, &str)> = room_view["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["user_id"].as_str().unwrap(), m["role"].as_str().unwrap()))
        .collect();
    assert_eq!(members, [("jack", "callee"), ("robot", "ingest_robot")]);
    assert_eq!(
        cloud.ingest.describe(&task).await.unwrap().response.status,
        IngestStatus::InProgress
    );

    // Switch the source: the room now hears 880 Hz.
    cloud
        .ingest
        .update(&UpdateStreamIngest {
            task_id: task.clone(),
            stream_url: Some(format!("{files}a880.mp4")),
            ..UpdateStreamIngest::default()
        })
        .await
        .unwrap();
    cloud
        .until(
            &task_path(&task),
            "the new source",
            Duration::from_secs(15),
            |v| (v["dominant_hz"].as_f64().unwrap_or(0.0) - 880.0).abs() < 5.0,
        )
        .await;

    // Stop; a second stop is refused as finished.
    cloud.ingest.stop(&task).await.unwrap();
    assert_eq!(
        cloud.ingest.describe(&task).await.unwrap().response.status,
        IngestStatus::NotExist
    );
    let again = cloud.ingest.stop(&task).await.unwrap_err();
    assert_eq!(
        again.code().as_deref(),
        Some("FailedOperation.TaskFinished")
    );

    // End the call; its record appears after the record delay.
    cloud.calls.end_call(&call_id).await.unwrap();
    assert_eq!(
        cloud
            .calls
            .get_call_info(&call_id)
            .await
            .unwrap_err()
            .code()
            .as_deref(),
        Some("101004")
    );
    assert_eq!(
        cloud
            .calls
            .end_call(&call_id)
            .await
            .unwrap_err()
            .code()
            .as_deref(),
        Some("101004")
    );
    let record = loop {
        match cloud.calls.get_record_by_callid(&call_id).await {
            Ok(r) => break r.response.record,
            Err(e) => {
                assert_eq!(e.code().as_deref(), Some("101050"));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(record.call_result, "NormalEnd");
    assert!(record.accept_time > 0);
    assert_eq!(record.room(), Some(room.clone()));
    let list = cloud
        .calls
        .get_record_by_filter(&GetRecordByFilter {
            call_result: Some("NormalEnd".into()),
            ..GetRecordByFilter::default()
        })
        .await
        .unwrap()
        .response;
    assert_eq!(list.total, 1);
    assert_eq!(list.records[0].call_id, call_id);
    cloud.calls.delete_callback().await.unwrap();
    assert!(cloud.calls.get_callback().await.is_err());

    // Webhooks: the three call callbacks, then 701/0 and 702/0, signed.
    let got = hooks
        .wait_for("call and ingest webhooks", Duration::from_secs(10), |r| {
            r.iter().filter(|x| x.uri.starts_with("/call")).count() >= 3
                && r.iter()
                    .any(|x| x.uri.starts_with("/trtc") && x.json()["EventType"] == 702)
        })
        .await;
    let call_hooks: Vec<CallWebhook> = got
        .iter()
        .filter(|r| r.uri.starts_with("/call"))
        .map(|r| {
            assert_eq!(r.query("SdkAppid").as_deref(), Some("1400000000"));
            assert_eq!(r.query("contenttype").as_deref(), Some("json"));
            CallWebhook::parse(&r.body, r.query("CallbackCommand").as_deref()).unwrap()
        })
        .collect();
    assert!(
        matches!(&call_hooks[0], CallWebhook::AfterStartCall { call, .. } if call.call_id == call_id)
    );
    assert!(
        matches!(&call_hooks[1], CallWebhook::AfterMemberChanged { changed, .. }
        if changed[0].user == "jack" && changed[0].action == MemberAction::Answer)
    );
    assert!(
        matches!(&call_hooks[2], CallWebhook::AfterEndCall { record, .. } if record.call_result == "NormalEnd")
    );
    let ingest_events: Vec<IngestEvent> = got
        .iter()
        .filter(|r| r.uri.starts_with("/trtc"))
        .map(|r| {
            assert!(verify_trtc_sign(
                CALLBACK_KEY,
                &r.body,
                &r.header("sign").unwrap()
            ));
            assert_eq!(r.header("sdkappid").as_deref(), Some("1400000000"));
            match TrtcWebhook::parse(&r.body).unwrap() {
                TrtcWebhook::Ingest { task_id, event, .. } => {
                    assert_eq!(task_id, task);
                    event
                }
                other => panic!("{other:?}"),
            }
        })
        .collect();
    assert!(ingest_events.contains(&IngestEvent::Started));
    assert!(ingest_events.contains(&IngestEvent::Stopped));
    cloud.emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_room_gets_its_own_stream() {
    let media = tempfile::tempdir().unwrap();
    let a = Clip {
        seconds: 2,
        width: 320,
        height: 240,
        fps: 25,
        tone_hz: 440,
    };
    a.write(media.path(), "a440.mp4");
    let b = Clip {
        seconds: 2,
        width: 640,
        height: 360,
        fps: 30,
        tone_hz: 880,
    };
    b.write(media.path(), "b880.flv");
    let files = serve_dir(media.path()).await;
    let cloud = cloud().await;
    let alpha = RoomRef::string("alpha").unwrap();
    let numeric = RoomRef::numeric(12345).unwrap();
    let t1 = cloud
        .ingest
        .start(&StartStreamIngest::new(
            alpha,
            user("bot_a"),
            format!("{files}a440.mp4"),
        ))
        .await
        .unwrap()
        .response
        .task_id;
    let t2 = cloud
        .ingest
        .start(&StartStreamIngest::new(
            numeric,
            user("bot_b"),
            format!("{files}b880.flv"),
        ))
        .await
        .unwrap()
        .response
        .task_id;
    for (task, clip, hz) in [(&t1, &a, 440.0), (&t2, &b, 880.0)] {
        let v = cloud
            .until(
                &task_path(task),
                "the single play to finish",
                Duration::from_secs(15),
                |v| v["status"] == "NotExist",
            )
            .await;
        assert_eq!(v["phase"], "completed", "{v}");
        assert!(
            within(
                v["video_frames"].as_f64().unwrap(),
                f64::from(clip.frames()),
                0.05
            ),
            "{v}"
        );
        assert_eq!(v["width"].as_u64(), Some(u64::from(clip.width)));
        assert_eq!(v["height"].as_u64(), Some(u64::from(clip.height)));
        assert!((v["dominant_hz"].as_f64().unwrap() - hz).abs() < 5.0, "{v}");
        assert!(v["first_media_ms"].as_u64().is_some());
    }
    let alpha_view = cloud.get("/rooms/string/alpha").await;
    assert_eq!(alpha_view["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(alpha_view["tasks"][0]["task_id"], json!(t1));
    let numeric_view = cloud.get("/rooms/numeric/12345").await;
    assert_eq!(numeric_view["tasks"][0]["task_id"], json!(t2));
    assert_eq!(
        cloud.get("/rooms").await["rooms"].as_array().unwrap().len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_id_type_mix_up_leaves_the_callee_without_media() {
    let media = tempfile::tempdir().unwrap();
    Clip {
        seconds: 1,
        width: 160,
        height: 120,
        fps: 25,
        tone_hz: 440,
    }
    .write(media.path(), "c.mp4");
    let files = serve_dir(media.path()).await;
    let cloud = cloud().await;
    // The call is in the string room "123"; the stream goes to the numeric room 123.
    let call_id = cloud
        .calls
        .start_call_by_robot(&start_call("jack", RoomRef::string("123").unwrap()))
        .await
        .unwrap()
        .response
        .call_id;
    let mut wrong = StartStreamIngest::new(
        RoomRef::numeric(123).unwrap(),
        user("robot"),
        format!("{files}c.mp4"),
    );
    wrong.repeat_num = Some(-1);
    let task = cloud.ingest.start(&wrong).await.unwrap().response.task_id;
    cloud
        .until(
            &task_path(&task),
            "media in the numeric room",
            Duration::from_secs(10),
            |v| v["video_frames"].as_u64() > Some(10),
        )
        .await;
    let call = cloud
        .until(
            &format!("/calls/{call_id}"),
            "jack to answer",
            Duration::from_secs(5),
            |v| v["state"] == "connected",
        )
        .await;
    assert_eq!(call["members"][0]["sees_media"], false, "{call:#}");
    assert_eq!(call["media"].as_array().unwrap().len(), 0);
    let string_room = cloud.get("/rooms/string/123").await;
    assert_eq!(string_room["tasks"].as_array().unwrap().len(), 0);
    assert_eq!(string_room["members"][0]["user_id"], "jack");
    let numeric_room = cloud.get("/rooms/numeric/123").await;
    assert!(
        numeric_room["members"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["role"] == "ingest_robot")
    );
    cloud.ingest.stop(&task).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callee_scripts_decide_how_calls_end() {
    let hooks = ScriptedServer::start(vec![]).await;
    hooks.set_fallback(Answer::json("{}"));
    let mut config = emulator_config();
    config
        .behaviours
        .insert("rita".into(), Behaviour::Reject { after_ms: 50 });
    config.behaviours.insert("bob".into(), Behaviour::Busy);
    config.behaviours.insert(
        "hank".into(),
        Behaviour::Answer {
            after_ms: 50,
            hangup_after_ms: Some(200),
        },
    );
    config
        .behaviours
        .insert("nora".into(), Behaviour::NeverAnswer);
    let cloud = cloud_with(config, settings()).await;
    cloud
        .calls
        .set_callback(&SetCallback {
            url: hooks.url(),
            commands: CallWebhook::ALL_COMMANDS.map(str::to_owned).to_vec(),
        })
        .await
        .unwrap();
    let room = RoomRef::string("r").unwrap();
    let mut expected = Vec::new();
    for (who, result) in [
        ("rita", "Reject"),
        ("bob", "CallBusy"),
        ("hank", "NormalEnd"),
        ("nora", "NotAnswer"),
    ] {
        let id = cloud
            .calls
            .start_call_by_robot(&start_call(who, room.clone()))
            .await
            .unwrap()
            .response
            .call_id;
        expected.push((id, result));
    }
    // The control API can change a script at run time too.
    assert!(
        cloud
            .post(
                "/users/zed/behaviour",
                json!({"action":"reject","after_ms":10})
            )
            .await
            .is_success()
    );
    assert_eq!(
        cloud
            .post("/users/zed/behaviour", json!({"action":"dance"}))
            .await
            .as_u16(),
        400
    );
    let zed = cloud
        .calls
        .start_call_by_robot(&start_call("zed", room.clone()))
        .await
        .unwrap()
        .response
        .call_id;
    expected.push((zed, "Reject"));
    for (id, result) in &expected {
        let deadline = if *result == "NotAnswer" { 15 } else { 5 };
        let v = cloud
            .until(
                &format!("/calls/{id}"),
                result,
                Duration::from_secs(deadline),
                |v| v["state"] == "ended",
            )
            .await;
        assert_eq!(v["result"], *result, "{v:#}");
    }
    let got = hooks
        .wait_for("five AfterEndCall webhooks", Duration::from_secs(5), |r| {
            r.iter()
                .filter(|x| x.json()["CallbackCommand"] == CallWebhook::AFTER_END_CALL)
                .count()
                == 5
        })
        .await;
    let hangup = got.iter().any(|r| {
        matches!(CallWebhook::parse(&r.body, None), Ok(CallWebhook::AfterMemberChanged { changed, .. })
            if changed[0].user == "hank" && changed[0].action == MemberAction::Hangup)
    });
    assert!(hangup, "hank's hang-up was reported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_source_ends_in_701_status_1_after_the_retries() {
    let hooks = ScriptedServer::start(vec![]).await;
    hooks.set_fallback(Answer::json("{}"));
    let cloud = cloud().await;
    cloud.emulator.set_trtc_callback(Some(TrtcCallback {
        url: hooks.url(),
        key: CALLBACK_KEY.into(),
    }));
    let started = std::time::Instant::now();
    let url = format!("http://127.0.0.1:{}/live.flv", closed_port());
    let task = cloud
        .ingest
        .start(&StartStreamIngest::new(
            RoomRef::string("r").unwrap(),
            user("robot"),
            url,
        ))
        .await
        .unwrap()
        .response
        .task_id;
    let got = hooks
        .wait_for("701 status 1", Duration::from_secs(15), |r| {
            r.iter().any(|x| x.json()["EventInfo"]["Status"] == 1)
        })
        .await;
    let statuses: Vec<i64> = got
        .iter()
        .map(|r| r.json())
        .filter(|v| v["EventType"] == 701)
        .map(|v| v["EventInfo"]["Status"].as_i64().unwrap())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 2).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&1));
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "retries at 0, 1 and 3 s"
    );
    let v = cloud.get(&task_path(&task)).await;
    assert_eq!(v["status"], "NotExist");
    assert_eq!(v["phase"], "failed");
    assert_eq!(v["reconnects"], 3);
    assert_eq!(v["errors"].as_array().unwrap().len(), 4, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_are_injected_and_killed_tasks_report_not_exist() {
    let media = tempfile::tempdir().unwrap();
    Clip {
        seconds: 1,
        width: 160,
        height: 120,
        fps: 25,
        tone_hz: 440,
    }
    .write(media.path(), "c.mp4");
    let files = serve_dir(media.path()).await;
    let cloud = cloud().await;
    let room = RoomRef::string("r").unwrap();
    assert!(
        cloud
            .post(
                "/faults",
                json!({"target":"start_call_by_robot","error":60007})
            )
            .await
            .is_success()
    );
    // A rate-limit code is retried by the client: the call still starts.
    let call = cloud
        .calls
        .start_call_by_robot(&start_call("jack", room.clone()))
        .await
        .unwrap();
    assert!(!call.response.call_id.is_empty());
    assert!(
        cloud
            .post("/faults", json!({"target":"get_call_info","drop":true}))
            .await
            .is_success()
    );
    cloud
        .calls
        .get_call_info(&call.response.call_id)
        .await
        .unwrap();
    assert!(
        cloud
            .post(
                "/faults",
                json!({"target":"DescribeStreamIngest","http_status":502,"count":5})
            )
            .await
            .is_success()
    );
    let e = cloud.ingest.describe("no-such-task").await.unwrap_err();
    assert!(matches!(e, CloudError::Status { status: 502, .. }), "{e}");
    assert_eq!(
        cloud.get("/faults").await["faults"][0]["count"],
        2,
        "three attempts used three faults"
    );
    assert!(
        cloud
            .post(
                "/faults",
                json!({"target":"StopStreamIngest","error":"InternalError","message":"boom"})
            )
            .await
            .is_success()
    );
    let mut looping = StartStreamIngest::new(room, user("robot"), format!("{files}c.mp4"));
    looping.repeat_num = Some(-1);
    let task = cloud.ingest.start(&looping).await.unwrap().response.task_id;
    let e = cloud.ingest.stop(&task).await.unwrap_err();
    assert!(
        e.to_string().contains("InternalError: boom") || e.to_string().contains("boom"),
        "{e}"
    );
    assert_eq!(
        cloud
            .post(&format!("{}/kill", task_path(&task)), json!({}))
            .await
            .as_u16(),
        200
    );
    cloud
        .until(&task_path(&task), "the kill", Duration::from_secs(5), |v| {
            v["phase"] == "killed"
        })
        .await;
    assert_eq!(
        cloud.ingest.describe(&task).await.unwrap().response.status,
        IngestStatus::NotExist
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_task_stops_delivering_until_resumed() {
    let media = tempfile::tempdir().unwrap();
    Clip {
        seconds: 1,
        width: 160,
        height: 120,
        fps: 25,
        tone_hz: 440,
    }
    .write(media.path(), "c.mp4");
    let files = serve_dir(media.path()).await;
    let mut config = emulator_config();
    config.pace = Pace::Realtime;
    let cloud = cloud_with(config, settings()).await;
    let mut looping = StartStreamIngest::new(
        RoomRef::string("r").unwrap(),
        user("robot"),
        format!("{files}c.mp4"),
    );
    looping.repeat_num = Some(-1);
    let task = cloud.ingest.start(&looping).await.unwrap().response.task_id;
    let path = task_path(&task);
    cloud
        .until(&path, "media", Duration::from_secs(10), |v| {
            v["video_frames"].as_u64() > Some(10)
        })
        .await;
    let pause = |p: bool| UpdateStreamIngest {
        task_id: task.clone(),
        is_pause: Some(p),
        ..UpdateStreamIngest::default()
    };
    assert_eq!(
        cloud
            .ingest
            .update(&pause(true))
            .await
            .unwrap()
            .response
            .status,
        IngestStatus::InProgress
    );
    let paused = cloud
        .until(&path, "the pause", Duration::from_secs(5), |v| {
            v["phase"] == "paused"
        })
        .await;
    // An observation window, not synchronisation: 600 ms is 15 frames of real time, and
    // none may arrive while paused.
    let frames = paused["video_frames"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let after = cloud.get(&path).await["video_frames"].as_u64().unwrap();
    assert!(after <= frames + 2, "paused: {frames} then {after}");
    cloud.ingest.update(&pause(false)).await.unwrap();
    cloud
        .until(
            &path,
            "delivery after resume",
            Duration::from_secs(5),
            |v| v["video_frames"].as_u64() > Some(after + 10),
        )
        .await;
    assert_eq!(
        cloud.get(&path).await["gaps_over_500ms"],
        0,
        "a pause is not a gap"
    );
    cloud.ingest.stop(&task).await.unwrap();
}
