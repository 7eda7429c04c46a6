//! StartPublishCdnStream against the emulator: the relay to CDN really encodes what the room
//! carries and pushes it over RTMP (here to nginx, played back like any viewer would), follows
//! RoomIdType's numbering for this action, and stops when asked.

use super::*;
use callfeed::cloud::publish_cdn::{PublishSource, PublishVideo, StartPublishCdnStream};
use callfeed::media::observer::Pace;
use secrecy::SecretString;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_stream_is_published_to_rtmp_as_the_room_carries_it() {
    let media = tempfile::tempdir().unwrap();
    Clip {
        seconds: 3,
        width: 320,
        height: 240,
        fps: 15,
        tone_hz: 440,
    }
    .write(media.path(), "c.mp4");
    let files = serve_dir(media.path()).await;
    let config = EmulatorConfig {
        pace: Pace::Realtime,
        ..emulator_config()
    };
    let cloud = cloud_with(config, settings()).await;
    let nginx = Nginx::start();
    let room = RoomRef::numeric(4242).unwrap();
    let mut ingest = StartStreamIngest::new(room.clone(), user("robot"), format!("{files}c.mp4"));
    ingest.repeat_num = Some(-1);
    let task = cloud.ingest.start(&ingest).await.unwrap().response.task_id;
    let mut publish = StartPublishCdnStream::new(
        room.clone(),
        user("monitor_4242"),
        PublishSource::User(user("robot")),
        SecretString::from(nginx.url("room-4242")),
    );
    publish.video = Some(PublishVideo {
        width: 320,
        height: 240,
        fps: 15,
        bitrate_kbps: 300,
        gop_secs: 1,
    });
    let reply = cloud.ingest.start_publish_cdn(&publish).await.unwrap();
    let publish_id = reply.response.task_id;
    // A player of the RTMP URL hears the robot's 440 Hz and sees its picture.
    let seen = observe_while(
        &nginx.url("room-4242"),
        Pace::Realtime,
        Duration::from_secs(20),
        |m| m.audio_ms < 1500 || m.video_frames < 10,
    )
    .await;
    assert!(
        seen.dominant_hz.is_some_and(|hz| within(hz, 440.0, 0.03)),
        "{seen:?}"
    );
    assert_eq!((seen.width, seen.height), (320, 240), "{seen:?}");
    let listed = cloud.get("/publishes").await;
    let view = &listed["publishes"][0];
    assert_eq!(view["room_id"], "4242", "{listed:#}");
    assert_eq!(view["from"], json!({"kind": "user", "user_id": "robot"}));
    assert!(
        !listed.to_string().contains("room-4242"),
        "a publish's stream key stays out of views: {listed:#}"
    );
    cloud.ingest.stop_publish_cdn(&publish_id).await.unwrap();
    let e = cloud
        .ingest
        .stop_publish_cdn(&publish_id)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, CloudError::Api { code, .. } if code == "FailedOperation.TaskNotExist"),
        "{e}"
    );
    let listed = cloud.get("/publishes").await;
    assert_eq!(listed["publishes"][0]["state"], "stopped", "{listed:#}");
    cloud.ingest.stop(&task).await.unwrap();
    cloud.emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_of_an_empty_room_ends_after_its_max_idle_time() {
    let cloud = cloud().await;
    let nginx = Nginx::start();
    let mut publish = StartPublishCdnStream::new(
        RoomRef::string("nobody-here").unwrap(),
        user("monitor_empty"),
        PublishSource::Mix,
        SecretString::from(nginx.url("empty")),
    );
    publish.max_idle_secs = Some(5);
    let id = cloud
        .ingest
        .start_publish_cdn(&publish)
        .await
        .unwrap()
        .response
        .task_id;
    let listed = cloud
        .until(
            "/publishes",
            "the publish to end by itself",
            Duration::from_secs(10),
            |v| v["publishes"][0]["state"] == "idle",
        )
        .await;
    assert_eq!(listed["publishes"][0]["task_id"], id.as_str());
    let e = cloud.ingest.stop_publish_cdn(&id).await.unwrap_err();
    assert!(
        matches!(&e, CloudError::Api { code, .. } if code == "FailedOperation.TaskNotExist"),
        "{e}"
    );
    cloud.emulator.shutdown().await;
}
