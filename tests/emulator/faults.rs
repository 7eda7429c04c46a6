//! Callee scripts, an unreachable source, injected faults and paused tasks.

use super::*;

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
