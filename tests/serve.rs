//! `callfeed serve` end to end: the API a user drives, what the cloud is left with after a
//! crash, and many sessions at once each reaching only its own room.

use std::time::{Duration, Instant};

use crate::common::serve::*;
use crate::common::*;
use callfeed::emulator::Emulator;
use callfeed::store::{SessionStore, Store};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_runs_follows_and_stops_sessions() {
    let emulator = Emulator::start(test_emulator_config(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (service, api) = start_service(&emulator, &dir.path().join("j.sqlite"), |_| {}).await;
    let session = json!({"to":["jack"],"media":"test:black+tone=440","room":"api-1","media_type":"audio","max_duration_secs":2});

    let (status, _) = api
        .call(
            reqwest::Method::POST,
            "/v1/sessions",
            Some(session.clone()),
            None,
        )
        .await;
    assert_eq!(status, 401, "no token");
    let (status, _) = api
        .call(
            reqwest::Method::POST,
            "/v1/sessions",
            Some(session.clone()),
            Some("wrong"),
        )
        .await;
    assert_eq!(status, 401, "wrong token");
    let (status, body) = api
        .post(json!({"to":["jack"],"media":"test:","room":"0","room_type":"numeric"}))
        .await;
    assert_eq!(status, 422);
    assert!(
        body["error"].as_str().unwrap().contains("1 to 4294967294"),
        "{body}"
    );
    let (status, body) = api
        .post(json!({"to":["jack"],"media":"test:","room":"r","ring_timeout_secs":5}))
        .await;
    assert_eq!(status, 422, "{body}");

    let (status, created) = api.post(session).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    // Server-Sent Events: each phase, then the report.
    let text = events_until_report(&api.base, &id).await;
    // (`preparing` comes first, but a test source is ready before the stream is followed.)
    for phase in ["ringing", "answered", "ingesting", "ending"] {
        assert!(
            text.contains(&format!("\"phase\":\"{phase}\"")),
            "{phase} missing from {text}"
        );
    }
    assert!(text.contains("\"result\":\"completed\""), "{text}");
    let one = api.get(&format!("/v1/sessions/{id}")).await;
    assert_eq!(one["report"]["result"], "completed");
    assert_eq!(one["status"]["phase"], "ended", "{one:#}");

    // A second session for a room and robot that are busy is refused with the running one.
    let long = json!({"to":["jack"],"media":"test:black+tone=440","room":"api-2","media_type":"audio","loop_forever":true});
    let (_, first) = api.post(long.clone()).await;
    let first_id = first["id"].as_str().unwrap().to_owned();
    api.until(
        &format!("/v1/sessions/{first_id}"),
        Duration::from_secs(10),
        |v| v["status"]["phase"] == "ingesting",
    )
    .await;
    let (status, conflict) = api.post(long).await;
    assert_eq!(status, 409, "{conflict}");
    assert_eq!(conflict["existing"], first_id);
    let (status, _) = api
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/sessions/{first_id}"),
            None,
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, 202);
    let stopped = api.ended(&first_id, Duration::from_secs(10)).await;
    assert_eq!(stopped["report"]["result"], "stopped");
    let call = emulator
        .call_view(stopped["report"]["call_id"].as_str().unwrap())
        .unwrap();
    assert_eq!(call["state"], "ended");
    assert_eq!(
        call["media"][0]["status"], "NotExist",
        "the task was stopped: {call:#}"
    );

    // Webhooks are checked before they are believed.
    let (status, _) = api
        .call(
            reqwest::Method::POST,
            "/webhooks/call?SdkAppid=1&CallbackCommand=Call.CallbackAfterEndCall",
            Some(json!({})),
            None,
        )
        .await;
    assert_eq!(status, 400);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let body = format!(
        r#"{{"EventGroupId":7,"EventType":702,"CallbackMsTs":{now_ms},"EventInfo":{{"EventMsTs":{now_ms},"TaskId":"t","Status":0}}}}"#
    );
    let send_trtc = |sign: String| {
        reqwest::Client::new()
            .post(format!("{}/webhooks/trtc", api.base))
            .header("SdkAppId", SDKAPPID.to_string())
            .header("Sign", sign)
            .body(body.clone())
            .send()
    };
    assert_eq!(
        send_trtc("bm90IGEgc2lnbg==".into()).await.unwrap().status(),
        400
    );
    let good = callfeed::cloud::webhook::trtc_sign("callbackkey", body.as_bytes());
    assert_eq!(send_trtc(good.clone()).await.unwrap().status(), 200);
    assert_eq!(
        send_trtc(good).await.unwrap().status(),
        400,
        "a replayed webhook is refused"
    );

    let metrics = metrics(&api.base).await;
    for line in [
        "callfeed_session_results_total{result=\"completed\"} 1",
        "callfeed_session_results_total{result=\"stopped\"} 1",
        "callfeed_cloud_requests_total{op=\"start_call_by_robot\",outcome=\"ok\"} 2",
        "callfeed_webhooks_total{kind=\"trtc\",verdict=\"bad_sign\"} 1",
        "callfeed_webhooks_total{kind=\"trtc\",verdict=\"replayed\"} 1",
        "callfeed_webhooks_total{kind=\"call\",verdict=\"wrong_sdkappid\"} 1",
        "callfeed_sessions{state=\"ended\"} 2",
    ] {
        assert!(metrics.contains(line), "`{line}` not in:\n{metrics}");
    }
    service.drain().await;
    assert_eq!(
        reqwest::get(format!("{}/readyz", api.base))
            .await
            .unwrap()
            .status(),
        503
    );
    let (status, _) = api
        .post(json!({"to":["jack"],"media":"test:","room":"late"}))
        .await;
    assert_eq!(status, 503, "draining takes no new sessions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_concurrent_sessions_each_reach_only_their_own_room() {
    let emulator = Emulator::start(test_emulator_config(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_service, api) = start_service(&emulator, &dir.path().join("j.sqlite"), |_| {}).await;
    let tones: Vec<u32> = (0..10).map(|i| 300 + i * 110).collect();
    let mut ids = Vec::new();
    for (i, hz) in tones.iter().enumerate() {
        let (status, created) = api
            .post(
                json!({"to":[format!("callee{i}")],"media":format!("test:black+tone={hz}"),
                "room":format!("room-{i}"),"media_type":"audio","max_duration_secs":4}),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    for (i, (id, hz)) in ids.iter().zip(&tones).enumerate() {
        let s = api.ended(id, Duration::from_secs(30)).await;
        assert_eq!(s["report"]["result"], "completed", "{s:#}");
        let view = emulator
            .call_view(s["report"]["call_id"].as_str().unwrap())
            .unwrap();
        assert_eq!(view["room_id"], format!("room-{i}"));
        let media = view["media"].as_array().unwrap();
        assert_eq!(media.len(), 1, "only its own stream in room-{i}: {view:#}");
        let heard = media[0]["dominant_hz"].as_f64().unwrap_or(0.0);
        assert!(
            (heard - f64::from(*hz)).abs() < 6.0,
            "room-{i} heard {heard} Hz, not {hz}: {view:#}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_service_leaves_nothing_running_after_its_restart() {
    let (_emulator, control, env) = emulator_process().await;
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.sqlite").display().to_string();
    let serve_args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--journal",
        journal.as_str(),
    ];
    let (mut serve, line) = spawn_line(&serve_args, &env).await;
    let api = Api::from_line(&line);
    let (status, created) = api
        .post(json!({"to":["jack"],"media":"test:black+tone=440","room":"crash","media_type":"audio","loop_forever":true}))
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    api.until(
        &format!("/v1/sessions/{id}"),
        Duration::from_secs(15),
        |v| v["status"]["phase"] == "ingesting",
    )
    .await;
    // kill -9: no teardown runs.
    serve.start_kill().unwrap();
    let _ = serve.wait().await;
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        async move {
            serde_json::from_slice::<Value>(
                &http.get(path).send().await.unwrap().bytes().await.unwrap(),
            )
            .unwrap()
        }
    };
    let tasks = get(format!("{control}/tasks")).await;
    let task = tasks["tasks"][0].clone();
    assert_eq!(
        task["status"], "InProgress",
        "the orphan is still running: {tasks:#}"
    );
    let calls = get(format!("{control}/calls")).await;
    assert_eq!(calls["calls"][0]["state"], "connected");
    // The restarted service finds the session in its journal and stops what it started.
    let (_serve, _) = spawn_line(&serve_args, &env).await;
    let task_path = format!(
        "{control}/tasks/{}",
        task["task_id"].as_str().unwrap().replace('+', "%2B")
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let t = get(task_path.clone()).await;
        let calls = get(format!("{control}/calls")).await;
        if t["status"] == "NotExist" && calls["calls"][0]["state"] == "ended" {
            break;
        }
        assert!(Instant::now() < deadline, "not recovered: {t:#} {calls:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let j = Store::open(std::path::Path::new(&journal)).unwrap();
    let (result, note) = j.result_of(&id).await.unwrap().unwrap();
    assert_eq!(result, "recovered");
    assert!(
        note.contains("stopped task") && note.contains("ended call"),
        "{note}"
    );
}
