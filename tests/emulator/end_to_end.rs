//! A call and an ingest task through every command, action and webhook.

use super::*;

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
