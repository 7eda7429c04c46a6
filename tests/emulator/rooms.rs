//! Rooms kept apart, and a RoomIdType mix-up that leaves the callee without media.

use super::*;

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
